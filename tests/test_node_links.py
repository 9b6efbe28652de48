"""A node's links against bad neighbours: each is closed with a reason, nothing else.

The node runs in-process with a stand-in directory (no tracker needed); the bad peers
are raw sockets speaking (or not speaking) the protocol.
"""

from __future__ import annotations

import asyncio

import pytest

from peer.node.config import NodeConfig, PatternSource, Timing
from peer.node.directory import StreamerInfo
from peer.node.events import NodeEvent, TreePeer
from peer.node.node import Node
from protocol import (
    Accept,
    Bye,
    Candidate,
    ErrorCode,
    FrameDecoder,
    Hello,
    JoinRequest,
    Ping,
    Pong,
    Redirect,
    VideoFrame,
    encode,
    limits,
)


class StandInDirectory:
    """A room with only us in it; we may stream."""

    def __init__(self) -> None:
        self.claimed = 0

    async def open(self) -> None:
        return None

    def candidates(self) -> list[Candidate]:
        return []

    def streamer(self) -> StreamerInfo | None:
        return StreamerInfo("self", "me", 1) if self.claimed else None

    def tree(self) -> tuple[TreePeer, ...]:
        return ()

    def room_size(self) -> int:
        return 1

    def tree_levels(self) -> tuple[()]:
        return ()

    def own_name(self) -> str:
        return "me"

    def own_host(self) -> str | None:
        return "127.0.0.1"

    def reachable(self) -> bool:
        return True

    async def claim(self) -> int:
        self.claimed = 1
        return 1

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        return epoch >= newest

    def lease_valid(self) -> bool:
        return True

    async def release(self) -> None:
        self.claimed = 0

    def set_position(self, **_: object) -> None:
        return None

    async def close(self) -> None:
        return None


async def _node(source: PatternSource | None = None,
                tls: bool = False) -> tuple[Node, list[NodeEvent]]:
    events: list[NodeEvent] = []
    # Plaintext by default: these bad neighbours speak the raw protocol (the TLS and
    # authentication checks have their own tests, test_trust_tls.py).
    config = NodeConfig(name="me", listen_host="127.0.0.1", source=source,
                        timing=Timing(link_timeout_s=5.0), tls=tls)
    node = Node(config, events.append, directory_factory=lambda n: StandInDirectory())
    await node.start()
    return node, events


async def _read_until(reader: asyncio.StreamReader, kind: type, timeout: float = 20) -> object:
    decoder = FrameDecoder()
    async with asyncio.timeout(timeout):
        while True:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed before the expected message")
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, kind):
                    return message


async def _hello_works(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode(Hello(peer_id="good", name="good", room="lobby")))
    await writer.drain()
    assert isinstance(await _read_until(reader, Hello), Hello)
    writer.close()


async def test_garbage_closes_that_link_with_a_reason_and_the_node_goes_on() -> None:
    node, _ = await _node()
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        bye = await _read_until(reader, Bye)
        assert isinstance(bye, Bye) and bye.code == ErrorCode.MALFORMED
        assert "bad magic" in bye.reason
        writer.close()
        await _hello_works(node.listen[1])
    finally:
        await node.stop()


async def test_oversize_declared_length_is_refused_before_the_body() -> None:
    node, _ = await _node()
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        header = limits.MAGIC + bytes([1, 5]) + (0).to_bytes(4, "big") + \
            (limits.MAX_VIDEO_PAYLOAD_BYTES + 1).to_bytes(4, "big")
        writer.write(header)  # no body follows: the header alone must be enough
        await writer.drain()
        bye = await _read_until(reader, Bye)
        assert isinstance(bye, Bye) and bye.code == ErrorCode.TOO_LARGE
        writer.close()
        await _hello_works(node.listen[1])
    finally:
        await node.stop()


