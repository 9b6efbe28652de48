"""The clip every system streams, and the pacer the baselines read it with.

``make_clip`` writes Treecast's own moving test pattern (``PatternFrameSource``) into a
Motion-JPEG AVI: a file, so every system pays for reading and decoding a video the same
way, and the pictures are the ones the other benchmarks measure. Treecast streams it
with ``--stream PATH --loop``; the baselines read it with ``PacedClip``, which releases
frame k at ``start + k / fps`` like Treecast's pacer and skips frames when it is late
(a live source does not wait). The capture time is the release time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 1280, 720, 30.0
CLIP_S = 10.0
CLIP_QUALITY = 95  # the file is the "camera": keep it close to the pattern itself


def make_clip(path: Path, width: int = WIDTH, height: int = HEIGHT, fps: float = FPS,
              seconds: float = CLIP_S) -> Path:
    """Write the test pattern clip to ``path`` (an .avi) unless it is already there."""
    if path.exists() and path.stat().st_size > 0:
        return path
    from peer.node.media import PatternFrameSource

    source = PatternFrameSource(width, height, fps)
    tmp = path.with_suffix(".part.avi")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, CLIP_QUALITY)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write an MJPG AVI at {tmp}")
    try:
        for _ in range(round(seconds * fps)):
            writer.write(source.read())
    finally:
        writer.release()
    tmp.rename(path)
    return path


class PacedClip:
    """Frames of a video file in real time, looping, numbered from 0.

    Args:
        path: the clip.
        fps: release rate (default: the file's).
    """

    def __init__(self, path: str, fps: float | None = None) -> None:
        self.path = path
        self._capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        if not self._capture.isOpened():
            raise RuntimeError(f"cannot open clip {path}")
        self.fps = fps or self._capture.get(cv2.CAP_PROP_FPS) or FPS
        self.skipped = 0

    def _read(self) -> np.ndarray:
        ok, image = self._capture.read()
        if not ok:  # end of the file: loop
            self._capture.release()
            self._capture = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG)
            ok, image = self._capture.read()
            if not ok:
                raise RuntimeError(f"clip {self.path} has no frames")
        return image

    def frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """(seq, capture time, BGR picture) forever, each at its slot; late slots are
        skipped (their frames read and discarded), so the clip keeps real time."""
        start = time.monotonic()
        slot = 0
        seq = 0
        while True:
            image = self._read()
            due = start + slot / self.fps
            now = time.monotonic()
            if now > due + 1 / self.fps:  # more than a frame late: drop this one
                slot += 1
                self.skipped += 1
                continue
            if due > now:
                time.sleep(due - now)
            yield seq, time.time(), image
            seq += 1
            slot += 1

    def close(self) -> None:
        self._capture.release()
