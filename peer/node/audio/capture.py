"""Plays an audio source in real time on a worker thread, as Opus packets.

Theory of operation
-------------------
Block ``n`` of a paced source (file, tone) is due at ``anchor + n * 20 ms`` and is
stamped with that time: the anchor is the capture time of the video frame at
position 0, so a sample and the frame at the same position in the source carry the
same capture time (that is what lip sync is measured against). Audio is never
skipped to catch up (decoding 20 ms of audio costs far less than 20 ms), except after
a stall of seconds, when the schedule restarts like the video pacer's.

A live source (microphone) is its own clock: each block is stamped with the time its
first sample entered the device.

Packets cross into asyncio with ``loop.call_soon_threadsafe``; the consumer sends them
at once (a packet is ~160 bytes), so nothing queues here.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from peer.node.audio.format import FRAME_S
from peer.node.audio.opus import OpusEncoder
from peer.node.audio.source import AudioSource, MicSource
from peer.node.errors import MediaError

log = logging.getLogger(__name__)

# Behind by more than this (a suspended laptop), restart the schedule instead of
# sending seconds of audio at once.
MAX_CATCH_UP_S = 1.0


@dataclass(frozen=True, slots=True)
class EncodedAudio:
    """One Opus packet ready to send.

    Attributes:
        seq: packet number in this stream (no gaps at the source).
        captured_at: wall-clock time of the first sample the packet decodes to.
        packet: the Opus bytes.
    """

    seq: int
    captured_at: float
    packet: bytes = field(repr=False)


class AudioCapture:
    """Owns a source and an encoder on a daemon thread.

    Args:
        source: the opened source; the capture closes it at the end.
        on_packet: called on the event loop with each packet.
        on_end: called on the event loop once, with the error that ended the sound
            (None at the end of the source or after ``stop``).
        anchor: wall-clock time of the source's position 0 (the first video frame).
        loop_source: rewind at the end (a looping file).
        clock: wall-clock time (tests inject a fake one).
    """

    def __init__(
        self,
        source: AudioSource,
        *,
        on_packet: Callable[[EncodedAudio], None],
        on_end: Callable[[MediaError | None], None],
        anchor: float,
        loop_source: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self._on_packet = on_packet
        self._on_end = on_end
        self._anchor = anchor
        self._loop_source = loop_source
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the worker thread (once)."""
        if self._thread is not None:
            raise RuntimeError("AudioCapture already started")
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="treecast-audio", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the worker (idempotent). A live device read returns within 20 ms."""
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody listens any more
            self._stopping.set()

    def _run(self) -> None:
        error: MediaError | None = None
        try:
            self._play()
        except MediaError as exc:
            error = exc
        except Exception as exc:  # a bug or a codec surprise: end the sound, not the node
            log.exception("audio source failed")
            error = MediaError(f"audio source failed: {exc}")
        finally:
            try:
                self.source.close()
            except Exception:
                log.exception("closing the audio source failed")
            if not self._stopping.is_set() or error is not None:
                self._post(self._on_end, error)

    def _play(self) -> None:
        encoder = OpusEncoder()
        source = self.source
        seq = 0
        block_index = 0  # blocks since the anchor (paced sources)
        anchor = self._anchor
        while not self._stopping.is_set():
            if source.paced:
                due = anchor + block_index * FRAME_S
                now = self._clock()
                if now < due:
                    self._stopping.wait(due - now)
                    continue
                if now - due > MAX_CATCH_UP_S:
                    log.info("audio stalled %.1f s; restarting its schedule", now - due)
                    anchor, block_index, due = now, 0, now
            block = source.read()
            if block is None:
                if self._loop_source and seq > 0:
                    source.rewind()
                    continue
                return
            if isinstance(source, MicSource):
                captured_at = source.captured_at
            else:
                captured_at = anchor + block_index * FRAME_S
            block_index += 1
            packet = encoder.encode(block)
            self._post(self._on_packet, EncodedAudio(seq, OpusEncoder.stamp(captured_at), packet))
            seq += 1
            self.sent += 1
