"""Large messages as FramePart pieces: split on send, reassemble on receive.

Theory of operation
-------------------
One TCP stream delivers in order, so a 40 KB keyframe on a 250 kbit/s link holds every
sound packet queued behind it for over a second. The link writer therefore sends a
large message's already-encoded wire bytes as ``FramePart`` messages of at most
``limits.FRAME_PART_BYTES`` and may send sound and control between them. The
receiver's ``PartAssembler`` glues the pieces back into the exact original bytes,
which go through the normal decoder: nothing above the link (signatures, relaying,
keyframes) sees a difference.

The assembler is strict, so a hostile sender can hold at most one message of at most
``limits.MAX_PARTS_TOTAL_BYTES`` per link: one message at a time, pieces in order with
no gap or overlap, the same total in every piece, at most ``limits.MAX_FRAME_PARTS``
pieces, and the first piece's inner header must be a video frame whose lengths add
up to the declared total. Anything else raises ``RemoteProtocolError`` (the link closes).
"""

from __future__ import annotations

from protocol import limits
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.framing import HEADER, encode
from protocol.messages import FramePart, MessageType


def split(data: bytes, part_bytes: int = limits.FRAME_PART_BYTES) -> list[bytes]:
    """The encoded FramePart messages carrying ``data`` (a whole encoded message)."""
    if not data or len(data) > limits.MAX_PARTS_TOTAL_BYTES:
        raise ValueError(f"cannot split {len(data)} bytes")
    if not 0 < part_bytes <= limits.FRAME_PART_BYTES:
        raise ValueError(f"part size {part_bytes} outside 1..{limits.FRAME_PART_BYTES}")
    total = len(data)
    return [encode(FramePart(offset=o, total=total, data=data[o:o + part_bytes]))
            for o in range(0, total, part_bytes)]


class PartAssembler:
    """Reassembles one link's FramePart messages, one message at a time."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._total = 0
        self._parts = 0

    @property
    def in_progress(self) -> bool:
        return self._total > 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def add(self, part: FramePart) -> bytes | None:
        """Take the next piece; the whole message's bytes once its last piece is in.

        Raises:
            RemoteProtocolError: a piece out of order, a second message interleaved,
                a changed total or too many pieces.
        """
        if not self.in_progress:
            if part.offset != 0:
                raise RemoteProtocolError(
                    f"a message part at offset {part.offset} without its start",
                    ErrorCode.UNEXPECTED)
            self._check_start(part)
            self._total = part.total
        elif part.total != self._total or part.offset != len(self._buffer):
            raise RemoteProtocolError(
                f"a message part (offset {part.offset} of {part.total}) interleaved with "
                f"the message in progress (at {len(self._buffer)} of {self._total})",
                ErrorCode.UNEXPECTED)
        self._parts += 1
        if self._parts > limits.MAX_FRAME_PARTS:
            raise RemoteProtocolError(
                f"more than {limits.MAX_FRAME_PARTS} parts for one message",
                ErrorCode.TOO_LARGE)
        # FramePart.from_meta guarantees offset + len(data) <= total, so the buffer
        # never exceeds the declared total (itself <= MAX_PARTS_TOTAL_BYTES).
        self._buffer += part.data
        if len(self._buffer) < self._total:
            return None
        whole = bytes(self._buffer)
        self._buffer.clear()
        self._total = 0
        self._parts = 0
        return whole

    @staticmethod
    def _check_start(part: FramePart) -> None:
        """The first piece starts with the inner message's header: only a video frame
        is ever split, and its declared lengths must add up to the declared total."""
        if len(part.data) < limits.HEADER_BYTES:
            raise RemoteProtocolError("a first message part shorter than a header",
                                      ErrorCode.MALFORMED)
        _magic, _version, kind, meta_len, payload_len = HEADER.unpack_from(part.data)
        if kind != MessageType.VIDEO_FRAME:
            raise RemoteProtocolError(f"a split message of kind {kind} (only video is "
                                      f"split)", ErrorCode.UNEXPECTED)
        if limits.HEADER_BYTES + meta_len + payload_len != part.total:
            raise RemoteProtocolError(
                f"split message parts declare {part.total} bytes, its header "
                f"{limits.HEADER_BYTES + meta_len + payload_len}", ErrorCode.MALFORMED)
