"""Video sources and the real-time pacer that feeds frames to the node.

Theory of operation
-------------------
A :class:`FrameSource` is a blocking, single-threaded reader: a video file, a camera, or
the built-in test pattern. :func:`open_source` turns a ``SourceSpec`` into one, checking
everything it can before OpenCV sees the path, so a mistake reaches the user as one
readable :class:`~peer.node.errors.MediaError` line instead of library warnings.

:class:`PacedCapture` owns a source in a daemon worker thread (decoding blocks, and
OpenCV releases the GIL while it does). It releases frames on a fixed schedule: frame
slot ``k`` is due at ``start + k / fps``. When decoding falls behind the schedule the
worker *skips* the frames whose time has passed (``grab`` without colour conversion)
instead of slowing playback down: a live stream shows what is happening now. A camera
is its own clock, so its frames are taken as the device delivers them.

Frames cross into asyncio with ``loop.call_soon_threadsafe`` into a buffer of two that
drops the oldest, so the worker never waits for the consumer and a slow consumer gets
the newest frames (latest wins), with the loss counted in ``dropped``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol, cast

import cv2
import numpy as np

from peer.node.audio.tone import draw_flash, is_flash
from peer.node.codec import Image
from peer.node.config import CameraSource, FileSource, PatternSource, ScreenSource, SourceSpec
from peer.node.errors import MediaError
from protocol.limits import MAX_DIMENSION_PX

logger = logging.getLogger(__name__)

# Used when a container reports no usable frame rate (0, NaN, or a timebase like 90000).
DEFAULT_FPS: Final = 30.0
# Below 1 fps or above 240 fps a reported rate is far more likely a container lie than
# real footage, and pacing a stream at either extreme would be useless anyway.
MIN_FPS: Final = 1.0
MAX_FPS: Final = 240.0
# Frames held between the worker and the asyncio consumer: one being handed over and
# the newest; anything older is stale for a live stream.
BUFFER_FRAMES: Final = 2
# Behind by more than this (a suspended laptop, a debugger pause), the pacer restarts
# its clock instead of grabbing through minutes of video to catch up.
MAX_CATCH_UP_S: Final = 5.0
# Frame counts above this are garbage (OpenCV reports -2**63 for image files).
_MAX_FRAME_COUNT: Final = 1e9


def normalize_fps(fps: float) -> float:
    """The frame rate to pace at, given what a container or device reports.

    Args:
        fps: the reported frame rate (may be 0, NaN or absurd).

    Returns:
        ``fps`` when it lies in [MIN_FPS, MAX_FPS], else DEFAULT_FPS.
    """
    if math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS:
        return float(fps)
    return DEFAULT_FPS


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One raw frame as the pacer released it.

    Attributes:
        image: BGR uint8 picture, shape (height, width, 3). Owned by the receiver.
        index: frame number in the source (restarts at 0 when a file loops).
        captured_at: ``time.time()`` when the pacer released the frame; end-to-end
            latency is measured from here.
        position_s: position in the source, ``index / fps``.
        duration_s: length of the file, None for live sources or unknown lengths.
    """

    image: Image = field(repr=False)
    index: int
    captured_at: float
    position_s: float
    duration_s: float | None


class FrameSource(Protocol):
    """A blocking frame reader. Not thread-safe: one thread reads, then closes.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: the rate to release frames at (the file's own rate, or a fallback).
        duration_s: length in seconds; None for live sources.
        paced: True when the consumer must pace frames to ``fps`` (files, pattern);
            False when ``read`` itself blocks until the next frame (camera).
    """

    width: int
    height: int
    fps: float
    duration_s: float | None
    paced: bool

    def read(self) -> Image | None:
        """Decode the next frame; None at the end of the source.

        Raises:
            MediaError: the source failed (not the normal end).
        """

    def skip(self) -> bool:
        """Advance one frame as cheaply as possible; False at the end."""

    def rewind(self) -> None:
        """Go back to the first frame (no-op for live sources)."""

    def close(self) -> None:
        """Release the source. Idempotent."""


def _open_capture(target: str | int) -> cv2.VideoCapture:
    if isinstance(target, str) and cv2.videoio_registry.hasBackend(cv2.CAP_FFMPEG):
        # Ask for FFmpeg by name: the automatic choice would treat a path containing
        # "%d" as an image sequence.
        return cv2.VideoCapture(target, cv2.CAP_FFMPEG)
    return cv2.VideoCapture(target)


