"""AudioFrame on the wire and the Opus packet structure checks behind it (RFC 6716 3.2)."""

from __future__ import annotations

import json
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import framing, limits
from protocol.errors import FrameTooLargeError, LocalProtocolError, RemoteProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import AudioFrame, MessageType
from protocol.opus import frame_duration_us, packet_duration_us

CELT_20MS = 0xFC  # config 31 (CELT fullband 20 ms), stereo, code 0
CELT_10MS = 0xF4  # config 30 (CELT fullband 10 ms), stereo, code 0
CELT_2_5MS = 0xE4  # config 28


def _frame(kind: int, meta: dict[str, object], payload: bytes) -> bytes:
    meta_bytes = json.dumps(meta).encode()
    return struct.pack("!2sBBII", limits.MAGIC, framing.FRAMING_VERSION, kind,
                       len(meta_bytes), len(payload)) + meta_bytes + payload


def _decode(data: bytes) -> list[object]:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    return list(decoder)


def test_real_encoder_packets_round_trip() -> None:
    np = pytest.importorskip("numpy")
    from peer.node.audio.opus import OpusEncoder

    encoder = OpusEncoder()
    rng = np.random.default_rng(1)
    for seq in range(20):
        packet = encoder.encode((rng.standard_normal((960, 2)) * 4000).astype(np.int16))
        frame = AudioFrame(3, seq, 100.0 + seq * 0.02, packet)
        assert _decode(encode(frame)) == [frame]


@pytest.mark.parametrize(("toc", "us"), [
    (0x00, 10_000), (0x08, 20_000), (0x10, 40_000), (0x18, 60_000),  # SILK
    (0x60, 10_000), (0x68, 20_000),  # hybrid
    (0x80, 2_500), (0x88, 5_000), (0x90, 10_000), (0x98, 20_000),  # CELT
])
def test_frame_durations_follow_table_2(toc: int, us: int) -> None:
    assert frame_duration_us(toc) == us


@pytest.mark.parametrize(("packet", "us"), [
    (bytes([CELT_20MS]), 20_000),  # a zero-length frame is legal (DTX)
    (bytes([CELT_20MS]) + b"x" * 1275, 20_000),
    (bytes([CELT_10MS | 1]) + b"ab" * 10, 20_000),  # code 1: two equal frames
    (bytes([CELT_10MS | 2, 3]) + b"abc" + b"defgh", 20_000),  # code 2: 3 + 5 bytes
    (bytes([CELT_10MS | 2, 252, 1]) + b"a" * 256 + b"b", 20_000),  # two-byte length
    (bytes([CELT_2_5MS | 3, 8]) + b"ab" * 8, 20_000),  # code 3 CBR, 8 frames
    (bytes([CELT_2_5MS | 3, 0x80 | 8]) + bytes([1] * 7) + b"x" * 10, 20_000),  # VBR
    (bytes([CELT_20MS | 3, 0x40 | 1, 2]) + b"abc" + b"\0\0", 20_000),  # padded
    (bytes([CELT_20MS | 3, 0x40 | 1, 255, 0]) + b"a" * 254, 20_000),  # 254 bytes padding
])
def test_valid_packets(packet: bytes, us: int) -> None:
    assert packet_duration_us(packet) == us


@pytest.mark.parametrize(("packet", "error"), [
    (b"", "empty packet (no TOC byte)"),
    (bytes([CELT_20MS]) + b"x" * 1276, "a frame over 1275 bytes"),
    (bytes([CELT_10MS | 1]) + b"abc", "code 1 packet with frames of unequal size"),
    (bytes([CELT_10MS | 2]), "frame length runs past the packet"),
    (bytes([CELT_10MS | 2, 252]), "frame length runs past the packet"),
    (bytes([CELT_10MS | 2, 9]) + b"abc", "code 2 packet: first frame overruns the packet"),
    (bytes([CELT_20MS | 3]), "code 3 packet without a frame count byte"),
    (bytes([CELT_20MS | 3, 0]), "code 3 packet with 0 frames of 20000 us"),
    (bytes([CELT_20MS | 3, 7]), "code 3 packet with 7 frames of 20000 us"),  # 140 ms
    (bytes([CELT_2_5MS | 3, 49]), "code 3 packet with 49 frames of 2500 us"),
    (bytes([CELT_20MS | 3, 0x40 | 1]), "padding length runs past the packet"),
    (bytes([CELT_20MS | 3, 0x40 | 1, 9]), "code 3 CBR packet: body not a multiple of the "
                                          "frame count"),
    (bytes([CELT_10MS | 3, 2]) + b"abc", "code 3 CBR packet: body not a multiple of the "
                                         "frame count"),
    (bytes([CELT_10MS | 3, 0x80 | 2, 9]) + b"abc", "code 3 packet: frames overrun the packet"),
])
def test_invalid_packets_say_why(packet: bytes, error: str) -> None:
    with pytest.raises(ValueError) as info:
        packet_duration_us(packet)
    assert str(info.value) == error


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "not an Opus packet: empty packet (no TOC byte)"),
    (bytes([CELT_10MS]) + b"x", "Opus packet of 10000 us, expected 20000"),
    (bytes([CELT_10MS | 1]) + b"abc", "not an Opus packet: code 1 packet with frames of "
                                      "unequal size"),
])
def test_garbage_audio_is_a_remote_error_naming_the_field(payload: bytes, why: str) -> None:
    data = _frame(MessageType.AUDIO_FRAME, {"e": 1, "s": 2, "c": 3.0}, payload)
    with pytest.raises(RemoteProtocolError) as info:
        _decode(data)
    assert info.value.reason == f"field 'payload': {why}"