async def test_a_flooding_neighbour_is_cut_off_at_the_link_rate_limit() -> None:
    node, _ = await _node()
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        flood = encode(Ping(t0=1.0)) * (limits.MAX_LINK_MESSAGES_BURST * 3)
        writer.write(encode(Hello(peer_id="flood", name="flood", room="lobby")) + flood)
        await writer.drain()
        bye = await _read_until(reader, Bye)
        assert isinstance(bye, Bye) and bye.code == ErrorCode.RATE_LIMITED
        writer.close()
        await _hello_works(node.listen[1])
    finally:
        await node.stop()


async def test_wrong_room_and_version_are_refused_with_a_reason() -> None:
    node, _ = await _node()
    try:
        assert node.listen is not None
        for hello, code in [
            (Hello(peer_id="x", name="x", room="elsewhere"), ErrorCode.UNEXPECTED),
            (Hello(peer_id="y", name="y", room="lobby", versions=(99,)), ErrorCode.BAD_VERSION),
        ]:
            reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
            writer.write(encode(hello))
            await writer.drain()
            bye = await _read_until(reader, Bye)
            assert isinstance(bye, Bye) and bye.code == code
            writer.close()
    finally:
        await node.stop()


async def test_streamer_accepts_a_child_and_sends_it_its_layer() -> None:
    node, events = await _node(PatternSource(640, 360, 15.0))
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        writer.write(encode(Hello(peer_id="kid", name="kid", room="lobby")) +
                     encode(JoinRequest(layer=360)))
        await writer.drain()
        accept = await _read_until(reader, Accept)
        assert isinstance(accept, Accept)
        assert [p.name for p in accept.path] == ["me"] and accept.epoch == 1
        assert (accept.source_width, accept.source_height) == (640, 360)
        assert accept.codec == "h264"  # the default codec
        frame = await _read_until(reader, VideoFrame)
        assert isinstance(frame, VideoFrame)
        assert (frame.width, frame.height, frame.layer, frame.epoch) == (640, 360, 360, 1)
        # A new child's first frame is a keyframe (SPS, PPS, IDR): it can start there.
        assert frame.codec == "h264" and frame.keyframe and frame.prev == -1
        assert frame.data[:4] in (b"\x00\x00\x00\x01", b"\x00\x00\x01\x67")
        writer.close()
    finally:
        await node.stop()
    assert any(e.KIND == "stream_started" for e in events)


@pytest.mark.parametrize("layer", [720, 1080])
async def test_a_child_asking_above_the_source_gets_the_source_size(layer: int) -> None:
    node, _ = await _node(PatternSource(640, 360, 15.0))
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        writer.write(encode(Hello(peer_id="kid", name="kid", room="lobby")) +
                     encode(JoinRequest(layer=layer)))
        await writer.drain()
        frame = await _read_until(reader, VideoFrame)
        assert isinstance(frame, VideoFrame) and (frame.width, frame.height) == (640, 360)
        writer.close()
    finally:
        await node.stop()


async def test_a_neighbour_pinging_hundreds_a_second_gets_pongs_at_a_bounded_rate() -> None:
    node, _ = await _node()
    try:
        assert node.listen is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", node.listen[1])
        flood = 300  # under the link's message limit: it is not cut off, only not answered
        started = asyncio.get_running_loop().time()
        writer.write(encode(Hello(peer_id="pinger", name="pinger", room="lobby"))
                     + encode(Ping(t0=1.0)) * flood + encode(JoinRequest(layer=360)))
        await writer.drain()
        decoder = FrameDecoder()
        kinds: list[type] = []
        async with asyncio.timeout(20):
            # Messages on one link are handled in order: the answer to the JoinRequest
            # (a Redirect: this viewer is not attached) comes after every Ping's.
            while Redirect not in kinds:
                data = await reader.read(65536)
                assert data, "the link was closed"
                decoder.receive_data(data)
                kinds += [type(m) for m in decoder]
        pongs = kinds.count(Pong)
        elapsed = asyncio.get_running_loop().time() - started
        assert 1 <= pongs <= limits.MAX_PINGS_ANSWERED_BURST \
            + limits.MAX_PINGS_ANSWERED_PER_S * elapsed + 1
        writer.close()
    finally:
        await node.stop()
