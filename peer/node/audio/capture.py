"""Plays an audio source in real time on a worker thread, as Opus packets.

Theory of operation
-------------------
Block ``n`` of a paced source (file, tone) is due at ``anchor + n * 20 ms`` and is
stamped with that time: the anchor is the capture time of the video frame at
position 0, so a sample and the frame at the same position in the source carry the
same capture time (that is what lip sync is measured against). Audio is never
skipped to catch up (decoding 20 ms of audio costs far less than 20 ms), except after
a stall of seconds, when the schedule restarts like the video pacer's.

The picture leads: when its pacer pauses (no frame for ``PAUSE_S``) the sound holds
too, and when the picture's anchor moves (after a pause, a seek, a loop of the file, a
stall) ``realign`` moves the sound's: the source is sought to the position now due and
the schedule continues from there, so the two stay on one time line.

A live source (microphone) is its own clock: each block is stamped with the time its
first sample entered the device.

Sound is a demand (docs/ARCHITECTURE.md, "Sound demand"): while nobody in the tree asks
for it (``set_wanted(False)``), blocks are still read on schedule and numbered, but
neither encoded nor handed to the loop, which would only sign and drop them. ``seq``
counts the blocks of the time line, sent or not: a listener whose parent was lost
concealed the silence block by block, and its jitter buffer expects the next packet
under the number of the block due now, not the one after the last it heard. The first
packet after a silence comes from a fresh encoder, as at the start of a stream.

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
# No picture for this long while playing a file: the picture is paused, hold the sound.
PAUSE_S = 0.25


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
        self._lock = threading.Lock()
        self._realign_to: float | None = None  # a new anchor, applied between blocks
        self._video_at = time.monotonic()  # when the picture last moved
        self._mono = time.monotonic
        # Whether anyone asks for sound (set on the loop, read by the thread: a bool).
        self._wanted = True
        self.skipped = 0  # blocks read but not sent: nobody asked for them
        self.last_block_at = 0.0  # monotonic time of the last block read, sent or not

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

    def realign(self, anchor: float) -> None:
        """The picture's position 0 is now at ``anchor`` (wall clock): follow it."""
        with self._lock:
            self._realign_to = anchor

    def set_wanted(self, wanted: bool) -> None:
        """Whether anyone in the tree asks for sound now (see the module comment)."""
        self._wanted = wanted

    def video_moved(self) -> None:
        """The picture released a frame (it is not paused)."""
        self._video_at = self._mono()

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
        encoder: OpusEncoder | None = None  # made for the first block sent
        source = self.source
        seq = 0
        position = 0.0  # of the next block in the source (paced sources)
        anchor = self._anchor
        while not self._stopping.is_set():
            if source.paced:
                with self._lock:
                    realign, self._realign_to = self._realign_to, None
                if realign is not None:
                    # Continue from the position due now on the picture's new time line.
                    anchor = realign
                    position = max(0.0, self._clock() - anchor)
                    source.seek(position)
                if self._mono() - self._video_at > PAUSE_S:
                    self._stopping.wait(FRAME_S)  # the picture is paused: so are we
                    continue
                due = anchor + position
                now = self._clock()
                if now < due:
                    self._stopping.wait(min(due - now, FRAME_S))
                    continue
                if now - due > MAX_CATCH_UP_S:
                    log.info("audio stalled %.1f s; restarting its schedule", now - due)
                    anchor = now - position
                    due = now
            block = source.read()
            if block is None:
                if self._loop_source and seq > 0:
                    source.rewind()
                    continue
                return
            captured_at = (source.captured_at if isinstance(source, MicSource)
                           else anchor + position)
            position += FRAME_S
            self.last_block_at = self._mono()
            if not self._wanted:
                encoder = None  # the next packet sent starts a fresh encoder
                seq += 1
                self.skipped += 1
                continue
            if encoder is None:
                encoder = OpusEncoder()
            packet = encoder.encode(block)
            self._post(self._on_packet, EncodedAudio(seq, OpusEncoder.stamp(captured_at), packet))
            seq += 1
            self.sent += 1
