"""A child that asks for no video (layer NO_VIDEO: a streamer still choosing its
source) gets chat and control but no video frames and no sound; asking for a layer
later brings the stream (issue 16).

The streamer runs in-process with a stand-in directory; its children are raw sockets
speaking the protocol.
"""

from __future__ import annotations

import asyncio

from peer.node.audio.config import AudioConfig
from peer.node.config import NodeConfig, PatternSource, Timing
from peer.node.events import ChatReceived, Joined, NodeEvent, Stats
from peer.node.node import Node
from protocol import (
    AudioFrame,
    Chat,
    FrameDecoder,
    Hello,
    JoinRequest,
    LayerDemand,
    Message,
    VideoFrame,
    encode,
)
from protocol.limits import NO_VIDEO
from tests.test_audio_node import StandInDirectory, StreamerDirectory

FPS = 15.0
T = 30.0  # generous: a slow shared machine


class RawChild:
    """A child at the socket level: whatever its parent sends, sorted by kind."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.video: list[VideoFrame] = []
        self.sound: list[AudioFrame] = []
        self.chat: list[Chat] = []
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def join(self, port: int, layer: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer = writer
        self.send(Hello(peer_id=self.name, name=self.name, room="lobby"),
                  JoinRequest(layer=layer))
        self._task = asyncio.create_task(self._read(reader))

    def send(self, *messages: Message) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(encode(m) for m in messages))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, VideoFrame):
                    self.video.append(message)
                elif isinstance(message, AudioFrame):
                    self.sound.append(message)
                elif isinstance(message, Chat):
                    self.chat.append(message)
            self.changed.set()

    async def until(self, condition: object) -> None:
        assert callable(condition)
        async with asyncio.timeout(T):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _streamer() -> Node:
    config = NodeConfig(name="me", listen_host="127.0.0.1",
                        source=PatternSource(320, 180, FPS), timing=Timing(link_timeout_s=5.0),
                        audio=AudioConfig(), codec="mjpeg", tls=False)
    node = Node(config, lambda e: None, directory_factory=lambda n: StandInDirectory())
    await node.start()
    return node


async def test_a_no_video_child_gets_chat_but_no_video_or_sound_until_it_asks() -> None:
    node = await _streamer()
    chooser, viewer = RawChild("chooser"), RawChild("viewer")
    try:
        assert node.listen is not None
        await chooser.join(node.listen[1], NO_VIDEO)
        await viewer.join(node.listen[1], 360)
        # The viewer beside it shows the stream flows (a second of video and sound)...
        await viewer.until(lambda: len(viewer.video) >= FPS and len(viewer.sound) >= 25)
        await node.send_chat("anyone there?")
        await chooser.until(lambda: any(c.text == "anyone there?" for c in chooser.chat))
        await viewer.until(lambda: any(c.text == "anyone there?" for c in viewer.chat))
        # ...while the child that asked for no video got none of it, nor any sound.
        assert chooser.video == [] and chooser.sound == []
        # Choosing to watch after all: a layer demand brings picture and sound.
        chooser.send(LayerDemand(layer=360))
        await chooser.until(lambda: len(chooser.video) >= 3 and len(chooser.sound) >= 3)
        assert {f.layer for f in chooser.video} == {360}
        # And back to nothing: the stream stops reaching it (the viewer's goes on).
        chooser.send(LayerDemand(layer=NO_VIDEO))
        base = len(viewer.video)
        await viewer.until(lambda: len(viewer.video) >= base + FPS)  # a second to settle
        stopped_at = len(chooser.video)
        await viewer.until(lambda: len(viewer.video) >= base + 3 * FPS)
        assert len(chooser.video) == stopped_at
    finally:
        await chooser.close()
        await viewer.close()
        await node.stop()


async def test_a_no_video_node_joins_a_live_room_chats_and_receives_no_media() -> None:
    """The streamer screen's node (resolution NO_VIDEO, decoding for a preview) in a
    room where someone else is live: it joins, reports stats, gets chat, and not one
    byte of video or sound reaches it."""
    streamer = await _streamer()
    assert streamer.listen is not None
    port = streamer.listen[1]
    events: list[NodeEvent] = []
    changed = asyncio.Event()
    shown: list[object] = []

    def on_event(event: NodeEvent) -> None:
        events.append(event)
        changed.set()

    config = NodeConfig(name="chooser", listen_host="127.0.0.1", resolution=NO_VIDEO,
                        decode=True, timing=Timing(link_timeout_s=5.0, stats_interval_s=0.2,
                                                   video_timeout_s=0.5),
                        audio=AudioConfig(), tls=False)  # its streamer speaks plaintext
    chooser = Node(config, on_event, shown.append,
                   directory_factory=lambda n: StreamerDirectory(port, streamer.peer_id))
    control, grandchild = RawChild("viewer"), RawChild("grandchild")
    await chooser.start()

    async def until(condition: object) -> None:
        assert callable(condition)
        async with asyncio.timeout(T):
            while not condition():
                changed.clear()
                await changed.wait()

    def stats() -> list[Stats]:
        return [e for e in events if isinstance(e, Stats)]

    try:
        await until(lambda: any(isinstance(e, Joined) for e in events))
        await control.join(port, 360)
        await control.until(lambda: len(control.video) >= 2 * FPS)
        await streamer.send_chat("hello chooser")
        await until(lambda: any(isinstance(e, ChatReceived) and e.text == "hello chooser"
                                for e in events))
        seen = len(stats())
        await until(lambda: len(stats()) >= seen + 2)  # stats ticked after the stream flowed
        last = stats()[-1]
        assert shown == [] and last.frames == 0
        assert last.video_bytes_in == 0
        assert all(s.audio is None or not s.audio.sound for s in stats())  # no sound, ever
        # No video was due, so its parent was never taken for silent (0.5 s allowance).
        assert chooser.tree.parent is not None and chooser.tree.counters.silent_parents == 0
        # A child of its own that wants 360p: the chooser now asks for 360p and relays
        # it, still decoding no picture for a screen that shows none.
        assert chooser.listen is not None
        await grandchild.join(chooser.listen[1], 360)
        await grandchild.until(lambda: len(grandchild.video) >= FPS)
        assert {f.layer for f in grandchild.video} == {360}
        assert chooser.tree.demand() == 360 and shown == []
    finally:
        await grandchild.close()
        await control.close()
        await chooser.stop()
        await streamer.stop()