class VideoFileSource:
    """A video file, anything OpenCV's FFmpeg backend decodes (mp4, mkv, webm, ...).

    Args:
        path: the file.

    Raises:
        MediaError: the file is missing, unreadable, not a video, or has no frames.
    """

    paced = True

    def __init__(self, path: str) -> None:
        self.path = path
        _check_readable_file(path)
        self._capture = _open_capture(path)
        if not self._capture.isOpened():
            self._capture.release()
            raise MediaError(self._not_a_video())
        frame_count = self._capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # Read one frame now: opening succeeds for some files that decode nothing, and
        # the decoded size is more trustworthy than the container's header.
        first = self._read_capture()
        if first is None:
            self._capture.release()
            if frame_count == 0:
                raise MediaError(f"video file has no frames: {path}")
            raise MediaError(self._not_a_video())
        self._pending: Image | None = first
        self.height, self.width = first.shape[:2]
        self.fps = normalize_fps(self._capture.get(cv2.CAP_PROP_FPS))
        known = math.isfinite(frame_count) and 0 < frame_count < _MAX_FRAME_COUNT
        self.duration_s: float | None = frame_count / self.fps if known else None
        self._closed = False

    def _not_a_video(self) -> str:
        return f"cannot read video from {self.path}: not a video file or unsupported codec"

    def _read_capture(self) -> Image | None:
        try:
            ok, image = self._capture.read()
        except cv2.error as exc:
            raise MediaError(f"cannot read video from {self.path}: {exc.err}") from exc
        return cast(Image, image) if ok else None

    def read(self) -> Image | None:
        """Decode the next frame; None at the end of the file.

        Raises:
            MediaError: OpenCV failed while decoding.
        """
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        return self._read_capture()

    def skip(self) -> bool:
        """Advance one frame without converting it to BGR; False at the end."""
        if self._pending is not None:
            self._pending = None
            return True
        try:
            return bool(self._capture.grab())
        except cv2.error as exc:
            raise MediaError(f"cannot read video from {self.path}: {exc.err}") from exc

    def seek(self, seconds: float) -> int:
        """Jump to ``seconds`` into the file; returns the frame index landed on.

        Raises:
            MediaError: the decoder refused to move.
        """
        self._pending = None
        try:
            ok = self._capture.set(cv2.CAP_PROP_POS_MSEC, max(seconds, 0.0) * 1000.0)
        except cv2.error as exc:
            raise MediaError(f"cannot seek in {self.path}: {exc.err}") from exc
        if not ok:
            raise MediaError(f"cannot seek in {self.path}")
        return max(round(self._capture.get(cv2.CAP_PROP_POS_FRAMES)), 0)

    def rewind(self) -> None:
        """Start again from the first frame.

        Reopens the file: seeking to frame 0 is unreliable in containers without an
        index (MJPEG avi, some webm), and reopening costs milliseconds once per loop.

        Raises:
            MediaError: the file can no longer be opened (deleted, replaced).
        """
        self._capture.release()
        self._pending = None
        self._capture = _open_capture(self.path)
        if not self._capture.isOpened():
            raise MediaError(f"cannot reopen video {self.path} to loop it")

    def close(self) -> None:
        """Release the decoder. Idempotent."""
        if not self._closed:
            self._closed = True
            self._capture.release()


def _check_readable_file(path: str) -> None:
    """Explain a bad path ourselves; OpenCV would only print warnings and fail."""
    if not os.path.exists(path):
        raise MediaError(f"video file not found: {path}")
    if os.path.isdir(path):
        raise MediaError(f"cannot read video from {path}: it is a directory")
    try:
        with open(path, "rb") as file:
            empty = not file.read(1)
    except PermissionError:
        raise MediaError(f"cannot read video file (permission denied): {path}") from None
    except OSError as exc:
        raise MediaError(f"cannot read video file {path}: {exc.strerror}") from None
    if empty:
        raise MediaError(f"cannot read video from {path}: the file is empty")


