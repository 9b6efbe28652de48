"""A real node that changes parent loses no frame (loopback): moving up, and shed.

The viewer is the real ``Node``; its parents are fakes that all send the same signed
H.264 stream (one encoder's bytes, a keyframe every ``KEYFRAME_EVERY`` frames) at 30
fps and, as a real parent does, send a new child nothing before its next keyframe.

- Moving up: the viewer joins a fake relay listed at depth 3; the fake root is listed
  too, with free slots, so its next move check (5 s) moves it up two levels. Before
  make-before-break for video, the old link closed at the root's Accept and the
  frames up to that keyframe were lost.
- Shed: the viewer's parent asks it to move on (a Redirect on its link) to a sibling
  (which places a parent names is tested in memory, tests/test_handover.py); the
  sibling's copy of each frame comes after the parent's (one hop more).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from peer.node.config import NodeConfig, Timing
from peer.node.events import NodeEvent
from peer.node.node import Node
from peer.node.tree.state import MOVE_CHECK_S, StreamInfo
from protocol import (
    Bye,
    Candidate,
    FrameDecoder,
    Hello,
    JoinRequest,
    PathEntry,
    Redirect,
    VideoFrame,
    encode,
)
from protocol.identity import Identity
from tests.support.signed_stream import FakeStreamer
from tests.test_h264_links import ROOT_ID, ROOT_KEY, OneCandidateDirectory

FPS = 30.0
KEYFRAME_EVERY = 12


def h264_stream(count: int) -> list[VideoFrame]:
    """One encoder's frames of a moving block, a keyframe every ``KEYFRAME_EVERY``."""
    bank = EncoderBank(VideoCodec.H264, FPS)
    frames = []
    for seq in range(count):
        image = np.full((180, 320, 3), 60, np.uint8)
        image[40:100, (seq * 8) % 260:(seq * 8) % 260 + 60] = (0, 160, 255)
        keyframes = {360} if seq % KEYFRAME_EVERY == 0 else set()
        enc = bank.encode(image, [360], keyframes, seq=seq)[360]
        frames.append(VideoFrame(1, seq, 0.0, enc.width, enc.height, 360, enc.data,
                                 codec="h264", keyframe=enc.keyframe, prev=enc.prev))
    return frames


@dataclass(eq=False)
class _Child:
    writer: asyncio.StreamWriter
    waiting: bool  # for a keyframe (a new child of a real parent is)


@dataclass(eq=False)
class FakeParent:
    """Accepts children with ``path`` (ending at itself) and sends them the feed."""

    peer_id: str
    name: str
    depth: int
    port: int = 0
    children: list[_Child] = field(default_factory=list)
    byes: list[Bye] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self, streamer: FakeStreamer) -> None:
        self.streamer = streamer
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def path(self) -> tuple[PathEntry, ...]:
        above = tuple(PathEntry(f"relay{i}", f"relay{i}") for i in range(1, self.depth))
        root = () if self.peer_id == ROOT_ID else (PathEntry(ROOT_ID, "root"),)
        return (*root, *above, PathEntry(self.peer_id, self.name, "127.0.0.1", self.port))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                decoder.receive_data(data)
                for message in decoder:
                    if isinstance(message, Hello):
                        writer.write(encode(Hello(peer_id=self.peer_id, name=self.name,
                                                  room="lobby")))
                    elif isinstance(message, JoinRequest):
                        writer.write(encode(self.streamer.accept(self.path())))
                        self.children.append(_Child(writer, waiting=True))
                    elif isinstance(message, Bye):
                        self.byes.append(message)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            return

    def ask_to_move_on(self, places: tuple[Candidate, ...]) -> None:
        for child in self.children:
            child.writer.write(encode(Redirect(candidates=places, reason="uplink full")))

    def send(self, data: bytes, keyframe: bool) -> None:
        for child in self.children:
            if child.writer.is_closing():
                continue
            child.waiting = child.waiting and not keyframe
            if not child.waiting:
                child.writer.write(data)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _place(parent: FakeParent, free_slots: int = 1) -> Candidate:
    return Candidate(parent.peer_id, parent.name, "127.0.0.1", parent.port, parent.depth,
                     free_slots)


