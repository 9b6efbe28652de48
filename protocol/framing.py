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
Memory follows what actually arrives: a declared length reserves nothing, so a peer
that declares a large frame and withholds its body holds only what it really sent.

A decoder may be given a ``ReceivePolicy``: the kinds its side never accepts (a
tracker takes no video, a peer no tracker pushes) are refused from the header, and
the policy's smaller size caps apply, so a hostile sender cannot make a side buffer a
body it would throw away. The header after a message is checked when the next
message is asked for (not when the previous one is returned), so a policy the
receiver tightens or relaxes in response to a message applies to the very next one.

Contract: for any input, the decoder returns messages or raises
``RemoteProtocolError``; after an error it stays failed and every call re-raises it.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from protocol import limits
from protocol.errors import (
    ErrorCode,
    FrameTooLargeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from protocol.messages import Message, MessageType, Unknown, VideoFrame, message_class

HEADER = struct.Struct("!2sBBII")
_JSON = json.JSONDecoder()
_HEADER = HEADER
assert _HEADER.size == limits.HEADER_BYTES
FRAMING_VERSION = 1


def payload_limit(kind: int) -> int:
    """The largest payload a frame of this kind may declare."""
    if kind == MessageType.VIDEO_FRAME:
        return limits.MAX_VIDEO_PAYLOAD_BYTES
    if kind == MessageType.AUDIO_FRAME:
        return limits.MAX_AUDIO_PAYLOAD_BYTES
    if kind == MessageType.FRAME_PART:
        return limits.FRAME_PART_BYTES
    return limits.MAX_CONTROL_PAYLOAD_BYTES


def meta_limit(kind: int) -> int:
    """The largest metadata section a frame of this kind may declare."""
    if kind == MessageType.PEER_LIST:
        return limits.MAX_PEER_LIST_META_BYTES
    return limits.MAX_META_BYTES


@dataclass(frozen=True, slots=True)
class ReceivePolicy:
    """What one side of a connection accepts, checked at each 12-byte header.

    Unknown kinds stay allowed (forward compatibility: they are skipped), under the
    same small caps as everything else.

    Attributes:
        name: who receives, for error texts ("tracker", "peer link").
        refused: kinds this side never accepts; refused before the body is read.
        max_meta_bytes: cap on any frame's metadata (below the protocol's own).
        max_payload_bytes: cap on any frame's payload (below the protocol's own).
    """

    name: str
    refused: frozenset[int]
    max_meta_bytes: int = limits.MAX_META_BYTES
    max_payload_bytes: int = limits.MAX_VIDEO_PAYLOAD_BYTES

    def check(self, kind: int, meta_len: int, payload_len: int) -> ProtocolError | None:
        """The error for a header this side refuses, else None."""
        if kind in self.refused:
            name = MessageType(kind).name if kind in _KNOWN_KINDS else str(kind)
            return RemoteProtocolError(f"a {self.name} does not accept {name} messages",
                                       ErrorCode.UNEXPECTED)
        if meta_len > self.max_meta_bytes:
            return FrameTooLargeError(f"metadata of kind {kind} for a {self.name}", meta_len,
                                      self.max_meta_bytes)
        if payload_len > self.max_payload_bytes:
            return FrameTooLargeError(f"payload of kind {kind} for a {self.name}",
                                      payload_len, self.max_payload_bytes)
        return None


_KNOWN_KINDS = frozenset(int(k) for k in MessageType)
_PEER_KINDS = frozenset(k for k in _KNOWN_KINDS if k < 32)
_TRACKER_KINDS = frozenset(k for k in _KNOWN_KINDS if k >= 32)
# Kinds both a tracker and its clients use on the tracker connection.
_SHARED_KINDS = frozenset({MessageType.PING, MessageType.PONG, MessageType.BYE,
                           MessageType.ERROR, MessageType.LINK_PROOF})
_TRACKER_TO_CLIENT = frozenset({MessageType.PEER_LIST, MessageType.STREAM_GRANTED,
                                MessageType.STREAM_DENIED, MessageType.STREAMER_CHANGED,
                                MessageType.ROOM_LIST, MessageType.TRACKER_STATUS,
                                MessageType.PUNCH_START})

# The tracker takes small control messages from its clients and nothing else: no
# video, no peer-link kinds, none of the kinds only it sends. A Register with every
# field at its limit is under 2 KB.
TRACKER_INBOX = ReceivePolicy(
    "tracker", (_PEER_KINDS - _SHARED_KINDS) | _TRACKER_TO_CLIENT,
    max_meta_bytes=limits.MAX_TRACKER_INBOX_META_BYTES, max_payload_bytes=0)
# A peer link it did not dial: a joiner or a child. Children never send media (or the
# streamer's playback state) up, so nothing that arrives here can make us buffer a
# frame. Its largest honest message (a Bye with MAX_CANDIDATES hints) fits the normal
# metadata cap; no payload at all.
PEER_INBOX = ReceivePolicy(
    "peer link", (_TRACKER_KINDS | {MessageType.VIDEO_FRAME, MessageType.AUDIO_FRAME,
                                    MessageType.FRAME_PART, MessageType.PLAYBACK,
                                    MessageType.STREAM_ANNOUNCE}),
    max_payload_bytes=0)
# A link we dialled (to our parent, or a candidate): video may come down it.
PARENT_INBOX = ReceivePolicy("peer link", _TRACKER_KINDS)
# A tracker client takes the tracker's pushes and answers, never peer-link traffic.
TRACKER_CLIENT_INBOX = ReceivePolicy(
    "tracker client", (_PEER_KINDS - _SHARED_KINDS) | (_TRACKER_KINDS - _TRACKER_TO_CLIENT),
    max_meta_bytes=limits.MAX_PEER_LIST_META_BYTES, max_payload_bytes=0)


# Largest frame the decoder can ever accept; its buffer stays under this plus one chunk.
# (No kind has both the large meta and the video payload; this is a safe upper bound.)
MAX_FRAME_BYTES = (limits.HEADER_BYTES + limits.MAX_PEER_LIST_META_BYTES
                   + limits.MAX_VIDEO_PAYLOAD_BYTES)


def encode(message: Message, *, check_fields: bool = True) -> bytes:
    """Serialize one message to its wire bytes.

    Args:
        message: what to send.
        check_fields: run the decoder's field rules on it first. Pass False only for a
            message assembled from values that were themselves decoded under those
            rules (the tracker's PeerLists of registered peers): there the check
            repeats work already done and would cost more than the encoding itself
            (sizes are checked either way).

    Raises:
        LocalProtocolError: the message breaks a limit or a field rule (we never send
            what the other side's decoder would reject).
    """
    fields = message.to_meta()
    payload = message.payload()
    try:
        # The decoder's own validation, run on what we are about to send: one set of
        # rules for both directions instead of a second, drifting copy for encoding.
        if check_fields:
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
    """Incremental decoder: feed any chunking of bytes, take whole messages out.

    Args:
        policy: what this side accepts (None: every kind, at the protocol's limits).
            It may be replaced (``policy`` attribute) between messages.
    """

    def __init__(self, policy: ReceivePolicy | None = None) -> None:
        self.policy = policy
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
        self._parse_header()
        if self._header is None:
            return None
        kind, meta_len, payload_len = self._header
        end = limits.HEADER_BYTES + meta_len + payload_len
        if len(self._buffer) < end:
            return None
        buffer = self._buffer
        wire = None
        if kind == MessageType.VIDEO_FRAME:
            # Usually the buffer holds just this frame: one copy, not a slice's two.
            wire = bytes(buffer) if len(buffer) == end else bytes(buffer[:end])
        whole = buffer if wire is None else wire
        meta_bytes = bytes(whole[limits.HEADER_BYTES : limits.HEADER_BYTES + meta_len])
        payload = bytes(whole[limits.HEADER_BYTES + meta_len : end])
        del buffer[:end]
        self._header = None
        self.last_message_bytes = end
        try:
            message = self._build(kind, meta_bytes, payload)
        except ProtocolError as exc:
            raise self._fail(exc) from exc
        if wire is not None and isinstance(message, VideoFrame):
            # A relay forwards these very bytes (after verifying the frame) instead of
            # encoding the frame again for its children: one copy here, none there.
            object.__setattr__(message, "wire", wire)
        # The next header is checked on the next call, under the policy in force then;
        # if it is bad, this message was still whole and valid (it may be the Bye
        # explaining why) and is delivered first.
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
        elif self.policy is not None:
            error = self.policy.check(kind, meta_len, payload_len)
        if error is not None:
            raise self._fail(error)
        self._header = (kind, meta_len, payload_len)

    @staticmethod
    def _build(kind: int, meta_bytes: bytes, payload: bytes) -> Message | Unknown:
        try:
            if meta_bytes[:1] == b"{" and meta_bytes[1:2] != b"\0":
                # What json.loads does with bytes that start so (UTF-8, surrogates
                # passed through for the field checks to name), minus its detour.
                meta = _JSON.decode(meta_bytes.decode("utf-8", "surrogatepass"))
            else:
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
