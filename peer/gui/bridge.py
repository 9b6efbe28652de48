"""The one place where the node (asyncio, its own thread) meets Qt (GUI thread).

Theory of operation
-------------------
``NodeBridge`` owns a :class:`~peer.node.runner.NodeThread` and the node running on
it. Three kinds of traffic cross the thread boundary, each in one direction only:

* Node events: the node calls ``on_event`` on its loop thread. The bridge emits a
  private signal with the event; that signal is connected with ``QueuedConnection`` to
  a slot of the bridge, which lives in the GUI thread, so the slot re-emits the event
  as the public per-kind signal (``stats_updated``, ``chat_received``, ...) in the GUI
  thread. Views connect to those and never see another thread.
* Frames: ``on_frame`` runs on a worker thread for every decoded frame. The BGR
  array becomes a QImage that owns its pixels right there (off the GUI thread), goes
  into a single "latest frame" slot under a lock, and at most one ``frame_ready``
  notification is in flight at a time. The view pulls the picture with
  :meth:`NodeBridge.take_frame`. A slow paint therefore drops frames; it never builds
  a queue of them.
* Actions: GUI slots (``start``, ``send_chat``, ...) submit coroutines to the node
  thread and return at once. When the coroutine finishes, its result comes back as a
  signal (``started``, ``streaming_changed``, ``action_failed``...). Nothing here ever
  waits on a future in the GUI thread.

This module is the only one in ``peer.gui`` that imports ``peer.node``: the names the
views need (event classes, source specs) are re-exported from here so the rest of the
GUI depends on one adapter, not on the node's internals.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PyQt6.QtCore import QObject, Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from peer.node.config import CameraSource, FileSource, NodeConfig, PatternSource, SourceSpec
from peer.node.errors import LockDeniedError, MediaError, NodeError, TrackerUnreachableError
from peer.node.events import (
    ChatReceived,
    DecodedFrame,
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
    TreePeer,
)
from peer.node.runner import NodeThread
from protocol import limits

__all__ = [
    "LAYERS",
    "MAX_CHAT_CHARS",
    "MAX_NAME_CHARS",
    "MAX_ROOM_CHARS",
    "STOP_GRACE_MS",
    "CameraSource",
    "ChatReceived",
    "ErrorRaised",
    "FileSource",
    "Joined",
    "LanSessionInfo",
    "LanSessions",
    "LockDenied",
    "NodeBridge",
    "NodeError",
    "NodeFactory",
    "ParentLost",
    "PatternSource",
    "Ready",
    "Resumed",
    "RoomProbe",
    "RoomStatus",
    "SessionRequest",
    "SourceProgress",
    "SourceSpec",
    "Stats",
    "Stopped",
    "StreamEnded",
    "StreamStarted",
    "TreeChanged",
    "TreePeer",
    "make_config",
]

log = logging.getLogger(__name__)

LAYERS = limits.LAYERS
MAX_NAME_CHARS = limits.MAX_NAME_CHARS
MAX_ROOM_CHARS = limits.MAX_ROOM_CHARS
MAX_CHAT_CHARS = limits.MAX_CHAT_CHARS

# node.stop() sends Byes and waits for the tracker; past this the bridge tears the
# loop down anyway so closing the window never hangs on a dead network.
STOP_GRACE_MS = 4000
# A tracker answers a room query in milliseconds on a LAN; a few seconds covers a
# slow WAN without leaving the start screen stale for long.
ROOM_QUERY_TIMEOUT_S = 3.0


class NodeLike(Protocol):
    """The node API the bridge drives (``peer.node.node.Node`` or a test fake)."""

    peer_id: str

    async def start(self) -> None: ...
    async def stop(self, reason: str = "quit") -> None: ...
    async def set_resolution(self, layer: int) -> None: ...
    async def send_chat(self, text: str) -> None: ...
    async def start_streaming(self, source: SourceSpec) -> None: ...
    async def stop_streaming(self) -> None: ...
    async def set_recording(self, path: str | None) -> None: ...
    def available_layers(self) -> tuple[int, ...]: ...


NodeFactory = Callable[
    [NodeConfig, Callable[[NodeEvent], None], Callable[[DecodedFrame], None] | None],
    NodeLike,
]


def _queued(signal: Any, slot: Callable[..., None]) -> None:
    """Connect so the slot always runs later in the receiver's (GUI) thread."""
    signal.connect(slot, Qt.ConnectionType.QueuedConnection)


