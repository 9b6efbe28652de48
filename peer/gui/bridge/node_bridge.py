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

The ``peer.gui.bridge`` package is the only part of ``peer.gui`` that imports
``peer.node``; its ``__init__`` re-exports the names the views need.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

from PyQt6.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage

from peer.gui.bridge._threads import queued
from peer.gui.bridge.actions import Action, FailureKind, failure_kind
from peer.gui.bridge.frames import LatestFrame, frame_to_qimage
from peer.node.config import NodeConfig, SourceSpec
from peer.node.errors import NodeError
from peer.node.events import (
    ChatReceived,
    DecodedFrame,
    ErrorRaised,
    Joined,
    LockDenied,
    NodeEvent,
    ParentLost,
    PlaybackChanged,
    Ready,
    Resumed,
    SourceProgress,
    Stats,
    Stopped,
    StreamEnded,
    StreamStarted,
    TreeChanged,
)
from peer.node.runner import NodeThread

log = logging.getLogger(__name__)

# node.stop() sends Byes and waits for the tracker; past this the bridge tears the
# loop down anyway so closing the window never hangs on a dead network.
STOP_GRACE_MS = 4000


class NodeLike(Protocol):
    """The node API the bridge drives (``peer.node.node.Node`` or a test fake)."""

    peer_id: str

    async def start(self) -> None: ...
    async def stop(self, reason: str = "quit") -> None: ...
    async def set_resolution(self, layer: int | str) -> None: ...
    async def send_chat(self, text: str) -> None: ...
    async def start_streaming(self, source: SourceSpec) -> None: ...
    async def stop_streaming(self) -> None: ...
    async def set_recording(self, path: str | None) -> None: ...
    def available_layers(self) -> tuple[int, ...]: ...


@runtime_checkable
class PlaybackControl(Protocol):
    """A node whose streamed file can be paused and sought (``Node`` from the tree
    rewrite on; the bridge checks at run time and says so when it cannot)."""

    async def set_paused(self, paused: bool) -> None: ...
    async def seek(self, seconds: float) -> None: ...


@runtime_checkable
class SoundControl(Protocol):
    """A node that plays sound: volume 0..1 and mute (test fakes may not)."""

    async def set_volume(self, volume: float) -> None: ...
    async def set_muted(self, muted: bool) -> None: ...


