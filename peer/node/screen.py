"""Screen sharing as a video source: a monitor captured with ``mss``.

A :class:`ScreenFrameSource` is a paced :class:`~peer.node.media.FrameSource` like the
test pattern: :class:`~peer.node.media.PacedCapture` asks for a frame every 1/fps s
and this grabs the monitor at that moment. ``mss`` talks to the display server
directly (X11 here: XShmGetImage, a few milliseconds for 1080p), so the source is
as cheap as a file and needs nothing but a display.

Frames leave as BGR (mss gives BGRA); sizes are rounded down to even numbers because
the video encoders want them, and a monitor bigger than MAX_DIMENSION_PX is refused.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np

from peer.node.codec import Image
from peer.node.errors import MediaError
from protocol.limits import MAX_DIMENSION_PX

# Screens change slowly and every shared frame costs the whole tree upload: 15 fps
# shows pointer motion and scrolling well at a fraction of a camera's bitrate.
DEFAULT_SCREEN_FPS: Final = 15.0
MIN_SCREEN_FPS: Final = 1.0
MAX_SCREEN_FPS: Final = 60.0


class ScreenFrameSource:
    """One monitor, grabbed on demand.

    Args:
        monitor: mss monitor number: 1 is the first monitor, 2 the second...; 0 is
            all monitors together.
        fps: the rate to grab at.
        display: the X display to capture (None: ``$DISPLAY``).

    Raises:
        MediaError: no display, no such monitor, or a rate out of range.
    """

    paced = True
    duration_s: float | None = None

    def __init__(self, monitor: int = 1, fps: float = DEFAULT_SCREEN_FPS,
                 display: str | None = None) -> None:
        if not (math.isfinite(fps) and MIN_SCREEN_FPS <= fps <= MAX_SCREEN_FPS):
            raise MediaError(
                f"screen capture rate {fps} fps is out of range "
                f"({MIN_SCREEN_FPS:g}-{MAX_SCREEN_FPS:g})")
        try:
            import mss
        except ImportError as exc:  # a packaging error, said plainly
            raise MediaError("screen sharing needs the mss package") from exc
        try:
            self._mss: Any = mss.MSS(display=display) if display else mss.MSS()
        except Exception as exc:  # mss raises its own ScreenShotError, or OSError
            raise MediaError(f"cannot capture the screen: {exc}") from exc
        monitors = self._mss.monitors
        if not 0 <= monitor < len(monitors):
            count = len(monitors) - 1
            self._mss.close()
            raise MediaError(
                f"no monitor {monitor}: this display has {count} "
                f"(1-{count}, or 0 for all of them)")
        self.monitor = monitor
        area = monitors[monitor]
        width, height = int(area["width"]) & ~1, int(area["height"]) & ~1
        if not (16 <= width <= MAX_DIMENSION_PX and 16 <= height <= MAX_DIMENSION_PX):
            self._mss.close()
            raise MediaError(f"monitor {monitor} is {width}x{height}: too large to share")
        self._area = {"left": area["left"], "top": area["top"], "width": width,
                      "height": height}
        self.width, self.height = width, height
        self.fps = float(fps)
        self._closed = False

    def read(self) -> Image:
        """Grab the monitor now.

        Raises:
            MediaError: the display went away.
        """
        try:
            shot = self._mss.grab(self._area)
        except Exception as exc:
            raise MediaError(f"screen capture failed: {exc}") from exc
        bgra = np.frombuffer(shot.raw, np.uint8).reshape(self.height, self.width, 4)
        return np.ascontiguousarray(bgra[:, :, :3])

    def skip(self) -> bool:
        """Nothing to skip: the next grab is simply now."""
        return True

    def rewind(self) -> None:
        """A live screen has no start."""

    def close(self) -> None:
        """Release the display connection. Idempotent."""
        if not self._closed:
            self._closed = True
            self._mss.close()