def default_node_factory(
    config: NodeConfig,
    on_event: Callable[[NodeEvent], None],
    on_frame: Callable[[DecodedFrame], None] | None,
) -> NodeLike:
    """Build the real node (imported late so the GUI loads without it).

    Raises:
        NodeError: the node module is not available in this build.
    """
    try:
        from peer.node.node import Node
    except ImportError as exc:
        raise NodeError(f"The peer node is not available in this build ({exc}).") from exc
    node: NodeLike = Node(config, on_event=on_event, on_frame=on_frame)
    return node


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the start screen asks for, in GUI terms.

    Attributes:
        name: the user's display name.
        room: the room to meet in.
        tracker: (host, port) of the tracker, or None to meet on the LAN only.
        lan: find peers (and a tracker) with mDNS on the local network.
        streaming: True for the streamer view, False to watch.
        resolution: the layer a viewer asks for first.

    Recording is not part of the request: the viewer starts and stops it during the
    session (:meth:`NodeBridge.set_recording`).
    """

    name: str
    room: str
    tracker: tuple[str, int] | None
    lan: bool
    streaming: bool
    resolution: int = 720


def make_config(request: SessionRequest, source: SourceSpec | None = None) -> NodeConfig:
    """Turn a start-screen request into the node's configuration.

    The app always decodes: the viewer displays (and maybe records) and the streamer
    shows its preview. Recording starts later, from the viewer screen.

    Raises:
        ValueError: a field is out of range (the node config checks them).
    """
    return NodeConfig(
        name=request.name,
        room=request.room,
        tracker=request.tracker,
        lan=request.lan,
        source=source,
        resolution=request.resolution,
        decode=True,
    )


def failure_kind(exc: BaseException) -> str:
    """Classify an action's exception for the views' wording and next step."""
    if isinstance(exc, TrackerUnreachableError):
        return "tracker"
    if isinstance(exc, LockDeniedError):
        return "lock"
    if isinstance(exc, MediaError):
        return "media"
    if isinstance(exc, ValueError):
        return "invalid"
    if isinstance(exc, NodeError):
        return "node"
    return "error"


def frame_to_qimage(image: np.ndarray[Any, np.dtype[np.uint8]]) -> QImage:
    """Convert a BGR uint8 array (h, w, 3) into a QImage that owns its pixels.

    Runs on the node's frame thread. QImage built on a numpy buffer only borrows it,
    so the result must be a real copy before the array is reused: converting to
    RGB32 (the format QPainter draws fastest) allocates a new image, and that
    conversion is also where BGR becomes RGB.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected a BGR uint8 image, got {image.shape} {image.dtype}")
    if not image.flags.c_contiguous:
        image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    borrowed = QImage(
        image.data,  # type: ignore[call-overload]  # PyQt takes any buffer, stubs say bytes
        width, height, image.strides[0], QImage.Format.Format_BGR888,
    )
    owned: QImage = borrowed.convertToFormat(QImage.Format.Format_RGB32)
    return owned


