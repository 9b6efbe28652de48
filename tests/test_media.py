"""Video sources, error messages, the test pattern and the real-time pacer."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from peer.node import media
from peer.node.config import CameraSource, FileSource, PatternSource
from peer.node.errors import MediaError
from peer.node.media import (
    BUFFER_FRAMES,
    DEFAULT_FPS,
    CapturedFrame,
    PacedCapture,
    PatternFrameSource,
    normalize_fps,
    open_source,
)

FRAMES = 20
WIDTH, HEIGHT = 160, 120
STEP = 10  # frame i is filled with grey level i * STEP, so content tells the index


def write_video(path: Path, fourcc: str, fps: float = 50.0, frames: int = FRAMES) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((HEIGHT, WIDTH, 3), i * STEP, np.uint8))
    writer.release()
    return path


def index_of(image: np.ndarray) -> int:
    return round(float(image.mean()) / STEP)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", "mp4v")


# --- opening: one readable line, no library noise ---------------------------------------


def expect_error(spec: FileSource | PatternSource | CameraSource, message: str) -> None:
    with pytest.raises(MediaError) as info:
        open_source(spec)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "nope.mp4")
    expect_error(FileSource(path), f"video file not found: {path}")
    assert capfd.readouterr().err == ""


def test_directory(tmp_path: Path) -> None:
    expect_error(FileSource(str(tmp_path)), f"cannot read video from {tmp_path}: it is a directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    expect_error(FileSource(str(path)), f"cannot read video from {path}: the file is empty")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", b"hello, not a video\n"),
        ("random.mp4", bytes(range(256)) * 40),
        ("cut.mp4", None),  # a real mp4 cut short: no index ("moov atom not found")
    ],
)
def test_not_a_video(
    tmp_path: Path, video: Path, capfd: pytest.CaptureFixture[str], name: str, content: bytes | None
) -> None:
    path = tmp_path / name
    path.write_bytes(content if content is not None else video.read_bytes()[:1500])
    capfd.readouterr()
    expect_error(
        FileSource(str(path)),
        f"cannot read video from {path}: not a video file or unsupported codec",
    )
    assert capfd.readouterr().err == ""  # OpenCV and FFmpeg stayed quiet


def test_zero_frame_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (WIDTH, HEIGHT))
    writer.release()
    expect_error(FileSource(str(path)), f"video file has no frames: {path}")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads all")
def test_permission_denied(tmp_path: Path, video: Path) -> None:
    path = tmp_path / "secret.mp4"
    path.write_bytes(video.read_bytes())
    path.chmod(0)
    expect_error(FileSource(str(path)), f"cannot read video file (permission denied): {path}")


def test_no_camera(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    expect_error(CameraSource(-1), "no camera at index -1")
    monkeypatch.setattr(media, "_has_video_device", lambda index: False)
    expect_error(CameraSource(7), "no camera at index 7")
    assert capfd.readouterr().err == ""


# --- reading files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fourcc"),
    [
        ("a.mp4", "mp4v"),
        ("a.mov", "mp4v"),
        ("a.avi", "MJPG"),
        ("a.mkv", "mp4v"),
        ("a.webm", "VP80"),
    ],
)
def test_formats(tmp_path: Path, name: str, fourcc: str) -> None:
    path = write_video(tmp_path / name, fourcc, fps=25.0, frames=12)
    source = open_source(FileSource(str(path)))
    try:
        assert (source.width, source.height, source.fps) == (WIDTH, HEIGHT, 25.0)
        assert source.paced
        images = []
        while (image := source.read()) is not None:
            images.append(image)
        assert len(images) == 12
        assert [index_of(image) for image in images] == list(range(12))
        assert images[0].shape == (HEIGHT, WIDTH, 3) and images[0].dtype == np.uint8
        assert source.duration_s is None or source.duration_s == pytest.approx(12 / 25, abs=0.1)
    finally:
        source.close()
        source.close()  # idempotent


def test_skip_and_rewind(video: Path) -> None:
    source = open_source(FileSource(str(video)))
    try:
        assert source.duration_s == pytest.approx(FRAMES / 50)
        assert source.skip() and source.skip() and source.skip()
        image = source.read()
        assert image is not None and index_of(image) == 3
        while source.skip():
            pass
        assert source.read() is None
        source.rewind()
        image = source.read()
        assert image is not None and index_of(image) == 0
    finally:
        source.close()


@pytest.mark.parametrize(
    ("reported", "expected"),
    [
        (25.0, 25.0),
        (29.97, 29.97),
        (0.0, DEFAULT_FPS),
        (float("nan"), DEFAULT_FPS),
        (float("inf"), DEFAULT_FPS),
        (-5.0, DEFAULT_FPS),
        (1000.0, DEFAULT_FPS),
        (90000.0, DEFAULT_FPS),
        (240.0, 240.0),
    ],
)
def test_normalize_fps(reported: float, expected: float) -> None:
    assert normalize_fps(reported) == expected


# --- test pattern --------------------------------------------------------------------


def test_pattern_frames() -> None:
    source = open_source(PatternSource(width=640, height=360, fps=25.0))
    assert (source.width, source.height, source.fps, source.duration_s) == (640, 360, 25.0, None)
    assert isinstance(source, PatternFrameSource)
    background = source._background.copy()
    first, second = source.read(), source.read()
    assert first is not None and second is not None
    assert first.shape == (360, 640, 3) and first.dtype == np.uint8
    assert not np.array_equal(first, second)  # the box, bar and text move
    assert np.array_equal(source._background, background)  # drawn into a copy
    assert source.skip()
    source.rewind()
    again = source.read()
    assert again is not None
    # Same frame number, same moving parts; only the clock text may differ.
    assert np.mean(again != first) < 0.02


def test_pattern_rejects_bad_settings() -> None:
    with pytest.raises(MediaError, match="out of range"):
        open_source(PatternSource(width=0, height=360))
    with pytest.raises(MediaError, match="out of range"):
        open_source(PatternSource(fps=0.0))


# --- the pacer -----------------------------------------------------------------------


class FakeSource:
    """Frames 0..count-1 (index in pixel 0); optional failure and fake decode time."""

    duration_s = None

    def __init__(
        self,
        count: int,
        *,
        fps: float = 10.0,
        paced: bool = False,
        fail_at: int | None = None,
        exc: Exception | None = None,
    ) -> None:
        self.count = count
        self.fps = fps
        self.paced = paced
        self.width = self.height = 4
        self.position = 0
        self.fail_at = fail_at
        self.exc = exc or MediaError("disk on fire")
        self.decoded: list[int] = []
        self.skips = 0
        self.closed = threading.Event()
        self.now = 0.0
        self.decode_s = 0.0

    def clock(self) -> float:
        return self.now

    def read(self) -> np.ndarray | None:
        if self.position == self.fail_at:
            raise self.exc
        if self.position >= self.count:
            return None
        self.decoded.append(self.position)
        self.now += self.decode_s
        image = np.full((4, 4, 3), self.position % 256, np.uint8)
        self.position += 1
        return image

    def skip(self) -> bool:
        if self.position >= self.count:
            return False
        self.position += 1
        self.skips += 1
        return True

    def rewind(self) -> None:
        self.position = 0

    def close(self) -> None:
        self.closed.set()


async def collect(capture: PacedCapture, limit: int = 10_000) -> list[CapturedFrame]:
    frames = []
    async for frame in capture.frames():
        frames.append(frame)
        if len(frames) >= limit:
            break
    return frames


async def test_file_plays_to_the_end(video: Path) -> None:
    capture = PacedCapture(open_source(FileSource(str(video))))
    capture.start(asyncio.get_running_loop())
    frames = await collect(capture)
    capture.stop()
    indices = [frame.index for frame in frames]
    assert indices == sorted(set(indices)) and indices[-1] < FRAMES
    # Every frame was released or skipped; every released one delivered or dropped.
    assert capture.released + capture.skipped == FRAMES
    assert len(frames) + capture.dropped == capture.released
    for frame in frames:
        assert index_of(frame.image) == frame.index
        assert frame.position_s == pytest.approx(frame.index / 50)
        assert frame.duration_s == pytest.approx(FRAMES / 50)


async def test_pacer_never_runs_ahead_of_real_time() -> None:
    # A lower bound only (sleeps guarantee it); never an upper bound, which would flake.
    capture = PacedCapture(open_source(PatternSource(width=64, height=48, fps=50.0)))
    capture.start(asyncio.get_running_loop())
    started = time.monotonic()
    frames = await collect(capture, limit=10)
    elapsed = time.monotonic() - started
    capture.stop()
    last = frames[-1].index
    assert last >= 9
    assert elapsed >= (last - 1) / 50


async def test_pacer_skips_when_decoding_is_slow() -> None:
    # Each decode takes 2.5 frame periods of (fake) time: the pacer must skip the frames
    # whose slot has passed rather than play in slow motion.
    source = FakeSource(30, fps=10.0, paced=True)
    source.decode_s = 0.25
    capture = PacedCapture(source, clock=source.clock)
    capture.start(asyncio.get_running_loop())
    await collect(capture)
    capture.stop()
    assert source.decoded[:6] == [0, 2, 5, 7, 10, 12]
    assert capture.skipped == source.skips == 30 - len(source.decoded)


async def test_latest_wins_and_drops_are_counted() -> None:
    source = FakeSource(10)
    capture = PacedCapture(source)
    capture.start(asyncio.get_running_loop())
    assert capture._thread is not None
    capture._thread.join(5)  # the worker finishes without waiting for the consumer
    frames = await collect(capture)
    assert [frame.index for frame in frames] == [8, 9]
    assert capture.dropped == 10 - BUFFER_FRAMES
    assert source.closed.is_set()


async def test_loop_rewinds() -> None:
    source = FakeSource(5, fps=200.0, paced=True)
    capture = PacedCapture(source, loop=True)
    capture.start(asyncio.get_running_loop())
    seen: list[int] = []
    async for frame in capture.frames():
        seen.append(frame.index)
        if len(seen) > 2 and seen[-1] < seen[-2]:  # wrapped around at least once
            break
    capture.stop()
    assert max(seen) <= 4
    assert source.closed.wait(5)


async def test_loop_over_empty_source_ends() -> None:
    capture = PacedCapture(FakeSource(0), loop=True)
    capture.start(asyncio.get_running_loop())
    assert await collect(capture) == []


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (MediaError("disk on fire"), "disk on fire"),
        (ValueError("boom"), "video source failed: boom"),
    ],
)
async def test_read_error_ends_stream_with_media_error(exc: Exception, message: str) -> None:
    source = FakeSource(10, fail_at=4, exc=exc)
    capture = PacedCapture(source)
    capture.start(asyncio.get_running_loop())
    frames: list[CapturedFrame] = []
    with pytest.raises(MediaError, match=message):
        async for frame in capture.frames():
            frames.append(frame)
    assert frames and frames[-1].index == 3
    assert source.closed.wait(5)
    capture.stop()


async def test_stop_ends_a_waiting_consumer_and_is_idempotent() -> None:
    capture = PacedCapture(open_source(PatternSource(width=64, height=48, fps=10.0)), loop=True)
    capture.start(asyncio.get_running_loop())
    got_one = asyncio.Event()

    async def consume() -> int:
        count = 0
        async for _ in capture.frames():
            count += 1
            got_one.set()
        return count

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 10)
    capture.stop()
    capture.stop()
    assert await asyncio.wait_for(task, 10) >= 1
    assert capture._thread is not None and not capture._thread.is_alive()
    with pytest.raises(RuntimeError):
        capture.start(asyncio.get_running_loop())


def test_stop_from_another_thread() -> None:
    async def main() -> int:
        capture = PacedCapture(FakeSource(10**6, fps=100.0, paced=True))
        capture.start(asyncio.get_running_loop())
        stopper = threading.Timer(0.2, capture.stop)
        stopper.start()
        count = len(await collect(capture))
        stopper.join()
        return count

    assert asyncio.run(main()) >= 0


async def test_frames_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        await collect(PacedCapture(FakeSource(1)))
