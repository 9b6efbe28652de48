"""The peer node: the parts of a peer, built and connected, started and stopped.

Theory of operation
-------------------
The node owns no logic of its own; each part has one job:

- ``TreeState`` (tree/state.py, sans-IO) decides joining, accepting, demand, repair,
  fencing and heartbeats; ``TreeDriver`` (tree_driver.py) carries out its actions
  on the links in ``LinkTable`` (linktable.py) and runs its timer; ``Connections``
  (connections.py) listens, admits and dials.
- ``MessageDispatch`` (dispatch.py) hands every received message to its part;
  ``Attachments`` (attachments.py) makes the parts follow the tree's news.
- ``Relay`` (relay.py) sends every frame to the children that need it; video from
  the parent enters through ``VideoIntake`` (intake.py); ``Display`` (display.py)
  shows and records; ``AudioStation`` (audio/station.py) carries sound.
- ``Broadcast`` (broadcast.py) is the streamer's role: the lock, the ``StreamPump``
  (pump.py), pause and seek.
- ``RoomWatch`` (room_watch.py) follows the directory; ``FanoutControl`` (fanout.py)
  sizes our child slots to the measured uplink; ``ChatGossip`` (gossip.py) carries
  chat; ``StatsReporter`` (report.py) builds the once-a-second Stats event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from peer.node.attachments import Attachments
from peer.node.audio.station import AudioStation
from peer.node.broadcast import Broadcast
from peer.node.chat import ChatRouter
from peer.node.config import NodeConfig, SourceSpec
from peer.node.connections import Connections
from peer.node.directory import Directory, DirectoryChange
from peer.node.dispatch import MessageDispatch
from peer.node.display import Display
from peer.node.errors import MediaError, NodeError
from peer.node.events import DecodedFrame, ErrorRaised, NodeEvent, Ready, Stopped
from peer.node.fanout import AUTO_TICK_S, FanoutControl
from peer.node.gossip import ChatGossip
from peer.node.identity_file import load_identity
from peer.node.intake import VideoIntake
from peer.node.link import PeerLink
from peer.node.linktable import LinkTable
from peer.node.loops import loop_name
from peer.node.media_auth import MediaSigner
from peer.node.membership import MembershipRefusals
from peer.node.playback import PlaybackState
from peer.node.punching import HolePunching
from peer.node.relay import Relay
from peer.node.report import StatsReporter, position_of
from peer.node.room import DirectoryRoom, open_directory
from peer.node.room_watch import RoomWatch
from peer.node.stats import StreamStats
from peer.node.tasks import Repeating, TaskSet
from peer.node.tree import actions as act
from peer.node.tree.state import MEDIA_HANDOVER_S, TreeState, TreeTiming
from peer.node.tree_driver import TreeDriver, now
from protocol import Bye, ErrorCode, KeyframeRequest, Message, PathEntry, limits
from protocol.addresses import join_host_port

if TYPE_CHECKING:
    from peer.node.media import FrameSource  # a streamer's (see broadcast.py)

log = logging.getLogger(__name__)

# A tick due this close is run now (timers fire a little early or late): the auto and
# stats ticks share one timer, and a leaf's come together (one wake-up a second). The
# auto tick's pace is ``FanoutControl.next_tick_s`` (fanout.py).
TICK_SLACK_S = 0.01


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
        self._directory_factory = directory_factory
        self.listen: tuple[str, int] | None = None
        self._stopping = False
        self._stopped = asyncio.Event()
        self._ticks: list[Repeating] = []
        self._auto_due = self._stats_due = 0.0  # when each job of the tick is due
        emit = self._emit
        timing = config.timing

        # The tree: its state, the links it names, the driver between them.
        self._room = DirectoryRoom(config)
        self.tree = tree = TreeState(
            peer_id=self.peer_id, name=config.name, room=config.room, fanout=config.fanout,
            layer=config.resolution, room_view=self._room,
            timing=TreeTiming(ping_interval_s=timing.ping_interval_s,
                              link_timeout_s=timing.link_timeout_s,
                              connect_timeout_s=timing.connect_timeout_s,
                              video_timeout_s=timing.video_timeout_s,
                              keepalive_s=timing.keepalive_s,
                              child_timeout_s=timing.child_timeout_s),
            now=now(), signed=True, handover_s=MEDIA_HANDOVER_S)
        signer = MediaSigner(self.identity)  # our stream and transcodes (issue 13)
        tree.auto = config.auto_resolution
        self.links = links = LinkTable(tree)
        self._tasks = TaskSet()
        self._fanout = FanoutControl(tree, config.fanout)
        tree.admits = self._fanout.fits  # a joiner's layer must fit our uplink too

        # The media: relay, intake, display, sound.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="treecast-cpu")
        self._stats = StreamStats(timing.stats_window_s)
        self._reporter = StatsReporter(self._stats)
        self._playback = playback = PlaybackState(sign=signer.playback)  # pause/position
        self._audio = audio = AudioStation(
            config.audio, window_s=timing.stats_window_s, root_offset=links.root_offset,
            on_bad_packet=lambda why: links.drop_parent(f"bad audio from the parent: {why}",
                                                        ErrorCode.UNEXPECTED),
            on_warning=lambda text: emit(ErrorRaised(message=text)), on_event=emit)
        self._display = display = Display(
            self._executor, on_frame=on_frame,
            want_size=lambda frame: tree.view_size_for(frame.layer),
            on_record_error=lambda exc: emit(ErrorRaised(message=f"recording stopped: {exc}")),
            picture_wait=audio.picture_wait, on_shown=audio.picture_shown)
        audio.recording = display.sound_track
        # The relay hands decoded pictures to the intake, made next (it needs the relay).
        self._relay = relay = Relay(
            self._executor, clamp=tree.clamp, is_live=tree.is_live_epoch,
            on_picture=lambda frame, image: intake.picture(frame, image),
            request_keyframe=lambda layer: links.to_parent(KeyframeRequest(layer=layer)),
            on_bad_frame=lambda why: links.drop_parent(why, ErrorCode.MALFORMED),
            on_record_error=display.recording_failed, signer=signer)
        self._intake = intake = VideoIntake(
            tree, relay, display, self._stats, root_offset=links.root_offset, emit=emit,
            refuse=lambda why: driver.apply(tree.refuse_parent(why, now())),
            take_over=lambda: driver.apply(tree.take_over(now())),
            refuse_incoming=lambda why: driver.apply(tree.refuse_incoming(why, now())))
        self._chat = chat = ChatGossip(ChatRouter(self.identity, config.name),
                                       links.neighbours, emit)

        # The tree's driver between the state and the links; messages to their parts.
        # Links dial through the connections and deliver to the dispatch and driver
        # made below (no link exists before start() listens).
        attachments = Attachments(tree, links, relay=relay, display=display, intake=intake,
                                  chat=chat, audio=audio, playback=playback, emit=emit)
        self._connections = Connections(
            config, self.identity, on_close=self._on_link_closed,
            on_message=self._on_message,
            on_inbound=lambda link, address: driver.inbound(link, address))
        self._driver = driver = TreeDriver(tree, links, self._connections, self._room,
                                           self._tasks, on_event=self._tree_event)
        self._attachments = attachments
        self._dispatch = MessageDispatch(driver, links, intake=intake, audio=audio, chat=chat,
                                   relay=relay, playback=playback, emit=emit)

        # The streamer's role, and the room's changes.
        self._broadcast = Broadcast(config, self.peer_id, driver, self._room, links,
                                    relay=relay, display=display, executor=self._executor,
                                    signer=signer,
                                    stats=self._stats, audio=audio, playback=playback,
                                    tasks=self._tasks, emit=emit, fatal=self._fatal)
        self._refusals = MembershipRefusals()  # a private room's members refusing us
        # Hole punches: the tracker's invitations become reversal offers (punching.py).
        self._punching = HolePunching(
            tree, self._room, self._tasks,
            listen_port=lambda: self._connections.listen_port,
            offer=lambda candidate, at: driver.apply(tree.offer([candidate], at)),
            adopt=self._connections.adopt, connect_timeout_s=timing.connect_timeout_s)
        self._connections.punching = self._punching
        self._room_watch = RoomWatch(self.peer_id, self._room, driver, self._broadcast,
                                     self._fanout, self._connections, emit, self._punching)

    # --- what the tree looks like from here ------------------------------------------

    @property
    def streaming(self) -> bool:
        return self._broadcast.pump is not None

    @property
    def depth(self) -> int | None:
        return self.tree.depth

    @property
    def children(self) -> list[PeerLink]:
        return self.links.children

    @property
    def path(self) -> tuple[PathEntry, ...]:
        """Root .. parent (empty when detached or when we are the root)."""
        return self.tree.path

    def available_layers(self) -> tuple[int, ...]:
        return self.tree.available_layers()

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Listen, enter the room, and stream if the config says so.

        Raises:
            TrackerUnreachableError, LockDeniedError, MediaError: with readable text.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._driver.start(loop)
        self._display.start(loop)
        self._driver.apply(self.tree.set_sound(self._audio.listening(recording=False), now()))
        try:
            self._audio.open_output(loop)
            if cfg.record_path:
                await self.set_recording(cfg.record_path)
        except MediaError as exc:
            raise self._fatal(exc) from None
        # A bad file is the user's first mistake to hear about, before any network.
        opened = await self._broadcast.open(cfg.source) if cfg.source is not None else None
        try:
            self.listen = self._room.listen = await self._connections.listen()
            self._room.listen = advertised = await self._connections.map_port(self.listen)
            directory = (self._directory_factory(self) if self._directory_factory is not None
                         else await open_directory(cfg, self.identity, advertised,
                                                   self._room_watch.changed))
            self._room.directory = directory
            await directory.open()
        except NodeError as exc:
            await self._connections.close()
            if opened is not None:
                opened.close()
            raise self._fatal(exc) from None
        mapping = self._connections.mapping
        self._emit(Ready(id=self.peer_id, listen=join_host_port(*self.listen),
                         name=directory.own_name(),
                         mapped=(f"{mapping.external_host}:{mapping.external_port}"
                                 if mapping is not None else None),
                         loop=loop_name(loop)))
        self._room_watch.live = True
        self._auto_due = now() + AUTO_TICK_S
        self._stats_due = now() + cfg.timing.stats_interval_s
        self._ticks = [Repeating(loop, self._next_tick, self._tick)]
        self._room_watch.changed(DirectoryChange.STREAMER)
        self._room_watch.changed(DirectoryChange.PEERS)
        self._driver.start_reporting()
        self._driver.arm()
        if cfg.source is not None:
            try:
                await self._broadcast.start(cfg.source, opened)
            except NodeError:
                await self.stop("could not start streaming")
                raise

    async def stop(self, reason: str = "quit") -> None:
        """Leave cleanly: children are told where to go, the tracker is told. Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._room_watch.live = False
        self._connections.closing = True
        self._punching.closing = True
        await self._broadcast.stop()
        self._driver.stop()
        self._driver.apply(self.tree.leave(now()))
        for link in self.links:
            link.close("leaving")
        for tick in self._ticks:
            tick.cancel()
        await self._tasks.cancel_all()
        await self._relay.close()
        self._audio.close()
        for link in self.links:
            await link.wait_closed()
        await self._connections.close()
        if self._room.directory is not None:
            with contextlib.suppress(Exception):
                await self._room.directory.close()
        await self._display.close()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)
        self._emit(Stopped(reason=reason))
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    # --- what the user asks for ------------------------------------------------------

    async def set_resolution(self, layer: int | str) -> None:
        """Change the layer this peer watches (``"auto"``: the best its path carries, up
        to 1080; ``limits.NO_VIDEO``: none, chat and control only); demand follows
        upstream at once."""
        if layer == "auto":
            self._driver.apply(self.tree.set_layer(max(limits.LAYERS), now(), auto=True))
            return
        if not isinstance(layer, int) or (layer not in limits.LAYERS
                                          and layer != limits.NO_VIDEO):
            raise ValueError(f"resolution must be one of {limits.LAYERS}, "
                             f"{limits.NO_VIDEO} (no video) or auto")
        self._driver.apply(self.tree.set_layer(layer, now()))

    async def set_recording(self, path: str | None) -> None:
        """Start recording what we watch to ``path`` (None stops and finalizes).

        Raises:
            MediaError: the format is unsupported or the file cannot be written.
        """
        await self._display.set_recording(path, self.tree.stream.fps,
                                          audio=self.config.audio.enabled)
        self._driver.apply(self.tree.set_sound(self._audio.listening(
            recording=self._display.recording is not None), now()))

    async def send_chat(self, text: str) -> None:
        """Send a chat line to the whole room (ValueError when empty or too long)."""
        self._chat.send(text)

    async def start_streaming(self, source: SourceSpec,
                              opened: FrameSource | None = None) -> None:
        """Become the room's streamer (see ``Broadcast.start``)."""
        await self._broadcast.start(source, opened)

    async def stop_streaming(self) -> None:
        await self._broadcast.stop()

    async def set_paused(self, paused: bool) -> None:
        """Pause or resume our streamed file for the whole room (MediaError if none)."""
        self._broadcast.set_paused(paused)

    async def seek(self, seconds: float) -> None:
        """Move our streamed file to ``seconds`` for the whole room (MediaError if none)."""
        self._broadcast.seek(seconds)

    async def set_volume(self, volume: float) -> None:
        """Playback volume, 0..1 (ValueError outside)."""
        self._audio.set_volume(volume)

    async def set_muted(self, muted: bool) -> None:
        """Mute or unmute playback (the sound is still received and recorded)."""
        self._audio.set_muted(muted)

    # --- links: in, out, gone ------------------------------------------------------

    def _on_link_closed(self, link: PeerLink, reason: str) -> None:
        self._connections.closed(link)
        self._reporter.link_closed(link.counters)
        if link.peer_id is not None:
            self._chat.link_gone(link.peer_id)
        self._refused(link, reason)
        self._driver.closed(link, reason)

    def _on_message(self, link: PeerLink, message: Message) -> None:
        if isinstance(message, Bye):  # a private room's member may be refusing us
            self._refused(link, message.reason)
        self._dispatch(link, message)

    def _refused(self, link: PeerLink, reason: str) -> None:
        why = self._refusals.refused(reason, outbound=link.outbound,
                                     seeking=not self.tree.attached)
        if why is not None:
            self._emit(ErrorRaised(message=why))

    # --- ticks ---------------------------------------------------------------------

    def _tick(self) -> None:
        """The node's one timer: the auto tick and the stats tick, each when due."""
        at = now()
        auto = at + TICK_SLACK_S >= self._auto_due
        if at + TICK_SLACK_S >= self._stats_due:
            self._stats_due = at + self.config.timing.stats_interval_s
            self._stats_tick()
        if auto:
            self._auto_due = marker = at + AUTO_TICK_S  # (if the tick raises)
            interval = self._auto_interval(at, self._auto_tick(at))
            if self._auto_due != marker:
                return  # a child attached meanwhile (_tree_event): look again at once
            self._auto_due = at + interval
            if interval > AUTO_TICK_S and at + AUTO_TICK_S <= self._stats_due < self._auto_due:
                # A slow tick comes a little early to share the stats tick's wake-up.
                self._auto_due = self._stats_due

    def _tree_event(self, event: act.TreeEvent) -> None:
        self._attachments.handle(event)
        if isinstance(event, act.ChildAttached):
            # Its join keyframe is the burst that samples our uplink (and a first
            # child makes a leaf a relay): the auto tick comes at once, and at the
            # fast pace from there (``FanoutControl.settled``: a child is new).
            self._auto_due = now()
            if self._ticks:
                self._ticks[0].reschedule()

    def _next_tick(self) -> float:
        return max(0.0, min(self._auto_due, self._stats_due) - now())

    def _auto_tick(self, at: float) -> float:
        """Children's send queues: they move ``auto`` children's layers, and they show
        what our uplink carries (the child slots we offer follow it). Returns when
        the automatic layers need looking at again."""
        self._room_watch.reverse(at)
        look_at = self._relay.observe(at)
        children = self.links.children
        self._driver.apply(self._fanout.tick(
            at, sum(c.counters.video_bytes_out for c in children),
            [c.queued_frames for c in children],
            {c: c.counters.video_overflows for c in children}))
        return look_at

    def _auto_interval(self, at: float, look_at: float) -> float:
        # Joining, or offering ourselves to orphans (connection reversal): fast.
        seeking = not self.tree.attached or not self._room.reachable()
        return self._fanout.next_tick_s(at, look_at, seeking=seeking)

    def _stats_tick(self) -> None:
        pump = self._broadcast.pump
        position = position_of(
            self.tree, streaming=pump is not None, layer_in=self._intake.layer_in,
            keyframes=pump.keyframes if pump is not None else self._relay.keyframes_in,
            reachability=self._room_watch.reachability())
        paused = self._playback.paused and self._playback.epoch == self.tree.epoch
        self._emit(self._reporter.build(time.time(), [link.counters for link in self.links],
                                        position, self._audio.snapshot(), paused=paused,
                                        forged=self._intake.guard.refused))

    # --- reporting -----------------------------------------------------------------

    def _emit(self, event: NodeEvent) -> None:
        try:
            self._emit_cb(event)
        except Exception:  # a broken listener must not take the node down
            log.exception("event listener failed on %s", event.KIND)

    def _fatal(self, exc: NodeError) -> NodeError:
        self._emit(ErrorRaised(message=str(exc), fatal=True))
        return exc