class NodeBridge(QObject):
    """Runs a node on its own thread and speaks Qt signals and slots to the views.

    Create it in the GUI thread. Call :meth:`start` to join, :meth:`shutdown` to leave;
    ``closed`` tells when the node and its thread are gone.

    Signals:
        ready(Ready): the node listens and has an id.
        joined(Joined): attached to a parent (first time or after a repair).
        parent_lost(ParentLost): the parent went away; the node is re-joining.
        resumed(Resumed): video flows again after a repair (gap and frames lost).
        stats_updated(Stats): once a second.
        chat_received(ChatReceived): a chat line (history, others', or our own).
        stream_started(StreamStarted): a streamer went live in the room.
        stream_ended(StreamEnded): the room's stream stopped.
        lock_denied(LockDenied): someone else holds the streamer lock.
        error_raised(ErrorRaised): the node reports a problem in plain words.
        tree_changed(TreeChanged): the room's relay tree changed.
        source_progress(SourceProgress): streamer only, position in the file.
        stopped(Stopped): the node has left the room.
        layers_changed(tuple): layers that can be asked for (not above the source).
        frame_ready(): a new picture waits in :meth:`take_frame`.
        started(): ``start()`` completed; the node is in the room.
        streaming_changed(bool): we went live (True) or stopped streaming (False).
        resolution_changed(int): the node accepted a new layer.
        chat_sent(): the node accepted our chat line.
        recording_changed(object): recording to this path started (str), or the
            recording stopped and the file is finished (None).
        action_failed(str, str, str): action, kind ("tracker", "lock", "media",
            "invalid", "node", "error", "closed") and a message to show.
        closed(): the node stopped and its thread ended; the bridge can be dropped.
    """

    ready = pyqtSignal(object)
    joined = pyqtSignal(object)
    parent_lost = pyqtSignal(object)
    resumed = pyqtSignal(object)
    stats_updated = pyqtSignal(object)
    chat_received = pyqtSignal(object)
    stream_started = pyqtSignal(object)
    stream_ended = pyqtSignal(object)
    lock_denied = pyqtSignal(object)
    error_raised = pyqtSignal(object)
    tree_changed = pyqtSignal(object)
    source_progress = pyqtSignal(object)
    stopped = pyqtSignal(object)
    layers_changed = pyqtSignal(tuple)
    frame_ready = pyqtSignal()
    started = pyqtSignal()
    streaming_changed = pyqtSignal(bool)
    resolution_changed = pyqtSignal(int)
    chat_sent = pyqtSignal()
    recording_changed = pyqtSignal(object)
    action_failed = pyqtSignal(str, str, str)
    closed = pyqtSignal()

    # Cross-thread hops: emitted on the node/frame threads, delivered in the GUI thread.
    _event_posted = pyqtSignal(object)
    _layers_posted = pyqtSignal(tuple)
    _frame_posted = pyqtSignal()
    _done_posted = pyqtSignal(str, object, object)
    _joined_posted = pyqtSignal()

    def __init__(
        self,
        config: NodeConfig,
        node_factory: NodeFactory | None = None,
        parent: QObject | None = None,
    ) -> None:
        """Start the node thread and build the node (it does not join yet).

        Args:
            config: the node's configuration (see :func:`make_config`).
            node_factory: builds the node; the real ``Node`` by default, tests pass
                a fake with the same API.
            parent: Qt parent.

        Raises:
            NodeError: the node could not be built.
        """
        super().__init__(parent)
        self.config = config
        _queued(self._event_posted, self._on_node_event)
        _queued(self._layers_posted, self._on_node_layers)
        _queued(self._frame_posted, self._on_node_frame)
        _queued(self._done_posted, self._on_action_done)
        _queued(self._joined_posted, self._on_thread_joined)

        self._frame_lock = threading.Lock()
        self._latest: QImage | None = None
        self._frame_notified = False
        # Set from the GUI thread when closing; read by the other threads so late
        # callbacks stop posting into a bridge that is going away.
        self._closing = threading.Event()
        self._closed = False
        self._started = False
        self._streaming = False
        self._recording: str | None = None
        # Loop thread only: ErrorRaised events held back while set_recording runs,
        # messages of the recordings that failed meanwhile, calls in flight.
        self._joiner: threading.Thread | None = None
        # A child timer dies with the bridge, so it can never fire into a dead object.
        self._grace_timer = QTimer(self)
        self._grace_timer.setSingleShot(True)
        self._grace_timer.timeout.connect(self._tear_down)

        self._runner = NodeThread(name="treecast-node").start()
        try:
            factory = node_factory or default_node_factory
            on_frame = self._post_frame if config.decode else None
            self._node = factory(config, self._post_event, on_frame)
        except BaseException:
            self._runner.stop()
            raise

    # -- state -------------------------------------------------------------------

    @property
    def peer_id(self) -> str:
        """Our own peer id (known from construction)."""
        return self._node.peer_id

    @property
    def is_started(self) -> bool:
        """True once ``start()`` completed and until shutdown."""
        return self._started and not self._closing.is_set()

    @property
    def is_streaming(self) -> bool:
        """True while we are the room's streamer."""
        return self._streaming

    @property
    def recording_path(self) -> str | None:
        """The file being recorded to (None when not recording)."""
        return self._recording

    @property
    def is_closed(self) -> bool:
        """True once the node thread has ended."""
        return self._closed

    def take_frame(self) -> QImage | None:
        """Hand over the latest picture (or None) and re-arm ``frame_ready``."""
        with self._frame_lock:
            image, self._latest = self._latest, None
            self._frame_notified = False
        return image

    # -- node thread / frame thread side ------------------------------------------

    def _post_event(self, event: NodeEvent) -> None:
        """on_event: runs on the node's loop thread."""
        if self._closing.is_set() and not isinstance(event, Stopped):
            return
        layers: tuple[int, ...] | None = None
        if isinstance(event, Joined | StreamStarted | Ready):
            # Ask here, on the node's own thread, instead of reading node state from
            # the GUI thread later.
            layers = self._safe_layers()
        with contextlib.suppress(RuntimeError):  # bridge deleted under us at exit
            self._event_posted.emit(event)
            if layers is not None:
                self._layers_posted.emit(layers)

    def _safe_layers(self) -> tuple[int, ...] | None:
        try:
            return tuple(self._node.available_layers())
        except Exception:  # the node may not know its source yet
            log.debug("available_layers failed", exc_info=True)
            return None

    def _post_frame(self, frame: DecodedFrame) -> None:
        """on_frame: runs on a worker thread for every decoded frame."""
        if self._closing.is_set():
            return
        try:
            image = frame_to_qimage(frame.image)
        except ValueError:
            log.warning("dropping a frame the GUI cannot show", exc_info=True)
            return
        with self._frame_lock:
            self._latest = image
            notify = not self._frame_notified
            self._frame_notified = True
        if notify:
            with contextlib.suppress(RuntimeError):
                self._frame_posted.emit()

    def _post_done(
        self, action: str, future: concurrent.futures.Future[Any], extra: Any = None
    ) -> None:
        """Done-callback of every action: runs on the node thread."""
        if future.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = future.exception()
        if action == "start_streaming" and exc is None:
            # The source is open now, so the node knows which layers exist.
            extra = self._safe_layers()
        with contextlib.suppress(RuntimeError):
            self._done_posted.emit(action, exc, extra)

    # -- GUI thread side ------------------------------------------------------------

    @pyqtSlot(object)
    def _on_node_event(self, event: NodeEvent) -> None:
        signal = {
            Ready: self.ready,
            Joined: self.joined,
            ParentLost: self.parent_lost,
            Resumed: self.resumed,
            Stats: self.stats_updated,
            ChatReceived: self.chat_received,
            StreamStarted: self.stream_started,
            StreamEnded: self.stream_ended,
            LockDenied: self.lock_denied,
            ErrorRaised: self.error_raised,
            TreeChanged: self.tree_changed,
            SourceProgress: self.source_progress,
            Stopped: self.stopped,
        }.get(type(event))
        if signal is None:
            log.debug("ignoring unknown node event %r", event)
            return
        if isinstance(event, StreamEnded) and self._streaming:
            # Our own stream ended (file over, lock lost): we are a viewer again.
            self._streaming = False
            self.streaming_changed.emit(False)
        if isinstance(event, Stopped):
            # The node left the room; stopping finished any recording too.
            self._started = False
            if self._recording is not None:
                self._recording = None
                self.recording_changed.emit(None)
        signal.emit(event)

    @pyqtSlot(tuple)
    def _on_node_layers(self, layers: tuple[int, ...]) -> None:
        self.layers_changed.emit(layers)

    @pyqtSlot()
    def _on_node_frame(self) -> None:
        self.frame_ready.emit()

    @pyqtSlot(str, object, object)
    def _on_action_done(self, action: str, exc: BaseException | None, extra: Any) -> None:
        if action == "stop":
            self._tear_down()
            return
        if self._closing.is_set():
            return  # results of work cut short by leaving are noise now
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                return
            kind = failure_kind(exc)
            if kind == "error":
                log.error("%s failed", action, exc_info=exc)
                message = f"Something went wrong ({type(exc).__name__}: {exc})."
            else:
                message = str(exc) or type(exc).__name__
            if action == "set_recording":
                # The node drops the old recorder before opening the new one: a failed
                # start (or a failed finish) leaves it not recording.
                self._recording = None
            self.action_failed.emit(action, kind, message)
            return
        if action == "start":
            self._started = True
            self.started.emit()
        elif action == "start_streaming":
            self._streaming = True
            self.streaming_changed.emit(True)
            if extra is not None:
                self.layers_changed.emit(extra)
        elif action == "stop_streaming":
            self._streaming = False
            self.streaming_changed.emit(False)
        elif action == "set_resolution":
            self.resolution_changed.emit(int(extra))
        elif action == "send_chat":
            self.chat_sent.emit()
        elif action == "set_recording":
            self._recording = extra
            self.recording_changed.emit(extra)

    def _submit(
        self, action: str, make: Callable[[], Coroutine[Any, Any, Any]], extra: Any = None
    ) -> None:
        if self._closing.is_set() or not self._runner.running:
            self.action_failed.emit(action, "closed", "The session is closing.")
            return
        future = self._runner.submit(make())
        future.add_done_callback(lambda f: self._post_done(action, f, extra))

    @pyqtSlot()
    def start(self) -> None:
        """Join the room (and stream, when the config has a source)."""
        self._submit("start", self._node.start)

    @pyqtSlot(int)
    def set_resolution(self, layer: int) -> None:
        """Ask for another layer; ``resolution_changed`` confirms it."""
        self._submit("set_resolution", lambda: self._node.set_resolution(layer), layer)

    @pyqtSlot(str)
    def send_chat(self, text: str) -> None:
        """Send a chat line; it comes back as ``chat_received`` with own=True."""
        self._submit("send_chat", lambda: self._node.send_chat(text))

    def start_streaming(self, source: SourceSpec) -> None:
        """Claim the room's streamer lock and stream ``source``."""
        self._submit("start_streaming", lambda: self._node.start_streaming(source))

    @pyqtSlot()
    def stop_streaming(self) -> None:
        """Stop streaming and release the lock; we stay in the room."""
        self._submit("stop_streaming", self._node.stop_streaming)

    def set_recording(self, path: str | None) -> None:
        """Record what we watch to ``path`` (None: stop and finish the file).

        ``recording_changed`` confirms; a bad path or format comes back as
        ``action_failed("set_recording", "media", message)``.
        """
        self._submit("set_recording", lambda: self._record(path), path)

    async def _record(self, path: str | None) -> None:
        await self._node.set_recording(path)

    @pyqtSlot()
    def shutdown(self, reason: str = "quit") -> None:
        """Leave the room and end the node thread, without blocking; then ``closed``.

        Idempotent. If the node does not stop within STOP_GRACE_MS the loop is torn
        down anyway (its remaining tasks are cancelled).
        """
        if self._closing.is_set():
            return
        self._closing.set()
        with self._frame_lock:
            self._latest = None
        if not self._runner.running:
            self._tear_down()
            return
        future = self._runner.submit(self._node.stop(reason))
        future.add_done_callback(lambda f: self._post_done("stop", f))
        self._grace_timer.start(STOP_GRACE_MS)

    def _tear_down(self) -> None:
        self._grace_timer.stop()
        if self._closed or self._joiner is not None:
            return
        # Joining the loop thread can take up to the runner's cancel grace: do it on a
        # short-lived helper thread so the GUI keeps painting meanwhile.
        self._joiner = threading.Thread(
            target=self._join_runner, name="treecast-node-stop", daemon=True
        )
        self._joiner.start()

    def _join_runner(self) -> None:
        self._runner.stop(timeout=10.0)
        with contextlib.suppress(RuntimeError):
            self._joined_posted.emit()

    @pyqtSlot()
    def _on_thread_joined(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._streaming = False
        self._started = False
        self._recording = None
        if self._joiner is not None:
            self._joiner.join(1.0)  # it only emits after stop(): this returns at once
        self.closed.emit()


# -- start screen helpers ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomStatus:
    """Who streams in a room, as the tracker says.

    Attributes:
        host / port / room: what was asked.
        streamer: the streamer's name, or None when nobody streams.
        peers: peers in the room.
        error: why the tracker could not be asked, or None.
    """

    host: str
    port: int
    room: str
    streamer: str | None = None
    peers: int = 0
    error: str | None = None


def _query_room_blocking(host: str, port: int, room: str) -> RoomStatus:
    try:
        from peer.node.tracker_client import query_room
    except ImportError:
        return RoomStatus(host, port, room, error="unavailable")
    try:
        result: Any = query_room(host, port, room, ROOM_QUERY_TIMEOUT_S)
        if inspect.isawaitable(result):
            # Either flavour of API works: an async one runs on a private loop here.
            async def wait() -> Any:
                return await result

            result = asyncio.run(wait())
    except (NodeError, OSError, TimeoutError) as exc:
        return RoomStatus(host, port, room, error=str(exc) or type(exc).__name__)
    except Exception as exc:  # a misbehaving tracker must not break the start screen
        log.warning("room query failed", exc_info=True)
        return RoomStatus(host, port, room, error=str(exc) or type(exc).__name__)
    streamer = getattr(result, "streamer_name", None) or None
    if streamer is None and getattr(result, "streamer_id", None):
        streamer = "someone"
    return RoomStatus(host, port, room, streamer=streamer, peers=len(result.peers))


class RoomProbe(QObject):
    """Asks a tracker who streams in a room, on a worker thread.

    Only the answer to the latest question is reported: typing an address fires many
    questions and the start screen only cares about the last one.

    Signals:
        room_checked(RoomStatus): the answer to the latest :meth:`check`.
    """

    room_checked = pyqtSignal(object)
    _answer_posted = pyqtSignal(int, object)

    def __init__(
        self,
        query: Callable[[str, int, str], RoomStatus] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """Args:
        query: blocking (host, port, room) -> RoomStatus; the tracker client by
            default, tests pass a fake.
        parent: Qt parent.
        """
        super().__init__(parent)
        self._query = query or _query_room_blocking
        self._generation = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        _queued(self._answer_posted, self._on_answer)

    def check(self, host: str, port: int, room: str) -> None:
        """Ask (again); any answer to an earlier question is dropped."""
        self._generation += 1
        generation = self._generation
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="treecast-room-query"
            )

        def run() -> None:
            status = self._query(host, port, room)
            with contextlib.suppress(RuntimeError):
                self._answer_posted.emit(generation, status)

        self._pool.submit(run)

    def cancel(self) -> None:
        """Forget pending questions (their answers will be ignored)."""
        self._generation += 1

    def close(self) -> None:
        """Stop the worker thread (after its current question, at most a timeout)."""
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @pyqtSlot(int, object)
    def _on_answer(self, generation: int, status: RoomStatus) -> None:
        if generation == self._generation:
            self.room_checked.emit(status)


@dataclass(frozen=True, slots=True)
class LanSessionInfo:
    """A room seen on the local network.

    Attributes:
        room: the room's name.
        streamer: who streams there, or None.
        peers: how many peers advertise it.
        tracker: a tracker found on the LAN for it, or None.
    """

    room: str
    streamer: str | None
    peers: int
    tracker: tuple[str, int] | None


def _session_info(session: Any) -> LanSessionInfo:
    tracker = getattr(session, "tracker", None)
    if tracker is not None:
        try:
            host, port = tracker
            tracker = (str(host), int(port))
        except (TypeError, ValueError):
            tracker = None
    streamer = getattr(session, "streamer", None)
    if streamer is None:
        streamer = getattr(session, "streamer_name", None)
    peers = getattr(session, "peers", 0)
    if not isinstance(peers, int):
        peers = len(peers) if hasattr(peers, "__len__") else 0
    return LanSessionInfo(
        room=str(getattr(session, "room", "?")),
        streamer=streamer,
        peers=peers,
        tracker=tracker,
    )


class LanSessions(QObject):
    """Live list of Treecast sessions on the LAN (mDNS), for the start screen.

    Runs ``peer.node.discovery.LanBrowser`` on its own loop thread. When discovery
    is not available (zeroconf missing, no network) the list simply stays empty and
    ``available`` stays False.

    Signals:
        sessions_changed(list): the current list of LanSessionInfo.
    """

    sessions_changed = pyqtSignal(list)
    _sessions_posted = pyqtSignal(list)

    def __init__(
        self,
        browser_factory: Callable[[Callable[[], None]], Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """Args:
        browser_factory: on_change -> browser with async start()/close() and
            sessions(); ``LanBrowser`` by default (tests pass a fake).
        parent: Qt parent.
        """
        super().__init__(parent)
        self._factory = browser_factory
        self._runner: NodeThread | None = None
        self._browser: Any = None
        self.available = False
        _queued(self._sessions_posted, self._on_sessions)

    def start(self) -> None:
        """Begin browsing (no-op when running, or when discovery is not available)."""
        if self._runner is not None:
            return
        factory = self._factory
        if factory is None:
            try:
                from peer.node.discovery import LanBrowser
            except ImportError:
                log.info("LAN discovery not available")
                return

            def factory(on_change: Callable[[], None]) -> Any:
                return LanBrowser(on_change=on_change)

        make = factory
        self._runner = NodeThread(name="treecast-lan").start()

        async def open_browser() -> None:
            # Built on the loop thread: zeroconf's async API binds to the running loop.
            self._browser = make(self._changed)
            result = self._browser.start()
            if inspect.isawaitable(result):
                await result
            self.available = True
            self._changed()

        future = self._runner.submit(open_browser())
        future.add_done_callback(self._opened)

    def _opened(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # No multicast, no interface...: the tracker field still works.
            log.warning("LAN discovery failed to start: %s", exc)

    def _changed(self) -> None:
        """on_change of the browser (loop thread): read the list and hop to Qt."""
        browser = self._browser
        if browser is None:
            return
        try:
            sessions = [_session_info(s) for s in browser.sessions()]
        except Exception:
            log.debug("reading LAN sessions failed", exc_info=True)
            return
        with contextlib.suppress(RuntimeError):
            self._sessions_posted.emit(sessions)

    @pyqtSlot(list)
    def _on_sessions(self, sessions: list[LanSessionInfo]) -> None:
        self.sessions_changed.emit(sessions)

    def close(self) -> None:
        """Stop browsing; the discovery thread ends by itself right after (no wait)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        browser, self._browser = self._browser, None
        self.available = False

        async def close_browser() -> None:
            try:
                if browser is not None:
                    result = browser.close()
                    if inspect.isawaitable(result):
                        # Bounded: a stuck network must not keep the thread alive.
                        await asyncio.wait_for(result, 2.0)
            finally:
                runner.request_stop()

        try:
            runner.submit(close_browser())
        except RuntimeError:  # the loop already ended
            runner.request_stop()
