"""Large video messages as FramePart pieces: round trips, hostile pieces, and sound
passing between the pieces of a video message being written (protocol/parts.py,
peer/node/link.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from peer.node.audio.opus import OpusEncoder
from peer.node.link import PeerLink
from protocol import (
    AudioFrame,
    Bye,
    FrameDecoder,
    FramePart,
    Hello,
    Message,
    ProtocolError,
    VideoFrame,
    encode,
    limits,
)
from protocol.framing import FRAMING_VERSION, HEADER, PARENT_INBOX, PEER_INBOX
from protocol.messages import MessageType
from protocol.parts import PartAssembler, split
from tests.support.links import raw_link_pair

PART = 256  # small pieces keep the boundary sweep fast; the rules do not depend on size
_JPEG = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()


def _video(payload_bytes: int) -> VideoFrame:
    """A real 16x16 JPEG padded to ``payload_bytes`` (the link checks its header)."""
    assert payload_bytes >= len(_JPEG)
    return VideoFrame(1, 0, 1.0, 16, 16, 360, _JPEG + b"\0" * (payload_bytes - len(_JPEG)))


def _decode_parts(stream: bytes) -> list[FramePart]:
    decoder = FrameDecoder(PARENT_INBOX)
    decoder.receive_data(stream)
    parts = list(decoder)
    assert all(isinstance(p, FramePart) for p in parts)
    return parts  # type: ignore[return-value]


def test_round_trip_at_every_part_boundary() -> None:
    base = len(encode(_video(len(_JPEG))))
    for pieces in range(-(-base // PART) + 1, -(-base // PART) + 5):
        for delta in (-1, 0, 1):
            size = pieces * PART + delta - base + len(_JPEG)
            whole = encode(_video(size))
            parts = _decode_parts(b"".join(split(whole, PART)))
            assert len(parts) == -(-len(whole) // PART)
            assembler = PartAssembler()
            outputs = [assembler.add(p) for p in parts]
            assert outputs[:-1] == [None] * (len(parts) - 1)
            assert outputs[-1] == whole  # the exact original bytes
            assert not assembler.in_progress and assembler.buffered_bytes == 0
            decoder = FrameDecoder(PARENT_INBOX)
            decoder.receive_data(whole)
            assert decoder.next_message() == _video(size)


def test_real_pieces_are_at_the_protocol_size_and_two_messages_follow_each_other() -> None:
    first, second = encode(_video(100_000)), encode(_video(40_000))
    pieces = split(first) + split(second)
    assert len(split(first)) == -(-len(first) // limits.FRAME_PART_BYTES)
    assembler = PartAssembler()
    done = [w for p in _decode_parts(b"".join(pieces)) if (w := assembler.add(p))]
    assert done == [first, second]


def test_hello_advertises_parts_and_an_older_hello_means_no_parts() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(encode(Hello("p1", "Pete", "lobby")))
    new = decoder.next_message()
    assert isinstance(new, Hello) and new.parts
    old = Hello.from_meta({"id": "p1", "name": "Old", "room": "lobby", "versions": [1]}, b"")
    assert not old.parts


def _header(kind: int, meta_len: int, payload_len: int) -> bytes:
    return HEADER.pack(limits.MAGIC, FRAMING_VERSION, kind, meta_len, payload_len)


def _part(offset: int, total: int, data: bytes) -> bytes:
    return encode(FramePart(offset, total, data))


def _too_many_parts() -> bytes:
    total = 4000
    start = _header(MessageType.VIDEO_FRAME, 100, total - limits.HEADER_BYTES - 100)
    pieces = [_part(0, total, start)]
    pieces += [_part(limits.HEADER_BYTES + i, total, b"x")
               for i in range(limits.MAX_FRAME_PARTS)]
    return b"".join(pieces)


def _raw_frame_part(meta: bytes, payload: bytes) -> bytes:
    return _header(MessageType.FRAME_PART, len(meta), len(payload)) + meta + payload


video_start = encode(_video(40_000))[:PART]
HOSTILE = {
    "part without a start": (_part(PART, 40_000, b"y" * PART), "without its start"),
    "oversize total": (
        _raw_frame_part(b'{"o":0,"t":%d}' % (limits.MAX_PARTS_TOTAL_BYTES + 1), b"z"),
        "field 't'"),
    "interleaved second message": (
        _part(0, len(encode(_video(40_000))), video_start)
        + _part(0, len(encode(_video(40_000))), video_start), "interleaved"),
    "too many parts": (_too_many_parts(), f"more than {limits.MAX_FRAME_PARTS} parts"),
    "total disagrees with the inner header": (
        _part(0, 30_000, video_start), "its header"),
    "a split message that is not video": (
        _part(0, 1000, _header(MessageType.CHAT, 500, 488) + b"{}"), "only video"),
    "oversize piece": (
        _header(MessageType.FRAME_PART, 10, limits.FRAME_PART_BYTES + 1), "payload"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_pieces_fail_the_decoding_side(name: str) -> None:
    stream, reason = HOSTILE[name]
    decoder = FrameDecoder(PARENT_INBOX)
    assembler = PartAssembler()
    with pytest.raises(ProtocolError, match=reason.replace("'", ".")):
        decoder.receive_data(stream)
        for message in decoder:
            assert isinstance(message, FramePart)
            assembler.add(message)
    assert assembler.buffered_bytes <= 40_000


def test_a_link_we_did_not_dial_refuses_pieces_at_the_header() -> None:
    decoder = FrameDecoder(PEER_INBOX)
    with pytest.raises(ProtocolError, match="does not accept FRAME_PART"):
        decoder.receive_data(_part(0, 1000, b"x")[:limits.HEADER_BYTES])


# --- links ------------------------------------------------------------------------------


async def _link_pair(received: list[Message]) -> tuple[PeerLink, asyncio.StreamWriter,
                                                        asyncio.StreamReader, asyncio.Server]:
    """Our link (outbound: video may come in) and the raw far end of its socket."""
    pair = await raw_link_pair(received)
    pair.link.start()
    return pair.link, pair.far_writer, pair.far_reader, pair.server


async def _bye(far_reader: asyncio.StreamReader) -> Bye:
    decoder = FrameDecoder()
    async with asyncio.timeout(10):
        while True:
            data = await far_reader.read(65536)
            assert data, "closed without a Bye"
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, Bye):
                    return message


@pytest.mark.parametrize("name", ["part without a start", "oversize total",
                                  "interleaved second message", "too many parts"])
async def test_hostile_pieces_close_only_that_link(name: str) -> None:
    stream, reason = HOSTILE[name]
    bad_in: list[Message] = []
    good_in: list[Message] = []
    bad, bad_far, bad_far_reader, server1 = await _link_pair(bad_in)
    good, good_far, _, server2 = await _link_pair(good_in)
    try:
        bad_far.write(stream)
        bye = await _bye(bad_far_reader)
        assert bad.closed and bad.close_reason.startswith("protocol error")
        assert reason.split("'")[0] in bye.reason
        # The other link still reassembles and delivers a split frame.
        good_far.write(b"".join(split(encode(_video(50_000)))))
        async with asyncio.timeout(10):
            while not good_in:
                await asyncio.sleep(0.01)  # waiting on delivery, not timing
        assert good_in == [_video(50_000)] and not good.closed
        assert good.counters.video_bytes_in == len(encode(_video(50_000)))
    finally:
        for link in (bad, good):
            link.close("done")
            await link.wait_closed()
        for w in (bad_far, good_far):
            w.close()
        for s in (server1, server2):
            s.close()
            await s.wait_closed()


class GatedWriter:
    """A stand-in StreamWriter whose drain() blocks until the test releases it, so the
    test decides exactly when the link's writer may go on."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.transport = SimpleNamespace(set_write_buffer_limits=lambda **kw: None)
        self.open = asyncio.Event()
        self.first_write = asyncio.Event()
        self.more = asyncio.Event()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        self.written.append(data)
        self.first_write.set()
        self.more.set()

    async def drain(self) -> None:
        await self.open.wait()

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


