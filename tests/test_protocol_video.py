"""VideoFrame's codec fields and the H.264 structure check on the wire."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from protocol import FrameDecoder, RemoteProtocolError, VideoFrame, encode, limits
from protocol.errors import LocalProtocolError
from protocol.framing import FRAMING_VERSION


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