class CameraFrameSource:
    """A camera by OpenCV index. ``read`` blocks until the device has the next frame.

    Args:
        index: OpenCV camera index (``/dev/videoN`` on Linux).

    Raises:
        MediaError: no such camera, or it opens but gives no picture.
    """

    paced = False  # the device delivers at its own rate
    duration_s: float | None = None

    def __init__(self, index: int) -> None:
        self.index = index
        # On Linux a missing device node is certain; checking it spares the user
        # OpenCV's probing of every backend (and its warnings).
        if index < 0 or (sys.platform.startswith("linux") and not _has_video_device(index)):
            raise MediaError(f"no camera at index {index}")
        self._capture = _open_capture(index)
        if not self._capture.isOpened():
            self._capture.release()
            raise MediaError(f"no camera at index {index}")
        ok, first = self._capture.read()
        if not ok:
            self._capture.release()
            raise MediaError(f"camera {index} opened but gives no picture (in use elsewhere?)")
        self._pending: Image | None = cast(Image, first)
        self.height, self.width = first.shape[:2]
        self.fps = normalize_fps(self._capture.get(cv2.CAP_PROP_FPS))
        self._closed = False

    def read(self) -> Image | None:
        """The next frame from the device.

        Raises:
            MediaError: the camera stopped delivering (unplugged, taken by another app).
        """
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        try:
            ok, captured = self._capture.read()
        except cv2.error as exc:
            raise MediaError(f"camera {self.index} failed: {exc.err}") from exc
        if not ok:
            raise MediaError(f"camera {self.index} stopped delivering frames")
        return cast(Image, captured)

    def skip(self) -> bool:
        """Drop one frame (never needed: a camera is not paced)."""
        self._pending = None
        return bool(self._capture.grab())

    def rewind(self) -> None:
        """Nothing to rewind in a live camera."""

    def close(self) -> None:
        """Release the device. Idempotent."""
        if not self._closed:
            self._closed = True
            self._capture.release()


def _has_video_device(index: int) -> bool:
    return os.path.exists(f"/dev/video{index}")


