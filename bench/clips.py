"""A camera-like clip made on the spot: a textured scene that pans, objects that move,
and fresh sensor noise in every frame.

The built-in test pattern is flat colour, which flatters every codec; a real camera
gives texture at every scale and noise that changes each frame (the hardest thing for
inter-frame coding, and what makes MJPEG of camera video 12-30 Mbit/s at 720p).
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]

# Sensor noise of a webcam in indoor light: sigma of 2-4 levels of 255.
NOISE_SIGMA = 3.0
PAN_PX_PER_FRAME = 2


def _texture(width: int, height: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    image = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((96, 80.0), (24, 25.0), (6, 10.0)):
        small = rng.normal(0, 1, (height // scale + 2, width // scale + 2, 3)).astype(np.float32)
        image += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return image + 120


def camera_clip(width: int, height: int, frames: int, seed: int = 11) -> Iterator[Image]:
    """Yield ``frames`` BGR frames of a camera-like scene (see :func:`camera_clip_pairs`)."""
    for noisy, _ in camera_clip_pairs(width, height, frames, seed):
        yield noisy


def camera_clip_pairs(width: int, height: int, frames: int,
                      seed: int = 11) -> Iterator[tuple[Image, Image]]:
    """Yield ``frames`` pairs (camera frame, the same frame without sensor noise).

    The noise-free frame is the scene a viewer wants to see: a codec that drops the
    noise is not wrong about the scene, so the benchmark scores against both.

    Args:
        width: frame width in pixels.
        height: frame height in pixels.
        frames: how many frames.
        seed: the same seed gives the same clip.
    """
    rng = np.random.default_rng(seed)
    pan = PAN_PX_PER_FRAME * frames
    scene = _texture(width + pan, height, rng)
    objects = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-6, 6),
                rng.uniform(-4, 4), int(rng.uniform(0.05, 0.12) * height),
                tuple(float(c) for c in rng.uniform(40, 230, 3))) for _ in range(4)]
    for index in range(frames):
        x0 = index * PAN_PX_PER_FRAME
        frame = scene[:, x0:x0 + width].copy()
        for x, y, dx, dy, radius, colour in objects:
            cx = int((x + dx * index) % width)
            cy = int((y + dy * index) % height)
            cv2.circle(frame, (cx, cy), radius, colour, -1, cv2.LINE_AA)
            cv2.circle(frame, (cx - radius // 3, cy - radius // 3), radius // 3,
                       tuple(min(255.0, c + 50) for c in colour), -1, cv2.LINE_AA)
        clean = np.clip(frame, 0, 255).astype(np.uint8)
        frame += rng.standard_normal(frame.shape, dtype=np.float32) * NOISE_SIGMA
        yield np.clip(frame, 0, 255).astype(np.uint8), clean


def write_clip_file(path: str, width: int, height: int, seconds: float,
                    fps: float = 30.0) -> str:
    """Write the camera-like clip to a video file a streamer can play (``--stream``).

    MJPEG at quality 95 in AVI: nearly lossless, cheap for the streamer to decode, and
    written by OpenCV everywhere. Returns ``path``.
    """
    writer = cv2.VideoWriter(path, cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    try:
        for frame in camera_clip(width, height, round(seconds * fps)):
            writer.write(frame)
    finally:
        writer.release()
    return path
