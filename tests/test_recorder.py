"""Recording received frames to a file, read back with ffprobe (or OpenCV)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from peer.node import recorder as recorder_module
from peer.node.errors import MediaError
from peer.node.recorder import Recorder


def frame(width: int, height: int, value: int) -> np.ndarray:
    image = np.full((height, width, 3), value, np.uint8)
    cv2.rectangle(image, (width // 4, height // 4), (width // 2, height // 2), (0, 0, 255), -1)
    return image


def probe(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) as ffprobe (or, without it, OpenCV) reads the file."""
    if shutil.which("ffprobe"):
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames,width,height", "-of", "json", str(path)],
            capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        stream = json.loads(result.stdout)["streams"][0]
        return int(stream["nb_read_frames"]), int(stream["width"]), int(stream["height"])
    capture = cv2.VideoCapture(str(path))
    frames, size = 0, (0, 0)
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames += 1
        size = (image.shape[1], image.shape[0])
    capture.release()
    return frames, *size


@pytest.mark.parametrize("name", ["out.mp4", "out.mov", "out.avi", "out.MKV"])
def test_records_with_size_change(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    recorder = Recorder(str(path), fps=25.0)
    assert recorder.size is None and not path.exists()  # opened lazily
    for i in range(15):
        recorder.write(frame(320, 240, i * 8))
    for i in range(15):  # the viewer switched to a larger layer
        recorder.write(frame(640, 480, 120 + i * 8))
    assert recorder.size == (320, 240) and recorder.frames_written == 30
    recorder.close()
    recorder.close()  # idempotent
    assert probe(path) == (30, 320, 240)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    ok, image = capture.read()
    assert ok and abs(float(image[200:, 200:].mean()) - 0) < 12  # first frame's grey level
    capture.release()


def test_odd_first_size_becomes_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.avi"
    with Recorder(str(path), fps=0.0) as recorder:  # absurd fps falls back
        recorder.write(frame(321, 241, 50))
        recorder.write(frame(321, 241, 60))
    assert recorder.size == (320, 240)
    assert probe(path) == (2, 320, 240)


def test_write_after_close_raises(tmp_path: Path) -> None:
    recorder = Recorder(str(tmp_path / "a.mp4"), fps=30.0)
    recorder.close()
    with pytest.raises(MediaError, match="closed"):
        recorder.write(frame(64, 48, 0))
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize("name", ["out.webm", "out.gif", "out", "out.mp4.txt"])
def test_unsupported_format(tmp_path: Path, name: str) -> None:
    with pytest.raises(MediaError, match=r"^unsupported recording format"):
        Recorder(str(tmp_path / name), fps=30.0)


def test_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "out.mp4"
    with pytest.raises(MediaError, match="does not exist"):
        Recorder(str(path), fps=30.0)


def test_directory_as_target(tmp_path: Path) -> None:
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(MediaError, match="it is a directory"):
        Recorder(str(tmp_path / "dir.mp4"), fps=30.0)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes all")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(MediaError, match="permission denied"):
            Recorder(str(folder / "out.mp4"), fps=30.0)
    finally:
        folder.chmod(0o700)


def test_writer_that_fails_to_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenWriter:
        def __init__(self, *args: object) -> None:
            pass

        @staticmethod
        def fourcc(*code: str) -> int:
            return real.fourcc(*code)

        def isOpened(self) -> bool:
            return False

        def release(self) -> None:
            pass

    real = cv2.VideoWriter
    monkeypatch.setattr(recorder_module.cv2, "VideoWriter", BrokenWriter)
    recorder = Recorder(str(tmp_path / "out.mp4"), fps=30.0)
    with pytest.raises(MediaError, match="video writer did not open"):
        recorder.write(frame(64, 48, 0))
