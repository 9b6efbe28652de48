"""What every video codec shares: its name on the wire and its encoded frames.

H.264 is stateful (a P-frame only decodes after the frames before it), MJPEG is not
(every frame is a keyframe). The rest of the node handles both the same way by asking
each frame whether it is a keyframe: a decoder starts at one, and a relay that had to
drop frames for a child waits for one before sending that child anything again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Protocol

from peer.node.picture import CodecError, Image


class VideoCodec(StrEnum):
    """A codec a stream can use; the value is its name on the wire and the CLI."""

    H264 = "h264"
    MJPEG = "mjpeg"


# H.264 needs ~1/8 of MJPEG's bits for the same picture (bench/bench_codec.py): over the
# internet, where uplinks carry 5-20 Mbit/s, only H.264 lets a relay feed children.
DEFAULT_CODEC: Final = VideoCodec.H264


def parse_codec(name: str) -> VideoCodec:
    """The codec called ``name`` on the wire.

    Raises:
        CodecError: a codec this build cannot decode (the message names the ones it can).
    """
    try:
        return VideoCodec(name)
    except ValueError:
        known = ", ".join(c.value for c in VideoCodec)
        raise CodecError(f"unsupported video codec {name[:32]!r} (this peer decodes {known})"
                         ) from None


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One layer of one frame, ready to send.

    Attributes:
        layer: the nominal layer (requested height) this was made for.
        width: actual picture width in pixels.
        height: actual picture height in pixels (below ``layer`` for small sources).
        data: the codec's bytes (a JPEG, or an H.264 access unit in Annex B form).
        keyframe: True when a decoder can start here (every JPEG; an H.264 IDR frame
            with its SPS and PPS in front).
        codec: which codec made ``data``.
        prev: sequence number of the frame before it from the same encoder (-1: none);
            a receiver can decode this frame when it has that one (or it is a keyframe).
    """

    layer: int
    width: int
    height: int
    data: bytes = field(repr=False)
    keyframe: bool
    codec: VideoCodec
    prev: int = -1


@dataclass(frozen=True, slots=True)
class DecodedPicture:
    """What a decoder returns for one frame.

    Attributes:
        image: BGR uint8 picture, shape (height, width, 3).
        keyframe: the frame was a keyframe (the decoder could have started here).
    """

    image: Image = field(repr=False)
    keyframe: bool


class PictureEncoder(Protocol):
    """Encodes pictures of one fixed size, one after the other (not thread-safe)."""

    codec: VideoCodec
    width: int
    height: int

    def encode(self, image: Image, *, keyframe: bool = False) -> tuple[bytes, bool]:
        """Encode one picture; ``keyframe`` forces one. Returns (bytes, is_keyframe)."""

    def close(self) -> None:
        """Free the encoder. Idempotent."""


class PictureDecoder(Protocol):
    """Decodes one stream's frames in order (not thread-safe)."""

    codec: VideoCodec

    def decode(self, data: bytes, width: int, height: int) -> DecodedPicture | None:
        """Decode one frame whose metadata says ``width`` x ``height``.

        Returns:
            The picture, or None while the decoder waits for its first keyframe.

        Raises:
            CodecError: garbage, or a picture size other than the metadata says.
        """

    def close(self) -> None:
        """Free the decoder. Idempotent."""
