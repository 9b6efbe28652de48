"""What this peer shows and records: pictures prepared off the event loop.

Theory of operation
-------------------
One ``LatestWorker`` (a fresh picture beats a backlog) does everything a picture needs
before the user sees it, in the thread pool: shrink it to the layer this peer watches
and hand it to ``on_frame`` (which, in the GUI, converts
it to a QImage: that conversion therefore runs on a worker thread too, never on the
network loop). The streamer's own preview takes the same path with the captured
picture, so neither decoding nor conversion happens on the loop.

Received frames are decoded once, in order, by the relay's receive pipeline (an
H.264 frame only decodes after the one before it); it hands the picture here. The
recording (``recording``) is written by that pipeline too, in order: an H.264 stream as
received, anything else from the picture. Received video is only decoded when
someone wants the picture: a display callback (and ``decode`` on), or a recording
that needs pictures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from peer.node.errors import MediaError
from peer.node.events import DecodedFrame
from peer.node.picture import Image
from peer.node.workers import LatestWorker
from protocol import VideoFrame

if TYPE_CHECKING:
    # Resizing (OpenCV) and recording (OpenCV, PyAV) are imported when first used: a
    # headless peer that neither shows nor records never loads them.
    from peer.node.passthrough import H264Recorder
    from peer.node.recording import Recording

log = logging.getLogger(__name__)

# Lip sync: a picture due this little before its sound is shown at once.
MIN_PICTURE_WAIT_S = 0.002


@dataclass(frozen=True, slots=True)
class Picture:
    """One picture to show: a received frame (``image`` None until decoded), or the
    streamer's captured picture (``frame`` None)."""

    frame: VideoFrame | None
    image: Image | None
    seq: int
    epoch: int
    captured_at: float


class Display:
    """Shows and records what this peer watches.

    Args:
        executor: where decoding, resizing and recording run.
        on_frame: receives every prepared picture (on a worker thread), or None.
        want_size: the (width, height) to show, or None for the picture's own size.
        on_record_error: called when the recording failed and stopped.
        picture_wait: how long a received picture captured at ``captured_at`` should
            wait for its sound (lip sync), or None.
        on_shown: called (worker thread) with (captured_at, ready_at, shown_at) of each
            received picture handed to ``on_frame``.
    """

    def __init__(
        self,
        executor: Executor,
        *,
        on_frame: Callable[[DecodedFrame], None] | None,
        want_size: Callable[[VideoFrame], tuple[int, int] | None],
        on_record_error: Callable[[MediaError], None],
        picture_wait: Callable[[float], float] | None = None,
        on_shown: Callable[[float, float, float], None] | None = None,
    ) -> None:
        # The node's event loop (start()): pictures waiting for their sound wait there.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frame = on_frame
        self._want_size = want_size
        self._on_record_error = on_record_error
        self._picture_wait = picture_wait
        self._on_shown = on_shown
        self._executor = executor
        self._closed = False
        self.recording: Recording | None = None
        self._worker: LatestWorker[Picture, None] = LatestWorker(
            "display", executor, self._work, lambda item, result: None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run on ``loop`` from now on (the node's; pictures arrive once it runs)."""
        self._loop = loop

    @property
    def wants_pictures(self) -> bool:
        """Whether received frames must be decoded for the screen."""
        return self._on_frame is not None

    @property
    def shows(self) -> bool:
        return self._on_frame is not None

    def show(self, picture: Picture) -> None:
        """Prepare and deliver ``picture`` (latest wins)."""
        self._worker.submit(picture)

    def received(self, frame: VideoFrame, image: Image | None) -> None:
        """A received frame (and its picture, when the transcoder decoded it)."""
        self.show(Picture(frame, image, frame.seq, frame.epoch, frame.captured_at))

    def _work(self, item: Picture) -> None:
        image = item.image
        frame = item.frame
        if frame is not None and image is not None:
            size = self._want_size(frame)
            if size is not None:
                from peer.node.codec import resize

                image = resize(image, *size)
        if image is None or self._on_frame is None:
            return
        height, width = image.shape[:2]
        decoded = DecodedFrame(image, width, height, item.seq, item.epoch, item.captured_at)
        if frame is None:  # the streamer's own preview: no sound to wait for
            self._on_frame(decoded)
            return
        # Lip sync: a picture ready before its sound is heard waits for it.
        wait = self._picture_wait(item.captured_at) if self._picture_wait else 0.0
        if wait > MIN_PICTURE_WAIT_S:
            assert self._loop is not None, "start() first"
            self._loop.call_soon_threadsafe(self._show_later, decoded, wait, time.time())
        else:
            self._show(decoded, time.time())

    def _show_later(self, decoded: DecodedFrame, wait: float, ready_at: float) -> None:
        def show() -> None:
            if not self._closed:
                self._executor.submit(self._show, decoded, ready_at)
        asyncio.get_running_loop().call_later(wait, show)

    def _show(self, decoded: DecodedFrame, ready_at: float) -> None:
        """Hand a picture to ``on_frame`` and report when (worker thread)."""
        assert self._on_frame is not None
        self._on_frame(decoded)
        if self._on_shown is not None:
            self._on_shown(decoded.captured_at, ready_at, time.time())

    def sound_track(self) -> H264Recorder | None:
        """Where received sound is recorded: the H.264 recording's Opus track."""
        recording = self.recording
        return None if recording is None else recording.passthrough

    def recording_failed(self, exc: MediaError) -> None:
        """The pipeline could not write the recording (disk full, ...): it stopped."""
        recording, self.recording = self.recording, None
        if recording is not None:  # report once
            with contextlib.suppress(MediaError):  # the first error is the one to tell
                recording.close()
            self._on_record_error(exc)

    async def set_recording(self, path: str | None, fps: float, *,
                            audio: bool = False) -> None:
        """Start recording to ``path`` (None stops and finalizes).

        Raises:
            MediaError: the format is unsupported or the file cannot be written.
        """
        old, self.recording = self.recording, None
        if old is not None:
            await asyncio.get_running_loop().run_in_executor(None, old.close)
        if path is not None:
            from peer.node.recording import Recording

            self.recording = Recording(path, fps, audio=audio)

    async def close(self) -> None:
        self._closed = True
        await self._worker.close()
        await self.set_recording(None, 0.0)
