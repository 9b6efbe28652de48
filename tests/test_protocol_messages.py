"""Round trips of every message, every chunking of the input, and field validation."""

from __future__ import annotations

import json
import struct

import pytest

from protocol import framing, limits
from protocol.errors import FieldError, LocalProtocolError, RemoteProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import (
    Accept,
    AudioFrame,
    Bye,
    Chat,
    ChatHave,
    DenyReason,
    Error,
    FramePart,
    Heartbeat,
    Hello,
    JoinRequest,
    KeyframeRequest,
    LayerDemand,
    LinkProof,
    MessageType,
    PathUpdate,
    PeerList,
    Ping,
    Playback,
    Pong,
    PunchRequest,
    PunchStart,
    Redirect,
    Register,
    RoomList,
    RoomListQuery,
    RoomQuery,
    StatusQuery,
    StreamAnnounce,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
    TrackerStatus,
    Unknown,
    VideoFrame,
    message_class,
)
from protocol.records import Candidate, PathEntry, PeerInfo, RoomStatus, RoomSummary, TreeLevel
from protocol.stream_auth import Announcement, SourceProof

CAND = Candidate("c1", "Carol", "10.0.0.3", 7000, depth=2, free_slots=1)
PATH = (PathEntry("root", "Rita"), PathEntry("p1", "Pete"))
INFO = PeerInfo("p1", "Pete", "10.0.0.2", 7001, 1, 2, True, "viewer", "root", 720)
INFO_BARE = PeerInfo("p2", "Päivi ünïcødé 🎥", None, None, None, 0, False)
ANN = Announcement("a" * 52, 3, "h264", 1280, 720, 30.0, (360, 480, 720), 1.7e9, "c2ln")
SRC = SourceProof(1280, 720, 720, "h264", False, 16, "ZGln", "c2ln")

