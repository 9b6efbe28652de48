"""Record the received stream to a video file.

The writer is opened at the first frame, because only then do we know the size the
viewer is receiving. A viewer may switch layers mid-recording; a video file has one
frame size, so later frames are scaled to the first size.
"""

from __future__ import annotations

import os
import threading
from typing import Final

import cv2

from peer.node.codec import Image, resize
from peer.node.errors import MediaError
from peer.node.media import normalize_fps

# Codecs OpenCV's bundled FFmpeg writes everywhere without extra libraries (H.264 needs
# an encoder the wheels do not ship). mp4v (MPEG-4 part 2) is small and plays in every
# player; MJPG suits avi, whose players expect it. mkv gets mp4v too: both work in
# Matroska, and mp4v files are several times smaller than MJPEG.
FOURCC_BY_EXTENSION: Final = {
    ".mp4": "mp4v",
    ".mov": "mp4v",
    ".m4v": "mp4v",
    ".avi": "MJPG",
    ".mkv": "mp4v",
}


class Recorder:
    """Writes BGR frames to a video file at a fixed frame rate.

    Thread-safe: ``write`` and ``close`` may be called from thread-pool workers (one
    frame at a time is written; the caller keeps frames in order).

    Args:
        path: the file to write; the extension picks the format (.mp4, .mov, .m4v,
            .avi, .mkv). An existing file is replaced.
        fps: frame rate stored in the file (0/NaN/absurd fall back to 30).

    Raises:
        MediaError: unsupported extension, or the folder is missing or not writable.

    Attributes:
        size: ``(width, height)`` of the file, None until the first frame.
        frames_written: frames written so far.
    """

    def __init__(self, path: str, fps: float) -> None:
        extension = os.path.splitext(path)[1].lower()
        fourcc = FOURCC_BY_EXTENSION.get(extension)
        if fourcc is None:
            known = ", ".join(FOURCC_BY_EXTENSION)
            raise MediaError(
                f"unsupported recording format {extension or '(no extension)'}: use {known}"
            )
        # Check the destination ourselves: a failing cv2.VideoWriter only says "no".
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise MediaError(f"cannot record to {path}: folder {folder} does not exist")
        if os.path.isdir(path):
            raise MediaError(f"cannot record to {path}: it is a directory")
        if not os.access(folder, os.W_OK) or (
            os.path.exists(path) and not os.access(path, os.W_OK)
        ):
            raise MediaError(f"cannot record to {path}: permission denied")
        self.path = path
        self.fps = normalize_fps(fps)
        self.size: tuple[int, int] | None = None
        self.frames_written = 0
        self._fourcc = fourcc
        self._writer: cv2.VideoWriter | None = None
        self._closed = False
        self._lock = threading.Lock()

    def write(self, image: Image) -> None:
        """Append one frame, scaled to the recording's size if it differs.

        Args:
            image: BGR uint8 frame.

        Raises:
            MediaError: the writer cannot be opened, or the recorder is closed.
        """
        with self._lock:
            if self._closed:
                raise MediaError(f"recording to {self.path} is already closed")
            if self._writer is None or self.size is None:
                self._writer, self.size = self._open(image)
            width, height = self.size
            if image.shape[:2] != (height, width):
                image = resize(image, width, height)
            self._writer.write(image)
            self.frames_written += 1

    def _open(self, image: Image) -> tuple[cv2.VideoWriter, tuple[int, int]]:
        height, width = image.shape[:2]
        # MPEG-4 and 4:2:0 MJPEG need even sizes; drop a row/column rather than fail.
        size = (max(2, width - width % 2), max(2, height - height % 2))
        writer = cv2.VideoWriter(self.path, cv2.VideoWriter.fourcc(*self._fourcc), self.fps, size)
        if not writer.isOpened():
            writer.release()
            raise MediaError(
                f"cannot record to {self.path}: the {self._fourcc} video writer did not open"
            )
        return writer, size

    def close(self) -> None:
        """Finish the file (writes the index; a file never closed may be unplayable).

        Idempotent. A recorder that never got a frame leaves no file.
        """
        with self._lock:
            self._closed = True
            if self._writer is not None:
                self._writer.release()
                self._writer = None

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
