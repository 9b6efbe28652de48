"""A fake node with the real Node's API, scripted by tests (no network, no media)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PyQt6.QtCore import QObject, pyqtSignal

from peer.gui.bridge import LanSessionInfo, RoomListing, RoomStatus
from peer.node.config import NodeConfig, SourceSpec
from peer.node.errors import LockDeniedError, MediaError
from peer.node.events import (
    ChatReceived,
    DecodedFrame,
    Joined,
    NodeEvent,
    PlaybackChanged,
    Ready,
    Stats,
    Stopped,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
    TreePeer,
)


@dataclass
class Script:
    """How the fake nodes behave. Tests change fields before the session starts."""

    streamer: str | None = "Alice"  # who streams in the room when we join (viewer)
    start_error: Exception | None = None
    lock_holder: str | None = None  # start_streaming raises LockDeniedError(holder)
    media_error: str | None = None  # start_streaming raises MediaError(...)
    layers: tuple[int, ...] = (360, 480, 720)
    history: tuple[tuple[str, str], ...] = ()  # (sender, text) sent before we joined
    block_stop: bool = False  # stop() never returns (a wedged node)
    record_error: str | None = None  # set_recording(path) raises MediaError(...)


# What the real recorder accepts (peer.node.recorder.FOURCC_BY_EXTENSION).
RECORD_EXTENSIONS = (".mp4", ".mov", ".m4v", ".avi", ".mkv")


class FakeNode:
    """Implements the Node API; events go to on_event from the node thread."""

    def __init__(
        self,
        config: NodeConfig,
        on_event: Callable[[NodeEvent], None],
        on_frame: Callable[[DecodedFrame], None] | None,
        script: Script,
    ) -> None:
        self.config = config
        self.on_event = on_event
        self.on_frame = on_frame
        self.script = script
        self.peer_id = f"id-{config.name}"
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.layer = config.resolution
        self.source: SourceSpec | None = None
        self.recording: str | None = None
        self.threads: set[str] = set()
        self._chat_serial = 0
        self.paused = False
        self.position_s = 30.0

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((name, args))
        self.threads.add(threading.current_thread().name)

    def called(self, name: str) -> list[tuple[object, ...]]:
        return [args for call, args in self.calls if call == name]

    def emit(self, event: NodeEvent) -> None:
        self.on_event(event)

    def tree(self, *viewers: tuple[str, str, int]) -> TreeChanged:
        """A tree: the streamer (us when streaming, else script.streamer) + viewers
        given as (name, parent name, layer); we are added under the streamer."""
        me_streaming = self.source is not None
        root_name = self.config.name if me_streaming else (self.script.streamer or "Alice")
        root_id = f"id-{root_name}"
        peers = [TreePeer(root_id, root_name, None, 0, 1080, "streamer")]
        if not me_streaming:
            peers.append(TreePeer(self.peer_id, self.config.name, root_id, 1, self.layer, "viewer"))
        for name, parent, layer in viewers:
            peers.append(TreePeer(f"id-{name}", name, f"id-{parent}", None, layer, "viewer"))
        return TreeChanged(peers=tuple(peers), self_id=self.peer_id)

    async def start(self) -> None:
        self._record("start")
        await asyncio.sleep(0)
        if self.script.start_error is not None:
            raise self.script.start_error
        self.emit(Ready(id=self.peer_id, listen="127.0.0.1:40000"))
        for index, (sender, text) in enumerate(self.script.history):
            self.emit(ChatReceived(
                id=f"h{index}", origin_id=f"id-{sender}", sender=sender, text=text,
                sent_at=time.time() - 60 + index,
            ))
        if self.config.source is not None:
            await self.start_streaming(self.config.source)
        elif self.script.streamer is not None:
            name = self.script.streamer
            self.emit(StreamStarted(streamer=name, streamer_id=f"id-{name}", epoch=1))
            self.emit(Joined(parent=name, parent_id=f"id-{name}", depth=1,
                             width=1280, height=720))
            self.emit(self.tree())

    async def stop(self, reason: str = "quit") -> None:
        self._record("stop", reason)
        if self.script.block_stop:
            await asyncio.Event().wait()
        self.recording = None  # the real node finishes the file here
        self.emit(Stopped(reason=reason))

    async def set_resolution(self, layer: int) -> None:
        self._record("set_resolution", layer)
        if layer != "auto" and layer not in self.script.layers:
            raise ValueError(f"{layer}p is above the source")
        self.layer = layer

    async def send_chat(self, text: str) -> None:
        self._record("send_chat", text)
        if not text.strip() or len(text) > 500:
            raise ValueError("A chat message must be 1-500 characters.")
        self._chat_serial += 1
        self.emit(ChatReceived(
            id=f"{self.peer_id}:{self._chat_serial}", origin_id=self.peer_id,
            sender=self.config.name, text=text, sent_at=time.time(), own=True,
        ))

    async def set_recording(self, path: str | None) -> None:
        """Like the real node: the old recording ends first; a bad path raises
        MediaError (and emits nothing: the session goes on)."""
        self._record("set_recording", path)
        self.recording = None
        await asyncio.sleep(0)
        if path is None:
            return
        extension = os.path.splitext(path)[1].lower()
        message = self.script.record_error
        if message is None and extension not in RECORD_EXTENSIONS:
            message = (f"unsupported recording format {extension or '(no extension)'}: "
                       f"use {', '.join(RECORD_EXTENSIONS)}")
        if message is not None:
            raise MediaError(message)
        self.recording = path

    async def start_streaming(self, source: SourceSpec) -> None:
        self._record("start_streaming", source)
        await asyncio.sleep(0)
        if self.script.lock_holder is not None:
            raise LockDeniedError(self.script.lock_holder)
        if self.script.media_error is not None:
            raise MediaError(self.script.media_error)
        self.source = source
        self.emit(StreamStarted(streamer=self.config.name, streamer_id=self.peer_id, epoch=2))
        self.emit(self.tree())

    async def stop_streaming(self) -> None:
        self._record("stop_streaming")
        self.source = None
        self.emit(StreamEnded(streamer=self.config.name, reason=StreamEndReason.FINISHED))

    async def set_volume(self, volume: float) -> None:
        self._record("set_volume", volume)

    async def set_muted(self, muted: bool) -> None:
        self._record("set_muted", muted)

    async def set_paused(self, paused: bool) -> None:
        self._record("set_paused", paused)
        self.paused = paused
        self.emit(PlaybackChanged(paused=paused, position_s=self.position_s,
                                  duration_s=120.0))

    async def seek(self, seconds: float) -> None:
        self._record("seek", seconds)
        self.position_s = seconds
        self.emit(PlaybackChanged(paused=self.paused, position_s=seconds, duration_s=120.0))

    def available_layers(self) -> tuple[int, ...]:
        return self.script.layers

    def push_frame(self, image: np.ndarray, seq: int = 0) -> None:
        """Hand a BGR frame to the bridge as the node's frame thread would."""
        assert self.on_frame is not None
        height, width = image.shape[:2]
        self.on_frame(DecodedFrame(image=image, width=width, height=height, seq=seq,
                                   epoch=1, captured_at=time.time()))