# Every message class at least once, optional fields both set and unset.
SAMPLES = [
    Hello("p1", "Pete", "lobby"),
    Hello("p1", "Pete", "lobby", versions=(1, 2, 7)),
    JoinRequest(720),
    JoinRequest(0),  # NO_VIDEO: chat and control only
    JoinRequest(1080, listen_host="10.0.0.2", listen_port=7001),
    JoinRequest(360, sound=False),
    Accept(PATH, epoch=3, source_width=1920, source_height=1080),
    Accept(PATH[:1], epoch=0),
    Accept(PATH, epoch=3, source_width=1280, source_height=720, codec="h264"),
    Accept(PATH, epoch=3, source_width=1280, source_height=720, codec="h264", ann=ANN),
    StreamAnnounce(ANN),
    PathUpdate(PATH),
    PathUpdate(PATH, repairing=True),  # the sender lost its parent and is repairing
    Playback(4, True, 61_500, 120_000),
    Playback(4, False, 0),
    Playback(4, True, 61_500, 120_000, at=1.7e9, sig="c2ln"),
    Redirect((CAND,)),
    Redirect((), reason="leaving"),
    VideoFrame(5, 17, 1234.5, 640, 360, 360, b"\xff\xd8jpeg\x00\xff\xd9"),
    VideoFrame(5, 18, 1234.5, 640, 360, 360, b"\x00\x00\x01\x41\x9a", codec="h264",
               keyframe=False, prev=17),
    VideoFrame(5, 19, 1234.5, 640, 360, 360, b"\xff\xd8jpeg\x00\xff\xd9", sig="c2ln"),
    VideoFrame(5, 19, 1234.5, 640, 360, 360, b"\xff\xd8jpeg\x00\xff\xd9", sig="c2ln",
               by="b" * 52, src=SRC),
    KeyframeRequest(720),
    AudioFrame(5, 19, 1234.54, b"\xfc\x01\x02\x03", sig="c2ln"),
    AudioFrame(5, 18, 1234.52, b"\xfc\x01\x02\x03"),  # TOC: CELT 20 ms stereo, 1 frame
    FramePart(16384, 40000, b"piece"),
    LayerDemand(480),
    LayerDemand(0),
    LayerDemand(1080, auto=True),
    LayerDemand(720, sound=False),  # a subtree of silent viewers: no sound
    Chat("p1:1", "p1", "Pete", 99.25, "hello\nworld ✓"),
    ChatHave(("p1:1", "p2:7")),
    ChatHave(()),
    Ping(1.5),
    Pong(1.5, 2.0, 2.5),
    Pong(1.5, 2.0, 2.5, root_offset=-0.125),
    Bye("bye"),
    Bye("moving", candidates=(CAND,), code=7),
    Error(4, "slow down"),
    Register("p1", "Pete", "lobby", "10.0.0.2", 7001),
    Register("p1", "Pete", "lobby", None, None, versions=(1, 2)),
    Register("p1", "Pete", "lobby", None, 7001, depth=2, free_slots=1, parent_id="p0",
             layer=480),
    PeerList("lobby", (INFO, INFO_BARE), "root", "Rita", 4, "p1"),
    PeerList("lobby", (INFO,), "root", "Rita", 4, "p1", total=5000,
             levels=(TreeLevel(0, 1, 0), TreeLevel(None, 4999, 0)), your_name="Pete (2)"),
    PeerList("lobby", ()),
    Heartbeat(),
    Heartbeat(depth=2, free_slots=3, parent_id="p1", layer=1080),
    Heartbeat(sent_at=12.75),
    StreamClaim(),
    StreamClaim(sent_at=0.5),
    StreamClaim(sent_at=0.5, resume_epoch=7, token="ab" * 16),
    StreamGranted(1, 3.0),
    StreamGranted(7, 8.0, 0.5, token="ab" * 16),
    StreamGranted(9, 0.25, request_sent_at=12.75),
    StreamDenied("root", "Rita"),
    *[StreamDenied("", "", reason) for reason in DenyReason],
    StreamRelease(),
    StreamerChanged("root", "Rita", 2, "10.0.0.1", 7000),
    StreamerChanged(None, None, 3),
    RoomQuery("lobby"),
    RoomListQuery(),
    RoomList((RoomSummary("lobby", "Rita", 4), RoomSummary("quiet", None, 1)), total=7),
    RoomList(()),
    StatusQuery(),
    TrackerStatus("host:42", "redis://127.0.0.1:6379/0", True, 12,
                  (RoomStatus("lobby", 10, "Rita", 7), RoomStatus("b", 2, None, 0)), 2),
    LinkProof("a" * 52, "c2lnbmF0dXJl"),
    PunchRequest("b" * 52),
    PunchStart("b" * 52, "Bob", "203.0.113.7", 40123, 100, True),
]


def test_samples_cover_every_message_class() -> None:
    assert {type(m).KIND for m in SAMPLES} == set(MessageType)


def _frame(kind: int, meta: object, payload: bytes = b"", *, raw_meta: bytes | None = None,
           magic: bytes = limits.MAGIC, version: int = framing.FRAMING_VERSION) -> bytes:
    meta_bytes = raw_meta if raw_meta is not None else json.dumps(meta).encode()
    return (struct.pack("!2sBBII", magic, version, kind, len(meta_bytes), len(payload))
            + meta_bytes + payload)


def _decode_all(data: bytes, step: int | None = None) -> list[object]:
    decoder = FrameDecoder()
    out: list[object] = []
    chunks = [data] if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        decoder.receive_data(chunk)
        out.extend(decoder)
    assert decoder.buffered_bytes == 0
    return out


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_whole(message: object) -> None:
    assert _decode_all(encode(message)) == [message]  # type: ignore[arg-type]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_byte_by_byte(message: object) -> None:
    data = encode(message)  # type: ignore[arg-type]
    decoder = FrameDecoder()
    for i in range(len(data)):
        # Nothing may come out before the last byte is in.
        assert decoder.next_message() is None
        decoder.receive_data(data[i:i + 1])
    assert decoder.next_message() == message
    assert decoder.next_message() is None


def test_round_trip_every_split_point_of_a_stream() -> None:
    stream = b"".join(encode(m) for m in SAMPLES)  # type: ignore[arg-type]
    for split in range(len(stream) + 1):
        decoder = FrameDecoder()
        got = []
        for part in (stream[:split], stream[split:]):
            decoder.receive_data(part)
            got.extend(decoder)
        assert got == SAMPLES, split


