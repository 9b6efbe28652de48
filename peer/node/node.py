"""The peer node: asyncio wiring around the tree state, the relay and the media.

Theory of operation
-------------------
The node owns no protocol logic. It moves bytes and runs timers:

- ``TreeState`` (tree/state.py) decides joining, accepting, demand, repair, fencing
  and heartbeats; the node feeds it control messages and link events with
  ``loop.time()`` and carries out the actions it returns (``_apply``): send, close,
  dial, ping, report our position to the directory. ``get_timer`` arms one timer.
- ``Relay`` (relay.py) sends every frame to the children that need it: the pump's
  encoded frames at the root, received frames untouched, transcoded ones below.
- ``StreamPump`` (pump.py) runs a stream at the root; ``Display`` (display.py) shows
  and records; both do their CPU work in the thread pool.
- ``ChatRouter`` (chat.py) decides which chat to deliver; the node gossips it on every
  link but the one it came from.
- ``StatsReporter`` (report.py) builds the once-a-second Stats event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from peer.lan.listen import listen_socket
from peer.node import layers
from peer.node.admission import ConnectionCaps
from peer.node.audio.station import AudioStation
from peer.node.chat import ChatRouter
from peer.node.codec import CodecError
from peer.node.codecs.base import VideoCodec, parse_codec
from peer.node.codecs.h264 import layer_bitrate
from peer.node.config import NodeConfig, SourceSpec
from peer.node.directory import Directory, DirectoryChange, TrackerDirectory
from peer.node.display import Display
from peer.node.errors import LockDeniedError, MediaError, NodeError, TrackerUnreachableError
from peer.node.events import (
    DecodedFrame,
    ErrorRaised,
    Joined,
    LockDenied,
    NodeEvent,
    ParentLost,
    Ready,
    SourceProgress,
    Stopped,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
)
from peer.node.gossip import ChatGossip
from peer.node.identity_file import load_identity
from peer.node.intake import VideoIntake
from peer.node.link import PeerLink, open_link
from peer.node.media import FrameSource, PacedCapture, open_source
from peer.node.passthrough import H264Recorder
from peer.node.playback import PlaybackState
from peer.node.portmap import PortMapper
from peer.node.pump import StreamEnd, StreamPump
from peer.node.reachability import classify
from peer.node.relay import Relay
from peer.node.report import Position, StatsReporter
from peer.node.room import DirectoryRoom, open_directory
from peer.node.stats import StreamStats
from peer.node.stranded import StrandedWatch
from peer.node.tree import actions as act
from peer.node.tree.state import StreamInfo, TreeState, TreeTiming
from peer.node.uplink import UplinkMeter
from peer.trust.tls import HANDSHAKE_TIMEOUT_S, LinkGuard, server_context
from protocol import (
    AudioFrame,
    Bye,
    Candidate,
    Chat,
    ChatHave,
    Error,
    ErrorCode,
    KeyframeRequest,
    Message,
    PathEntry,
    Ping,
    Playback,
    Pong,
    VideoFrame,
    encode,
    limits,
)
from protocol.addresses import join_host_port, plain_host
from protocol.private_room import link_key

log = logging.getLogger(__name__)

# How often children on "auto" are checked: a backlog must show within a few ticks
# for a child to move down a layer well inside 2 s.
AUTO_TICK_S = 0.1
# A child's queue this long means our uplink (or its path) is behind: half the video
# queue. Two frames is only a keyframe going out (a new child, a switch).
UPLINK_BACKLOG_FRAMES = 4
# At most one child is sent elsewhere per this long (the uplink needs a moment to
# show the effect).
SHED_INTERVAL_S = 3.0


class Node:
    """A Treecast peer. All methods run on the node's event loop.

    Args:
        config: who we are and what we do.
        on_event: receives every NodeEvent (on the loop).
        on_frame: receives every picture to show (on a worker thread), or None.
        directory_factory: builds the directory instead of the config (tests).
    """

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
        self._room = DirectoryRoom(config)
        timing = config.timing
        self.tree = TreeState(
            peer_id=self.peer_id, name=config.name, room=config.room, fanout=config.fanout,
            layer=config.resolution, room_view=self._room,
            timing=TreeTiming(timing.ping_interval_s, timing.link_timeout_s,
                              timing.connect_timeout_s, timing.video_timeout_s),
            now=time.monotonic())
        self.tree.auto = config.auto_resolution
        self._server: asyncio.Server | None = None
        self._portmap: PortMapper | None = None
        self._stranded = StrandedWatch()
        self.listen: tuple[str, int] | None = None
        self._links: dict[int, PeerLink] = {}
        self._ids: dict[PeerLink, int] = {}
        self._tls_context: ssl.SSLContext | None = None
        # A private room: links prove the passphrase in their Hellos (private_room.py).
        self._room_key = link_key(config.room_secret) if config.room_secret else None
        # Inbound connections held at once, in total and per address (hostile hosts).
        self._inbound_caps = ConnectionCaps.for_fanout(config.fanout)
        self._chat = ChatGossip(ChatRouter(self.identity, config.name), self._tree_links,
                                self._emit)
        self._intake: VideoIntake | None = None
        self._stats = StreamStats(timing.stats_window_s)
        self._reporter = StatsReporter(self._stats)
        self._audio = AudioStation(
            config.audio, window_s=timing.stats_window_s,
            root_offset=self._root_offset, on_bad_packet=self._bad_audio,
            on_warning=lambda text: self._emit(ErrorRaised(message=text)),
            on_event=self._emit)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="treecast-cpu")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._relay: Relay | None = None
        self._display: Display | None = None
        self._pump: StreamPump | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._directory_open = False
        self._position: act.Report | None = None
        self._stats_timer: asyncio.TimerHandle | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._streamer_announced: str | None = None
        self._playback = PlaybackState()  # the streamer's pause/position (playback.py)
        self._position_s = 0.0  # streamer: where the file stands (last released frame)
        self._auto_timer: asyncio.TimerHandle | None = None
        # What our uplink carries, measured: the child slots we offer follow it.
        self._uplink = UplinkMeter(config.fanout)
        self._shed_at = -SHED_INTERVAL_S

    # --- public API ---------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._pump is not None

    @property
    def depth(self) -> int | None:
        return self.tree.depth

    @property
    def parent_name(self) -> str | None:
        return self.tree.parent_name

    @property
    def parent_link(self) -> PeerLink | None:
        parent = self.tree.parent
        return self._links.get(parent) if parent is not None else None

    @property
    def children(self) -> list[PeerLink]:
        return [self._links[c] for c in self.tree.children if c in self._links]

    @property
    def sound_children(self) -> list[PeerLink]:
        """The children that get sound: not those whose subtree watches nothing
        (``NO_VIDEO``: chat and control only)."""
        relay = self._relay
        return [self._links[c] for c in self.tree.children
                if c in self._links and (relay is None or relay.wants_media(c))]

    @property
    def path(self) -> tuple[PathEntry, ...]:
        """Root .. parent (empty when detached or when we are the root)."""
        return self.tree.path

    def available_layers(self) -> tuple[int, ...]:
        stream = self.tree.stream
        if stream.height <= 0:
            return limits.LAYERS
        return layers.available_layers(stream.height)

    async def start(self) -> None:
        """Listen, enter the room, and stream if the config says so.

        Raises:
            TrackerUnreachableError, LockDeniedError, MediaError: with readable text.
        """
        cfg = self.config
        loop = self._loop = asyncio.get_running_loop()
        try:
            self._audio.open_output(loop)
        except MediaError as exc:
            raise self._fatal(exc) from None
        self._display = Display(self._executor, loop, on_frame=self._on_frame,
                                want_size=self._display_size_for,
                                on_record_error=self._recording_failed,
                                picture_wait=self._audio.picture_wait,
                                on_shown=self._video_shown)
        self._relay = Relay(self._executor, clamp=self.tree.clamp,
                            is_live=self.tree.is_live_epoch,
                            on_picture=lambda f, image: self._intake_().picture(f, image),
                            request_keyframe=self._request_keyframe,
                            on_bad_frame=self._bad_video,
                            on_record_error=self._display.recording_failed)
        self._intake = VideoIntake(self.tree, self._relay, self._display, self._stats,
                                   root_offset=self._root_offset, emit=self._emit)
        self._audio.recording = self._sound_track
        if cfg.record_path:
            try:
                await self.set_recording(cfg.record_path)
            except MediaError as exc:
                raise self._fatal(exc) from None
        opened: FrameSource | None = None
        if cfg.source is not None:
            # A bad file is the user's first mistake to hear about, before any network.
            try:
                opened = await loop.run_in_executor(None, open_source, cfg.source)
                await loop.run_in_executor(None, self._audio.prepare, cfg.source)
            except MediaError as exc:
                if opened is not None:
                    opened.close()
                raise self._fatal(exc) from None
        try:
            # TLS starts in _on_inbound, after the connection caps admitted it: a
            # handshake costs memory and CPU that a refused connection must not get.
            self._server = await asyncio.start_server(
                self._on_inbound, sock=listen_socket(cfg.listen_host, cfg.listen_port))
            self._tls_context = server_context(self.identity) if cfg.tls else None
        except OSError as exc:
            if opened is not None:
                opened.close()
            raise self._fatal(NodeError(
                f"cannot listen on {join_host_port(cfg.listen_host, cfg.listen_port)}: "
                f"{exc.strerror or exc}"
            )) from None
        sock = self._server.sockets[0].getsockname()
        self.listen = self._room.listen = (sock[0], sock[1])
        advertised = await self._map_port(self.listen)
        try:
            if self._directory_factory is not None:
                directory = self._directory_factory(self)
            else:
                directory = await open_directory(cfg, self.peer_id, advertised,
                                                 self._on_directory_change, self.identity)
            self._room.directory = directory
            await directory.open()
        except TrackerUnreachableError as exc:
            await self._close_server()
            await self._unmap_port()
            if opened is not None:
                opened.close()
            raise self._fatal(exc) from None
        mapping = self._portmap.mapping if self._portmap is not None else None
        self._emit(Ready(id=self.peer_id, listen=join_host_port(*self.listen),
                         name=directory.own_name(),
                         mapped=(f"{mapping.external_host}:{mapping.external_port}"
                                 if mapping is not None else None)))
        self._directory_open = True
        self._stats_timer = loop.call_later(cfg.timing.stats_interval_s, self._stats_tick)
        self._auto_timer = loop.call_later(AUTO_TICK_S, self._auto_tick)
        self._on_directory_change(DirectoryChange.STREAMER)
        self._on_directory_change(DirectoryChange.PEERS)
        self._report_position()
        self._arm_timer()
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
        if self._pump is not None:
            await self._end_stream(StreamEnd(StreamEndReason.FINISHED))
        self._apply(self.tree.leave(self._now()))
        for link in list(self._links.values()):
            link.close("leaving")
        for handle in (self._timer, self._stats_timer, self._auto_timer):
            if handle is not None:
                handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._relay is not None:
            await self._relay.close()
        self._audio.close()
        for link in list(self._ids):
            await link.wait_closed()
        await self._close_server()
        if self._room.directory is not None:
            with contextlib.suppress(Exception):
                await self._room.directory.close()
        await self._unmap_port()
        if self._display is not None:
            await self._display.close()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._emit(Stopped(reason=reason))
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def set_resolution(self, layer: int | str) -> None:
        """Change the layer this peer watches (``"auto"``: the best its path carries, up
        to 1080; ``limits.NO_VIDEO``: none, chat and control only); demand follows
        upstream at once."""
        if layer == "auto":
            self._apply(self.tree.set_layer(max(limits.LAYERS), self._now(), auto=True))
            return
        if not isinstance(layer, int) or (layer not in limits.LAYERS
                                          and layer != limits.NO_VIDEO):
            raise ValueError(f"resolution must be one of {limits.LAYERS}, "
                             f"{limits.NO_VIDEO} (no video) or auto")
        self._apply(self.tree.set_layer(layer, self._now()))

    async def set_recording(self, path: str | None) -> None:
        """Start recording what we watch to ``path`` (None stops and finalizes).

        Raises:
            MediaError: the format is unsupported or the file cannot be written.
        """
        assert self._display is not None, "start() first"
        await self._display.set_recording(path, self.tree.stream.fps,
                                          audio=self.config.audio.enabled)

    async def send_chat(self, text: str) -> None:
        """Send a chat line to the whole room (ValueError when empty or too long)."""
        self._chat.send(text)

    async def start_streaming(self, source: SourceSpec,
                              opened: FrameSource | None = None) -> None:
        """Become the room's streamer (root of the tree).

        Args:
            source: what to stream.
            opened: the source already opened from ``source`` (start() checks it early).

        Raises:
            MediaError: the source cannot be opened. LockDeniedError: someone streams.
        """
        directory = self._room.directory
        assert directory is not None and self._relay is not None, "start() first"
        if self._pump is not None:
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
                                 children=lambda: self.sound_children,
                                 epoch=lambda: self.tree.epoch)
        try:
            epoch = await directory.claim()
        except LockDeniedError as exc:
            self._audio.stop_stream()
            frame_source.close()
            self._emit(LockDenied(holder=exc.holder))
            raise
        except TrackerUnreachableError as exc:
            self._audio.stop_stream()
            frame_source.close()
            raise self._fatal(exc) from None
        stream = StreamInfo(frame_source.width, frame_source.height, frame_source.fps,
                            self.config.codec)
        self._apply(self.tree.become_root(epoch, stream, self._now()))
        self._playback.new_stream(self.tree.epoch)
        self._position_s = 0.0
        capture = PacedCapture(frame_source, loop=getattr(source, "loop", False))
        capture.start(loop)
        assert self._display is not None
        self._pump = StreamPump(
            capture, self._relay, self._display, self._executor, self._stats,
            epoch=self.tree.epoch, lease_valid=directory.lease_valid,
            on_released=self._on_released,
            on_progress=lambda pos, dur: self._emit(SourceProgress(position_s=pos,
                                                                   duration_s=dur)),
            on_end=lambda end: self._spawn(self._end_stream(end), "node-end-stream"),
            codec=VideoCodec(self.config.codec), fps=frame_source.fps)
        self._streamer_announced = self.peer_id
        self._emit(StreamStarted(streamer=self.config.name, streamer_id=self.peer_id,
                                 epoch=self.tree.epoch))

    async def stop_streaming(self) -> None:
        if self._pump is not None:
            await self._end_stream(StreamEnd(StreamEndReason.FINISHED))

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume our streamed file, for the whole room.

        Raises:
            MediaError: not streaming a file (a camera or screen cannot pause).
        """
        capture = self._seekable_capture()
        if paused:
            capture.pause()
        else:
            capture.resume()
        self._tell_playback(paused, self._position_s)

    async def seek(self, seconds: float) -> None:
        """Move our streamed file to ``seconds``, for the whole room.

        Raises:
            MediaError: not streaming a file of known length.
        """
        capture = self._seekable_capture()
        duration = capture.source.duration_s or 0.0
        seconds = min(max(float(seconds), 0.0), duration)
        capture.seek(seconds)
        self._position_s = seconds
        self._tell_playback(capture.paused, seconds)

    def _on_released(self, captured_at: float, position_s: float) -> None:
        self._position_s = position_s  # where a pause says the file stands
        self._audio.video_released(captured_at, position_s)

    def _seekable_capture(self) -> PacedCapture:
        if self._pump is None or not self._pump.capture.seekable:
            raise MediaError("only a video file being streamed can pause or seek")
        return self._pump.capture

    def _tell_playback(self, paused: bool, position_s: float) -> None:
        assert self._pump is not None
        message = self._playback.local(self.tree.epoch, paused, position_s,
                                       self._pump.capture.source.duration_s)
        for child in self.children:
            child.send(message)
        self._emit(self._playback.event())

    # --- the tree's actions ---------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic()

    def _apply(self, actions: list[act.Action]) -> None:
        """Carry out what the tree state asked for, in order."""
        for action in actions:
            if isinstance(action, act.Send):
                link = self._links.get(action.link)
                if link is not None:
                    link.send(action.message)
            elif isinstance(action, act.PingDue):
                link = self._links.get(action.link)
                if link is not None:
                    link.send(Ping(t0=time.time()))
            elif isinstance(action, act.Close):
                link = self._links.get(action.link)
                if link is not None:
                    link.close(action.reason, action.bye)
            elif isinstance(action, act.Dial):
                self._spawn(self._dial(action.link, action.candidate), "node-dial")
            elif isinstance(action, act.Report):
                self._position = action
                self._report_position()
            else:
                self._on_tree_event(action)
        self._arm_timer()

    def _report_position(self) -> None:
        """Tell the directory where we are (once it is open; it hears the latest then)."""
        position = self._position
        if self._directory_open and position is not None:
            assert self._room.directory is not None
            self._room.directory.set_position(
                depth=position.depth, free_slots=position.free_slots,
                parent_id=position.parent_id, layer=position.layer,
                streaming=position.streaming)

    def _on_tree_event(self, event: act.Action) -> None:
        assert self._relay is not None
        link = self._links.get(getattr(event, "link", -1))
        if isinstance(event, act.PeerIdentified) and link is not None:
            link.peer_id, link.name = event.peer_id, event.name
        elif isinstance(event, act.ChildAttached) and link is not None:
            if link.outbound:  # we dialled it (reversal): no media from a child
                link.set_media_in(False)
            self._relay.add_child(event.link, link, event.layer, auto=event.auto)
            self._chat.link_up(link, event.peer_id)
            state = self._playback.for_new_child(self.tree.epoch)
            if state is not None:  # paused: no frames will come to tell it otherwise
                link.send(state)
        elif isinstance(event, act.ChildLayerChanged):
            self._relay.set_child_layer(event.link, event.layer, auto=event.auto)
        elif isinstance(event, act.ChildDetached):
            self._relay.remove_child(event.link)
            log.info("child gone: %s", event.reason)
        elif isinstance(event, act.ParentAttached) and link is not None:
            if not link.outbound:  # it dialled us (reversal): its media is welcome now
                link.set_media_in(True)
            self._on_parent_attached(link, event)
        elif isinstance(event, act.ParentDetached):
            self._on_parent_detached(event)

    def _on_parent_attached(self, link: PeerLink, event: act.ParentAttached) -> None:
        assert self._display is not None and self._relay is not None
        try:
            parse_codec(event.accept.codec)
        except CodecError as exc:
            # Watching needs a decoder; relaying would pass on what nobody here checks.
            self._emit(ErrorRaised(message=f"cannot watch {event.name}'s stream: {exc}"))
            link.close(f"cannot decode the stream: {exc}",
                       Bye(reason=str(exc), code=int(ErrorCode.UNEXPECTED)))
            return
        if self._display.recording is not None:
            self._display.recording.fps = event.accept.fps
        # A new parent is a new chain: we and our children start at its keyframe.
        self._relay.restart()
        self._relay.processor.fps = event.accept.fps
        self._intake_().parent_attached()
        self._chat.link_up(link, event.peer_id)
        width, height = self._display_size()
        self._emit(Joined(parent=event.name, parent_id=event.peer_id, depth=event.depth,
                          width=width, height=height))

    def _on_parent_detached(self, event: act.ParentDetached) -> None:
        self._audio.parent_lost()
        self._emit(ParentLost(parent=event.name, parent_id=event.peer_id,
                              reason=event.reason))
        self._intake_().parent_lost(stream_over=event.stream_over)

    def _arm_timer(self) -> None:
        if self._loop is None or self._stopping:
            return
        due = self.tree.get_timer()
        if self._timer is not None and due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        # loop.time() and time.monotonic() are the same clock in asyncio's loops.
        self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._apply(self.tree.handle_timer(self._now()))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task the node keeps (and cancels on stop)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- links ----------------------------------------------------------------------

    def _register(self, link_id: int, link: PeerLink) -> None:
        self._links[link_id] = link
        self._ids[link] = link_id

    async def _dial(self, link_id: int, candidate: Candidate) -> None:
        try:
            link = await open_link(candidate.host, candidate.port,
                                   timeout=self.config.timing.connect_timeout_s,
                                   on_message=self._on_message, on_close=self._on_link_closed,
                                   identity=self.identity if self.config.tls else None,
                                   expected_id=candidate.id, room_key=self._room_key)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot reach %s at %s:%s: %s", candidate.name, candidate.host,
                      candidate.port, exc)
            self._apply(self.tree.link_closed(link_id, f"cannot reach: {exc}", self._now()))
            return
        self._register(link_id, link)
        link.start()
        self._apply(self.tree.connected(link_id, self._now()))

    async def _on_inbound(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        # One host, one spelling: an IPv4 peer on our dual-stack listener is a.b.c.d.
        address = plain_host(str(peer[0])) if isinstance(peer, tuple) else "?"
        refusal = self._inbound_caps.admit(address)
        if refusal is not None:
            with contextlib.suppress(Exception):
                writer.write(encode(Bye(reason=refusal,
                                        code=int(ErrorCode.TOO_MANY_CONNECTIONS))))
                writer.close()
            return
        if self._tls_context is not None:
            try:
                await writer.start_tls(self._tls_context,
                                       ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S)
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                log.debug("TLS handshake with %s failed: %s", address, exc)
                self._inbound_caps.release(address)
                writer.close()
                return
            if self._stopping:
                self._inbound_caps.release(address)
                writer.close()
                return
        link = PeerLink(reader, writer, on_message=self._on_message,
                        on_close=self._on_link_closed, outbound=False,
                        guard=LinkGuard(self.identity.public_key) if self.config.tls else None,
                        room_key=self._room_key, own_id=self.peer_id)
        link.admitted_from = address
        self._register(self.tree.inbound(self._now(), address if address != "?" else None), link)
        link.start()
        self._arm_timer()

    def _tree_links(self, but: PeerLink | None) -> list[PeerLink]:
        """Parent and children (chat travels on these)."""
        ids = self.tree.children
        if self.tree.parent is not None:
            ids = [*ids, self.tree.parent]
        return [link for i in ids if (link := self._links.get(i)) is not None
                and link is not but and not link.closed]

    def _on_link_closed(self, link: PeerLink, reason: str) -> None:
        link_id = self._ids.pop(link, None)
        if link.admitted_from is not None:
            self._inbound_caps.release(link.admitted_from)
            link.admitted_from = None
        self._reporter.link_closed(link.counters)
        if link.peer_id is not None:
            self._chat.link_gone(link.peer_id)
        if link_id is None:
            return
        del self._links[link_id]
        self._apply(self.tree.link_closed(link_id, reason, self._now()))

    async def _on_message(self, link: PeerLink, message: Message) -> None:
        link_id = self._ids.get(link)
        if link_id is None:
            return
        now = self._now()
        self.tree.heard(link_id, now)
        if isinstance(message, VideoFrame):
            self._intake_().frame(link_id, message)
        elif isinstance(message, AudioFrame):
            # Only the parent sends sound, of the live stream; the station forwards it
            # untouched to every child, then counts, records and plays it.
            if link_id == self.tree.parent and self.tree.is_live_epoch(message.epoch):
                self._audio.received(message, self.sound_children)
        elif isinstance(message, Ping):
            link.send(Pong(t0=message.t0, t1=time.time(), t2=time.time(),
                           root_offset=self._root_offset()))
        elif isinstance(message, Pong):
            link.clock.add_sample(message.t0, message.t1, message.t2, time.time())
            if link_id == self.tree.parent:
                link.root_offset = message.root_offset
        elif isinstance(message, Chat):
            self._chat.received(link, message)
        elif isinstance(message, ChatHave):
            self._chat.offered(link, message)
        elif isinstance(message, Error):
            self._emit(ErrorRaised(message=f"{link.name}: {message.reason}"))
        elif isinstance(message, Playback):
            # Only from the parent, of the live stream: kept, passed down, reported.
            if link_id == self.tree.parent and self._playback.received(message,
                                                                      self.tree.epoch):
                for child in self.children:
                    child.send(message)
                # A paused stream sends no video: the parent is not silent then.
                self.tree.set_video_paused(self._playback.paused, now)
                self._emit(self._playback.event())
        elif isinstance(message, KeyframeRequest):
            # From a child only (a parent has nothing to ask of us); the relay routes it
            # to the layer's producer, throttled per layer there.
            if link_id in self.tree.children and self._relay is not None:
                self._relay.keyframe_requested(link_id, message.layer)
        else:
            self._apply(self.tree.receive(link_id, message, now))

    # --- video (relay and viewer) ---------------------------------------------------

    def _intake_(self) -> VideoIntake:
        assert self._intake is not None, "start() first"
        return self._intake

    def _request_keyframe(self, layer: int) -> None:
        """Ask our parent for a keyframe of ``layer`` (the relay rate-limits this)."""
        parent = self.parent_link
        if parent is not None:
            parent.send(KeyframeRequest(layer=layer))

    def _bad_video(self, reason: str) -> None:
        """Our parent sent video our decoder refuses: that link goes, we re-join."""
        parent = self.parent_link
        log.warning("closing the link to %s: %s", self.tree.parent_name, reason)
        if parent is not None:
            parent.close(reason, Bye(reason=reason[:limits.MAX_REASON_CHARS],
                                     code=int(ErrorCode.MALFORMED)))

    def _root_offset(self) -> float | None:
        """Root clock minus our clock (0 at the root)."""
        if self._pump is not None:
            return 0.0
        parent = self.parent_link
        if parent is None or parent.root_offset is None or parent.clock.offset is None:
            return None
        return parent.root_offset + parent.clock.offset

    def _display_size(self) -> tuple[int, int]:
        stream = self.tree.stream
        if stream.height <= 0 or (self._pump is None and self.tree.layer == limits.NO_VIDEO):
            return 0, 0  # no stream, or we watch none of it
        if self._pump is not None:
            return stream.width, stream.height
        return layers.layer_size(self.tree.clamp(self.tree.layer), stream.width,
                                 stream.height)

    def _display_size_for(self, frame: VideoFrame) -> tuple[int, int] | None:
        """The size to show a received frame at, when smaller than the frame."""
        want = self.tree.clamp(self.tree.layer)
        stream = self.tree.stream
        if frame.layer <= want or stream.height <= 0 or want == limits.NO_VIDEO:
            return None  # NO_VIDEO: a frame sent before our demand arrived
        return layers.layer_size(want, stream.width, stream.height)

    def _video_shown(self, captured_at: float, ready_at: float, shown_at: float) -> None:
        """A picture reached the screen (worker thread): tell the sound how late it was."""
        offset = self._root_offset()
        if offset is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(
                self._audio.video_shown, ready_at + offset - captured_at,
                shown_at + offset - captured_at)

    def _bad_audio(self, reason: str) -> None:
        """The parent's sound does not decode: that link goes, nothing else."""
        parent = self.parent_link
        if parent is not None:
            parent.close(f"bad audio from the parent: {reason}",
                         Bye(reason=f"bad audio: {reason}"[: limits.MAX_REASON_CHARS],
                             code=int(ErrorCode.UNEXPECTED)))

    async def set_volume(self, volume: float) -> None:
        """Playback volume, 0..1 (ValueError outside)."""
        self._audio.set_volume(volume)

    async def set_muted(self, muted: bool) -> None:
        """Mute or unmute playback (the sound is still received and recorded)."""
        self._audio.set_muted(muted)

    def _sound_track(self) -> H264Recorder | None:
        """Where received sound is recorded: the H.264 recording's Opus track."""
        recording = self._display.recording if self._display is not None else None
        return None if recording is None else recording.passthrough

    def _recording_failed(self, exc: MediaError) -> None:
        self._emit(ErrorRaised(message=f"recording stopped: {exc}"))

    # --- the stream -----------------------------------------------------------------

    async def _end_stream(self, end: StreamEnd) -> None:
        pump, self._pump = self._pump, None
        if pump is None:
            return
        await pump.stop()
        self._audio.stop_stream()
        self._apply(self.tree.end_root(self._now()))
        if self._room.directory is not None:
            with contextlib.suppress(Exception):
                await self._room.directory.release()
        self._streamer_announced = None
        if end.reason is StreamEndReason.SOURCE_FAILED:
            self._emit(ErrorRaised(message=end.text))
        self._emit(StreamEnded(streamer=self.config.name, reason=end.reason,
                                detail=end.detail))

    # --- directory, timers, stats ---------------------------------------------------

    def _on_directory_change(self, change: DirectoryChange) -> None:
        directory = self._room.directory
        if directory is None or self._stopping or not self._directory_open:
            return  # start() catches up once the directory is open and Ready is out
        now = self._now()
        if change is DirectoryChange.PEERS:
            self._emit(TreeChanged(peers=directory.tree(), self_id=self.peer_id,
                                   room_size=directory.room_size(),
                                   levels=directory.tree_levels()))
            self._apply(self.tree.set_reachable(directory.reachable(), self._fanout(), now))
            self._apply(self.tree.directory_changed(now))
            self._reverse(now)
        elif change is DirectoryChange.STREAMER:
            streamer = directory.streamer()
            if streamer is None:
                if self._streamer_announced is not None and self._pump is None:
                    self._streamer_announced = None
                    self._emit(StreamEnded(streamer=None, reason=StreamEndReason.FINISHED))
                self._apply(self.tree.set_streamer(None, 0, now))
                return
            if self._pump is not None and streamer.id != self.peer_id:
                self._spawn(self._end_stream(StreamEnd(StreamEndReason.LOCK_TAKEN)),
                            "node-end-stream")
            if streamer.id != self._streamer_announced:
                self._streamer_announced = streamer.id
                if streamer.id != self.peer_id:
                    self._emit(StreamStarted(streamer=streamer.name, streamer_id=streamer.id,
                                             epoch=streamer.epoch))
            self._apply(self.tree.set_streamer(streamer.id, streamer.epoch, now))
        elif change is DirectoryChange.CLOSED:
            # Not fatal: the directory reconnects by itself (the next tracker of the
            # list first) while the tree links, the stream and chat carry on.
            self._emit(ErrorRaised(
                message="lost the connection to the tracker; reconnecting (the stream "
                        "and chat go on)"))

    def _auto_tick(self) -> None:
        """Children's send queues: they move ``auto`` children's layers, and they show
        what our uplink carries (the child slots we offer follow it)."""
        assert self._loop is not None and self._relay is not None
        self._auto_timer = self._loop.call_later(AUTO_TICK_S, self._auto_tick)
        now = self._now()
        self._reverse(now)
        self._relay.observe(now)
        children = self.children
        self._uplink.observe(now, sum(c.counters.video_bytes_out for c in children),
                             sum(1 for c in children if c.queued_frames >= UPLINK_BACKLOG_FRAMES),
                             len(children))
        fanout = self._fanout()
        if fanout != self.tree.fanout and self.tree.fanout != 0:
            self._apply(self.tree.set_reachable(True, fanout, now))
        if (self._uplink.over(len(children), self._per_child_bps())
                and now - self._shed_at >= SHED_INTERVAL_S):
            self._shed_at = now
            log.info("uplink full (%.0f kbit/s): a child moves to a sibling",
                     (self._uplink.capacity_bps or 0) / 1000)
            self._apply(self.tree.shed_child(now))

    def _per_child_bps(self) -> float:
        children = len(self.tree.children)
        rate = self._uplink.rate_bps()
        if children and rate > 0:
            return rate / children
        stream = self.tree.stream
        top = self.tree.clamp(max(limits.LAYERS)) if stream.height else 720
        return float(layer_bitrate(top, stream.fps))

    def _fanout(self) -> int:
        """Children we take: ``--max-children``, fewer when the measured uplink cannot
        feed them; while it is unmeasured, none more while a child backs up."""
        if self._uplink.capacity_bps is None:
            if self._uplink.calm(self._now()):
                return self.config.fanout
            # A child backed up a moment ago: take no more until the uplink is calm.
            return min(self.config.fanout, len(self.tree.children))
        return self._uplink.slots(self._per_child_bps())

    # --- reachability from outside (portmap.py, reachability.py) ------------------------

    async def _map_port(self, listen: tuple[str, int]) -> tuple[str, int]:
        """Ask the home router for a port mapping if configured; the address to register.

        With a mapping we register under its external port: the tracker lists us at the
        address our registration comes from (the router's) and dials that back.
        """
        if not self.config.port_mapping:
            return listen
        self._portmap = PortMapper(listen[1])
        mapping = await self._portmap.open()
        if mapping is None:
            return listen
        self._room.listen = (listen[0], mapping.external_port)
        return self._room.listen

    async def _unmap_port(self) -> None:
        if self._portmap is not None:
            await self._portmap.close()

    def _reverse(self, now: float) -> None:
        """Connection reversal: take offers from undialable parents; make ours."""
        directory = self._room.directory
        if isinstance(directory, TrackerDirectory) and not self._stopping:
            self.tree.offers_from = directory.offerers()
            self._apply(self.tree.offer(directory.orphans(), now))
            streamer = directory.streamer()
            waiting = (not self.tree.attached and self._pump is None
                       and streamer is not None and streamer.id != self.peer_id)
            why = self._stranded.update(now, waiting=waiting,
                                        reachable=directory.reachable(),
                                        candidates=len(directory.candidates()))
            if why is not None:
                self._emit(ErrorRaised(message=why))

    def _reachability(self) -> str:
        directory = self._room.directory
        mapped = self._portmap is not None and self._portmap.mapping is not None
        parent = self.tree.parent_id
        # The room list says who registered as a relay (a large room may not list our
        # parent: then we cannot tell and say outbound-only).
        relayed = directory is not None and parent is not None and any(
            p.id == parent and p.relay for p in directory.tree())
        return classify(directory.reachable() if directory is not None else None,
                        mapped, relayed).value

    def _stats_tick(self) -> None:
        assert self._loop is not None
        self._stats_timer = self._loop.call_later(self.config.timing.stats_interval_s,
                                                  self._stats_tick)
        width, height = self._display_size()
        assert self._relay is not None
        wanted = self.tree.clamp(self.tree.layer)
        if self._pump is not None:
            shown, keyframes = wanted, self._pump.keyframes
            shown = self.tree.clamp(max(limits.LAYERS))
        else:
            layer_in = self._intake_().layer_in
            shown = min(wanted, layer_in) if layer_in is not None else wanted
            if self.tree.auto and layer_in is not None:
                shown = layer_in
            keyframes = self._relay.keyframes_in
        position = Position(width=width, height=height, depth=self.tree.depth,
                            parent=self.tree.parent_name, children=len(self.tree.children),
                            layer=shown, layer_in=self._intake_().layer_in,
                            wanted="auto" if self.tree.auto else self.tree.layer,
                            codec=self.tree.stream.codec if self.tree.stream.height else None,
                            keyframes=keyframes, reachability=self._reachability())
        stats = self._reporter.build(time.time(), [link.counters for link in self._ids],
                                     position, self._audio.snapshot())
        paused = self._playback.paused and self._playback.epoch == self.tree.epoch
        self._emit(dataclasses.replace(stats, paused=paused) if paused else stats)

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
