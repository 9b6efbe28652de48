"""H.264 from a hostile parent: bad bytes end that one link with a reason.

A viewer that decodes (it displays) and relays to a child of its own joins a fake
parent: a raw socket speaking the protocol. The parent sends a valid keyframe and a
few good frames, then a frame whose structure is fine (it passes the wire check) but
whose slice data is garbage. The viewer's decoder refuses it: the viewer closes the
link to that parent with a Bye that says why, and its own child stays attached.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from peer.node.config import NodeConfig, Timing
from peer.node.directory import StreamerInfo
from peer.node.events import NodeEvent, TreePeer
from peer.node.node import Node
from peer.node.tree.state import StreamInfo
from protocol import (
    Bye,
    Candidate,
    FrameDecoder,
    Hello,
    JoinRequest,
    PathEntry,
    VideoFrame,
    encode,
)
from protocol.identity import Identity
from tests.support.signed_stream import FakeStreamer

# The fake root signs like a streamer (tests/support/signed_stream.py): only its
# pictures are bad, which is what these tests are about.
ROOT_KEY = Identity.generate()
ROOT_ID = ROOT_KEY.peer_id


class OneCandidateDirectory:
    """A room whose streamer is the fake root; the only candidate is ``target``."""

    def __init__(self, target: tuple[str, str, int] | None, name: str) -> None:
        self.target = target
        self.name = name

    def own_name(self) -> str:
        return self.name

    async def open(self) -> None:
        return None

    def candidates(self) -> list[Candidate]:
        if self.target is None:
            return []
        peer_id, host, port = self.target
        return [Candidate(peer_id, peer_id, host, port, depth=0, free_slots=1)]

    def streamer(self) -> StreamerInfo | None:
        return StreamerInfo(ROOT_ID, "liar", 1)

    def tree(self) -> tuple[TreePeer, ...]:
        return ()

    def room_size(self) -> int:
        return 0

    def tree_levels(self) -> tuple[()]:
        return ()

    def own_host(self) -> str | None:
        return "127.0.0.1"

    def reachable(self) -> bool:
        return True

    async def claim(self) -> int:
        raise AssertionError("nobody streams here")

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        return epoch >= newest

    def lease_valid(self) -> bool:
        return False

    async def release(self) -> None:
        return None

    def set_position(self, **_: object) -> None:
        return None

    async def close(self) -> None:
        return None


def h264_frames(count: int) -> list[VideoFrame]:
    bank = EncoderBank(VideoCodec.H264, 30.0)
    frames = []
    for seq in range(count):
        image = np.full((180, 320, 3), 60, np.uint8)
        image[40:100, (seq * 8) % 260:(seq * 8) % 260 + 60] = (0, 160, 255)
        enc = bank.encode(image, [360], seq=seq)[360]
        frames.append(VideoFrame(1, seq, 0.0, enc.width, enc.height, 360, enc.data,
                                 codec="h264", keyframe=enc.keyframe, prev=enc.prev))
    return frames


def corrupt(frame: VideoFrame) -> VideoFrame:
    """Same NAL headers, garbage slice data: passes the wire check, fails to decode."""
    rng = np.random.default_rng(5)
    noise = rng.integers(1, 255, len(frame.data) - 6, dtype=np.uint8).tobytes()
    return VideoFrame(frame.epoch, frame.seq, frame.captured_at, frame.width, frame.height,
                      frame.layer, frame.data[:6] + noise.replace(b"\x00", b"\x01"),
                      codec="h264", keyframe=False, prev=frame.prev)


class FakeParent:
    """Accepts one child, sends it good H.264, then a corrupt frame; keeps the Bye."""

    def __init__(self, codec: str = "h264") -> None:
        self.codec = codec
        self.signer = FakeStreamer(stream=StreamInfo(320, 180, 30.0, codec), identity=ROOT_KEY)
        self.bye: asyncio.Future[Bye] = asyncio.get_running_loop().create_future()
        self.corrupt_sent = asyncio.Event()
        self.release = asyncio.Event()  # set by the test when the child has a child
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        frames = h264_frames(8)
        seq = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                decoder.receive_data(data)
                for message in decoder:
                    if isinstance(message, Hello):
                        writer.write(encode(Hello(peer_id=ROOT_ID, name="liar", room="lobby")))
                    elif isinstance(message, JoinRequest):
                        path = (PathEntry(ROOT_ID, "liar", "127.0.0.1", self.port),)
                        writer.write(encode(self.signer.accept(path)))
                        for frame in frames[:5]:  # a keyframe and good frames
                            writer.write(encode(self.signer.video(frame)))
                            seq += 1
                        asyncio.get_running_loop().create_task(
                            self._then_corrupt(writer, frames[5]))
                    elif isinstance(message, Bye) and not self.bye.done():
                        self.bye.set_result(message)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return

    async def _then_corrupt(self, writer: asyncio.StreamWriter, frame: VideoFrame) -> None:
        await self.release.wait()
        writer.write(encode(self.signer.video(corrupt(frame))))
        await writer.drain()
        self.corrupt_sent.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def _wait_event(events: list[NodeEvent], kind: str, timeout: float = 20) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            for event in events:
                if kind == event.KIND:
                    return event
            await asyncio.sleep(0.02)


async def test_corrupt_h264_from_a_parent_closes_that_link_and_spares_our_child() -> None:
    parent = FakeParent()
    await parent.start()
    timing = Timing(link_timeout_s=5.0)
    viewer_events: list[NodeEvent] = []
    pictures: list[object] = []
    # tls=False: the fake parent speaks the raw protocol.
    viewer = Node(NodeConfig(name="viewer", listen_host="127.0.0.1", resolution=360,
                             timing=timing, tls=False),
                  viewer_events.append, pictures.append,
                  directory_factory=lambda n: OneCandidateDirectory(
                      (ROOT_ID, "127.0.0.1", parent.port), "viewer"))
    await viewer.start()
    child_events: list[NodeEvent] = []
    child: Node | None = None
    try:
        try:
            await _wait_event(viewer_events, "first_frame")
        except TimeoutError:
            raise AssertionError([e.to_json() for e in viewer_events]) from None
        assert viewer.listen is not None
        child = Node(NodeConfig(name="child", listen_host="127.0.0.1", resolution=360,
                                timing=timing, tls=False),
                     child_events.append,
                     directory_factory=lambda n: OneCandidateDirectory(
                         (viewer.peer_id, "127.0.0.1", viewer.listen[1]),  # type: ignore[index]
                         "child"))
        await child.start()
        joined = await _wait_event(child_events, "joined")
        assert joined.parent == "viewer"
        parent.release.set()
        async with asyncio.timeout(20):
            bye = await parent.bye
        assert "undecodable video" in bye.reason and "H.264" in bye.reason, bye.reason
        lost = await _wait_event(viewer_events, "parent_lost")
        assert "undecodable video" in lost.reason
        assert pictures, "the good frames before were shown"
        assert not any(e.KIND == "parent_lost" for e in child_events)
        assert len(viewer.children) == 1  # the child stays attached
    finally:
        if child is not None:
            await child.stop()
        await viewer.stop()
        await parent.close()


async def test_a_stream_in_a_codec_we_cannot_decode_is_refused_in_words() -> None:
    parent = FakeParent(codec="vp9")
    await parent.start()
    events: list[NodeEvent] = []
    viewer = Node(NodeConfig(name="viewer", listen_host="127.0.0.1", tls=False,
                             timing=Timing(link_timeout_s=5.0)),
                  events.append,
                  directory_factory=lambda n: OneCandidateDirectory(
                      (ROOT_ID, "127.0.0.1", parent.port), "viewer"))
    await viewer.start()
    try:
        error = await _wait_event(events, "error")
        assert "cannot watch liar's stream: unsupported video codec 'vp9'" in error.message
        async with asyncio.timeout(20):
            bye = await parent.bye
        assert "vp9" in bye.reason
    finally:
        await viewer.stop()
        await parent.close()
