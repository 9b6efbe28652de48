"""Structure checks for Opus packets (RFC 6716, section 3), without decoding them.

Relays forward audio untouched and never decode it, but they must not pass garbage
down the tree either. These checks are cheap (a few byte reads) and catch what is
not an Opus packet at all: a bad frame-count code, lengths that overrun the packet,
frames over 1275 bytes, or a duration other than the one Treecast sends.
"""

from __future__ import annotations

from typing import Final

# RFC 6716 3.2.1: no frame is longer than 1275 bytes.
MAX_FRAME_BYTES: Final = 1275
# RFC 6716 3.2.5: at most 48 frames, at most 120 ms in one packet.
MAX_FRAMES: Final = 48
MAX_PACKET_US: Final = 120_000

# Frame duration of each TOC configuration (RFC 6716 3.1, table 2), in microseconds.
_SILK_US = (10_000, 20_000, 40_000, 60_000)
_HYBRID_US = (10_000, 20_000)
_CELT_US = (2_500, 5_000, 10_000, 20_000)


def frame_duration_us(toc: int) -> int:
    """Duration of each frame in a packet whose first byte is ``toc``."""
    config = toc >> 3
    if config < 12:
        return _SILK_US[config % 4]
    if config < 16:
        return _HYBRID_US[config % 2]
    return _CELT_US[config % 4]


def _frame_length(packet: bytes, pos: int) -> tuple[int, int]:
    """A frame length coded in one or two bytes at ``pos`` (RFC 6716 3.2.1)."""
    if pos >= len(packet):
        raise ValueError("frame length runs past the packet")
    first = packet[pos]
    if first < 252:
        return first, pos + 1
    if pos + 1 >= len(packet):
        raise ValueError("frame length runs past the packet")
    return first + 4 * packet[pos + 1], pos + 2


def packet_duration_us(packet: bytes) -> int:
    """The duration of an Opus packet, after checking its framing (RFC 6716 R1-R7).

    Raises:
        ValueError: the bytes break the packet structure rules.
    """
    if not packet:
        raise ValueError("empty packet (no TOC byte)")
    toc, code, size = packet[0], packet[0] & 0x3, len(packet)
    per_frame = frame_duration_us(toc)
    if code == 0:
        count, lengths = 1, [size - 1]
    elif code == 1:
        if (size - 1) % 2:
            raise ValueError("code 1 packet with frames of unequal size")
        count, lengths = 2, [(size - 1) // 2] * 2
    elif code == 2:
        first, pos = _frame_length(packet, 1)
        if first > size - pos:
            raise ValueError("code 2 packet: first frame overruns the packet")
        count, lengths = 2, [first, size - pos - first]
    else:
        if size < 2:
            raise ValueError("code 3 packet without a frame count byte")
        header = packet[1]
        count, vbr, padded = header & 0x3F, bool(header & 0x80), bool(header & 0x40)
        if count == 0 or count > MAX_FRAMES or count * per_frame > MAX_PACKET_US:
            raise ValueError(f"code 3 packet with {count} frames of {per_frame} us")
        pos, padding = 2, 0
        if padded:
            while True:
                if pos >= size:
                    raise ValueError("padding length runs past the packet")
                byte = packet[pos]
                pos += 1
                padding += 254 if byte == 255 else byte
                if byte != 255:
                    break
        lengths = []
        if vbr:
            for _ in range(count - 1):
                length, pos = _frame_length(packet, pos)
                lengths.append(length)
            last = size - pos - padding - sum(lengths)
            if last < 0:
                raise ValueError("code 3 packet: frames overrun the packet")
            lengths.append(last)
        else:
            body = size - pos - padding
            if body < 0 or body % count:
                raise ValueError("code 3 CBR packet: body not a multiple of the frame count")
            lengths = [body // count] * count
    if any(length > MAX_FRAME_BYTES for length in lengths):
        raise ValueError(f"a frame over {MAX_FRAME_BYTES} bytes")
    return count * per_frame
