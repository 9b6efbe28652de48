"""VideoFrame's codec fields and the H.264 structure check on the wire."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from protocol import FrameDecoder, RemoteProtocolError, VideoFrame, encode, limits
from protocol.errors import FieldError, LocalProtocolError
from protocol.fields import check_text
from protocol.framing import FRAMING_VERSION
from protocol.messages import MessageType, RoomQuery, _plain_video


def h264_frames(count: int = 3) -> list[VideoFrame]:
    bank = EncoderBank(VideoCodec.H264, 30.0)
    frames = []
    for seq in range(count):
        image = np.full((180, 320, 3), 40 + seq * 20, np.uint8)
        enc = bank.encode(image, [360], seq=seq)[360]
        frames.append(VideoFrame(1, seq, 10.0 + seq / 30, enc.width, enc.height, 360,
                                 enc.data, codec="h264", keyframe=enc.keyframe,
                                 prev=enc.prev))
    return frames


def decode_one(data: bytes) -> object:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    return decoder.next_message()


def raw(frame: VideoFrame, **meta: object) -> bytes:
    """The frame's wire bytes with metadata fields replaced (what a liar would send)."""
    fields = {**frame.to_meta(), **meta}
    fields = {k: v for k, v in fields.items() if v is not None}
    body = json.dumps(fields).encode()
    return (struct.pack("!2sBBII", limits.MAGIC, FRAMING_VERSION, int(frame.KIND), len(body),
                        len(frame.data)) + body + frame.data)


def test_h264_frames_round_trip_with_codec_keyframe_and_chain() -> None:
    frames = h264_frames()
    decoded = [decode_one(encode(f)) for f in frames]
    assert decoded == frames
    assert [(f.keyframe, f.prev) for f in frames] == [(True, -1), (False, 0), (False, 1)]


def test_frames_of_older_peers_are_jpeg_keyframes() -> None:
    frame = VideoFrame(1, 5, 1.0, 16, 16, 360, b"\xff\xd8\xff\xd9")
    message = decode_one(raw(frame, cd=None, kf=None, p=None))
    assert isinstance(message, VideoFrame)
    assert (message.codec, message.keyframe, message.prev) == ("mjpeg", True, -1)
    assert message.jpeg == message.data  # the old name still reads the payload


def test_unknown_codec_names_pass_the_protocol_for_the_node_to_refuse() -> None:
    frame = VideoFrame(1, 5, 1.0, 16, 16, 360, b"opaque", codec="av1")
    assert decode_one(encode(frame)) == frame


@pytest.mark.parametrize(("meta", "reason"), [
    ({"cd": "H264"}, "lowercase"),
    ({"cd": "x" * 17}, "cd"),
    ({"cd": ""}, "cd"),
    ({"kf": "yes"}, "kf"),
    ({"p": 5}, "not before"),
])
def test_bad_codec_fields_are_refused(meta: dict[str, object], reason: str) -> None:
    frame = VideoFrame(1, 5, 1.0, 16, 16, 360, b"\xff\xd8\xff\xd9")
    with pytest.raises(RemoteProtocolError, match=reason):
        decode_one(raw(frame, **meta))


def test_h264_garbage_is_refused_at_the_link() -> None:
    with pytest.raises(RemoteProtocolError, match="no start code"):
        decode_one(raw(VideoFrame(1, 0, 1.0, 320, 180, 360, b"garbage", codec="h264")))


def test_h264_keyframe_flag_must_match_the_bitstream() -> None:
    key, delta = h264_frames(2)
    with pytest.raises(RemoteProtocolError, match="field 'kf'"):
        decode_one(raw(key, kf=False))
    with pytest.raises(RemoteProtocolError, match="field 'kf'"):
        decode_one(raw(delta, kf=True))


def test_h264_picture_size_must_match_the_metadata() -> None:
    key = h264_frames(1)[0]
    with pytest.raises(RemoteProtocolError, match=r"H\.264 picture is 320x180"):
        decode_one(raw(key, w=640, h=360))


def test_we_never_send_what_the_other_side_refuses() -> None:
    with pytest.raises(LocalProtocolError, match="no start code"):
        encode(VideoFrame(1, 0, 1.0, 320, 180, 360, b"garbage", codec="h264"))


