"""Every protocol limit at its value (accepted) and one above (refused, both ways)."""

from __future__ import annotations

import json
import struct

import pytest

from protocol import framing, limits
from protocol.errors import (
    ErrorCode,
    FieldError,
    FrameTooLargeError,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocol.framing import FrameDecoder, encode
from protocol.messages import (
    Accept,
    Bye,
    Chat,
    ChatHave,
    Error,
    Hello,
    MessageType,
    PathUpdate,
    PeerList,
    Ping,
    Redirect,
    Register,
    RoomQuery,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    Unknown,
    VideoFrame,
)
from protocol.records import Candidate, PathEntry, PeerInfo


def _header(kind: int, meta_len: int, payload_len: int) -> bytes:
    return struct.pack("!2sBBII", limits.MAGIC, framing.FRAMING_VERSION, kind, meta_len,
                       payload_len)


def _frame(kind: int, meta: dict[str, object], payload: bytes = b"") -> bytes:
    meta_bytes = json.dumps(meta).encode()
    return _header(kind, len(meta_bytes), len(payload)) + meta_bytes + payload


def _padded_meta(meta: dict[str, object], size: int) -> bytes:
    """``meta`` plus an ignored "pad" field, serialized to exactly ``size`` bytes."""
    base = len(json.dumps(meta | {"pad": ""}).encode())
    out = json.dumps(meta | {"pad": "x" * (size - base)}).encode()
    assert len(out) == size
    return out


def _decode_one(data: bytes) -> object:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    message = decoder.next_message()
    assert decoder.next_message() is None
    return message


def _assert_rejected_at_header(kind: int, meta_len: int, payload_len: int, what: str,
                               limit: int) -> None:
    """The error must come from receive_data on the 12th byte, with nothing buffered."""
    header = _header(kind, meta_len, payload_len)
    decoder = FrameDecoder()
    for byte in header[:-1]:
        decoder.receive_data(bytes([byte]))
    with pytest.raises(FrameTooLargeError) as info:
        decoder.receive_data(header[-1:])
    assert info.value.what == what
    assert info.value.limit == limit
    assert info.value.size == (meta_len if what.startswith("metadata") else payload_len)
    assert info.value.code == ErrorCode.TOO_LARGE
    assert decoder.buffered_bytes == 0
    with pytest.raises(FrameTooLargeError):
        decoder.next_message()


# --- byte limits: metadata, video payload, control payload ---------------------------


def test_meta_at_limit_is_accepted() -> None:
    meta = _padded_meta({"room": "lobby"}, limits.MAX_META_BYTES)
    data = _header(MessageType.ROOM_QUERY, len(meta), 0) + meta
    assert _decode_one(data) == RoomQuery("lobby")


def test_meta_over_limit_fails_at_the_header() -> None:
    _assert_rejected_at_header(MessageType.ROOM_QUERY, limits.MAX_META_BYTES + 1, 0,
                               f"metadata of kind {MessageType.ROOM_QUERY}",
                               limits.MAX_META_BYTES)


def test_unknown_kind_meta_over_limit_fails_at_the_header() -> None:
    _assert_rejected_at_header(250, limits.MAX_META_BYTES + 1, 0, "metadata of kind 250",
                               limits.MAX_META_BYTES)


def test_peer_list_meta_at_and_over_its_own_limit() -> None:
    meta = _padded_meta({"room": "lobby", "peers": [], "epoch": 0},
                        limits.MAX_PEER_LIST_META_BYTES)
    assert _decode_one(_header(MessageType.PEER_LIST, len(meta), 0) + meta) == \
        PeerList("lobby", ())
    _assert_rejected_at_header(MessageType.PEER_LIST, limits.MAX_PEER_LIST_META_BYTES + 1, 0,
                               f"metadata of kind {MessageType.PEER_LIST}",
                               limits.MAX_PEER_LIST_META_BYTES)


def test_fullest_possible_peer_list_fits() -> None:
    # Every string at its limit, in 4-byte UTF-8 characters: the tracker must always be
    # able to send a full room.
    wide = "🎥"

    def s(n: int) -> str:
        return wide * n

    peers = tuple(
        PeerInfo(s(limits.MAX_ID_CHARS - 3) + f"{i:03}", s(limits.MAX_NAME_CHARS),
                 s(limits.MAX_HOST_CHARS), 65535, limits.MAX_PATH_LEN, 1024, True,
                 s(16), s(limits.MAX_ID_CHARS), 1080)
        for i in range(limits.MAX_ROOM_PEERS)
    )
    message = PeerList(s(limits.MAX_ROOM_CHARS), peers, s(limits.MAX_ID_CHARS),
                       s(limits.MAX_NAME_CHARS), 2**53, s(limits.MAX_ID_CHARS))
    data = encode(message)
    assert len(data) <= limits.HEADER_BYTES + limits.MAX_PEER_LIST_META_BYTES
    assert _decode_one(data) == message


def test_fullest_possible_bye_fits_the_control_meta_limit() -> None:
    wide = "🎥"
    cand = Candidate(wide * limits.MAX_ID_CHARS, wide * limits.MAX_NAME_CHARS,
                     wide * limits.MAX_HOST_CHARS, 65535, limits.MAX_PATH_LEN, 1024)
    message = Bye(wide * limits.MAX_REASON_CHARS, (cand,) * limits.MAX_CANDIDATES, 255)
    assert _decode_one(encode(message)) == message


def test_video_payload_at_limit_is_accepted() -> None:
    frame = VideoFrame(1, 1, 0.0, 8, 8, 360, b"\x00" * limits.MAX_VIDEO_PAYLOAD_BYTES)
    assert _decode_one(encode(frame)) == frame


def test_video_payload_over_limit() -> None:
    _assert_rejected_at_header(MessageType.VIDEO_FRAME, 10, limits.MAX_VIDEO_PAYLOAD_BYTES + 1,
                               f"payload of kind {MessageType.VIDEO_FRAME}",
                               limits.MAX_VIDEO_PAYLOAD_BYTES)
    too_big = VideoFrame(1, 1, 0.0, 8, 8, 360, b"\x00" * (limits.MAX_VIDEO_PAYLOAD_BYTES + 1))
    with pytest.raises(LocalProtocolError, match="payload of 4194305 bytes"):
        encode(too_big)


@pytest.mark.parametrize("kind, expected", [
    (MessageType.PING, Ping(1.0)),
    (MessageType.STREAM_CLAIM, StreamClaim()),
])
def test_control_payload_at_limit_is_accepted(kind: int, expected: object) -> None:
    # Today's control kinds carry no payload and ignore one (room for future use).
    data = _frame(kind, {"t0": 1.0}, b"p" * limits.MAX_CONTROL_PAYLOAD_BYTES)
    assert _decode_one(data) == expected


def test_unknown_kind_payload_at_limit_is_kept() -> None:
    payload = b"p" * limits.MAX_CONTROL_PAYLOAD_BYTES
    assert _decode_one(_frame(200, {}, payload)) == Unknown(200, {}, payload)


@pytest.mark.parametrize("kind", [MessageType.PING, MessageType.STREAM_CLAIM, 200])
def test_control_payload_over_limit(kind: int) -> None:
    # A control kind may not borrow the video kind's payload allowance.
    _assert_rejected_at_header(kind, 10, limits.MAX_CONTROL_PAYLOAD_BYTES + 1,
                               f"payload of kind {kind}", limits.MAX_CONTROL_PAYLOAD_BYTES)


def test_header_declaring_both_lengths_at_u32_max() -> None:
    _assert_rejected_at_header(MessageType.CHAT, 2**32 - 1, 2**32 - 1,
                               f"metadata of kind {MessageType.CHAT}", limits.MAX_META_BYTES)


def test_later_frame_over_limit_fails_before_its_body() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode(Ping(1.0)))
    assert decoder.next_message() == Ping(1.0)
    with pytest.raises(FrameTooLargeError):
        decoder.receive_data(_header(MessageType.CHAT, limits.MAX_META_BYTES + 1, 0))