@pytest.mark.parametrize(("meta", "field"), [
    ({"s": 2, "c": 3.0}, "e"),
    ({"e": 1, "c": 3.0}, "s"),
    ({"e": 1, "s": -1, "c": 3.0}, "s"),
    ({"e": 1, "s": True, "c": 3.0}, "s"),
    ({"e": 1, "s": 2, "c": "now"}, "c"),
    ({"e": 1, "s": 2}, "c"),
])
def test_bad_audio_metadata_is_refused(meta: dict[str, object], field: str) -> None:
    data = _frame(MessageType.AUDIO_FRAME, meta, bytes([CELT_20MS, 1, 2]))
    with pytest.raises(RemoteProtocolError) as info:
        _decode(data)
    assert f"{field}:" in info.value.reason or f"'{field}'" in info.value.reason, \
        info.value.reason


def test_we_never_send_what_we_would_refuse() -> None:
    with pytest.raises(LocalProtocolError):
        encode(AudioFrame(1, 1, 1.0, b""))
    with pytest.raises(LocalProtocolError):
        encode(AudioFrame(1, 1, 1.0, bytes([CELT_10MS, 1])))


def test_audio_payload_limit_at_the_header() -> None:
    assert framing.payload_limit(MessageType.AUDIO_FRAME) == limits.MAX_AUDIO_PAYLOAD_BYTES
    # At the limit: the header is accepted and the decoder waits for the body.
    at = struct.pack("!2sBBII", limits.MAGIC, framing.FRAMING_VERSION,
                     MessageType.AUDIO_FRAME, 2, limits.MAX_AUDIO_PAYLOAD_BYTES)
    decoder = FrameDecoder()
    decoder.receive_data(at)
    assert decoder.next_message() is None
    over = struct.pack("!2sBBII", limits.MAGIC, framing.FRAMING_VERSION,
                       MessageType.AUDIO_FRAME, 2, limits.MAX_AUDIO_PAYLOAD_BYTES + 1)
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLargeError):
        decoder.receive_data(over)
        decoder.next_message()


def test_audio_from_a_child_is_refused_at_the_header() -> None:
    """Media only flows down: a link we did not dial never carries audio."""
    data = _frame(MessageType.AUDIO_FRAME, {"e": 1, "s": 2, "c": 3.0}, bytes([CELT_20MS]))
    decoder = FrameDecoder(framing.PEER_INBOX)
    with pytest.raises(RemoteProtocolError,
                       match="a peer link does not accept AUDIO_FRAME messages"):
        decoder.receive_data(data[:limits.HEADER_BYTES])
        decoder.next_message()
    parent = FrameDecoder(framing.PARENT_INBOX)
    parent.receive_data(data)
    assert isinstance(parent.next_message(), AudioFrame)


@given(st.binary(max_size=300), st.integers(0, 2**53), st.floats(allow_nan=True))
def test_any_payload_decodes_or_is_a_remote_error(payload: bytes, seq: int,
                                                  captured: float) -> None:
    data = _frame(MessageType.AUDIO_FRAME, {"e": 1, "s": seq, "c": captured}, payload)
    try:
        messages = _decode(data)
    except RemoteProtocolError:
        return
    assert len(messages) == 1 and isinstance(messages[0], AudioFrame)
    assert packet_duration_us(messages[0].opus) == limits.AUDIO_FRAME_US