class Places(OneCandidateDirectory):
    """A room listing ``places``, in that order."""

    def __init__(self, *places: Candidate) -> None:
        super().__init__(None, "viewer")
        self.places = list(places)

    def candidates(self) -> list[Candidate]:
        return self.places


async def test_a_viewer_moving_up_keeps_every_frame() -> None:
    streamer = FakeStreamer(stream=StreamInfo(320, 180, FPS, "h264"), identity=ROOT_KEY)
    deep = FakeParent(Identity.generate().peer_id, "deep", depth=3)
    root = FakeParent(ROOT_ID, "root", depth=0)
    for parent in (deep, root):
        await parent.start(streamer)
    # Enough frames for the join, the move check and a few keyframes after it.
    count = int((MOVE_CHECK_S + 4.0) * FPS)
    frames = [streamer.video(f) for f in h264_stream(count)]
    events: list[NodeEvent] = []
    viewer = Node(NodeConfig(name="viewer", listen_host="127.0.0.1", resolution=360,
                             timing=Timing(link_timeout_s=5.0), tls=False),
                  events.append,
                  directory_factory=lambda n: Places(_place(deep), _place(root)))
    await viewer.start()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, frame in enumerate(frames):
            # Paced from one start (no drift), both parents the same frame at once.
            await asyncio.sleep(max(0.0, start + i / FPS - loop.time()))
            data = encode(frame)
            for parent in (deep, root):
                parent.send(data, frame.keyframe)
        await asyncio.sleep(0.3)
        joined = [e for e in events if e.KIND == "joined"]
        assert [e.parent for e in joined] == ["deep", "root"], [e.to_json() for e in events]
        assert not [e for e in events if e.KIND == "parent_lost"]
        assert any("closer to the root" in bye.reason for bye in deep.byes)
        # Every frame since the first: none lost by sequence gaps, across the move.
        stats = [e for e in events if e.KIND == "stats"]
        assert stats and stats[-1].lost == 0, stats[-1].to_json()
        assert stats[-1].frames >= count // 2
    finally:
        await viewer.stop()
        for parent in (deep, root):
            await parent.close()


async def test_a_shed_viewer_moves_on_where_its_parent_says_and_keeps_every_frame() -> None:
    streamer = FakeStreamer(stream=StreamInfo(320, 180, FPS, "h264"), identity=ROOT_KEY)
    root = FakeParent(ROOT_ID, "root", depth=0)
    sibling = FakeParent(Identity.generate().peer_id, "sibling", depth=1)
    for parent in (root, sibling):
        await parent.start(streamer)
    count = int(4.0 * FPS)
    frames = [streamer.video(f) for f in h264_stream(count)]
    events: list[NodeEvent] = []
    viewer = Node(NodeConfig(name="viewer", listen_host="127.0.0.1", resolution=360,
                             timing=Timing(link_timeout_s=5.0), tls=False),
                  events.append, directory_factory=lambda n: Places(_place(root)))
    await viewer.start()
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, start + i / FPS - loop.time()))
            if i == count // 3:
                root.ask_to_move_on((_place(sibling),))  # our uplink is full: go there
            data = encode(frame)
            for parent in (root, sibling):  # the sibling's copy comes after (one hop)
                parent.send(data, frame.keyframe)
        await asyncio.sleep(0.3)
        joined = [e for e in events if e.KIND == "joined"]
        assert [e.parent for e in joined] == ["root", "sibling"], [e.to_json() for e in events]
        assert not [e for e in events if e.KIND == "parent_lost"]
        assert [bye.reason for bye in root.byes] == ["moved on as asked"]
        stats = [e for e in events if e.KIND == "stats"]
        assert stats and stats[-1].lost == 0, stats[-1].to_json()
    finally:
        await viewer.stop()
        for parent in (root, sibling):
            await parent.close()
