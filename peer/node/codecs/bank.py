"""Make the layers of one stream: one encoder per picture size, fed from one picture.

The streamer feeds its raw frames; a transcoding relay feeds the picture it decoded
once from its parent's layer. Each requested layer is resized from that picture (not
from the next larger layer: resizing twice blurs twice). Layers that come out the same
size (720 and 1080 of a 720p source) share one encoder and one encoding.

H.264 encoders hold state (reference pictures), so each size keeps its encoder from
frame to frame; an encoder for a size nobody asked for in this frame is dropped, and a
new one starts with a keyframe. An EncoderBank is used by one thread at a time (the
caller awaits each ``encode``); keyframe decisions are made by the caller (see
:mod:`peer.node.codecs.keyframes`) and passed in.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from peer.node.codec import CodecError, Image, resize
from peer.node.codecs.base import EncodedFrame, PictureEncoder, VideoCodec
from peer.node.codecs.h264 import H264Encoder, layer_bitrate
from peer.node.codecs.mjpeg import MjpegEncoder
from peer.node.layers import layer_size


def make_encoder(codec: VideoCodec, width: int, height: int, layer: int,
                 fps: float) -> PictureEncoder:
    """An encoder of ``codec`` for one picture size of one layer.

    Raises:
        CodecError: the codec cannot start (libx264 missing, bad size).
    """
    if codec is VideoCodec.H264:
        return H264Encoder(width, height, fps, layer_bitrate(min(layer, height), fps))
    if codec is VideoCodec.MJPEG:
        return MjpegEncoder(width, height)
    raise CodecError(f"no encoder for {codec}")


class EncoderBank:
    """The encoders of one stream's layers.

    Args:
        codec: the stream's codec (every layer uses it).
        fps: the stream's frame rate (sets H.264 rate budgets and time base).

    Attributes:
        keyframes: keyframes made so far (forced or not), all layers.
    """

    def __init__(self, codec: VideoCodec, fps: float) -> None:
        self.codec = codec
        self.fps = fps
        self._encoders: dict[tuple[int, int], PictureEncoder] = {}
        self._last_seq: dict[tuple[int, int], int] = {}
        self.keyframes = 0

    def encode(self, image: Image, layers: Iterable[int],
               keyframes: Collection[int] = (), seq: int = -1) -> dict[int, EncodedFrame]:
        """One picture in, one encoded frame per requested layer out.

        Args:
            image: BGR uint8 picture at the stream's full size (or a relay's received
                layer; layers never upscale it).
            layers: the layers someone asked for; repeats are ignored.
            keyframes: layers whose frame must be a keyframe now.
            seq: the frame's sequence number (each result's ``prev`` is the sequence
                number its encoder coded before; -1 for a new encoder).

        Returns:
            ``{layer: EncodedFrame}`` for each requested layer.

        Raises:
            CodecError: the picture cannot be encoded.
            ValueError: a non-positive layer.
        """
        source_height, source_width = image.shape[:2]
        by_size: dict[tuple[int, int], list[int]] = {}
        for layer in set(layers):
            by_size.setdefault(layer_size(layer, source_width, source_height), []).append(layer)
        for size in set(self._encoders) - set(by_size):
            self._encoders.pop(size).close()
            self._last_seq.pop(size, None)
        result: dict[int, EncodedFrame] = {}
        for (width, height), group in by_size.items():
            encoder = self._encoders.get((width, height))
            if encoder is None:
                encoder = make_encoder(self.codec, width, height, max(group), self.fps)
                self._encoders[(width, height)] = encoder
            force = any(layer in keyframes for layer in group)
            data, keyframe = encoder.encode(resize(image, width, height), keyframe=force)
            self.keyframes += keyframe
            prev = self._last_seq.get((width, height), -1)
            self._last_seq[(width, height)] = seq
            for layer in group:
                result[layer] = EncodedFrame(layer, width, height, data, keyframe, self.codec,
                                             prev)
        return result

    def close(self) -> None:
        """Free every encoder. Idempotent."""
        for encoder in self._encoders.values():
            encoder.close()
        self._encoders.clear()
