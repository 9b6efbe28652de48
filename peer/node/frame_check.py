"""A received frame's picture size, checked against its layer before anything decodes it.

A decoder allocates what the picture's own header says, not what the frame's
metadata says: a 631-byte JPEG whose frame header (SOF) claims 8192x8192 makes
OpenCV allocate ~200 MB for one frame. So the link reads the size from the picture's
header (a few hundred bytes in, no decoding) and refuses a frame whose picture is not
exactly the size the frame declares, or is larger than its layer allows. The link
that carried it is closed: an honest sender never produces such a frame.

``check_picture_size`` is the codec-neutral half. For H.264 the decoder protocol
already checks that the SPS gives the declared size (protocol.h264); the declared
size is then checked against the layer here, the same as for JPEG.
"""

from __future__ import annotations

from peer.node.picture import CodecError, jpeg_size
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.messages import VideoFrame

__all__ = ["MAX_ASPECT", "check_frame_size", "check_picture_size"]

# Widest picture a layer may carry, as width / height: 4:1 holds every screen and
# camera format (32:9 is 3.6:1) and caps one frame of a 1080 layer at 4320x1080.
MAX_ASPECT = 4


def check_picture_size(width: int, height: int, layer: int) -> None:
    """Refuse a picture that does not fit its layer.

    A layer's frames are at most ``layer`` pixels high (smaller only for smaller
    sources) and at most ``MAX_ASPECT`` times as wide.

    Raises:
        RemoteProtocolError: the size is not positive or does not fit the layer.
    """
    if width <= 0 or height <= 0:
        raise RemoteProtocolError(f"picture size {width}x{height} is empty",
                                  ErrorCode.MALFORMED)
    if height > layer or width > MAX_ASPECT * layer:
        raise RemoteProtocolError(
            f"picture size {width}x{height} does not fit layer {layer} "
            f"(at most {MAX_ASPECT * layer}x{layer})", ErrorCode.TOO_LARGE)


def check_frame_size(frame: VideoFrame) -> None:
    """Refuse a frame whose picture header disagrees with its metadata or its layer.

    JPEG payloads are checked from their frame header; H.264 ones by the declared
    size (which the decoder already matched against the SPS).

    Raises:
        RemoteProtocolError: the picture is too large, not the declared size, or its
            header is malformed.
    """
    check_picture_size(frame.width, frame.height, frame.layer)
    if frame.codec == "mjpeg":
        try:
            width, height = jpeg_size(frame.data)
        except CodecError as exc:
            raise RemoteProtocolError(f"bad JPEG header: {exc}", ErrorCode.MALFORMED) from exc
        if (width, height) != (frame.width, frame.height):
            raise RemoteProtocolError(
                f"JPEG is {width}x{height} but the frame says {frame.width}x{frame.height}",
                ErrorCode.MALFORMED)