# --- the one-pass reading of a plain frame (protocol/messages.py, _plain_video) ---------

_TEXT = st.one_of(st.sampled_from(["", "A" * 88, "A" * 89, "x" * 64, "x" * 65, "a\nb",
                                   "\x7f", "\x85", "\ud800", "é", "h264", "mjpeg", "H264"]),
                  st.text(max_size=90))
_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**53 + 1),
                   st.sampled_from([0, 1, 5, 360, 480, 720, 1080, 8192, 8193, 2**53]),
                   st.floats(allow_nan=True, allow_infinity=True), _TEXT,
                   st.just([]), st.just({}))
_KEYS = ("e", "s", "c", "w", "h", "layer", "cd", "kf", "p", "sig", "by", "src")


@settings(max_examples=3000, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), _VALUE),
       st.fixed_dictionaries({"e": st.integers(0, 3), "s": st.integers(0, 9),
                              "c": st.floats(0, 1e9), "w": st.integers(1, 640),
                              "h": st.integers(1, 360), "layer": st.just(360),
                              "cd": st.sampled_from(["mjpeg", "h264"]),
                              "kf": st.booleans()}),
       st.binary(max_size=2))
def test_the_quick_reading_of_a_frame_accepts_only_what_the_full_rules_accept(
        noise: dict[str, object], base: dict[str, object], payload: bytes) -> None:
    # Every frame is read in one pass when its fields have the usual form; anything
    # else goes through the field readers. The quick pass must never accept what the
    # readers refuse, nor read a field differently.
    meta = {**base, **noise}
    quick = _plain_video(VideoFrame, meta, payload)
    try:
        full: VideoFrame | None = VideoFrame._read(meta, payload)
    except RemoteProtocolError:
        full = None
    if quick is not None:
        assert full is not None and quick == full and quick.src is None, meta
    # And the usual form does take the quick way (the speed this is for).
    if payload and noise == {}:
        assert quick is not None and quick == full


def test_a_transcoded_frame_and_an_integer_time_take_the_full_way_and_still_decode() -> None:
    frame = VideoFrame(1, 5, 1.0, 16, 16, 360, b"\xff\xd8\xff\xd9", prev=4)
    assert _plain_video(VideoFrame, {**frame.to_meta(), "c": 1}, frame.data) is None
    message = decode_one(raw(frame, c=1))
    assert isinstance(message, VideoFrame) and message.captured_at == 1.0


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_the_quick_text_check_refuses_what_the_patterns_refuse(text: str, chat: bool) -> None:
    expected = None
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        expected = "lone surrogate"
    elif not chat and any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
        expected = "control character"
    try:
        check_text("name", text, text=chat)
    except FieldError as exc:
        assert expected is not None and expected in str(exc)
    else:
        assert expected is None


@pytest.mark.parametrize("body", [
    "{\"room\": \"r\"}".encode("utf-16-le"), "{\"room\": \"r\"}".encode("utf-16-be"),
    "{\"room\": \"r\"}".encode("utf-8-sig"), b"{\"room\": \"\xed\xa0\x80\"}",
    b"{\"room\": \"\xff\"}", b"{", b"{}", b" {}", b"[]",
])
def test_metadata_decodes_as_json_loads_decodes_it(body: bytes) -> None:
    # The decoder reads UTF-8 metadata starting "{" without json.loads' detour; every
    # input must still end as it did through json.loads (a message, or the same error).
    header = struct.pack("!2sBBII", limits.MAGIC, FRAMING_VERSION, int(MessageType.ROOM_QUERY),
                         len(body), 0)
    try:
        meta = json.loads(body)
        expected: object = RoomQuery.from_meta(meta, b"") if isinstance(meta, dict) else None
    except (ValueError, RemoteProtocolError) as exc:
        expected = type(exc)
    decoder = FrameDecoder()
    decoder.receive_data(header + body)
    try:
        got: object = decoder.next_message()
    except RemoteProtocolError as exc:
        got = exc
    if isinstance(expected, RoomQuery):
        assert got == expected
    else:
        assert isinstance(got, RemoteProtocolError), (body, got)
