"""JPEG encode/decode and resizing for the video layers.

Every function here is CPU work that the node runs in a thread pool: OpenCV releases
the GIL inside imencode/imdecode/resize, so frames of different layers (and different
peers) really run in parallel.

Two producers of layers:

* the streamer has raw frames: :func:`encode_layers` resizes the full frame once per
  requested layer and encodes each;
* a relay has a JPEG: :func:`transcode_down` decodes it once (at 1/2, 1/4 or 1/8 size
  when every requested layer is that small: libjpeg then skips most of the IDCT work)
  and encodes once per lower layer.

Frames come from the network, so decoding reads the JPEG frame header first and refuses
anything that is not a JPEG or is larger than ``protocol.limits.MAX_DIMENSION_PX``:
OpenCV itself would happily allocate gigabytes for a header that claims 65535x65535.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, cast

import cv2
import numpy as np

from peer.node.layers import layer_size

# The picture facts a relay needs without OpenCV live in peer.node.picture; they are
# part of this module's interface too.
from peer.node.picture import CodecError as CodecError
from peer.node.picture import Image as Image
from peer.node.picture import jpeg_size as jpeg_size

# Quality 80 is the knee of libjpeg's curve for video: artefacts are hard to see at
# viewing distance, while a frame is about half the bytes of quality 90 and a third of
# quality 95. Bandwidth is the bottleneck of a tree (every relay uploads the stream
# several times), so we spend bytes where the eye notices them and no further.
JPEG_QUALITY: Final = 80

# Reduced decode modes of cv2.imdecode, largest reduction first. libjpeg scales during
# the IDCT, so a 1/2 decode costs roughly a third of a full one.
_REDUCED_MODES: Final = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def _quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's console chatter away from the user.

    The node reports every media problem as one readable MediaError; the library's own
    warnings ("moov atom not found", "can't open camera by index") would only confuse.
    An explicit OPENCV_LOG_LEVEL from the user (debugging) wins.
    """
    # Read by OpenCV when its FFmpeg backend first initialises (the first capture or
    # writer), not at import, so setting it here is early enough. -8 is AV_LOG_QUIET.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


_quiet_opencv()


@dataclass(frozen=True, slots=True)
class EncodedLayer:
    """One layer of one frame, ready to send.

    Attributes:
        layer: the nominal layer (requested height) this was made for.
        width: actual frame width in pixels.
        height: actual frame height in pixels (below ``layer`` for small sources).
        jpeg: the JPEG bytes.
    """

    layer: int
    width: int
    height: int
    jpeg: bytes = field(repr=False)


def encode_jpeg(image: Image, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a BGR picture as JPEG.

    Args:
        image: BGR uint8 picture.
        quality: JPEG quality, 0-100.

    Returns:
        The JPEG bytes.

    Raises:
        CodecError: OpenCV refused the picture (wrong shape or dtype).
    """
    try:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    except cv2.error as exc:
        raise CodecError(f"cannot encode picture: {exc.err}") from exc
    if not ok:
        raise CodecError("cannot encode picture")
    return buffer.tobytes()


def _decode(data: bytes, mode: int) -> Image:
    jpeg_size(data)  # refuse non-JPEGs and absurd sizes before OpenCV allocates
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), mode)
    except cv2.error as exc:
        raise CodecError(f"cannot decode JPEG: {exc.err}") from exc
    if image is None:
        raise CodecError("cannot decode JPEG: corrupt data")
    return cast(Image, image)


def decode_jpeg(data: bytes) -> Image:
    """Decode a JPEG into a BGR picture.

    Args:
        data: JPEG bytes (for example a received frame payload).

    Returns:
        BGR uint8 picture, shape (height, width, 3); grayscale JPEGs come back as BGR.

    Raises:
        CodecError: not a JPEG, corrupt, or too large. Never returns None.
    """
    return _decode(data, cv2.IMREAD_COLOR)


def decode_for_display(data: bytes) -> Image:
    """Decode a received frame for the screen or the recorder.

    Args:
        data: JPEG bytes.

    Returns:
        BGR uint8 picture.

    Raises:
        CodecError: as :func:`decode_jpeg`.
    """
    return decode_jpeg(data)


def resize(image: Image, width: int, height: int) -> Image:
    """Scale a picture to exactly ``width`` x ``height``.

    Shrinking must average pixels, or moving detail shimmers (aliasing). OpenCV's
    INTER_AREA does that, but only an exact halving takes its fast path (0.4 ms for
    1080p); 1080 -> 360 takes 2-3 ms and 1080 -> 480 or 720 take 7-14 ms. So a shrink is
    INTER_AREA halvings while the picture is at least twice the target, then one
    INTER_LINEAR step for the rest. Below a ratio of 2 bilinear sampling still touches
    every source pixel, so it does not alias; the result is within 37-46 dB PSNR of a
    direct INTER_AREA (less than JPEG's own error) at a fifth of the cost
    (bench/bench_codec.py). Enlarging uses INTER_LINEAR.

    Args:
        image: BGR uint8 picture.
        width: target width in pixels.
        height: target height in pixels.

    Returns:
        The picture itself when it already has that size (no copy), else a new one.

    Raises:
        ValueError: a non-positive target size.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    source_height, source_width = image.shape[:2]
    if (source_width, source_height) == (width, height):
        return image
    if width > source_width or height > source_height:
        return cast(Image, cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))
    while source_width >= 2 * width and source_height >= 2 * height:
        source_width, source_height = source_width // 2, source_height // 2
        image = cast(
            Image,
            cv2.resize(image, (source_width, source_height), interpolation=cv2.INTER_AREA),
        )
    if (source_width, source_height) == (width, height):
        return image
    return cast(Image, cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))


