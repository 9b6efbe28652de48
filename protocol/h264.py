"""Structure checks for H.264 access units (Annex B byte stream), without decoding.

Relays forward video untouched and most never decode it, but they must not pass
garbage down the tree either: every VideoFrame of the h264 codec is checked when it
is read off a link (and before it is sent). It must be a sequence of NAL units behind
start codes, with the forbidden bit clear and a NAL type an encoder for live video
emits; every SPS (sequence parameter set) in it must describe a picture of the size
the frame's metadata claims, at most ``MAX_DIMENSION_PX`` a side; and its keyframe
flag must be true exactly when it holds an IDR slice with SPS and PPS. So a neighbour
cannot make a decoder allocate pictures of a size it did not announce, nor start a
child's decoder on a frame that cannot start one, and plain garbage is refused before
libavcodec sees it (corruption inside a valid structure is the decoder's to find: it
runs with ``err_detect=explode``).

The SPS syntax is ITU-T H.264 section 7.3.2.1.1; emulation prevention bytes
(00 00 03) are removed first (7.4.1). Every error is a ValueError with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from protocol.limits import MAX_DIMENSION_PX

NAL_SLICE: Final = 1
NAL_IDR: Final = 5
NAL_SEI: Final = 6
NAL_SPS: Final = 7
NAL_PPS: Final = 8
NAL_AUD: Final = 9
# Slices (1-5), SEI, SPS, PPS, access unit delimiter, end of sequence/stream, filler:
# everything a baseline-to-high encoder writes for progressive video.
_ALLOWED_NAL_TYPES: Final = frozenset(range(1, 13))
# An access unit of live video has a handful of NAL units (SPS, PPS, SEI, slices);
# thousands are an attack on the parser, not a picture.
MAX_NALS_PER_FRAME: Final = 256
# A real SPS is 10-100 bytes (scaling lists included); the bit reader is quadratic in
# length, so a bigger one is refused unread.
MAX_SPS_BYTES: Final = 1024
# profile_idc values whose SPS carries chroma format and bit depth (7.3.2.1.1).
_HIGH_PROFILES: Final = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """What the structure of one H.264 frame says.

    Attributes:
        nal_types: the NAL unit types in order.
        keyframe: it holds an IDR slice with an SPS and a PPS before it (a decoder
            that knows nothing can start here).
        size: ``(width, height)`` from its SPS, None when it has no SPS.
    """

    nal_types: tuple[int, ...]
    keyframe: bool
    size: tuple[int, int] | None


def nal_spans(data: bytes) -> list[tuple[int, int]]:
    """Where the NAL units of an Annex B stream lie: ``(start, end)`` offsets into
    ``data``, start codes excluded (the units are not copied out).

    Raises:
        ValueError: no leading start code, an empty NAL unit, or too many of them.
    """
    if not (data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")):
        raise ValueError("not an H.264 frame: no start code")
    spans: list[tuple[int, int]] = []
    find = data.find
    pos = data.index(b"\x00\x00\x01") + 3
    while True:
        nxt = find(b"\x00\x00\x01", pos)
        end = len(data) if nxt < 0 else nxt
        if nxt >= 0 and end > pos and data[end - 1] == 0:
            end -= 1  # the leading zero of a 4-byte start code
        if end <= pos:
            raise ValueError("malformed H.264 frame: empty NAL unit")
        spans.append((pos, end))
        if len(spans) > MAX_NALS_PER_FRAME:
            raise ValueError(f"malformed H.264 frame: more than {MAX_NALS_PER_FRAME} NAL units")
        if nxt < 0:
            return spans
        pos = nxt + 3


def split_nals(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream (start codes removed).

    Raises:
        ValueError: no leading start code, an empty NAL unit, or too many of them.
    """
    return [data[start:end] for start, end in nal_spans(data)]


def parse_access_unit(data: bytes) -> AccessUnit:
    """Check the structure of one H.264 access unit and read its keyframe flag and size.

    Raises:
        ValueError: not Annex B H.264, a forbidden or unexpected NAL unit, a broken
            SPS, or an SPS picture size out of range.
    """
    types: list[int] = []
    size: tuple[int, int] | None = None
    for start, end in nal_spans(data):
        header = data[start]
        if header & 0x80:
            raise ValueError("malformed H.264 frame: forbidden bit set")
        nal_type = header & 0x1F
        if nal_type not in _ALLOWED_NAL_TYPES:
            raise ValueError(f"unsupported H.264 NAL unit type {nal_type}")
        if nal_type == NAL_SPS:
            sps_size = sps_picture_size(data[start:end])
            if size is not None and sps_size != size:
                raise ValueError("malformed H.264 frame: two SPS of different sizes")
            size = sps_size
        types.append(nal_type)
    if NAL_SLICE not in types and NAL_IDR not in types:
        raise ValueError("H.264 frame carries no picture (no slice)")
    keyframe = NAL_IDR in types and NAL_SPS in types and NAL_PPS in types
    return AccessUnit(tuple(types), keyframe, size)


class _Bits:
    """MSB-first bit reader over an RBSP; reading past the end raises ValueError."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def u(self, bits: int) -> int:
        if bits > self._left:
            raise ValueError("malformed H.264 SPS: truncated")
        self._left -= bits
        return (self._value >> self._left) & ((1 << bits) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:  # 7.2: ue(v) values fit 32 bits
                raise ValueError("malformed H.264 SPS: exp-Golomb code too long")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code % 2 else -(code // 2)


def _rbsp(nal: bytes) -> bytes:
    """The NAL payload without its header and emulation prevention bytes."""
    return nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + bits.se()) % 256
        last = following or last


def sps_picture_size(nal: bytes) -> tuple[int, int]:
    """The displayed picture size an SPS NAL unit (header byte included) describes.

    Raises:
        ValueError: a truncated or inconsistent SPS, or a size that is zero or above
            ``MAX_DIMENSION_PX``.
    """
    if len(nal) > MAX_SPS_BYTES:
        raise ValueError(f"malformed H.264 SPS: {len(nal)} bytes (at most {MAX_SPS_BYTES})")
    bits = _Bits(_rbsp(nal))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    chroma_format = 1
    separate_planes = 0
    if profile in _HIGH_PROFILES:
        chroma_format = bits.ue()
        if chroma_format > 3:
            raise ValueError("malformed H.264 SPS: chroma format")
        if chroma_format == 3:
            separate_planes = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma_format == 3 else 8):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se()
        bits.se()
        cycle = bits.ue()
        if cycle > 255:
            raise ValueError("malformed H.264 SPS: reference frame cycle")
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        raise ValueError("malformed H.264 SPS: picture order count type")
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.u(1):  # frame_cropping_flag (7.4.2.1.1, crop units)
        if chroma_format == 0 or separate_planes:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            unit_x = 2 if chroma_format in (1, 2) else 1
            unit_y = (2 if chroma_format == 1 else 1) * (2 - frame_mbs_only)
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if not (0 < width <= MAX_DIMENSION_PX and 0 < height <= MAX_DIMENSION_PX):
        raise ValueError(f"H.264 picture size {width}x{height} is out of range")
    return width, height