# --- character limits ------------------------------------------------------------------

STRING_FIELDS = [
    # (a valid message, meta key, limit)
    (Hello("p", "n", "r"), "id", limits.MAX_ID_CHARS),
    (Hello("p", "n", "r"), "name", limits.MAX_NAME_CHARS),
    (Hello("p", "n", "r"), "room", limits.MAX_ROOM_CHARS),
    (Register("p", "n", "r", "h", 1), "id", limits.MAX_ID_CHARS),
    (Register("p", "n", "r", "h", 1), "name", limits.MAX_NAME_CHARS),
    (Register("p", "n", "r", "h", 1), "room", limits.MAX_ROOM_CHARS),
    (Register("p", "n", "r", "h", 1), "host", limits.MAX_HOST_CHARS),
    (RoomQuery("r"), "room", limits.MAX_ROOM_CHARS),
    (PeerList("r", ()), "room", limits.MAX_ROOM_CHARS),
    (PeerList("r", (), "s", "n"), "streamer_name", limits.MAX_NAME_CHARS),
    (Chat("p:1", "p", "n", 0.0, "t"), "text", limits.MAX_CHAT_CHARS),
    (Chat("p:1", "p", "n", 0.0, "t"), "from", limits.MAX_NAME_CHARS),
    (Chat("p:1", "p", "n", 0.0, "t"), "id", 2 * limits.MAX_ID_CHARS),
    (Bye("r"), "reason", limits.MAX_REASON_CHARS),
    (Error(1, "r"), "reason", limits.MAX_REASON_CHARS),
    (Redirect((), "r"), "reason", limits.MAX_REASON_CHARS),
    (StreamDenied("p", "n"), "holder", limits.MAX_NAME_CHARS),
    (StreamerChanged("p", "n", 1, "h", 1), "name", limits.MAX_NAME_CHARS),
    (StreamerChanged("p", "n", 1, "h", 1), "host", limits.MAX_HOST_CHARS),
]