NodeFactory = Callable[
    [NodeConfig, Callable[[NodeEvent], None], Callable[[DecodedFrame], None] | None],
    NodeLike,
]


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
        playback_changed(PlaybackChanged): the streamer paused, resumed or sought.
        stopped(Stopped): the node has left the room.
        layers_changed(tuple): layers that can be asked for (not above the source).
        frame_ready(): a new picture waits in :meth:`take_frame`.
        started(): ``start()`` completed; the node is in the room.
        streaming_changed(bool): we went live (True) or stopped streaming (False).
        resolution_changed(object): the node accepted a new layer (int, or "auto").
        chat_sent(): the node accepted our chat line.
        recording_changed(object): recording to this path started (str), or the
            recording stopped and the file is finished (None).
        action_failed(Action, FailureKind, str): which action failed, why (for the
            wording and the next step) and a message to show.
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
    playback_changed = pyqtSignal(object)
    stopped = pyqtSignal(object)
    layers_changed = pyqtSignal(tuple)
    frame_ready = pyqtSignal()
    started = pyqtSignal()
    streaming_changed = pyqtSignal(bool)
    resolution_changed = pyqtSignal(object)
    chat_sent = pyqtSignal()
    recording_changed = pyqtSignal(object)
    action_failed = pyqtSignal(object, object, str)
    closed = pyqtSignal()

    # Cross-thread hops: emitted on the node/frame threads, delivered in the GUI thread.
    _event_posted = pyqtSignal(object)
    _layers_posted = pyqtSignal(tuple)
    _frame_posted = pyqtSignal()
    _done_posted = pyqtSignal(object, object, object)
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
        queued(self._event_posted, self._on_node_event)
        queued(self._layers_posted, self._on_node_layers)
        queued(self._frame_posted, self._on_node_frame)
        queued(self._done_posted, self._on_action_done)
        queued(self._joined_posted, self._on_thread_joined)

        self._frame = LatestFrame()
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
        return self._frame.take()

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
        if self._frame.put(image):
            with contextlib.suppress(RuntimeError):
                self._frame_posted.emit()

    def _post_done(
        self, action: Action, future: concurrent.futures.Future[Any], extra: Any = None
    ) -> None:
        """Done-callback of every action: runs on the node thread."""
        if future.cancelled():
            exc: BaseException | None = asyncio.CancelledError()
        else:
            exc = future.exception()
        if action is Action.START_STREAMING and exc is None:
            # The source is open now, so the node knows which layers exist.
            extra = self._safe_layers()
        with contextlib.suppress(RuntimeError):
            self._done_posted.emit(action, exc, extra)

    # -- GUI thread side ------------------------------------------------------------

    def _signal_for(self, event: NodeEvent) -> Any:
        """The public signal of an event's kind (a subclass counts as its base)."""
        signals = {
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
            PlaybackChanged: self.playback_changed,
            Stopped: self.stopped,
        }
        for kind in type(event).__mro__:
            if kind in signals:
                return signals[kind]
        return None

    @pyqtSlot(object)
    def _on_node_event(self, event: NodeEvent) -> None:
        signal = self._signal_for(event)
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

    @pyqtSlot(object, object, object)
    def _on_action_done(self, action: Action, exc: BaseException | None, extra: Any) -> None:
        if action is Action.STOP:
            self._tear_down()
            return
        if self._closing.is_set():
            return  # results of work cut short by leaving are noise now
        if exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                return
            kind = failure_kind(exc)
            if kind is FailureKind.ERROR:
                log.error("%s failed", action, exc_info=exc)
                message = f"Something went wrong ({type(exc).__name__}: {exc})."
            else:
                message = str(exc) or type(exc).__name__
            if action is Action.SET_RECORDING:
                # The node drops the old recorder before opening the new one: a failed
                # start (or a failed finish) leaves it not recording.
                self._recording = None
            self.action_failed.emit(action, kind, message)
            return
        if action is Action.START:
            self._started = True
            self.started.emit()
        elif action is Action.START_STREAMING:
            self._streaming = True
            self.streaming_changed.emit(True)
            if extra is not None:
                self.layers_changed.emit(extra)
        elif action is Action.STOP_STREAMING:
            self._streaming = False
            self.streaming_changed.emit(False)
        elif action is Action.SET_RESOLUTION:
            self.resolution_changed.emit(extra)
        elif action is Action.SEND_CHAT:
            self.chat_sent.emit()
        elif action is Action.SET_RECORDING:
            self._recording = extra
            self.recording_changed.emit(extra)

    def _submit(
        self, action: Action, make: Callable[[], Coroutine[Any, Any, Any]], extra: Any = None
    ) -> None:
        if self._closing.is_set() or not self._runner.running:
            self.action_failed.emit(action, FailureKind.CLOSED, "The session is closing.")
            return
        future = self._runner.submit(make())
        future.add_done_callback(lambda f: self._post_done(action, f, extra))

    @pyqtSlot()
    def start(self) -> None:
        """Join the room (and stream, when the config has a source)."""
        self._submit(Action.START, self._node.start)

    def set_resolution(self, layer: int | str) -> None:
        """Ask for another layer (or "auto"); ``resolution_changed`` confirms it."""
        self._submit(Action.SET_RESOLUTION, lambda: self._node.set_resolution(layer), layer)

    @pyqtSlot(str)
    def send_chat(self, text: str) -> None:
        """Send a chat line; it comes back as ``chat_received`` with own=True."""
        self._submit(Action.SEND_CHAT, lambda: self._node.send_chat(text))

    def start_streaming(self, source: SourceSpec) -> None:
        """Claim the room's streamer lock and stream ``source``."""
        self._submit(Action.START_STREAMING, lambda: self._node.start_streaming(source))

    @pyqtSlot()
    def stop_streaming(self) -> None:
        """Stop streaming and release the lock; we stay in the room."""
        self._submit(Action.STOP_STREAMING, self._node.stop_streaming)

    def set_volume(self, volume: float) -> None:
        """Playback volume, 0..1 (a node without sound ignores it)."""
        node = self._node
        if isinstance(node, SoundControl):
            self._submit(Action.SET_VOLUME, lambda: node.set_volume(volume), volume)

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute playback (a node without sound ignores it)."""
        node = self._node
        if isinstance(node, SoundControl):
            self._submit(Action.SET_MUTED, lambda: node.set_muted(muted), muted)

    def set_paused(self, paused: bool) -> None:
        """Pause or resume our streamed file for everyone; ``playback_changed`` confirms."""
        node = self._node
        if not isinstance(node, PlaybackControl):
            self.action_failed.emit(Action.SET_PAUSED, FailureKind.NODE,
                                    "This peer cannot pause a stream.")
            return
        self._submit(Action.SET_PAUSED, lambda: node.set_paused(paused), paused)

    def seek(self, seconds: float) -> None:
        """Move our streamed file to ``seconds`` for everyone."""
        node = self._node
        if not isinstance(node, PlaybackControl):
            self.action_failed.emit(Action.SEEK, FailureKind.NODE,
                                    "This peer cannot seek in a stream.")
            return
        self._submit(Action.SEEK, lambda: node.seek(seconds), seconds)

    def set_recording(self, path: str | None) -> None:
        """Record what we watch to ``path`` (None: stop and finish the file).

        ``recording_changed`` confirms; a bad path or format comes back as
        ``action_failed(Action.SET_RECORDING, FailureKind.MEDIA, message)``.
        """
        self._submit(Action.SET_RECORDING, lambda: self._record(path), path)

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
        self._frame.drop()
        if not self._runner.running:
            self._tear_down()
            return
        future = self._runner.submit(self._node.stop(reason))
        future.add_done_callback(lambda f: self._post_done(Action.STOP, f))
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