@dataclass
class FakeNodeFactory:
    """The node_factory the bridge calls; keeps every node it built."""

    script: Script = field(default_factory=Script)
    nodes: list[FakeNode] = field(default_factory=list)

    def __call__(
        self,
        config: NodeConfig,
        on_event: Callable[[NodeEvent], None],
        on_frame: Callable[[DecodedFrame], None] | None,
    ) -> FakeNode:
        node = FakeNode(config, on_event, on_frame, self.script)
        self.nodes.append(node)
        return node

    @property
    def node(self) -> FakeNode:
        return self.nodes[-1]


class FakeLan(QObject):
    """Stands in for LanSessions (no mDNS in tests)."""

    sessions_changed = pyqtSignal(list)

    def __init__(self) -> None:
        super().__init__()
        self.started = 0
        self.closed = 0

    def start(self) -> None:
        self.started += 1

    def close(self) -> None:
        self.closed += 1

    def publish(self, *sessions: LanSessionInfo) -> None:
        self.sessions_changed.emit(list(sessions))


class FakeTracker:
    """A room query answerer for RoomProbe: {(host, port, room): streamer or None}."""

    def __init__(self) -> None:
        self.rooms: dict[str, tuple[str | None, int]] = {}
        self.reachable = True
        self.queries: list[tuple[str, int, str]] = []

    def list_rooms(self, host: str, port: int) -> RoomListing:
        """The room list a tracker gives: busiest first."""
        if not self.reachable:
            return RoomListing(host, port, error="connection refused")
        rooms = sorted(self.rooms.items(), key=lambda kv: -kv[1][1])
        return RoomListing(host, port, tuple((name, s, n) for name, (s, n) in rooms),
                           len(rooms))

    def __call__(self, host: str, port: int, room: str) -> RoomStatus:
        self.queries.append((host, port, room))
        if not self.reachable:
            return RoomStatus(host, port, room, error="connection refused")
        streamer, peers = self.rooms.get(room, (None, 0))
        return RoomStatus(host, port, room, streamer=streamer, peers=peers)


def stats(**overrides: object) -> Stats:
    values: dict[str, object] = dict(
        fps=29.7, kbps_in=2400.0, kbps_out=4800.0, latency_ms=85.0, latency_p95_ms=140.0,
        loss_pct=0.4, frames=900, dropped=2, lost=3, width=1280, height=720, depth=1,
        parent="Alice", children=2, layer=720,
    )
    values.update(overrides)
    return Stats(**values)  # type: ignore[arg-type]


def bgr_frame(width: int, height: int, color: tuple[int, int, int] = (0, 0, 255)) -> np.ndarray:
    """A solid BGR picture (red by default) with a white band on the left."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = color
    image[:, : max(width // 10, 1)] = 255
    return image
