"""What the node knows about a picture without OpenCV or numpy.

The ``Image`` type, the codec error, and a JPEG's size read from its header. A relay or
a viewer that only forwards frames checks every received JPEG's size (frame_check) but
never decodes one, so this is all it needs: the encoders and decoders
(``peer.node.codec``, ``peer.node.codecs``) and OpenCV, numpy and PyAV under them are
imported only by peers that display, record, transcode or stream (see
docs/ARCHITECTURE.md, "Start-up cost").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, TypeAlias

from peer.node.errors import MediaError
from protocol.limits import MAX_DIMENSION_PX

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Image: TypeAlias = "npt.NDArray[np.uint8]"
"""A BGR picture, shape (height, width, 3), dtype uint8 (OpenCV's layout)."""

# JPEG markers that are not followed by a length field (ITU T.81 table B.1): TEM, RST0-7.
_STANDALONE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD8)})
# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) share
# the range but are not frames.
_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_SOI: Final = b"\xff\xd8"
_EOI_MARKER: Final = 0xD9
_SOS_MARKER: Final = 0xDA


class CodecError(MediaError):
    """A picture cannot be encoded or decoded (garbage bytes, unsupported image)."""


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Read the frame size from a JPEG header without decoding it.

    Args:
        data: JPEG bytes (only the headers up to the frame header are looked at).

    Returns:
        ``(width, height)`` in pixels.

    Raises:
        CodecError: not a JPEG, a malformed header, or a size that is zero or above
            ``MAX_DIMENSION_PX``.
    """
    if not data.startswith(_SOI):
        raise CodecError("not a JPEG image")
    size = len(data)
    pos = 2
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            raise CodecError("malformed JPEG: expected a marker")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker (T.81 B.1.1.2)
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in (_EOI_MARKER, _SOS_MARKER):
            break  # scan data or the end before any frame header
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            raise CodecError("malformed JPEG: bad segment length")
        if marker in _SOF_MARKERS:
            # Segment: length(2) precision(1) height(2) width(2) components(1)
            if pos + 9 > size:
                break
            height = int.from_bytes(data[pos + 5 : pos + 7], "big")
            width = int.from_bytes(data[pos + 7 : pos + 9], "big")
            if not (0 < width <= MAX_DIMENSION_PX and 0 < height <= MAX_DIMENSION_PX):
                raise CodecError(f"JPEG size {width}x{height} is out of range")
            return width, height
        pos += 2 + length
    raise CodecError("malformed JPEG: no frame header")
