"""Pick the decoder for a stream's codec."""

from __future__ import annotations

from peer.node.codecs.base import PictureDecoder, VideoCodec
from peer.node.codecs.h264 import H264Decoder
from peer.node.codecs.mjpeg import MjpegDecoder
from peer.node.picture import CodecError


def make_decoder(codec: VideoCodec) -> PictureDecoder:
    """A fresh decoder for one incoming stream of ``codec``.

    Raises:
        CodecError: this build has no decoder for it.
    """
    if codec is VideoCodec.H264:
        return H264Decoder()
    if codec is VideoCodec.MJPEG:
        return MjpegDecoder()
    raise CodecError(f"no decoder for {codec}")