async def _gated_link(hello: Hello | None) -> tuple[PeerLink, GatedWriter]:
    reader = asyncio.StreamReader()
    writer = GatedWriter()

    def ignore(link: PeerLink, message: Message) -> None:
        return None

    link = PeerLink(reader, writer, on_message=ignore,  # type: ignore[arg-type]
                    on_close=lambda link, why: None, outbound=False)
    link.start()
    if hello is not None:
        reader.feed_data(encode(hello))
        async with asyncio.timeout(10):
            while not link.remote_parts and hello.parts:
                await asyncio.sleep(0.01)  # waiting on the reader, not timing
    return link, writer


def _written(writer: GatedWriter) -> list[Message]:
    decoder = FrameDecoder()
    decoder.receive_data(b"".join(writer.written))
    return list(decoder)  # type: ignore[arg-type]


async def test_sound_queued_during_a_large_video_message_goes_before_its_last_part() -> None:
    link, writer = await _gated_link(Hello("child", "Kid", "lobby"))
    try:
        video = encode(_video(100_000))
        packet = OpusEncoder().encode(np.zeros((960, 2), np.int16))
        sound = encode(AudioFrame(1, 7, 1.0, packet))
        link.send_video(video)
        async with asyncio.timeout(10):
            await writer.first_write.wait()  # the first piece is out, the writer waits
        link.send_audio(sound)
        writer.open.set()
        pieces = -(-len(video) // limits.FRAME_PART_BYTES)
        async with asyncio.timeout(10):
            while len(writer.written) < pieces + 1:
                writer.more.clear()
                await writer.more.wait()
        sent = _written(writer)
        kinds = [type(m).__name__ for m in sent]
        assert kinds == ["FramePart", "AudioFrame"] + ["FramePart"] * (pieces - 1)
        assembler = PartAssembler()
        wholes = [w for m in sent if isinstance(m, FramePart) and (w := assembler.add(m))]
        assert wholes == [video]
        assert link.counters.video_bytes_out == sum(
            len(b) for b, m in zip(writer.written, sent, strict=True)
            if isinstance(m, FramePart))
    finally:
        link.close("done")
        await link.wait_closed()


async def test_a_neighbour_without_parts_gets_whole_messages() -> None:
    link, writer = await _gated_link(Hello("child", "Old", "lobby", parts=False))
    try:
        writer.open.set()
        video = encode(_video(100_000))
        link.send_video(video)
        async with asyncio.timeout(10):
            await writer.first_write.wait()
        assert writer.written == [video]
    finally:
        link.close("done")
        await link.wait_closed()