@pytest.mark.parametrize("message, key, limit", STRING_FIELDS,
                         ids=[f"{type(m).__name__}.{k}" for m, k, _ in STRING_FIELDS])
def test_string_at_and_over_limit(message: object, key: str, limit: int) -> None:
    meta = message.to_meta()  # type: ignore[attr-defined]
    kind = message.KIND  # type: ignore[attr-defined]
    at = _decode_one(_frame(kind, meta | {key: "é" * limit}))
    assert at is not None
    with pytest.raises(FieldError) as info:
        _decode_one(_frame(kind, meta | {key: "é" * (limit + 1)}))
    assert str(info.value) == f"field '{key}': {limit + 1} characters, limit is {limit}"


@pytest.mark.parametrize("make", [
    lambda n: Hello("p", "x" * n, "r"),
    lambda n: Register("p", "x" * n, "r", None, None),
    lambda n: Register("p", "n", "x" * n, None, None),
    lambda n: Chat("p:1", "p", "n", 0.0, "x" * n),
    lambda n: RoomQuery("x" * n),
    lambda n: StreamDenied("p", "x" * n),
])
def test_encode_refuses_over_limit_strings(make: object) -> None:
    for n in (1, 32):
        encode(make(n))  # type: ignore[operator]
    with pytest.raises(LocalProtocolError):
        encode(make(limits.MAX_CHAT_CHARS + 1))  # type: ignore[operator]


def test_long_reasons_are_truncated_on_send() -> None:
    # A reason is advisory text: cutting it is better than failing to say goodbye.
    long = "r" * (limits.MAX_REASON_CHARS + 50)
    assert _decode_one(encode(Bye(long))) == Bye(long[: limits.MAX_REASON_CHARS])
    assert _decode_one(encode(Error(1, long))) == Error(1, long[: limits.MAX_REASON_CHARS])


# --- list limits -----------------------------------------------------------------------

CAND = Candidate("c", "n", "h", 1)
ENTRY = PathEntry("p", "n")
INFO = PeerInfo("p", "n", None, None, None, 0, False)

LIST_FIELDS = [
    (lambda n: Accept((ENTRY,) * n, 1), "path", limits.MAX_PATH_LEN),
    (lambda n: PathUpdate((ENTRY,) * n), "path", limits.MAX_PATH_LEN),
    (lambda n: Redirect((CAND,) * n), "candidates", limits.MAX_CANDIDATES),
    (lambda n: Bye("r", (CAND,) * n), "candidates", limits.MAX_CANDIDATES),
    (lambda n: PeerList("r", (INFO,) * n), "peers", limits.MAX_ROOM_PEERS),
    (lambda n: ChatHave(("p:1",) * n), "ids", limits.MAX_CHAT_IDS),
]


@pytest.mark.parametrize("make, key, limit", LIST_FIELDS,
                         ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(LIST_FIELDS)])
def test_list_at_and_over_limit(make: object, key: str, limit: int) -> None:
    at = make(limit)  # type: ignore[operator]
    assert _decode_one(encode(at)) == at
    over = make(limit + 1)  # type: ignore[operator]
    with pytest.raises(LocalProtocolError, match=f"field '{key}'"):
        encode(over)
    meta = at.to_meta()
    meta[key] = meta[key] + meta[key][:1]
    with pytest.raises(FieldError) as info:
        _decode_one(_frame(at.KIND, meta))
    assert str(info.value) == f"field '{key}': {limit + 1} items, limit is {limit}"


def test_versions_list_is_bounded() -> None:
    meta = Hello("p", "n", "r").to_meta()
    assert _decode_one(_frame(MessageType.HELLO, meta | {"versions": [1] * 16})) is not None
    with pytest.raises(RemoteProtocolError, match="field 'versions': 17 items"):
        _decode_one(_frame(MessageType.HELLO, meta | {"versions": [1] * 17}))


def test_dimension_and_port_ranges() -> None:
    meta = VideoFrame(1, 1, 0.0, 8, 8, 360, b"x").to_meta()
    ok = meta | {"w": limits.MAX_DIMENSION_PX}
    assert _decode_one(_frame(MessageType.VIDEO_FRAME, ok, b"x")) is not None
    with pytest.raises(FieldError, match="field 'w': 8193 outside"):
        _decode_one(_frame(MessageType.VIDEO_FRAME, meta | {"w": 8193}, b"x"))
    reg = Register("p", "n", "r", "h", 1).to_meta()
    assert _decode_one(_frame(MessageType.REGISTER, reg | {"port": 65535})) is not None
    for port in (0, 65536):
        with pytest.raises(FieldError, match="field 'port'"):
            _decode_one(_frame(MessageType.REGISTER, reg | {"port": port}))
