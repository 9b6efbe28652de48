"""MJPEG: every frame a JPEG (OpenCV/libjpeg), every frame a keyframe.

Stateless, so the lowest latency and the simplest recovery: the codec for a LAN, and
the fallback. The JPEG work itself lives in :mod:`peer.node.codec`.
"""

from __future__ import annotations

from peer.node.codec import (
    JPEG_QUALITY,
    CodecError,
    Image,
    decode_jpeg,
    encode_jpeg,
    jpeg_size,
)
from peer.node.codecs.base import DecodedPicture, VideoCodec


class MjpegEncoder:
    """JPEG at ``quality`` for pictures of one size."""

    codec = VideoCodec.MJPEG

    def __init__(self, width: int, height: int, quality: int = JPEG_QUALITY) -> None:
        self.width = width
        self.height = height
        self.quality = quality

    def encode(self, image: Image, *, keyframe: bool = False) -> tuple[bytes, bool]:
        """Encode one picture; every JPEG is a keyframe.

        Raises:
            CodecError: wrong size or OpenCV refused the picture.
        """
        if image.shape[:2] != (self.height, self.width):
            raise CodecError(f"picture is {image.shape[1]}x{image.shape[0]}, "
                             f"the encoder takes {self.width}x{self.height}")
        return encode_jpeg(image, self.quality), True

    def close(self) -> None:
        """Nothing to free."""


class MjpegDecoder:
    """Decodes JPEG frames after checking their header size against the metadata."""

    codec = VideoCodec.MJPEG

    def decode(self, data: bytes, width: int, height: int) -> DecodedPicture:
        """Decode one JPEG.

        Raises:
            CodecError: not a JPEG, corrupt, or its size differs from ``width`` x ``height``.
        """
        actual = jpeg_size(data)
        if actual != (width, height):
            raise CodecError(f"JPEG is {actual[0]}x{actual[1]} but its metadata says "
                             f"{width}x{height}")
        return DecodedPicture(decode_jpeg(data), True)

    def close(self) -> None:
        """Nothing to free."""
