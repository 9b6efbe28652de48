"""Decoded frames on their way to the screen: converted off the GUI thread, latest wins."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PyQt6.QtGui import QImage


def frame_to_qimage(image: np.ndarray[Any, np.dtype[np.uint8]]) -> QImage:
    """Convert a BGR uint8 array (h, w, 3) into a QImage that owns its pixels.

    Runs on the node's frame thread. QImage built on a numpy buffer only borrows it,
    so the result must be a real copy before the array is reused: converting to
    RGB32 (the format QPainter draws fastest) allocates a new image, and that
    conversion is also where BGR becomes RGB.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image, got {image.shape} {image.dtype}")
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    borrowed = QImage(
        image.data,  # type: ignore[call-overload]  # PyQt takes any buffer, stubs say bytes
        width, height, image.strides[0], QImage.Format.Format_BGR888,
    )
    owned: QImage = borrowed.convertToFormat(QImage.Format.Format_RGB32)
    return owned


class LatestFrame:
    """A one-picture mailbox between the frame thread and the GUI thread.

    ``put`` replaces whatever waits there and says whether the GUI must be told (at
    most one notification is in flight); ``take`` empties it and re-arms the
    notification. A slow paint therefore drops frames; it never queues them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._image: QImage | None = None
        self._notified = False

    def put(self, image: QImage) -> bool:
        """Store the newest picture; True when the caller must notify the GUI."""
        with self._lock:
            self._image = image
            notify = not self._notified
            self._notified = True
        return notify

    def take(self) -> QImage | None:
        """The newest picture (or None), and re-arm the notification."""
        with self._lock:
            image, self._image = self._image, None
            self._notified = False
        return image

    def drop(self) -> None:
        """Forget the waiting picture (the session is closing)."""
        with self._lock:
            self._image = None
