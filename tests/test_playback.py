"""Pause and seek of a streamed file (PacedCapture): the worker holds frames back while
paused, restarts its schedule afterwards (no catch-up skipping) and jumps on seek."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from peer.node.errors import MediaError
from peer.node.media import PacedCapture, PatternFrameSource, VideoFileSource

FPS = 10.0


@pytest.fixture
def clip(tmp_path: Path) -> str:
    """Three seconds at 10 fps; each frame's brightness is its index * 8."""
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (64, 48))
    assert writer.isOpened()
    for index in range(30):
        writer.write(np.full((48, 64, 3), index * 8, np.uint8))
    writer.release()
    return path


class JumpClock:
    """Real monotonic time plus an offset the test can jump (a long pause, instantly)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


async def _take(frames, count: int) -> list:
    out = []
    async for frame in frames:
        out.append(frame)
        if len(out) == count:
            break
    return out


def test_pause_holds_frames_and_resume_skips_nothing(clip: str) -> None:
    clock = JumpClock()

    async def run() -> tuple[list, list, PacedCapture]:
        capture = PacedCapture(VideoFileSource(clip), clock=clock)
        capture.start(asyncio.get_running_loop())
        frames = capture.frames()
        before = await _take(frames, 3)
        capture.pause()
        assert capture.paused
        await asyncio.wait_for(asyncio.to_thread(capture._holding.wait, 10.0), 15.0)
        clock.offset += 2.0  # two seconds "pass" while paused (20 frames to skip)
        capture.resume()
        after = await _take(frames, 5)
        capture.stop()
        return before, after, capture

    before, after, capture = asyncio.run(run())
    indices = [f.index for f in before + after]
    # At most the frame in flight when pause() came, then one after another: nothing
    # was skipped to catch up on the paused time.
    assert indices == list(range(indices[0], indices[0] + len(indices)))
    assert capture.skipped == 0


def test_seek_jumps_to_the_position(clip: str) -> None:
    async def run() -> list:
        capture = PacedCapture(VideoFileSource(clip))
        assert capture.seekable
        capture.start(asyncio.get_running_loop())
        frames = capture.frames()
        await _take(frames, 2)
        capture.seek(2.0)
        taken = await _take(frames, 4)
        capture.stop()
        return taken

    taken = asyncio.run(run())
    # The frame in flight may come first; then the file goes on from 2.0 s.
    landed = [f for f in taken if f.index >= 19]
    assert landed, [f.index for f in taken]
    first = landed[0]
    assert abs(first.position_s - 2.0) <= 0.1
    assert abs(int(first.image.mean()) - 20 * 8) <= 8  # frame 20's brightness (JPEG)


def test_live_sources_cannot_seek() -> None:
    capture = PacedCapture(PatternFrameSource(64, 48, 10.0))
    assert not capture.seekable
    with pytest.raises(MediaError, match="cannot seek"):
        capture.seek(1.0)
