"""H.264 through PyAV: libx264 for encoding, libavcodec's decoder for decoding.

Encoder settings are for live video in a relay tree, where every frame of delay is
paid at every hop and a keyframe costs 10-20 P-frames of bandwidth:

* preset ``superfast``, tune ``zerolatency``: one frame in, one frame out, no lookahead,
  no B-frames, no frame threads (each would hold frames back). ``superfast`` over
  ``ultrafast`` buys CABAC, the 8x8 transform, the deblocking filter and sub-pixel
  motion: about 1 dB of PSNR at the same bitrate for ~4 ms more per 720p frame
  (docs/PERFORMANCE.md, section 1b). Psycho-visual tuning stays on (``tune=psnr``
  would add only 0.1 dB to the benchmark's score and make flat areas blotchier);
* the picture goes in as studio-range BT.601 4:2:0 with averaged chroma
  (:mod:`peer.node.codecs.yuv`), and the stream says so in its VUI;
* rate control per layer (``rates.LAYER_BITRATE_BPS``, scaled with the frame rate) as a cap
  with a VBV buffer of half a second, so a burst of motion cannot flood a link;
* keyframes when asked (``keyframe=True`` forces an IDR) and otherwise only every
  ``KEYFRAME_BACKSTOP_S`` as a backstop; no scene-cut keyframes (a cut costs a keyframe
  for every child for nothing);
* SPS and PPS before every keyframe, so a viewer can start at any keyframe without
  out-of-band headers.

The decoder runs with ``err_detect=explode``: a corrupt frame raises instead of being
concealed, so a neighbour sending garbage is found and cut off. It starts at the first
keyframe and returns None for anything before.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Final, cast

import av
import av.error
import numpy as np

from peer.node.codecs.base import DecodedPicture, VideoCodec
from peer.node.codecs.rates import VBV_BUFFER_S as VBV_BUFFER_S
from peer.node.codecs.rates import layer_bitrate as layer_bitrate
from peer.node.codecs.yuv import bgr_to_i420, i420_to_bgr
from peer.node.picture import CodecError, Image
from protocol.h264 import AccessUnit, parse_access_unit

# libav's own logging would print decoder complaints about garbage frames to the
# console; the node reports them as CodecError once.
logging.getLogger("libav").setLevel(logging.CRITICAL)

# A periodic keyframe only repairs what on-demand keyframes missed (a lost request);
# every keyframe costs 10-20 P-frames of bits, so they are rare.
KEYFRAME_BACKSTOP_S: Final = 10.0
# AVCOL_RANGE_JPEG: a stream whose VUI says full range (not ours).
_FULL_RANGE: Final = 2
PRESET: Final = "superfast"
# What bgr_to_i420 makes, written into the stream so any player (a recording opened
# elsewhere) shows the right colours: without it players guess, and for HD sizes most
# guess BT.709.
_VUI_PARAMS: Final = ("range=tv", "colorprim=smpte170m", "transfer=smpte170m",
                      "colormatrix=smpte170m", "chromaloc=1")


def _time_base(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class H264Encoder:
    """libx264 for one picture size, tuned for live relaying.

    Args:
        width: picture width in pixels (even).
        height: picture height in pixels (even).
        fps: frame rate (sets the time base and the bitrate budget per frame).
        bitrate_bps: the rate cap (see :func:`layer_bitrate`).
        preset: libx264's speed preset (benchmarks compare others against ``PRESET``).

    Raises:
        CodecError: libx264 is missing or refuses the settings.
    """

    codec = VideoCodec.H264

    def __init__(self, width: int, height: int, fps: float, bitrate_bps: int,
                 preset: str = PRESET) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise CodecError(f"H.264 needs a positive even picture size, got {width}x{height}")
        self.width = width
        self.height = height
        self.bitrate_bps = bitrate_bps
        keyint = max(1, round(fps * KEYFRAME_BACKSTOP_S))
        rate_kbps = max(1, bitrate_bps // 1000)
        params = ":".join([
            f"keyint={keyint}", f"min-keyint={keyint}", "scenecut=0", "bframes=0",
            "rc-lookahead=0", "sync-lookahead=0", f"vbv-maxrate={rate_kbps}",
            f"vbv-bufsize={max(1, round(rate_kbps * VBV_BUFFER_S))}",
            "repeat-headers=1", "forced-idr=1", "sliced-threads=0", "threads=1",
            *_VUI_PARAMS,
        ])
        try:
            context = av.CodecContext.create("libx264", "w")
            context.width = width
            context.height = height
            context.pix_fmt = "yuv420p"
            context.time_base = 1 / _time_base(fps)
            context.framerate = _time_base(fps)
            context.bit_rate = bitrate_bps
            context.options = {"preset": preset, "tune": "zerolatency",
                               "x264-params": params}
            context.open()
        except (av.error.FFmpegError, ValueError) as exc:
            raise CodecError(f"cannot start the H.264 encoder: {exc}") from exc
        self._context = context
        self._pts = 0
        self._closed = False

    def encode(self, image: Image, *, keyframe: bool = False) -> tuple[bytes, bool]:
        """Encode one BGR picture of the encoder's size.

        Args:
            image: BGR uint8, shape (height, width, 3).
            keyframe: force an IDR frame (with SPS and PPS) now.

        Returns:
            ``(access unit in Annex B form, is_keyframe)``.

        Raises:
            CodecError: wrong picture size, a closed encoder, or libx264 failed.
        """
        if self._closed:
            raise CodecError("the H.264 encoder is closed")
        if image.shape[:2] != (self.height, self.width):
            raise CodecError(f"picture is {image.shape[1]}x{image.shape[0]}, "
                             f"the encoder takes {self.width}x{self.height}")
        frame = av.VideoFrame.from_ndarray(bgr_to_i420(image), format="yuv420p")
        frame.pts = self._pts
        self._pts += 1
        if keyframe:
            frame.pict_type = av.video.frame.PictureType.I
        try:
            packets = self._context.encode(frame)
        except av.error.FFmpegError as exc:
            raise CodecError(f"H.264 encoding failed: {exc}") from exc
        if len(packets) != 1:
            # zerolatency has no delay: one picture in, one access unit out.
            raise CodecError(f"H.264 encoder returned {len(packets)} packets for one picture")
        packet = packets[0]
        return bytes(packet), bool(packet.is_keyframe)

    def close(self) -> None:
        """Free the encoder. Idempotent."""
        self._closed = True


def check_access_unit(data: bytes) -> AccessUnit:
    """``protocol.h264.parse_access_unit`` with its ValueError as a CodecError."""
    try:
        return parse_access_unit(data)
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def _to_bgr(frame: av.VideoFrame) -> Image:
    """A decoded picture as BGR: our own streams through OpenCV, anything else swscale."""
    if frame.format.name == "yuv420p" and frame.color_range != _FULL_RANGE:
        return i420_to_bgr(cast(Image, frame.to_ndarray(format="yuv420p")))
    # Another encoder's full-range or 4:2:2/4:4:4 stream: slower, still right.
    return cast(Image, np.ascontiguousarray(frame.reformat(
        format="bgr24", src_color_range=frame.color_range or None).to_ndarray()))


class H264Decoder:
    """libavcodec's H.264 decoder for one incoming stream, strict about errors.

    Frames must arrive in order; the decoder waits for a keyframe first (returns None
    before). After a CodecError the caller should start over at a keyframe.
    """

    codec = VideoCodec.H264

    def __init__(self) -> None:
        self._context = self._open()
        self._size: tuple[int, int] | None = None  # from the last SPS
        self.started = False
        self._closed = False

    @staticmethod
    def _open() -> av.VideoCodecContext:
        context = av.CodecContext.create("h264", "r")
        # Frame threads would delay every picture by one frame per thread.
        context.thread_count = 1
        context.options = {"err_detect": "explode"}
        return context

    def decode(self, data: bytes, width: int, height: int) -> DecodedPicture | None:
        """Decode one access unit whose metadata says ``width`` x ``height``.

        Returns:
            The picture; None while no keyframe has been seen yet.

        Raises:
            CodecError: not H.264, corrupt, a picture size other than announced, or
                the decoder returned no picture.
        """
        if self._closed:
            raise CodecError("the H.264 decoder is closed")
        unit = check_access_unit(data)
        if unit.size is not None:
            if unit.size != (width, height):
                raise CodecError(f"H.264 picture is {unit.size[0]}x{unit.size[1]} but its "
                                 f"metadata says {width}x{height}")
            self._size = unit.size
        if not self.started:
            if not unit.keyframe:
                return None
            self.started = True
        if self._size != (width, height):
            raise CodecError(f"frame says {width}x{height} but the stream is "
                             f"{self._size[0] if self._size else 0}x"
                             f"{self._size[1] if self._size else 0}")
        try:
            frames = self._context.decode(av.Packet(data))
        except (av.error.FFmpegError, ValueError) as exc:
            self._reset()
            raise CodecError(f"corrupt H.264 frame: {exc}") from exc
        if len(frames) != 1:
            self._reset()
            raise CodecError(f"H.264 frame decoded to {len(frames)} pictures, not 1")
        frame = frames[0]
        if (frame.width, frame.height) != (width, height):
            self._reset()
            raise CodecError(f"H.264 picture decoded to {frame.width}x{frame.height}, "
                             f"not {width}x{height}")
        return DecodedPicture(_to_bgr(frame), unit.keyframe)

    def _reset(self) -> None:
        """After an error the reference pictures are suspect: start at a keyframe."""
        self._context = self._open()
        self.started = False

    def close(self) -> None:
        """Free the decoder. Idempotent."""
        self._closed = True
