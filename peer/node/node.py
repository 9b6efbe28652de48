"""The peer node: joins a room, takes its place in the relay tree, streams or watches.

Theory of operation
-------------------
Every node listens for children and keeps at most one parent link. The streamer is
the root: it holds the room's lock (an epoch from the tracker) and pushes each captured
frame, JPEG-encoded once per layer somebody needs, to its children. A viewer dials
candidates (shallowest first), follows redirects from full peers, and on Accept learns
its path to the root. From then on it:

- forwards each received frame to every child that needs this layer, as the same
  bytes, and transcodes down once per lower layer per frame, shared by the children on
  that layer (``LatestWorker``: a fresh frame beats a backlog);
- asks its parent for max(own layer, children's layers), so a link never carries more
  than its subtree needs;
- pings every neighbour (liveness and NTP-style clock offsets; offsets add up along the
  path so latency is measured from capture on the root's clock);
- gossips chat on every link but the one a message came from.

When the parent goes (EOF, a second of silence, a Bye) the node keeps its children
and re-attaches: the candidates of a Bye first, then its grandparent, then anyone the
directory lists. It never attaches under its own descendants: an acceptor refuses a
joiner that is on its own path to the root, and a joiner refuses a path that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from zeroconf import InterfaceChoice

from peer.lan.addresses import Interfaces as InterfacesType
from peer.lan.browser import find_tracker
from peer.node import codec, layers
from peer.node.admission import ConnectionCaps
from peer.node.audio.station import AudioStation
from peer.node.chat import ChatRouter
from peer.node.config import NodeConfig, SourceSpec
from peer.node.directory import Directory, TrackerDirectory
from peer.node.errors import LockDeniedError, MediaError, NodeError, TrackerUnreachableError
from peer.node.events import (
    ChatReceived,
    DecodedFrame,
    EpochSeen,
    ErrorRaised,
    Joined,
    LockDenied,
    NodeEvent,
    ParentLost,
    Ready,
    Resumed,
    SourceProgress,
    Stats,
    Stopped,
    StreamEnded,
    StreamStarted,
    TreeChanged,
)
from peer.node.identity_file import load_identity
from peer.node.lan_directory import LanDirectory
from peer.node.link import LinkCounters, PeerLink, Role, open_link
from peer.node.media import CapturedFrame, FrameSource, PacedCapture, open_source
from peer.node.recorder import Recorder
from peer.node.stats import StreamStats
from peer.node.workers import LatestWorker
from protocol import (
    Accept,
    AudioFrame,
    Bye,
    Candidate,
    Chat,
    ChatHave,
    Error,
    ErrorCode,
    Hello,
    JoinRequest,
    LayerDemand,
    Message,
    PathEntry,
    PathUpdate,
    Ping,
    Pong,
    Redirect,
    VideoFrame,
    encode,
    limits,
)

log = logging.getLogger(__name__)

STREAM_ENDED = "stream ended"
# Joins give up on a candidate list after this many dials, then refresh and retry.
MAX_JOIN_ATTEMPTS = 24
JOIN_RETRY_S = (0.05, 0.2, 0.5, 1.0)
# A parent we lost is not dialled again for this long (it may be frozen, not gone).
AVOID_LOST_PARENT_S = 5.0
# How long a --lan peer listens for a tracker before running tracker-less.
LAN_TRACKER_WAIT_S = 1.5


@dataclass(slots=True)
class _Transcode:
    frame: VideoFrame
    layers: frozenset[int]
    display: bool  # we also show/record it: decode once, at full size, for both


# What the display worker gets: a frame and, when the transcoder decoded it, its picture.
_Shown = tuple[VideoFrame, "codec.Image | None"]
_Transcoded = tuple[dict[int, "codec.EncodedLayer"], "codec.Image | None"]


class Node:
    """A Treecast peer. All methods run on the node's event loop."""

    def __init__(
        self,
        config: NodeConfig,
        on_event: Callable[[NodeEvent], None],
        on_frame: Callable[[DecodedFrame], None] | None = None,
        *,
        directory_factory: Callable[[Node], Directory] | None = None,
    ) -> None:
        self.config = config
        # The id is the public key: nobody else can prove they are this peer.
        self.identity = load_identity(config.identity_path)
        self.peer_id = self.identity.peer_id
        self._emit_cb = on_event
        self._on_frame = on_frame
        self._directory_factory = directory_factory
        self._directory: Directory | None = None
        self._server: asyncio.Server | None = None
        self.listen: tuple[str, int] | None = None
        self._parent: PeerLink | None = None
        self._children: list[PeerLink] = []
        self._links: set[PeerLink] = set()
        # Inbound connections held at once, in total and per address (hostile hosts).
        self._inbound_caps = ConnectionCaps.for_fanout(config.fanout)
        self._path: tuple[PathEntry, ...] = ()  # root .. parent when attached
        self._epoch = 0
        self._layer = config.resolution
        self._demand_sent: int | None = None
        self._source_size: tuple[int, int] | None = None
        self._fps = 30.0
        self._chat = ChatRouter(self.identity, config.name)
        self._stats = StreamStats(config.timing.stats_window_s)
        self._audio = AudioStation(
            config.audio, window_s=config.timing.stats_window_s,
            root_offset=self._root_offset, on_bad_packet=self._bad_audio,
            on_warning=lambda text: self._emit(ErrorRaised(message=text)),
            on_event=self._emit)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="treecast-cpu")
        self._transcoder: LatestWorker[_Transcode, _Transcoded] = LatestWorker(
            "transcode", self._executor, self._transcode_work, self._transcode_done)
        self._display: LatestWorker[_Shown, None] = LatestWorker(
            "display", self._executor, self._display_work, lambda item, result: None)
        self._recorder: Recorder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capture: PacedCapture | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._join_wakeup = asyncio.Event()
        self._preferred: list[Candidate] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self._streamer_announced: str | None = None
        self._closed_counters: list[LinkCounters] = []  # totals of links gone
        self._bytes_out_seen = 0
        self._pending: dict[PeerLink, asyncio.Future[Message]] = {}
        self._layer_in: int | None = None
        self._avoid: dict[str, float] = {}  # peer id -> monotonic time until not dialled
        self._stale_frames = 0  # frames refused for an old epoch
        self._epoch_seen = 0
        self._epoch_changes = 0  # streams seen: what the stats fence by, never going back
        self._last_seq = -1
        # When video stopped because the parent went: (monotonic time, last seq seen).
        self._lost_at: tuple[float, int] | None = None

    # --- public API ---------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._capture is not None

    @property
    def depth(self) -> int | None:
        if self.streaming:
            return 0
        return len(self._path) if self._parent is not None else None

    @property
    def parent_name(self) -> str | None:
        return self._parent.name if self._parent else None

    @property
    def children(self) -> list[PeerLink]:
        return list(self._children)

    @property
    def path(self) -> tuple[PathEntry, ...]:
        """Root .. parent (empty when detached or when we are the root)."""
        return self._path

    def available_layers(self) -> tuple[int, ...]:
        if self._source_size is None:
            return limits.LAYERS
        return layers.available_layers(self._source_size[1])

    async def start(self) -> None:
        """Listen, enter the room, and stream if the config says so.

        Raises:
            TrackerUnreachableError, LockDeniedError, MediaError: with readable text.
        """
        cfg = self.config
        self._loop = asyncio.get_running_loop()
        try:
            self._audio.open_output(self._loop)
        except MediaError as exc:
            raise self._fatal(exc) from None
        if cfg.record_path:
            try:
                await self.set_recording(cfg.record_path)
            except MediaError as exc:
                raise self._fatal(exc) from None
        opened: FrameSource | None = None
        if cfg.source is not None:
            # A bad file is the user's first mistake to hear about, before any network.
            try:
                opened = await asyncio.get_running_loop().run_in_executor(
                    None, open_source, cfg.source)
                await asyncio.get_running_loop().run_in_executor(
                    None, self._audio.prepare, cfg.source)
            except MediaError as exc:
                if opened is not None:
                    opened.close()
                raise self._fatal(exc) from None
        try:
            self._server = await asyncio.start_server(
                self._on_inbound, cfg.listen_host, cfg.listen_port)
        except OSError as exc:
            if opened is not None:
                opened.close()
            raise self._fatal(NodeError(
                f"cannot listen on {cfg.listen_host}:{cfg.listen_port}: {exc.strerror}"
            )) from None
        sock = self._server.sockets[0].getsockname()
        self.listen = (sock[0], sock[1])
        try:
            self._directory = await self._make_directory()
            await self._directory.open()
        except TrackerUnreachableError as exc:
            await self._close_server()
            if opened is not None:
                opened.close()
            raise self._fatal(exc) from None
        self._emit(Ready(id=self.peer_id, listen=f"{self.listen[0]}:{self.listen[1]}"))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="node-tick"))
        self._tasks.append(asyncio.create_task(self._join_loop(), name="node-join"))
        self._on_directory_change("streamer")
        self._on_directory_change("peers")
        if cfg.source is not None:
            try:
                await self.start_streaming(cfg.source, opened)
            except NodeError:
                await self.stop("could not start streaming")
                raise

    async def stop(self, reason: str = "quit") -> None:
        """Leave cleanly: children are told where to go, the tracker is told. Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        if self.streaming:
            await self._end_stream(STREAM_ENDED)
        else:
            hints = self._leave_hints()
            if self._parent is not None:
                self._parent.close("leaving", Bye(reason="leaving"))
            for child in list(self._children):
                child.close("leaving", Bye(reason=f"{self.config.name} left", candidates=hints))
        for link in list(self._links):
            link.close("leaving", Bye(reason="leaving"))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._transcoder.close()
        await self._display.close()
        self._audio.close()
        for link in list(self._links):
            await link.wait_closed()
        await self._close_server()
        if self._directory is not None:
            with contextlib.suppress(Exception):
                await self._directory.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._executor.shutdown)
        await self.set_recording(None)
        self._emit(Stopped(reason=reason))
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def set_resolution(self, layer: int) -> None:
        """Change the layer this peer watches; demand follows upstream at once."""
        if layer not in limits.LAYERS:
            raise ValueError(f"resolution must be one of {limits.LAYERS}")
        self._layer = layer
        self._update_demand()

    async def set_recording(self, path: str | None) -> None:
        """Start recording what we watch to ``path`` (None stops and finalizes).

        Raises:
            MediaError: the format is unsupported or the file cannot be written.
        """
        old, self._recorder = self._recorder, None
        if old is not None:
            await asyncio.get_running_loop().run_in_executor(None, old.close)
        if path is not None:
            self._recorder = Recorder(path, self._fps)

    async def send_chat(self, text: str) -> None:
        """Send a chat line to the whole room (ValueError when empty or too long)."""
        message = self._chat.compose(text, time.time())
        self._emit_chat(message, own=True)
        data = encode(message)
        for link in self._active_links():
            link.send_bytes(data)

    async def start_streaming(self, source: SourceSpec,
                              opened: FrameSource | None = None) -> None:
        """Become the room's streamer (root of the tree).

        Args:
            source: what to stream.
            opened: the source already opened from ``source`` (start() checks it early).

        Raises:
            MediaError: the source cannot be opened. LockDeniedError: someone streams.
        """
        assert self._directory is not None, "start() first"
        if self.streaming:
            return
        loop = asyncio.get_running_loop()
        frame_source = opened
        if frame_source is None:
            try:
                frame_source = await loop.run_in_executor(None, open_source, source)
            except MediaError as exc:
                raise self._fatal(exc) from None
        try:
            sound = await loop.run_in_executor(None, self._audio.take_source, source)
        except MediaError as exc:
            frame_source.close()
            raise self._fatal(exc) from None
        self._audio.start_stream(sound, loop_source=getattr(source, "loop", False),
                                 children=lambda: self._children, epoch=lambda: self._epoch)
        try:
            epoch = await self._directory.claim()
        except LockDeniedError as exc:
            self._audio.stop_stream()
            frame_source.close()
            self._emit(LockDenied(holder=exc.holder))
            raise
        except TrackerUnreachableError as exc:
            self._audio.stop_stream()
            frame_source.close()
            raise self._fatal(exc) from None
        if self._parent is not None:
            self._parent.close("became the streamer", Bye(reason="becoming the streamer"))
        for child in list(self._children):
            # They watched another stream; let them re-join our fresh tree.
            child.close("new stream", Bye(reason="a new stream starts"))
        self._epoch = max(self._epoch, epoch)
        self._path = ()
        self._source_size = (frame_source.width, frame_source.height)
        self._fps = frame_source.fps
        self._capture = PacedCapture(frame_source, loop=getattr(source, "loop", False))
        self._capture.start(loop)
        self._stream_task = asyncio.create_task(self._stream_loop(), name="node-stream")
        self._streamer_announced = self.peer_id
        self._emit(StreamStarted(streamer=self.config.name, streamer_id=self.peer_id,
                                 epoch=self._epoch))
        self._report_position()

    async def stop_streaming(self) -> None:
        if self.streaming:
            await self._end_stream(STREAM_ENDED)

    # --- streaming (root) ---------------------------------------------------------

    async def _stream_loop(self) -> None:
        assert self._capture is not None
        loop = asyncio.get_running_loop()
        last_progress = 0.0
        reason = STREAM_ENDED
        try:
            async for frame in self._capture.frames():
                if self._directory is not None and not self._directory.lease_valid():
                    reason = "lost the streamer lock"
                    break
                await self._send_captured(loop, frame)
                if frame.captured_at - last_progress >= 0.5:
                    last_progress = frame.captured_at
                    self._emit(SourceProgress(position_s=frame.position_s,
                                              duration_s=frame.duration_s))
        except MediaError as exc:
            self._emit(ErrorRaised(message=str(exc)))
            reason = str(exc)
        except asyncio.CancelledError:
            return
        if not self._stopping:
            asyncio.get_running_loop().create_task(self._end_stream(reason))

    async def _send_captured(self, loop: asyncio.AbstractEventLoop, frame: CapturedFrame) -> None:
        assert self._source_size is not None
        self._audio.video_released(frame.captured_at, frame.position_s)
        if self._on_frame is not None:
            h, w = frame.image.shape[:2]
            self._on_frame(DecodedFrame(frame.image, w, h, self._seq, self._epoch,
                                        frame.captured_at))
        wanted = {self._clamp(c.layer) for c in self._children if c.role is Role.CHILD}
        seq = self._seq
        self._seq += 1
        if not wanted:
            self._stats.frame_produced(time.time(), 0, seq)
            return
        encoded = await loop.run_in_executor(
            self._executor, codec.encode_layers, frame.image, wanted)
        for layer, enc in encoded.items():
            data = encode(VideoFrame(self._epoch, seq, frame.captured_at, enc.width,
                                     enc.height, layer, enc.jpeg))
            for child in self._children:
                if self._clamp(child.layer) == layer:
                    child.send_video(data)
        # Nothing comes in at the root: its bandwidth is what it sends (kbps_out).
        self._stats.frame_produced(time.time(), 0, seq)

    async def _end_stream(self, reason: str) -> None:
        if self._capture is None:
            return
        capture, self._capture = self._capture, None
        capture.stop()
        self._audio.stop_stream()
        if self._stream_task is not None and self._stream_task is not asyncio.current_task():
            self._stream_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stream_task
        for child in list(self._children):
            child.close(STREAM_ENDED, Bye(reason=STREAM_ENDED))
        if self._directory is not None:
            with contextlib.suppress(Exception):
                await self._directory.release()
        self._streamer_announced = None
        self._emit(StreamEnded(streamer=self.config.name, reason=reason))
        self._report_position()

    # --- links ----------------------------------------------------------------------

    async def _on_inbound(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        refusal = self._inbound_caps.admit(address)
        if refusal is not None:
            with contextlib.suppress(Exception):
                writer.write(encode(Bye(reason=refusal,
                                        code=int(ErrorCode.TOO_MANY_CONNECTIONS))))
                writer.close()
            return
        link = PeerLink(reader, writer, on_message=self._on_message,
                        on_close=self._on_link_closed, outbound=False)
        link.admitted_from = address
        self._links.add(link)
        link.start()

    def _active_links(self) -> list[PeerLink]:
        links = [c for c in self._children if not c.closed]
        if self._parent is not None and not self._parent.closed:
            links.append(self._parent)
        return links

    def _on_link_closed(self, link: PeerLink, reason: str) -> None:
        self._links.discard(link)
        if link.admitted_from is not None:
            self._inbound_caps.release(link.admitted_from)
            link.admitted_from = None
        self._closed_counters.append(link.counters)
        future = self._pending.pop(link, None)
        if future is not None and not future.done():
            future.set_exception(ConnectionError(reason))
        if link.peer_id is not None:
            self._chat.forget_link(link.peer_id)
        if link in self._children:
            self._children.remove(link)
            log.info("child %s gone: %s", link.name, reason)
            self._update_demand()
            self._report_position()
        elif link is self._parent:
            self._parent = None
            self._demand_sent = None
            self._audio.parent_lost()
            if self._stopping:
                return
            self._emit(ParentLost(parent=link.name, parent_id=link.peer_id or "",
                                  reason=reason))
            if link.peer_id:
                # A frozen parent may still be listed (or redirected to) for a while:
                # dialling it would cost a whole connect timeout.
                self._avoid[link.peer_id] = time.monotonic() + AVOID_LOST_PARENT_S
            self._lost_at = (time.monotonic(), self._last_seq)
            if reason == STREAM_ENDED:
                # The stream is over: pass it down and wait for the next one.
                self._lost_at = None
                self._last_seq = -1
                for child in list(self._children):
                    child.close(STREAM_ENDED, Bye(reason=STREAM_ENDED))
                self._path = ()
            else:
                grandparent = self._path[-2] if len(self._path) >= 2 else None
                if grandparent is not None and grandparent.host and grandparent.port:
                    self._preferred.append(Candidate(grandparent.id, grandparent.name,
                                                     grandparent.host, grandparent.port))
            self._report_position()
            self._join_wakeup.set()

    async def _on_message(self, link: PeerLink, message: Message) -> None:
        if isinstance(message, VideoFrame):
            self._on_video(link, message)
        elif isinstance(message, AudioFrame):
            # Only the parent sends sound, of the live stream; the station forwards it
            # untouched to every child, then counts, records and plays it.
            if link is self._parent and self._live_epoch(message.epoch):
                self._audio.received(message, self._children)
        elif isinstance(message, Ping):
            link.send(Pong(t0=message.t0, t1=time.time(), t2=time.time(),
                           root_offset=self._root_offset()))
        elif isinstance(message, Pong):
            link.clock.add_sample(message.t0, message.t1, message.t2, time.time())
            if link is self._parent:
                link.root_offset = message.root_offset
        elif isinstance(message, Chat):
            self._on_chat(link, message)
        elif isinstance(message, ChatHave):
            for missing in self._chat.missing_for(message):
                link.send(missing)
        elif isinstance(message, LayerDemand):
            link.layer = message.layer
            self._update_demand()
        elif isinstance(message, Hello):
            self._on_hello(link, message)
        elif isinstance(message, JoinRequest):
            self._on_join_request(link, message)
        elif isinstance(message, Accept | Redirect):
            future = self._pending.get(link)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, PathUpdate):
            if link is self._parent:
                self._set_path(message.path)
        elif isinstance(message, Bye):
            self._on_bye(link, message)
        elif isinstance(message, Error):
            self._emit(ErrorRaised(message=f"{link.name}: {message.reason}"))
        else:
            link.close(f"unexpected {type(message).__name__} on a peer link",
                       Bye(reason=f"unexpected {type(message).__name__}",
                           code=int(ErrorCode.UNEXPECTED)))

    def _on_hello(self, link: PeerLink, hello: Hello) -> None:
        if not set(hello.versions) & set(limits.SUPPORTED_VERSIONS):
            link.close("no common protocol version",
                       Bye(reason=f"no common protocol version (we speak "
                                  f"{list(limits.SUPPORTED_VERSIONS)})",
                           code=int(ErrorCode.BAD_VERSION)))
            return
        if hello.room != self.config.room:
            link.close("wrong room", Bye(reason=f"this peer is in room {self.config.room!r}",
                                         code=int(ErrorCode.UNEXPECTED)))
            return
        link.peer_id, link.name = hello.peer_id, hello.name
        if not link.outbound:
            link.send(self._hello())

    def _hello(self) -> Hello:
        return Hello(peer_id=self.peer_id, name=self.config.name, room=self.config.room)

    def _on_join_request(self, link: PeerLink, request: JoinRequest) -> None:
        if link.peer_id is None or link.role is not Role.PENDING:
            link.close("join before hello", Bye(reason="join request before hello",
                                                code=int(ErrorCode.UNEXPECTED)))
            return
        attached = self.streaming or self._parent is not None
        on_my_path = link.peer_id == self.peer_id or any(
            p.id == link.peer_id for p in self._path)
        if on_my_path:
            # Adopting an ancestor would close a loop: it must look elsewhere.
            link.send(Redirect(candidates=(), reason="you are my ancestor"))
        elif not attached:
            link.send(Redirect(candidates=(), reason="not attached to the stream"))
        elif len(self._children) >= self._fanout():
            link.send(Redirect(candidates=self._child_candidates(exclude=link.peer_id),
                               reason="full"))
        else:
            link.role = Role.CHILD
            link.layer = request.layer
            host = request.listen_host
            if not host or host in ("0.0.0.0", "::"):
                host = link.remote.rsplit(":", 1)[0]
            link.listen = (host, request.listen_port) if request.listen_port else None
            self._children.append(link)
            width, height = self._source_size or (0, 0)
            link.send(Accept(path=self._own_path(), epoch=self._epoch,
                             source_width=width, source_height=height, fps=self._fps))
            link.send(self._chat.open_link(link.peer_id or "", time.time()))
            self._update_demand()
            self._report_position()
            return
        # Refused: the joiner closes after reading the redirect; close if it lingers.
        asyncio.get_running_loop().call_later(
            self.config.timing.connect_timeout_s,
            lambda: link.close("refused joiner did not leave") if link.role is Role.PENDING
            else None)

    def _on_bye(self, link: PeerLink, bye: Bye) -> None:
        if link is self._parent and bye.candidates:
            self._preferred[:0] = list(bye.candidates)
        future = self._pending.get(link)
        if future is not None and not future.done():
            future.set_result(bye)
            return
        reason = STREAM_ENDED if bye.reason == STREAM_ENDED else f"{link.name}: {bye.reason}"
        link.close(reason)

    def _on_chat(self, link: PeerLink, message: Chat) -> None:
        if link.peer_id is None:
            return
        verdict = self._chat.receive(message, link.peer_id, time.time())
        if verdict.refusal is not None:
            link.send(verdict.refusal)
        if not verdict.deliver:
            return
        self._emit_chat(message, own=False)
        data = encode(message)
        for other in self._active_links():
            if other is not link:
                other.send_bytes(data)

    def _emit_chat(self, message: Chat, *, own: bool) -> None:
        self._emit(ChatReceived(id=message.msg_id, origin_id=message.origin_id,
                                sender=message.origin_name, text=message.text,
                                sent_at=message.sent_at, own=own))

    # --- video (relay and viewer) -------------------------------------------------

    def _on_video(self, link: PeerLink, frame: VideoFrame) -> None:
        if link is not self._parent:
            return  # only the parent sends video; anything else is ignored
        if not self._live_epoch(frame.epoch):
            self._stale_frames += 1
            return  # fenced: a streamer that lost its lock
        self._epoch = frame.epoch
        if frame.epoch != self._epoch_seen:
            self._epoch_seen = frame.epoch
            self._epoch_changes += 1
            self._emit(EpochSeen(epoch=frame.epoch, seq=frame.seq))
        self._layer_in = frame.layer
        now = time.time()
        if self._lost_at is not None:
            gap_ms = (time.monotonic() - self._lost_at[0]) * 1000.0
            lost = max(0, frame.seq - self._lost_at[1] - 1) if self._lost_at[1] >= 0 else 0
            self._lost_at = None
            self._emit(Resumed(parent=link.name, gap_ms=round(gap_ms, 1), lost=lost))
        self._last_seq = frame.seq
        offset = self._root_offset()
        latency = None if offset is None else now + offset - frame.captured_at
        # The stats fence off older epochs by number; on a LAN the current stream may
        # have the lower one, so they get a count of streams seen, which only grows.
        self._stats.frame_received(now, len(frame.jpeg), frame.seq, self._epoch_changes,
                                   latency)
        same: bytes | None = None
        lower: set[int] = set()
        for child in self._children:
            target = self._clamp(child.layer)
            if target >= frame.layer:
                # Untouched bytes: one encode of the header per frame, shared.
                same = same or encode(frame)
                child.send_video(same)
            else:
                lower.add(target)
        display = self._on_frame is not None or self._recorder is not None
        if lower:
            # The display picture comes from the transcoder's decode (one per frame).
            self._transcoder.submit(_Transcode(frame, frozenset(lower), display))
        elif display:
            self._display.submit((frame, None))

    def _transcode_work(self, job: _Transcode) -> _Transcoded:
        f = job.frame
        image = codec.decode_jpeg(f.jpeg) if job.display else None
        return codec.transcode_down(f.jpeg, f.width, f.height, job.layers, image), image

    def _transcode_done(self, job: _Transcode, result: _Transcoded) -> None:
        f = job.frame
        encoded, image = result
        if job.display:
            self._display.submit((f, image))
        if not self._live_epoch(f.epoch):
            return
        for layer, enc in encoded.items():
            data = encode(VideoFrame(f.epoch, f.seq, f.captured_at, enc.width, enc.height,
                                     layer, enc.jpeg))
            for child in self._children:
                if self._clamp(child.layer) == layer:
                    child.send_video(data)

    def _display_work(self, item: _Shown) -> None:
        frame, image = item
        recorder = self._recorder  # read once: set_recording may swap it meanwhile
        if image is None:
            image = codec.decode_jpeg(frame.jpeg)
        want = self._clamp(self._layer)
        if frame.layer > want and self._source_size is not None:
            width, height = layers.layer_size(want, *self._source_size)
            image = codec.resize(image, width, height)
        height, width = image.shape[:2]
        if recorder is not None:
            try:
                recorder.write(image)
            except MediaError as exc:
                assert self._loop is not None  # set by start(), before any frame
                self._loop.call_soon_threadsafe(self._recording_failed, recorder, exc)
        if self._on_frame is not None:
            decoded = DecodedFrame(image, width, height, frame.seq, frame.epoch,
                                   frame.captured_at)
            # Lip sync: a picture ready before its sound is heard waits for it.
            wait = self._audio.picture_wait(frame.captured_at)
            assert self._loop is not None  # set by start(), before any frame
            if wait > 0.002:
                self._loop.call_soon_threadsafe(self._show_later, decoded, wait, time.time())
            else:
                self._show(decoded, time.time())

    def _show_later(self, decoded: DecodedFrame, wait: float, ready_at: float) -> None:
        def show() -> None:
            if not self._stopping:
                self._executor.submit(self._show, decoded, ready_at)
        asyncio.get_running_loop().call_later(wait, show)

    def _show(self, decoded: DecodedFrame, ready_at: float) -> None:
        """Hand a picture to the display; tell the sound how late it was."""
        assert self._on_frame is not None and self._loop is not None
        self._on_frame(decoded)
        offset = self._root_offset()
        if offset is not None:
            now = time.time()
            self._loop.call_soon_threadsafe(
                self._audio.video_shown, ready_at + offset - decoded.captured_at,
                now + offset - decoded.captured_at)

    def _bad_audio(self, reason: str) -> None:
        """The parent's sound does not decode: that link goes, nothing else."""
        if self._parent is not None:
            self._parent.close(f"bad audio from the parent: {reason}",
                               Bye(reason=f"bad audio: {reason}"[: limits.MAX_REASON_CHARS],
                                   code=int(ErrorCode.UNEXPECTED)))

    async def set_volume(self, volume: float) -> None:
        """Playback volume, 0..1 (ValueError outside)."""
        self._audio.set_volume(volume)

    async def set_muted(self, muted: bool) -> None:
        """Mute or unmute playback (the sound is still received and recorded)."""
        self._audio.set_muted(muted)

    def _live_epoch(self, epoch: int) -> bool:
        """Whether frames (or a tree) of ``epoch`` belong to the current stream."""
        if self._directory is None:
            return epoch >= self._epoch
        return self._directory.is_live_epoch(epoch, self._epoch)

    def _recording_failed(self, recorder: Recorder, exc: MediaError) -> None:
        if self._recorder is recorder:  # report once, and only for the current one
            self._recorder = None
            recorder.close()
            self._emit(ErrorRaised(message=f"recording stopped: {exc}"))

    def _clamp(self, layer: int) -> int:
        if self._source_size is None:
            return layer
        return layers.clamp_layer(layer, self._source_size[1])

    def _update_demand(self) -> None:
        """Ask the parent for max(own layer, children's layers) when that changes."""
        if self._parent is None:
            return
        demand = max([self._layer] + [c.layer for c in self._children])
        demand = self._clamp(demand)
        if demand != self._demand_sent:
            self._demand_sent = demand
            self._parent.send(LayerDemand(layer=demand))

    # --- joining --------------------------------------------------------------------

    async def _join_loop(self) -> None:
        retry = 0
        while not self._stopping:
            if self.streaming or self._parent is not None or self._directory is None \
                    or self._directory.streamer() is None:
                self._join_wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._join_wakeup.wait(), 1.0)
                continue
            if await self._try_join():
                retry = 0
                continue
            await asyncio.sleep(JOIN_RETRY_S[min(retry, len(JOIN_RETRY_S) - 1)])
            retry += 1

    async def _try_join(self) -> bool:
        assert self._directory is not None
        queue = self._preferred + self._directory.candidates()
        self._preferred = []
        descendants = self._descendant_ids()
        now = time.monotonic()
        self._avoid = {k: until for k, until in self._avoid.items() if until > now}
        tried: set[str] = set(self._avoid)
        attempts = 0
        while queue and attempts < MAX_JOIN_ATTEMPTS and not self._stopping:
            candidate = queue.pop(0)
            if candidate.id in tried or candidate.id == self.peer_id \
                    or candidate.id in descendants:
                continue
            tried.add(candidate.id)
            attempts += 1
            outcome = await self._dial(candidate)
            if outcome is True:
                return True
            if isinstance(outcome, list):
                queue[:0] = outcome
        return False

    async def _dial(self, candidate: Candidate) -> bool | list[Candidate]:
        timeout = self.config.timing.connect_timeout_s
        try:
            link = await open_link(candidate.host, candidate.port, timeout=timeout,
                                   on_message=self._on_message,
                                   on_close=self._on_link_closed)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot reach %s at %s:%s: %s", candidate.name, candidate.host,
                      candidate.port, exc)
            return False
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[link] = future
        self._links.add(link)
        link.start()
        link.send(self._hello())
        host, port = self._advertised()
        link.send(JoinRequest(layer=self._clamp(max([self._layer] +
                                                    [c.layer for c in self._children])),
                              listen_host=host, listen_port=port))
        try:
            answer = await asyncio.wait_for(future, timeout)
        except (TimeoutError, ConnectionError) as exc:
            link.close(f"join failed: {exc}")
            return False
        finally:
            self._pending.pop(link, None)
        if isinstance(answer, Redirect):
            link.close("redirected", Bye(reason="redirected"))
            return list(answer.candidates)
        if not isinstance(answer, Accept) or link.closed:
            link.close("join refused")
            return False
        if any(p.id == self.peer_id for p in answer.path) or self._stopping \
                or self.streaming or self._parent is not None \
                or not self._live_epoch(answer.epoch):
            # A loop, a tree fenced off by a newer epoch, or a join we no longer need.
            link.close("loop or no longer needed", Bye(reason="join withdrawn"))
            return False
        self._attach(link, answer)
        return True

    def _attach(self, link: PeerLink, accept: Accept) -> None:
        link.role = Role.PARENT
        self._parent = link
        self._epoch = max(self._epoch, accept.epoch)
        if accept.source_width and accept.source_height:
            self._source_size = (accept.source_width, accept.source_height)
        self._fps = accept.fps
        if self._recorder is not None:
            self._recorder.fps = accept.fps
        self._demand_sent = None
        self._set_path(accept.path)
        self._update_demand()
        link.send(self._chat.open_link(link.peer_id or "", time.time()))
        width, height = self._display_size()
        self._emit(Joined(parent=link.name, parent_id=link.peer_id or "",
                          depth=len(accept.path), width=width, height=height))

    def _set_path(self, path: tuple[PathEntry, ...]) -> None:
        if any(p.id == self.peer_id for p in path):
            # Our parent now sits below us: a loop. Drop it and re-join.
            if self._parent is not None:
                self._parent.close("loop detected", Bye(reason="loop detected",
                                                        code=int(ErrorCode.LOOP)))
            return
        self._path = path
        update = PathUpdate(path=self._own_path())
        for child in self._children:
            child.send(update)
        self._report_position()

    def _own_path(self) -> tuple[PathEntry, ...]:
        host, port = self._advertised()
        return (*self._path, PathEntry(self.peer_id, self.config.name, host, port))

    def _advertised(self) -> tuple[str | None, int | None]:
        assert self.listen is not None
        host = self.config.advertise_host
        if host is None and self._directory is not None:
            host = self._directory.own_host()
        if host is None and self.listen[0] not in ("0.0.0.0", "::"):
            host = self.listen[0]
        return host, self.listen[1]

    def _descendant_ids(self) -> set[str]:
        """Our subtree as the directory last described it (a hint; the path check is
        what guarantees no loop)."""
        if self._directory is None:
            return set()
        children_of: dict[str, list[str]] = {}
        for peer in self._directory.tree():
            if peer.parent_id:
                children_of.setdefault(peer.parent_id, []).append(peer.id)
        found: set[str] = {c.peer_id for c in self._children if c.peer_id}
        stack = [self.peer_id, *found]
        while stack:
            for child in children_of.get(stack.pop(), []):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found

    def _child_candidates(self, exclude: str | None = None) -> tuple[Candidate, ...]:
        depth = (self.depth or 0) + 1
        cands = [Candidate(c.peer_id, c.name, c.listen[0], c.listen[1], depth, 1)
                 for c in self._children
                 if c.peer_id and c.listen and c.peer_id != exclude]
        return tuple(cands[: limits.MAX_CANDIDATES])

    def _leave_hints(self) -> tuple[Candidate, ...]:
        """Where our children should go when we leave: our parent first."""
        hints: list[Candidate] = []
        if self._path:
            p = self._path[-1]
            if p.host and p.port:
                hints.append(Candidate(p.id, p.name, p.host, p.port, len(self._path) - 1, 1))
        if self._directory is not None:
            mine = self._descendant_ids() | {self.peer_id}
            hints += [c for c in self._directory.candidates() if c.id not in mine]
        return tuple(hints[: limits.MAX_CANDIDATES])

    def _fanout(self) -> int:
        if self._directory is not None and not self._directory.reachable():
            return 0  # nobody can dial us: leaves only
        return self.config.fanout

    # --- timers, stats, directory ---------------------------------------------------

    async def _tick_loop(self) -> None:
        timing = self.config.timing
        next_stats = time.monotonic() + timing.stats_interval_s
        while True:
            await asyncio.sleep(timing.ping_interval_s)
            now = time.monotonic()
            for link in list(self._links):
                if link.role is Role.PENDING:
                    # A connection that never finishes its handshake holds nothing of ours.
                    if now - link.last_heard > 2 * timing.connect_timeout_s:
                        link.close("handshake timed out")
                elif now - link.last_heard > timing.link_timeout_s:
                    link.close(f"no heartbeat for {timing.link_timeout_s:g} s")
                else:
                    link.send(Ping(t0=time.time()))
            if now >= next_stats:
                next_stats = now + timing.stats_interval_s
                self._emit(self._stats_event())
            self._report_position()

    def _stats_event(self) -> Stats:
        now = time.time()
        totals = LinkCounters()
        for counters in [*self._closed_counters, *(link.counters for link in self._links)]:
            for name in LinkCounters.__slots__:
                setattr(totals, name, getattr(totals, name) + getattr(counters, name))
        self._stats.bytes_sent(now, max(0, totals.bytes_out - self._bytes_out_seen))
        self._bytes_out_seen = totals.bytes_out
        snap = self._stats.snapshot(now)
        width, height = self._display_size()
        return Stats(
            fps=round(snap.fps, 2), kbps_in=round(snap.kbps_in, 1),
            kbps_out=round(snap.kbps_out, 1),
            latency_ms=_round(snap.latency_p50_ms), latency_p95_ms=_round(snap.latency_p95_ms),
            loss_pct=round(snap.loss_pct, 3), frames=snap.frames,
            dropped=totals.frames_dropped, lost=snap.lost, width=width, height=height,
            depth=self.depth, parent=self.parent_name, children=len(self._children),
            layer=self._layer, layer_in=self._layer_in, bytes_in=totals.bytes_in,
            bytes_out=totals.bytes_out, video_bytes_in=totals.video_bytes_in,
            video_bytes_out=totals.video_bytes_out, audio=self._audio.snapshot())

    def _display_size(self) -> tuple[int, int]:
        if self._source_size is None:
            return 0, 0
        if self.streaming:
            return self._source_size
        return layers.layer_size(self._clamp(self._layer), *self._source_size)

    def _root_offset(self) -> float | None:
        """Root clock minus our clock (0 at the root)."""
        if self.streaming:
            return 0.0
        parent = self._parent
        if parent is None or parent.root_offset is None or parent.clock.offset is None:
            return None
        return parent.root_offset + parent.clock.offset

    def _report_position(self) -> None:
        if self._directory is None:
            return
        free = max(0, self._fanout() - len(self._children))
        parent_id = self._parent.peer_id if self._parent else None
        layer = None if self.streaming else self._layer
        self._directory.set_position(depth=self.depth, free_slots=free, parent_id=parent_id,
                                     layer=layer, streaming=self.streaming)

    async def _make_directory(self) -> Directory:
        if self._directory_factory is not None:
            return self._directory_factory(self)
        cfg = self.config
        assert self.listen is not None
        tracker = cfg.tracker
        if tracker is None and cfg.lan:
            tracker = await find_tracker(LAN_TRACKER_WAIT_S, _lan_interfaces(cfg.listen_host))
            if tracker is None:
                return LanDirectory(peer_id=self.peer_id, name=cfg.name, room=cfg.room,
                                    listen_host=cfg.listen_host, listen_port=self.listen[1],
                                    on_change=self._on_directory_change)
        if tracker is None:
            raise self._fatal(TrackerUnreachableError(
                "no tracker given (use --tracker HOST:PORT, or --lan on a LAN)"))
        host, port = self._advertised_for_registration()
        return TrackerDirectory(
            tracker[0], tracker[1], peer_id=self.peer_id, name=cfg.name,
            room=cfg.room, listen_host=host, listen_port=port,
            heartbeat_s=cfg.timing.tracker_heartbeat_s, on_change=self._on_directory_change)

    def _advertised_for_registration(self) -> tuple[str | None, int | None]:
        assert self.listen is not None
        return self.config.advertise_host or self.listen[0], self.listen[1]

    def _on_directory_change(self, what: str) -> None:
        directory = self._directory
        if directory is None or self._stopping:
            return
        if what == "peers":
            self._emit(TreeChanged(peers=directory.tree(), self_id=self.peer_id))
        elif what == "streamer":
            streamer = directory.streamer()
            if streamer is None:
                if self._streamer_announced is not None and not self.streaming:
                    self._streamer_announced = None
                    self._emit(StreamEnded(streamer=None, reason=STREAM_ENDED))
                return
            # The directory is the authority on the current epoch (on a LAN the tie-break
            # winner may hold the lower one); frames of any other epoch are fenced off.
            self._epoch = streamer.epoch
            if self.streaming and streamer.id != self.peer_id:
                asyncio.get_running_loop().create_task(
                    self._end_stream("another peer took the streamer lock"))
            if streamer.id != self._streamer_announced:
                self._streamer_announced = streamer.id
                if streamer.id != self.peer_id:
                    self._emit(StreamStarted(streamer=streamer.name, streamer_id=streamer.id,
                                             epoch=streamer.epoch))
                    self._follow_new_root(streamer.id)
            self._join_wakeup.set()
        elif what == "closed":
            self._emit(ErrorRaised(message="lost the connection to the tracker"))

    def _follow_new_root(self, root_id: str) -> None:
        """A new streamer: children of the old root move (with their subtrees)."""
        parent = self._parent
        if parent is not None and self._path and self._path[0].id != root_id \
                and len(self._path) == 1:
            parent.close("following the new streamer", Bye(reason="following the new streamer"))

    def _emit(self, event: NodeEvent) -> None:
        try:
            self._emit_cb(event)
        except Exception:  # a broken listener must not take the node down
            log.exception("event listener failed on %s", event.KIND)

    def _fatal(self, exc: NodeError) -> NodeError:
        self._emit(ErrorRaised(message=str(exc), fatal=True))
        return exc

    async def _close_server(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None


def _lan_interfaces(listen_host: str) -> InterfacesType:
    """mDNS on the address we are bound to, or on every interface for a wildcard."""
    if listen_host in ("0.0.0.0", "::", ""):
        return InterfaceChoice.All
    return [listen_host]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
