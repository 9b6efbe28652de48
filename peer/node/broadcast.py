"""The streamer's role: taking the lock, running the pump, pausing and seeking, ending.

``start`` opens the source (video and sound) before asking the directory for the
streamer lock, so a bad file is refused without touching the room; with the lock's
epoch the tree state becomes the root and a ``StreamPump`` runs the capture. The
stream ends when the pump says so (source over or failed, lease lost), when another
peer takes the lock, or when we stop it: then the pump stops, the tree tells every
child (``STREAM_ENDED``) and the lock is released.

Pausing or seeking a file is the whole room's: the capture holds, and a ``Playback``
message goes to every child (each passes it down), so viewers neither count the
silence as a dead parent nor the held frame as loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from peer.node.audio.station import AudioStation
from peer.node.codecs.base import VideoCodec
from peer.node.config import NodeConfig, SourceSpec
from peer.node.display import Display
from peer.node.errors import LockDeniedError, MediaError, NodeError, TrackerUnreachableError
from peer.node.events import (
    ErrorRaised,
    LockDenied,
    NodeEvent,
    SourceProgress,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
)
from peer.node.linktable import LinkTable
from peer.node.media_auth import MediaSigner
from peer.node.playback import PlaybackState
from peer.node.pump import StreamEnd, StreamPump
from peer.node.relay import Relay
from peer.node.room import DirectoryRoom
from peer.node.stats import StreamStats
from peer.node.tasks import TaskSet
from peer.node.tree.state import StreamInfo
from peer.node.tree_driver import TreeDriver, now

if TYPE_CHECKING:
    # Sources and their capture (OpenCV, numpy, PyAV) are imported when this peer
    # streams: a viewer never pays their start-up cost.
    from peer.node.media import FrameSource, PacedCapture


class Broadcast:
    """Streams into the room when asked (one stream at a time).

    Args:
        config: our name, codec and identity in the room.
        peer_id: our id.
        driver: the tree state's driver.
        room: the directory (the streamer lock).
        links: our children (playback state goes to them).
        relay, display, executor, stats, audio, playback: what a stream uses.
        tasks: where an ending stream is wound down.
        emit: reports events.
        fatal: reports a fatal error and returns it to raise.
    """

    def __init__(self, config: NodeConfig, peer_id: str, driver: TreeDriver,
                 room: DirectoryRoom, links: LinkTable, *, relay: Relay, display: Display,
                 signer: MediaSigner,
                 executor: Executor, stats: StreamStats, audio: AudioStation,
                 playback: PlaybackState, tasks: TaskSet,
                 emit: Callable[[NodeEvent], None],
                 fatal: Callable[[NodeError], NodeError]) -> None:
        self._config = config
        self._peer_id = peer_id
        self._driver = driver
        self._tree = driver.tree
        self._room = room
        self._links = links
        self._relay = relay
        self._signer = signer
        self._display = display
        self._executor = executor
        self._stats = stats
        self._audio = audio
        self._playback = playback
        self._tasks = tasks
        self._emit = emit
        self._fatal = fatal
        self.pump: StreamPump | None = None
        self._position_s = 0.0  # where the file stands (last released frame)
        # The streamer our listener was told about (StreamStarted), ours or another's.
        self.announced: str | None = None

    async def open(self, source: SourceSpec) -> FrameSource:
        """Open ``source`` (video, and sound ready to take) off the loop.

        Raises:
            MediaError: it cannot be opened (reported as fatal).
        """
        from peer.node.media import open_source

        loop = asyncio.get_running_loop()
        opened: FrameSource | None = None
        try:
            opened = await loop.run_in_executor(None, open_source, source)
            await loop.run_in_executor(None, self._audio.prepare, source)
        except MediaError as exc:
            if opened is not None:
                opened.close()
            raise self._fatal(exc) from None
        return opened

    async def start(self, source: SourceSpec, opened: FrameSource | None = None) -> None:
        """Become the room's streamer (root of the tree).

        Args:
            source: what to stream.
            opened: the source already opened from ``source``.

        Raises:
            MediaError: the source cannot be opened. LockDeniedError: someone streams.
        """
        directory = self._room.directory
        assert directory is not None, "start() first"
        if self.pump is not None:
            return
        from peer.node.media import PacedCapture, open_source

        loop = asyncio.get_running_loop()
        frame_source = opened
        if frame_source is None:
            try:
                frame_source = await loop.run_in_executor(None, open_source, source)
            except MediaError as exc:
                raise self._fatal(exc) from None
        try:
            sound = await loop.run_in_executor(None, self._audio.take_source, source)
        except MediaError as exc:
            frame_source.close()
            raise self._fatal(exc) from None
        self._audio.start_stream(
            sound, loop_source=getattr(source, "loop", False),
            children=self._links.sound_children,
            epoch=lambda: self._tree.epoch, sign=self._signer.audio)
        try:
            epoch = await directory.claim()
        except LockDeniedError as exc:
            self._audio.stop_stream()
            frame_source.close()
            self._emit(LockDenied(holder=exc.holder, message=str(exc)))
            raise
        except TrackerUnreachableError as exc:
            self._audio.stop_stream()
            frame_source.close()
            raise self._fatal(exc) from None
        stream = StreamInfo(frame_source.width, frame_source.height, frame_source.fps,
                            self._config.codec)
        self._driver.apply(self._tree.become_root(
            epoch, stream, now(),
            lambda signed: self._signer.announcement(signed, stream, time.time())))
        self._playback.new_stream(self._tree.epoch)
        self._position_s = 0.0
        capture = PacedCapture(frame_source, loop=getattr(source, "loop", False))
        capture.start(loop)
        self.pump = StreamPump(
            capture, self._relay, self._display, self._executor, self._stats,
            epoch=self._tree.epoch, lease_valid=directory.lease_valid,
            on_released=self._on_released,
            on_progress=lambda pos, dur: self._emit(SourceProgress(position_s=pos,
                                                                   duration_s=dur)),
            on_end=self.end_soon, codec=VideoCodec(self._config.codec),
            fps=frame_source.fps)
        self.announced = self._peer_id
        self._emit(StreamStarted(streamer=self._config.name, streamer_id=self._peer_id,
                                 epoch=self._tree.epoch))

    def end_soon(self, end: StreamEnd) -> None:
        """End the stream (from a callback: the pump's, the directory's)."""
        self._tasks.spawn(self.end(end), "node-end-stream")

    async def end(self, end: StreamEnd) -> None:
        """Stop streaming: the pump stops, the children hear it, the lock is released."""
        pump, self.pump = self.pump, None
        if pump is None:
            return
        await pump.stop()
        self._audio.stop_stream()
        self._driver.apply(self._tree.end_root(now()))
        if self._room.directory is not None:
            with contextlib.suppress(Exception):
                await self._room.directory.release()
        self.announced = None
        if end.reason is StreamEndReason.SOURCE_FAILED:
            self._emit(ErrorRaised(message=end.text))
        self._emit(StreamEnded(streamer=self._config.name, reason=end.reason,
                               detail=end.detail))

    async def stop(self) -> None:
        await self.end(StreamEnd(StreamEndReason.FINISHED))

    def set_paused(self, paused: bool) -> None:
        """Pause or resume our streamed file, for the whole room.

        Raises:
            MediaError: not streaming a file (a camera or screen cannot pause).
        """
        capture = self._seekable_capture()
        if paused:
            capture.pause()
        else:
            capture.resume()
        self._tell_playback(paused, self._position_s)

    def seek(self, seconds: float) -> None:
        """Move our streamed file to ``seconds``, for the whole room.

        Raises:
            MediaError: not streaming a file of known length.
        """
        capture = self._seekable_capture()
        duration = capture.source.duration_s or 0.0
        seconds = min(max(float(seconds), 0.0), duration)
        capture.seek(seconds)
        self._position_s = seconds
        self._tell_playback(capture.paused, seconds)

    def _on_released(self, captured_at: float, position_s: float) -> None:
        self._position_s = position_s  # where a pause says the file stands
        self._audio.video_released(captured_at, position_s)

    def _seekable_capture(self) -> PacedCapture:
        if self.pump is None or not self.pump.capture.seekable:
            raise MediaError("only a video file being streamed can pause or seek")
        return self.pump.capture

    def _tell_playback(self, paused: bool, position_s: float) -> None:
        assert self.pump is not None
        message = self._playback.local(self._tree.epoch, paused, position_s,
                                       self.pump.capture.source.duration_s, time.time())
        for child in self._links.children:
            child.send(message)
        self._emit(self._playback.event())
