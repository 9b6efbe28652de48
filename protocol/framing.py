"""Length-prefixed framing: ``encode(message) -> bytes`` and an incremental decoder.

Theory of operation
-------------------
A frame is a 12-byte header, then ``meta_len`` bytes of UTF-8 JSON (an object), then
``payload_len`` raw bytes (a JPEG for video, empty for control messages)::

    magic "TC" | framing version u8 | kind u8 | meta_len u32 | payload_len u32

``FrameDecoder.receive_data`` appends bytes and validates the header at the front of
the buffer as soon as its 12 bytes are present, so an oversize declared length fails
before its body is buffered: the buffer never holds more than one accepted frame plus
the last chunk handed in. ``next_message`` returns one complete message or None.

Contract: for any input, the decoder returns messages or raises
``RemoteProtocolError``; after an error it stays failed and every call re-raises it.
"""

from __future__ import annotations

import contextlib
import json
import struct

from protocol import limits
from protocol.errors import (
    ErrorCode,
    FrameTooLargeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from protocol.messages import Message, MessageType, Unknown, message_class

_HEADER = struct.Struct("!2sBBII")
assert _HEADER.size == limits.HEADER_BYTES
FRAMING_VERSION = 1


def payload_limit(kind: int) -> int:
    """The largest payload a frame of this kind may declare."""
    if kind == MessageType.VIDEO_FRAME:
        return limits.MAX_VIDEO_PAYLOAD_BYTES
    return limits.MAX_CONTROL_PAYLOAD_BYTES


def meta_limit(kind: int) -> int:
    """The largest metadata section a frame of this kind may declare."""
    if kind == MessageType.PEER_LIST:
        return limits.MAX_PEER_LIST_META_BYTES
    return limits.MAX_META_BYTES


# Largest frame the decoder can ever accept; its buffer stays under this plus one chunk.
# (No kind has both the large meta and the video payload; this is a safe upper bound.)
MAX_FRAME_BYTES = (limits.HEADER_BYTES + limits.MAX_PEER_LIST_META_BYTES
                   + limits.MAX_VIDEO_PAYLOAD_BYTES)


def encode(message: Message) -> bytes:
    """Serialize one message to its wire bytes.

    Raises:
        LocalProtocolError: the message breaks a limit or a field rule (we never send
            what the other side's decoder would reject).
    """
    fields = message.to_meta()
    payload = message.payload()
    try:
        # The decoder's own validation, run on what we are about to send: one set of
        # rules for both directions instead of a second, drifting copy for encoding.
        type(message).from_meta(fields, payload)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(
            f"cannot send {type(message).__name__}: {exc.reason}", exc.code) from exc
    meta = json.dumps(fields, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()
    if len(meta) > meta_limit(message.KIND):
        raise LocalProtocolError(
            f"metadata of {len(meta)} bytes exceeds {meta_limit(message.KIND)}",
            ErrorCode.TOO_LARGE)
    if len(payload) > payload_limit(message.KIND):
        raise LocalProtocolError(
            f"payload of {len(payload)} bytes exceeds {payload_limit(message.KIND)}",
            ErrorCode.TOO_LARGE)
    header = _HEADER.pack(limits.MAGIC, FRAMING_VERSION, message.KIND, len(meta), len(payload))
    return b"".join((header, meta, payload))


class FrameDecoder:
    """Incremental decoder: feed any chunking of bytes, take whole messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header: tuple[int, int, int] | None = None  # kind, meta_len, payload_len
        self._error: ProtocolError | None = None
        # Wire size of the message last returned (framing included), for accounting.
        self.last_message_bytes = 0

    @property
    def buffered_bytes(self) -> int:
        """How many bytes are waiting in the buffer (bounded, see module docs)."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Append received bytes; validates a header as soon as it is complete.

        Raises:
            RemoteProtocolError: the bytes break the framing or a limit.
        """
        self._raise_if_failed()
        self._buffer += data
        self._parse_header()

    def next_message(self) -> Message | Unknown | None:
        """Return the next complete message, or None until more bytes arrive.

        Raises:
            RemoteProtocolError: the frame is malformed.
        """
        self._raise_if_failed()
        if self._header is None:
            return None
        kind, meta_len, payload_len = self._header
        end = limits.HEADER_BYTES + meta_len + payload_len
        if len(self._buffer) < end:
            return None
        meta_bytes = bytes(self._buffer[limits.HEADER_BYTES : limits.HEADER_BYTES + meta_len])
        payload = bytes(self._buffer[limits.HEADER_BYTES + meta_len : end])
        del self._buffer[:end]
        self._header = None
        self.last_message_bytes = end
        try:
            message = self._build(kind, meta_bytes, payload)
        except ProtocolError as exc:
            raise self._fail(exc) from exc
        # If the next frame's header is bad, this message was still whole and valid:
        # deliver it (it may be the Bye explaining why); the decoder is failed and
        # the next call raises.
        with contextlib.suppress(ProtocolError):
            self._parse_header()
        return message

    def __iter__(self) -> FrameDecoder:
        return self

    def __next__(self) -> Message | Unknown:
        message = self.next_message()
        if message is None:
            raise StopIteration
        return message

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _fail(self, exc: ProtocolError) -> ProtocolError:
        self._error = exc
        self._buffer.clear()
        return exc

    def _parse_header(self) -> None:
        if self._header is not None or len(self._buffer) < limits.HEADER_BYTES:
            return
        magic, version, kind, meta_len, payload_len = _HEADER.unpack_from(self._buffer)
        error: ProtocolError | None = None
        if magic != limits.MAGIC:
            error = RemoteProtocolError(f"bad magic {bytes(magic)!r}", ErrorCode.MALFORMED)
        elif version != FRAMING_VERSION:
            error = RemoteProtocolError(f"unsupported framing version {version}",
                                        ErrorCode.BAD_VERSION)
        elif meta_len > meta_limit(kind):
            error = FrameTooLargeError(f"metadata of kind {kind}", meta_len, meta_limit(kind))
        elif payload_len > payload_limit(kind):
            error = FrameTooLargeError(f"payload of kind {kind}", payload_len, payload_limit(kind))
        if error is not None:
            raise self._fail(error)
        self._header = (kind, meta_len, payload_len)

    @staticmethod
    def _build(kind: int, meta_bytes: bytes, payload: bytes) -> Message | Unknown:
        try:
            meta = json.loads(meta_bytes) if meta_bytes else {}
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
            raise RemoteProtocolError(f"metadata is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise RemoteProtocolError("metadata is not a JSON object")
        cls = message_class(kind)
        if cls is None:
            return Unknown(kind=kind, meta=meta, payload=payload)
        try:
            return cls.from_meta(meta, payload)  # type: ignore[attr-defined, no-any-return]
        except ProtocolError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:
            raise RemoteProtocolError(f"bad {cls.__name__}: {exc}") from exc