def encode_layers(image: Image, layers: Iterable[int]) -> dict[int, EncodedLayer]:
    """The streamer's encoder: one raw frame in, one JPEG per requested layer out.

    Each layer is resized from the full frame (not from the next larger layer: resizing
    twice blurs twice). Layers that come out the same size (say 720 and 1080 of a 720p
    source) share one encoding.

    Args:
        image: the raw BGR uint8 frame.
        layers: the layers someone asked for; repeats are ignored.

    Returns:
        ``{layer: EncodedLayer}`` for each requested layer.

    Raises:
        CodecError: the frame cannot be encoded.
        ValueError: a non-positive layer.
    """
    source_height, source_width = image.shape[:2]
    encoded: dict[tuple[int, int], bytes] = {}
    result: dict[int, EncodedLayer] = {}
    for layer in layers:
        if layer in result:
            continue
        width, height = layer_size(layer, source_width, source_height)
        jpeg = encoded.get((width, height))
        if jpeg is None:
            jpeg = encode_jpeg(resize(image, width, height))
            encoded[(width, height)] = jpeg
        result[layer] = EncodedLayer(layer, width, height, jpeg)
    return result


def _reduced_mode(sizes: Iterable[tuple[int, int]], source_width: int, source_height: int) -> int:
    """The cheapest imdecode mode whose output is still at least every target size."""
    sizes = list(sizes)
    for factor, mode in _REDUCED_MODES:
        if all(w * factor <= source_width and h * factor <= source_height for w, h in sizes):
            return mode
    return cv2.IMREAD_COLOR


def transcode_down(
    jpeg: bytes, source_width: int, source_height: int, layers: Iterable[int],
    decoded: Image | None = None,
) -> dict[int, EncodedLayer]:
    """A relay's transcoder: one received JPEG in, one JPEG per requested layer out.

    Decodes once (at reduced size when all targets allow it), then resizes and encodes
    once per distinct target size. A layer whose size is the received frame's own size
    gets the received bytes untouched; if every layer is like that, nothing is decoded.

    Args:
        jpeg: the received frame.
        source_width: the received frame's width, as its metadata says.
        source_height: the received frame's height, as its metadata says.
        layers: the layers children asked for (normally lower than the received one).
        decoded: the frame already decoded at full size (a relay that also displays
            decodes once for both); None decodes here.

    Returns:
        ``{layer: EncodedLayer}`` for each requested layer.

    Raises:
        CodecError: the JPEG is garbage or its size disagrees with the metadata.
        ValueError: a non-positive layer.
    """
    width, height = jpeg_size(jpeg)
    if (width, height) != (source_width, source_height):
        raise CodecError(
            f"frame is {width}x{height} but its metadata says {source_width}x{source_height}"
        )
    sizes = {layer: layer_size(layer, width, height) for layer in layers}
    to_encode = {size for size in sizes.values() if size != (width, height)}
    encoded: dict[tuple[int, int], bytes] = {(width, height): jpeg}
    if to_encode:
        if decoded is None:
            decoded = _decode(jpeg, _reduced_mode(to_encode, width, height))
        for w, h in to_encode:
            encoded[(w, h)] = encode_jpeg(resize(decoded, w, h))
    return {layer: EncodedLayer(layer, w, h, encoded[(w, h)]) for layer, (w, h) in sizes.items()}