@pytest.mark.parametrize("step", [1, 2, 3, 7, 12, 13, 100, 4096])
def test_stream_in_fixed_chunks(step: int) -> None:
    stream = b"".join(encode(m) for m in SAMPLES)  # type: ignore[arg-type]
    assert _decode_all(stream, step) == SAMPLES


def test_every_split_of_a_video_frame() -> None:
    frame = VideoFrame(1, 2, 3.0, 16, 16, 360, bytes(range(256)) * 4)
    data = encode(frame)
    for split in range(len(data) + 1):
        decoder = FrameDecoder()
        decoder.receive_data(data[:split])
        got = list(decoder)
        decoder.receive_data(data[split:])
        got.extend(decoder)
        assert got == [frame], split


@pytest.mark.parametrize("kind", [0, 17, 31, 47, 99, 255])
def test_unknown_kind_decodes_to_unknown(kind: int) -> None:
    assert message_class(kind) is None
    data = _frame(kind, {"x": [1, "two"], "y": None}, b"blob")
    for step in (None, 1, 5):
        assert _decode_all(data, step) == [Unknown(kind, {"x": [1, "two"], "y": None}, b"blob")]


def test_unknown_kind_between_known_messages() -> None:
    stream = encode(Ping(1.0)) + _frame(200, {}) + encode(Ping(2.0))
    assert _decode_all(stream) == [Ping(1.0), Unknown(200, {}, b""), Ping(2.0)]


def test_unknown_kind_with_empty_meta() -> None:
    assert _decode_all(_frame(77, None, raw_meta=b"")) == [Unknown(77, {}, b"")]


def test_unknown_fields_are_ignored() -> None:
    meta = RoomQuery("lobby").to_meta() | {"future_field": {"nested": [1, 2]}}
    assert _decode_all(_frame(MessageType.ROOM_QUERY, meta)) == [RoomQuery("lobby")]


def test_empty_meta_for_no_field_messages() -> None:
    # StreamClaim/StreamRelease have no fields: an empty meta section is valid.
    assert _decode_all(_frame(MessageType.STREAM_CLAIM, None, raw_meta=b"")) == [StreamClaim()]


def test_bad_magic_and_version() -> None:
    with pytest.raises(RemoteProtocolError, match="bad magic"):
        FrameDecoder().receive_data(_frame(MessageType.PING, {"t0": 1}, magic=b"XX"))
    with pytest.raises(RemoteProtocolError, match="unsupported framing version 9") as info:
        FrameDecoder().receive_data(_frame(MessageType.PING, {"t0": 1}, version=9))
    assert info.value.code == 3


@pytest.mark.parametrize("raw, why", [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"null", "not a JSON object"),
    (b"[" * 60_000, "not valid JSON"),  # RecursionError
    (b'{"t0": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # int digit limit (CVE-2020-10735)
])
def test_bad_meta_bytes(raw: bytes, why: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(_frame(MessageType.PING, None, raw_meta=raw))
    with pytest.raises(RemoteProtocolError, match=why):
        decoder.next_message()


def test_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError) as first:
        decoder.receive_data(b"NOPE" * 4)
    assert decoder.buffered_bytes == 0
    for call in (lambda: decoder.receive_data(encode(Ping(1.0))), decoder.next_message):
        with pytest.raises(RemoteProtocolError) as again:
            call()
        assert again.value is first.value


def test_messages_before_a_bad_frame_are_delivered() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode(Ping(1.0)) + encode(Bye("done")) + b"garbage!garbage!")
    assert decoder.next_message() == Ping(1.0)
    assert decoder.next_message() == Bye("done")
    with pytest.raises(RemoteProtocolError, match="bad magic"):
        decoder.next_message()


# --- mutation: every field of every message, with the wrong type ----------------------


def _wrong(value: object) -> object:
    """A JSON value of a type the field does not accept."""
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float):
        return "1"
    if isinstance(value, str):
        return 1
    if isinstance(value, list | dict):
        return "x"
    return {"not": "this"}  # None (an optional field) or an object


def _mutations() -> list[tuple[object, str]]:
    cases = []
    seen = set()
    for message in SAMPLES:
        for key in message.to_meta():  # type: ignore[attr-defined]
            if (type(message), key) not in seen:
                seen.add((type(message), key))
                cases.append((message, key))
    return cases