class PatternFrameSource:
    """The built-in moving test pattern: endless, cheap, and readable in screenshots.

    A colour gradient with a grid is drawn once; every frame copies it and draws a
    sweeping bar, a bouncing box, the frame number and the wall-clock time (so a
    screenshot of streamer and viewer side by side shows the latency).

    Args:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: frame rate to pace at.

    Raises:
        MediaError: a size or rate out of range.
    """

    paced = True
    duration_s: float | None = None

    def __init__(self, width: int, height: int, fps: float) -> None:
        if not (16 <= width <= MAX_DIMENSION_PX and 16 <= height <= MAX_DIMENSION_PX):
            raise MediaError(
                f"test pattern size {width}x{height} is out of range (16-{MAX_DIMENSION_PX})"
            )
        if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
            raise MediaError(f"test pattern rate {fps} fps is out of range ({MIN_FPS}-{MAX_FPS})")
        self.width = width
        self.height = height
        self.fps = float(fps)
        self._index = 0
        self._background = _pattern_background(width, height)
        self._scale = height / 720  # drawing sizes were tuned at 720p
        self._box = max(8, round(80 * self._scale))
        self._thickness = max(1, round(3 * self._scale))

    def read(self) -> Image:
        """Draw the next frame (never ends)."""
        index = self._index
        self._index += 1
        image = self._background.copy()
        width, height, box, scale = self.width, self.height, self._box, self._scale
        t = index / self.fps
        # A full-height bar sweeps across every 2 s: tearing and dropped frames show.
        bar_x = int((t / 2.0) % 1.0 * width)
        cv2.rectangle(image, (bar_x, 0), (bar_x + max(2, box // 8), height), (255, 255, 255), -1)
        # A box bounces diagonally (triangle waves): motion in both directions.
        x = _triangle(t * 0.37) * (width - box)
        y = _triangle(t * 0.53) * (height - box)
        top_left = (int(x), int(y))
        cv2.rectangle(image, top_left, (int(x) + box, int(y) + box), (0, 0, 255), -1)
        now = time.time()
        stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
        self._text(image, f"#{index:06d}", (round(20 * scale), round(60 * scale)))
        self._text(image, stamp, (round(20 * scale), round(130 * scale)))
        if is_flash(index, self.fps):
            draw_flash(image)  # with the beep of the pattern's sound (lip-sync check)
        return image

    def _text(self, image: Image, text: str, origin: tuple[int, int]) -> None:
        # Black outline under white text: readable on any part of the gradient.
        font, size = cv2.FONT_HERSHEY_SIMPLEX, 1.6 * self._scale
        cv2.putText(image, text, origin, font, size, (0, 0, 0), self._thickness + 4, cv2.LINE_AA)
        cv2.putText(image, text, origin, font, size, (255, 255, 255), self._thickness, cv2.LINE_AA)

    def skip(self) -> bool:
        """Advance one frame without drawing it."""
        self._index += 1
        return True

    def rewind(self) -> None:
        """Restart the frame counter."""
        self._index = 0

    def close(self) -> None:
        """Nothing to release."""


def _triangle(phase: float) -> float:
    """0 -> 1 -> 0 over one unit of phase."""
    frac = phase % 1.0
    return 2 * frac if frac < 0.5 else 2 - 2 * frac


def _pattern_background(width: int, height: int) -> Image:
    """Hue across, brightness down, and a grid every 1/8: scaling artefacts are visible."""
    hue = np.linspace(0, 179, width, dtype=np.float32)[None, :]
    value = np.linspace(255, 96, height, dtype=np.float32)[:, None]
    hsv = np.empty((height, width, 3), np.uint8)
    hsv[..., 0] = np.broadcast_to(hue, (height, width)).astype(np.uint8)
    hsv[..., 1] = 160
    hsv[..., 2] = np.broadcast_to(value, (height, width)).astype(np.uint8)
    image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    for i in range(1, 8):
        x, y = i * width // 8, i * height // 8
        image[:, x : x + 1] = 32
        image[y : y + 1, :] = 32
    return np.ascontiguousarray(image, dtype=np.uint8)


def open_source(spec: SourceSpec) -> FrameSource:
    """Open what a ``SourceSpec`` names. Blocking (a camera can take a second): call it
    from a worker thread.

    Args:
        spec: a FileSource, PatternSource or CameraSource.

    Returns:
        The opened source.

    Raises:
        MediaError: with a one-line message for the user.
    """
    if isinstance(spec, FileSource):
        return VideoFileSource(spec.path)
    if isinstance(spec, PatternSource):
        return PatternFrameSource(spec.width, spec.height, spec.fps)
    if isinstance(spec, CameraSource):
        return CameraFrameSource(spec.index)
    if isinstance(spec, ScreenSource):
        from peer.node.screen import ScreenFrameSource  # mss: loaded only to share

        return ScreenFrameSource(spec.monitor, spec.fps)
    raise MediaError(f"unknown video source: {spec!r}")


class PacedCapture:
    """Plays a source in real time on a worker thread; frames come out in asyncio.

    Args:
        source: an opened source; the capture owns it and closes it at the end.
        loop: rewind at the end instead of stopping (files).
        clock: monotonic time in seconds (tests inject a fake one).
        stop_timeout_s: how long ``stop`` waits for the worker to finish.

    Attributes:
        dropped: frames discarded because the consumer had not taken the previous two.
        skipped: frames the pacer skipped to stay in real time.
        released: frames handed to the consumer's buffer.
    """

    def __init__(
        self,
        source: FrameSource,
        *,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        stop_timeout_s: float = 2.0,
    ) -> None:
        self.source = source
        self.looping = loop
        self.dropped = 0
        self.skipped = 0
        self.released = 0
        self._clock = clock
        self._stop_timeout_s = stop_timeout_s
        self._stopping = threading.Event()
        # Playback controls, set from any thread and applied by the worker between
        # frames (see pause/resume/seek): it alone touches the source.
        self._running = threading.Event()
        self._running.set()
        self._seek_to: float | None = None
        self._holding = threading.Event()  # set while the worker waits out a pause
        self._resume_index = 0  # the frame index after the last one released
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Touched only on the event loop thread (via call_soon_threadsafe).
        self._buffer: deque[CapturedFrame] = deque()
        self._wakeup = asyncio.Event()
        self._finished = False
        self._error: MediaError | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the worker thread.

        Args:
            loop: the event loop that will iterate ``frames()``.

        Raises:
            RuntimeError: already started.
        """
        if self._thread is not None:
            raise RuntimeError("PacedCapture already started")
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="treecast-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the worker and end ``frames()``. Idempotent; callable from any thread.

        Waits up to ``stop_timeout_s`` for the worker (at most one frame decode), which
        then closes the source.
        """
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._stop_timeout_s)
            if thread.is_alive():
                logger.warning("capture thread did not stop within %.1f s", self._stop_timeout_s)
        if self._loop is None:
            self._finished = True
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._end(None, stopped=True)
        else:
            self._post(self._end, None, True)

    @property
    def paused(self) -> bool:
        """True between ``pause()`` and ``resume()``."""
        return not self._running.is_set()

    @property
    def seekable(self) -> bool:
        """Whether the source can jump to a position (a file of known length)."""
        return hasattr(self.source, "seek") and self.source.duration_s is not None

    def pause(self) -> None:
        """Hold the next frame back until ``resume()`` (any thread)."""
        self._running.clear()

    def resume(self) -> None:
        """Go on from where ``pause()`` stopped, on a fresh schedule (any thread)."""
        self._running.set()

    def seek(self, seconds: float) -> None:
        """Continue from ``seconds`` into the source (any thread; applied between frames).

        Raises:
            MediaError: the source cannot seek (a live source or unknown length).
        """
        if not self.seekable:
            raise MediaError("this source cannot seek")
        self._seek_to = max(float(seconds), 0.0)

    def _apply_controls(self) -> int | None:
        """Worker side: wait out a pause, do a seek. Returns the frame index to go on
        from when the pacing clock must restart (after either), else None."""
        held = False
        while not self._running.is_set() and not self._stopping.is_set():
            held = True
            self._holding.set()
            self._running.wait(0.1)  # re-checks _stopping: stop() never waits a pause out
        self._holding.clear()
        target, self._seek_to = self._seek_to, None
        if target is not None:
            seek = getattr(self.source, "seek", None)
            if seek is not None:
                return int(seek(target))
        return self._resume_index if held else None

    async def frames(self) -> AsyncIterator[CapturedFrame]:
        """The released frames, newest-wins, until the end of the source or ``stop()``.

        Yields:
            CapturedFrame objects in capture order (some may be dropped in between).

        Raises:
            MediaError: the source failed mid-stream (after the frames before it).
            RuntimeError: ``start`` was not called.
        """
        if self._loop is None:
            raise RuntimeError("call start() before frames()")
        while True:
            if self._buffer:
                yield self._buffer.popleft()
                continue
            if self._finished:
                if self._error is not None:
                    raise self._error
                return
            self._wakeup.clear()
            await self._wakeup.wait()

    # --- event loop side -------------------------------------------------------------

    def _push(self, frame: CapturedFrame) -> None:
        if self._finished:
            return
        if len(self._buffer) >= BUFFER_FRAMES:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(frame)
        self.released += 1
        self._wakeup.set()

    def _end(self, error: MediaError | None, stopped: bool = False) -> None:
        if stopped:
            # The consumer asked to stop: frames still buffered are no longer wanted.
            self._buffer.clear()
        if not self._finished:
            self._finished = True
            self._error = None if stopped else error
        self._wakeup.set()

    # --- worker side -----------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            # The loop is closed: nobody is listening any more.
            self._stopping.set()

    def _run(self) -> None:
        error: MediaError | None = None
        try:
            self._play()
        except MediaError as exc:
            error = exc
        except Exception as exc:  # a bug or an OpenCV surprise: still end the stream
            logger.exception("video source failed")
            error = MediaError(f"video source failed: {exc}")
            error.__cause__ = exc
        finally:
            try:
                self.source.close()
            except Exception:
                logger.exception("closing the video source failed")
            self._post(self._end, error)

    def _play(self) -> None:
        source = self.source
        fps = source.fps
        period = 1.0 / fps
        start = self._clock()
        slot = 0  # schedule slots since start: slot k is due at start + k * period
        index = 0  # frame number in the source
        while not self._stopping.is_set():
            moved = self._apply_controls()
            if moved is not None:
                # After a pause or a seek the schedule starts afresh: catching up on
                # the time spent paused would skip that much video.
                start, slot, index = self._clock(), 0, moved
            if source.paced:
                due = start + slot * period
                now = self._clock()
                if now < due:
                    self._stopping.wait(due - now)
                    continue  # re-check: woken by stop(), or the frame is due now
                # Whole slots already past; the epsilon keeps "exactly two periods late"
                # from flooring to one through float rounding.
                behind = int((now - due) / period + 1e-9)
                if behind > fps * MAX_CATCH_UP_S:
                    logger.info("capture stalled %.1f s; restarting its clock", now - due)
                    start, slot, behind = now, 0, 0
                while behind > 0 and source.skip():
                    behind -= 1
                    slot += 1
                    index += 1
                    self.skipped += 1
            image = source.read()
            if image is None:
                if self.looping and index > 0:  # index 0: an empty file would spin
                    source.rewind()
                    index = 0
                    continue
                return
            frame = CapturedFrame(
                image=image,
                index=index,
                captured_at=time.time(),
                position_s=index / fps,
                duration_s=source.duration_s,
            )
            self._post(self._push, frame)
            slot += 1
            index += 1
            self._resume_index = index