@pytest.mark.parametrize("message, key", _mutations(),
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_flipping_a_field_type_names_the_field(message: object, key: str) -> None:
    meta = message.to_meta()  # type: ignore[attr-defined]
    meta[key] = _wrong(meta[key])
    decoder = FrameDecoder()
    decoder.receive_data(_frame(message.KIND, meta, message.payload()))  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError, match=f"field '{key}'"):
        decoder.next_message()


NESTED = [
    (PeerList("lobby", (INFO,)), "peers", INFO),
    (Accept(PATH, 1), "path", PATH[0]),
    (PathUpdate(PATH), "path", PATH[0]),
    (Redirect((CAND,)), "candidates", CAND),
    (Bye("x", (CAND,)), "candidates", CAND),
]


@pytest.mark.parametrize("message, key, item", NESTED, ids=lambda v: str(v)[:20])
def test_flipping_a_nested_field_names_the_path(message: object, key: str, item: object) -> None:
    for sub in item.to_meta():  # type: ignore[attr-defined]
        meta = message.to_meta()  # type: ignore[attr-defined]
        meta[key][0][sub] = _wrong(meta[key][0][sub])
        decoder = FrameDecoder()
        decoder.receive_data(_frame(message.KIND, meta))  # type: ignore[attr-defined]
        with pytest.raises(RemoteProtocolError, match=rf"field '{key}\[0\]\.{sub}'"):
            decoder.next_message()


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_missing_required_field_is_named(message: object) -> None:
    meta = message.to_meta()  # type: ignore[attr-defined]
    for key in meta:
        cut = {k: v for k, v in meta.items() if k != key}
        decoder = FrameDecoder()
        decoder.receive_data(_frame(message.KIND, cut, message.payload()))  # type: ignore[attr-defined]
        try:
            decoder.next_message()
        except RemoteProtocolError as exc:
            assert f"field '{key}': missing" in str(exc)


def test_exact_error_messages() -> None:
    cases = [
        (MessageType.PING, {"t0": "x"}, "field 't0': expected a number"),
        (MessageType.PING, {"t0": 1e400}, "field 't0': not finite"),
        (MessageType.PING, {"t0": float("nan")}, "field 't0': not finite"),
        (MessageType.LAYER_DEMAND, {"layer": 500}, "field 'layer': 500 is not one of "
                                                   "(360, 480, 720, 1080)"),
        # NO_VIDEO is a demand, never a frame's or a keyframe's layer; nor is 0.0 or False.
        (MessageType.KEYFRAME_REQUEST, {"layer": 0}, "field 'layer': 0 is not one of"),
        (MessageType.LAYER_DEMAND, {"layer": 0.0}, "field 'layer': expected an integer"),
        (MessageType.LAYER_DEMAND, {"layer": False}, "field 'layer': expected an integer"),
        (MessageType.LAYER_DEMAND, {"layer": 360, "snd": 0}, "field 'snd': expected a boolean"),
        (MessageType.JOIN_REQUEST, {"layer": 360, "snd": "no"},
         "field 'snd': expected a boolean"),
        (MessageType.HEARTBEAT, {"free": True}, "field 'free': expected an integer"),
        (MessageType.HEARTBEAT, {"free": -1}, "field 'free': -1 outside [0, 1024]"),
        (MessageType.ROOM_QUERY, {"room": ""}, "field 'room': empty"),
        (MessageType.REGISTER, {"id": "a", "name": "b", "room": "c", "versions": []},
         "field 'versions': expected a non-empty list of integers"),
        (MessageType.ACCEPT, {"path": [], "epoch": 1}, "field 'path': empty"),
        (MessageType.PATH_UPDATE, {"path": [{"id": "r", "name": "r"}], "repairing": 1},
         "field 'repairing': expected a boolean"),
        (MessageType.CHAT_HAVE, {"ids": [""]}, "field 'ids': expected a list of chat ids"),
        (MessageType.STREAM_GRANTED, {"epoch": 0, "lease": 1}, "field 'epoch': 0 outside"),
        (MessageType.STREAM_GRANTED, {"epoch": 1, "lease": 0}, "field 'lease': must be positive"),
    ]
    for kind, meta, text in cases:
        decoder = FrameDecoder()
        decoder.receive_data(_frame(kind, meta))
        with pytest.raises(RemoteProtocolError) as info:
            decoder.next_message()
        assert text in str(info.value), (kind, str(info.value))


def test_video_frame_needs_a_payload() -> None:
    meta = VideoFrame(1, 1, 1.0, 2, 2, 360, b"x").to_meta()
    decoder = FrameDecoder()
    decoder.receive_data(_frame(MessageType.VIDEO_FRAME, meta, b""))
    with pytest.raises(RemoteProtocolError, match="field 'payload'"):
        decoder.next_message()


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_rejected_both_ways(text: str) -> None:
    # JSON can carry "\ud800" but UTF-8 cannot: accepting it would make us fail later
    # when we re-encode the value (a tracker relaying a peer's name).
    decoder = FrameDecoder()
    decoder.receive_data(_frame(MessageType.ROOM_QUERY, {"room": text}))
    with pytest.raises(RemoteProtocolError, match="field 'room'"):
        decoder.next_message()
    with pytest.raises(LocalProtocolError):
        encode(RoomQuery(text))


@pytest.mark.parametrize("text", ["a\nb", "\x00", "tab\there", "\x7f", "\x85"])
def test_control_characters_are_rejected_in_names(text: str) -> None:
    decoder = FrameDecoder()
    decoder.receive_data(_frame(MessageType.HELLO,
                                {"id": "p", "name": text, "room": "r", "versions": [1]}))
    with pytest.raises(RemoteProtocolError, match="field 'name': control character"):
        decoder.next_message()


def test_chat_text_and_reasons_may_hold_newlines() -> None:
    for message in (Chat("p:1", "p", "P", 1.0, "line 1\nline 2\ttab"), Bye("a\nb"),
                    Error(1, "x\ny")):
        assert _decode_all(encode(message)) == [message]


def test_encode_refuses_what_the_decoder_would_reject() -> None:
    bad = [
        VideoFrame(1, 1, float("nan"), 2, 2, 360, b"x"),
        VideoFrame(1, 1, 1.0, 2, 2, 361, b"x"),
        VideoFrame(1, 1, 1.0, 2, 2, 360, b""),
        Hello("p", "Pete", "r" * (limits.MAX_ROOM_CHARS + 1)),
        StreamGranted(0, 1.0),
        PeerList("lobby", (INFO,) * (limits.MAX_ROOM_PEERS + 1)),
        Heartbeat(free_slots=-1),
        RoomQuery(""),
    ]
    for message in bad:
        with pytest.raises(LocalProtocolError):
            encode(message)  # type: ignore[arg-type]


def test_peer_info_candidate() -> None:
    assert INFO.candidate() == Candidate("p1", "Pete", "10.0.0.2", 7001, 1, 2)
    assert INFO_BARE.candidate() is None


def test_playback_fields_are_bounded() -> None:
    good = {"epoch": 1, "paused": True, "pos": limits.MAX_MEDIA_MS, "dur": None}
    assert Playback.from_meta(good, b"").position_ms == limits.MAX_MEDIA_MS
    for key, bad in (("pos", limits.MAX_MEDIA_MS + 1), ("pos", -1), ("paused", 1),
                     ("dur", limits.MAX_MEDIA_MS + 1), ("epoch", "x")):
        with pytest.raises(FieldError):
            Playback.from_meta({**good, key: bad}, b"")


def test_room_list_is_bounded() -> None:
    room = {"room": "r", "streamer": None, "peers": 1}
    meta = {"rooms": [room] * limits.MAX_LISTED_ROOMS, "total": limits.MAX_ROOM_COUNT}
    assert len(RoomList.from_meta(meta, b"").rooms) == limits.MAX_LISTED_ROOMS
    for bad in ({**meta, "rooms": [room] * (limits.MAX_LISTED_ROOMS + 1)},
                {**meta, "total": limits.MAX_ROOM_COUNT + 1},
                {**meta, "rooms": [{**room, "room": ""}]},
                {**meta, "rooms": [{**room, "peers": -1}]}):
        with pytest.raises(FieldError):
            RoomList.from_meta(bad, b"")
