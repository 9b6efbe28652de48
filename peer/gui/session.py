"""What the streamer and viewer screens share: header, banner, video, stats, chat, tree.

A session view is bound to one :class:`~peer.gui.bridge.NodeBridge` for its whole
life; leaving or retrying builds a new bridge and a new view (see ``app.py``). Views
only connect to the bridge's signals and call its slots: they never touch the node.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage, QKeyEvent
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from peer.gui.bridge import (
    Action,
    ChatReceived,
    ErrorRaised,
    FailureKind,
    Joined,
    LockDenied,
    NodeBridge,
    ParentLost,
    Ready,
    Resumed,
    SessionRequest,
    Stats,
    Stopped,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
    TreePeer,
)
from peer.gui.chat import ChatPanel
from peer.gui.private import ALONE_AFTER_MS, PrivateRoomNotice
from peer.gui.stats import StatsPanel
from peer.gui.theme import set_icon
from peer.gui.tree import RelayTreeView
from peer.gui.video import VideoWidget
from peer.gui.widgets import Banner, card, muted_label

# How long "back on the stream" stays up: long enough to read, short enough to forget.
RESUMED_NOTICE_MS = 5000

PRIVATE_MARK = "\N{LOCK} Private room"
PRIVATE_TIP = ("Only people who type this room's name and passphrase can join, see who "
               "is here, chat or watch. The tracker sees neither.")


# Stream-end reasons with a known cause, in words a viewer understands (FINISHED needs
# none: the stream simply ended; SOURCE_FAILED says what failed in its detail).
END_REASON_WORDS = {
    StreamEndReason.LOCK_LOST: "the connection to the tracker was lost for too long",
    StreamEndReason.LOCK_TAKEN: "someone else took over as the streamer",
}


def stream_end_words(event: StreamEnded) -> str:
    """Why a stream ended, as words for a sentence (never the raw code)."""
    if event.detail:
        return event.detail.strip().rstrip(".")
    return END_REASON_WORDS.get(event.reason, event.reason.value)


def end_reason_words(reason: str) -> str:
    """Why the node stopped, as words for a sentence."""
    return reason.strip().rstrip(".") or "it stopped"


def viewers_of(tree: TreeChanged) -> list[TreePeer]:
    """The peers watching the room's stream: everyone but the streamer."""
    return [peer for peer in tree.peers if peer.role != "streamer"]


def tracker_text(request: SessionRequest) -> str:
    """How the meeting point reads in messages."""
    if request.tracker is None:
        return "on this network"
    host, port = request.tracker
    return f"at {host}:{port}"


class SessionView(QWidget):
    """Base of the streamer and viewer screens.

    Subclasses add their controls under the video (``self.controls``) and extra
    tabs, and override the ``on_*`` hooks they care about.

    Signals:
        leave_requested(): back to the start screen.
        retry_requested(): leave and join again with the same request.
        watch_requested(): leave and join the room's stream as a viewer instead.
        frame_shown(object): a picture (QImage) the video just showed.
    """

    leave_requested = pyqtSignal()
    frame_shown = pyqtSignal(object)
    retry_requested = pyqtSignal()
    watch_requested = pyqtSignal()

    placeholder_text = ""
    # How long a viewer may be alone in a private room before it hears why (tests
    # shorten it).
    private_alone_ms = ALONE_AFTER_MS

    def __init__(
        self, bridge: NodeBridge, request: SessionRequest, parent: QWidget | None = None
    ) -> None:
        """Args:
        bridge: the session's node bridge (not started yet).
        request: what the start screen asked for.
        parent: Qt parent.
        """
        super().__init__(parent)
        self.setObjectName("page")
        self.bridge = bridge
        self.request = request
        self.leaving = False
        self.streamer_name: str | None = None
        self.streamer_id: str | None = None
        # The name the room knows us by: the tracker may have made it unique ("Bob (2)").
        self.own_name = request.name
        self._build()
        self._connect()
        self.private_notice = PrivateRoomNotice(bridge, request, self.banner,
                                                self.private_alone_ms)

    # -- layout ---------------------------------------------------------------------

    def _build(self) -> None:
        root = QVBoxLayout(self)
        root.setContentsMargins(16, 12, 16, 16)
        root.setSpacing(10)
        self.root_layout = root

        self.header = QWidget(self)
        header = QHBoxLayout(self.header)
        header.setContentsMargins(0, 0, 0, 0)
        header.setSpacing(10)
        self.title = QLabel(self.request.room, self.header)
        self.title.setStyleSheet("font-size: 16pt; font-weight: 600;")
        self.live_badge = QLabel("LIVE", self.header)
        self.live_badge.setObjectName("live")
        self.live_badge.hide()
        # The room's name is the one the user typed; the node meets under an opaque id
        # that nobody needs to see. The lock says the room is closed to strangers.
        self.private_mark = muted_label(PRIVATE_MARK, self.header)
        self.private_mark.setWordWrap(False)
        self.private_mark.setToolTip(PRIVATE_TIP)
        self.private_mark.setAccessibleName("Private room")
        self.private_mark.setVisible(self.request.private is not None)
        self.subtitle = muted_label("", self.header)
        self.subtitle.setWordWrap(False)
        # Who watches, for everyone in the room: a count, and the names on hover.
        self.watchers = muted_label("", self.header)
        self.watchers.setWordWrap(False)
        self.watchers.setAccessibleName("Viewers in the room")
        self.watchers.hide()
        self.leave_button = QPushButton("Leave", self.header)
        set_icon(self.leave_button, "SP_ArrowBack")
        self.leave_button.setToolTip("Leave the room")
        self.leave_button.clicked.connect(self.leave_requested)
        header.addWidget(self.title)
        header.addWidget(self.private_mark)
        header.addWidget(self.live_badge)
        header.addWidget(self.subtitle, 1)
        header.addWidget(self.watchers)
        self.header_extra = QHBoxLayout()
        header.addLayout(self.header_extra)
        header.addWidget(self.leave_button)
        root.addWidget(self.header)

        self.banner = Banner(self)
        self.banner.action_triggered.connect(self._on_banner_action)
        self._ok_timer = QTimer(self)
        self._ok_timer.setSingleShot(True)
        self._ok_timer.timeout.connect(lambda: self.banner.clear("ok"))
        root.addWidget(self.banner)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setChildrenCollapsible(False)
        left = QWidget(self.splitter)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(10)
        self.video = VideoWidget(self.placeholder_text, left)
        # Focusable, so the view's keys (F, Space, M) work right after a click on it.
        self.video.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.video.setAccessibleName("Video")
        left_layout.addWidget(self.video, 1)
        self.controls = QWidget(left)
        self.controls_layout = QHBoxLayout(self.controls)
        self.controls_layout.setContentsMargins(0, 0, 0, 0)
        self.controls_layout.setSpacing(8)
        left_layout.addWidget(self.controls)
        # A line under the controls that says why one of them is greyed out.
        self.controls_hint = muted_label("", left)
        self.controls_hint.hide()
        left_layout.addWidget(self.controls_hint)
        self.stats_card = card(left)
        stats_layout = QVBoxLayout(self.stats_card)
        stats_layout.setContentsMargins(0, 0, 0, 0)
        self.stats = StatsPanel(self.stats_card)
        stats_layout.addWidget(self.stats)
        self.stats_card.setMaximumHeight(200)
        left_layout.addWidget(self.stats_card)

        self.side = QTabWidget(self.splitter)
        self.side.setMinimumWidth(300)
        self.side.setAccessibleName("Side panel")
        tabs = self.side.tabBar()
        if tabs is not None:
            tabs.setAccessibleName("Side panel tabs")
        self.chat = ChatPanel(self.side)
        self.tree = RelayTreeView(self.side)
        self.side.addTab(self.chat, "Chat")
        self.add_side_tabs()
        self.side.addTab(self.tree, "Relay tree")
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([900, 340])
        root.addWidget(self.splitter, 1)
        self.build_controls()

    def add_side_tabs(self) -> None:
        """Subclasses add tabs between Chat and Relay tree."""

    def build_controls(self) -> None:
        """Subclasses fill ``self.controls_layout``."""

    def _connect(self) -> None:
        b = self.bridge
        b.started.connect(self._on_started)
        b.chat_received.connect(self._on_chat)
        self.chat.send_requested.connect(b.send_chat)
        b.chat_sent.connect(self.chat.on_chat_sent)
        b.ready.connect(self._on_ready)
        b.stats_updated.connect(self.update_stats)
        b.layers_changed.connect(self.tree.set_available_layers)
        b.tree_changed.connect(self.tree.set_tree)
        b.tree_changed.connect(self.on_tree_changed)
        b.tree_changed.connect(self._on_tree_for_watchers)
        b.frame_ready.connect(self._on_frame_ready)
        b.action_failed.connect(self._on_action_failed)
        b.error_raised.connect(self._on_error_raised)
        b.parent_lost.connect(self._on_parent_lost)
        b.resumed.connect(self._on_resumed)
        b.joined.connect(self._on_joined)
        b.stream_started.connect(self._on_stream_started)
        b.stream_ended.connect(self._on_stream_ended)
        b.lock_denied.connect(self._on_lock_denied)
        b.stopped.connect(self._on_stopped)

    # -- bridge signals ---------------------------------------------------------------

    @pyqtSlot()
    def _on_frame_ready(self) -> None:
        self.show_frame(self.bridge.take_frame())

    def show_frame(self, image: QImage | None) -> None:
        """Paint a picture in the video (and in the mini player, when one is shown)."""
        self.video.set_image(image)
        self.frame_shown.emit(image)

    @pyqtSlot(object)
    def _on_ready(self, event: Ready) -> None:
        name = event.name
        if name and name != self.own_name:
            self.own_name = name
            self.chat.add_notice(f"Someone here is already called {self.request.name}: "
                                 f"you are “{name}” in this room.")
        self.chat.own_ids.add(event.id)

    @pyqtSlot(object)
    def update_stats(self, stats: Stats) -> None:
        """A stats event for the panel (subclasses may adjust what it shows)."""
        self.stats.update_stats(stats)

    @pyqtSlot()
    def _on_started(self) -> None:
        self.chat.set_input_enabled(True)
        self.on_started()

    def on_started(self) -> None:
        """The node is in the room."""

    @pyqtSlot(object)
    def _on_chat(self, message: ChatReceived) -> None:
        self.chat.add_message(message)

    def on_tree_changed(self, tree: object) -> None:
        """The relay tree changed (the tree view already updates itself)."""

    @pyqtSlot(object)
    def _on_tree_for_watchers(self, tree: TreeChanged) -> None:
        viewers = viewers_of(tree)
        live = any(peer.role == "streamer" for peer in tree.peers)
        # A large room lists only part of itself; its size counts everyone.
        count = max(len(viewers), tree.room_size - 1 if live else tree.room_size)
        self.watchers.setVisible(live)
        self.watchers.setText("1 watching" if count == 1 else f"{count:,} watching")
        names = sorted(
            (f"{p.name} (you)" if p.id == tree.self_id else p.name for p in viewers),
            key=str.lower,
        )
        unlisted = count - len(names)
        if unlisted > 0:
            names.append(f"and {unlisted:,} more")
        self.watchers.setToolTip("Watching: " + ", ".join(names) if names else "Nobody yet")

    # -- keyboard -----------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        """The view's keys: F fullscreen, Esc leaves it, Space pause, M mute.

        They arrive here only when the focused control does not use the key itself
        (a text field types the letter, a button takes Space), so shortcuts never
        steal typing or the standard way to press a focused button.
        """
        if event is None:
            return
        handlers = {
            Qt.Key.Key_F: self.toggle_fullscreen,
            Qt.Key.Key_Escape: self.leave_fullscreen,
            Qt.Key.Key_Space: self.toggle_pause,
            Qt.Key.Key_M: self.toggle_mute,
        }
        handler = handlers.get(Qt.Key(event.key()))
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier,
                                      Qt.KeyboardModifier.KeypadModifier)
        if handler is not None and plain and handler():
            event.accept()
            return
        super().keyPressEvent(event)

    def toggle_fullscreen(self) -> bool:
        """F: fullscreen on/off; False when this screen has none."""
        return False

    def leave_fullscreen(self) -> bool:
        """Esc: back from fullscreen; False when not fullscreen."""
        return False

    def toggle_pause(self) -> bool:
        """Space: pause or resume the stream; False when we can't (not the streamer)."""
        return False

    def toggle_mute(self) -> bool:
        """M: mute or unmute the sound; False while the app plays no sound.

        The place for the audio controls: a view that plays sound overrides this.
        """
        return False

    @pyqtSlot(object)
    def _on_joined(self, event: Joined) -> None:
        self.banner.clear("warning")
        self.on_joined(event)

    def on_joined(self, event: Joined) -> None:
        """Attached to a parent."""

    @pyqtSlot(object)
    def _on_parent_lost(self, event: ParentLost) -> None:
        who = event.parent or "the peer we received from"
        self.banner.show_message(
            "warning",
            f"Lost the connection to {who}. Re-joining the stream through another peer…",
        )

    @pyqtSlot(object)
    def _on_resumed(self, event: Resumed) -> None:
        if self.banner.level not in ("", "warning", "ok"):
            return  # an error or notice with a next step stays
        missed = "" if not event.lost else f", {event.lost} frames missed"
        self.banner.show_message(
            "ok", f"Back on the stream via {event.parent} after "
            f"{event.gap_ms / 1000:.1f} s{missed}."
        )
        # Good news needs no action: it goes away on its own.
        self._ok_timer.start(RESUMED_NOTICE_MS)

    @pyqtSlot(object)
    def _on_stream_started(self, event: StreamStarted) -> None:
        self.streamer_name = event.streamer
        self.streamer_id = event.streamer_id
        if event.streamer_id != self.bridge.peer_id:
            # Before we are in the room the stream was already running: "went live"
            # stamped with our joining time would be wrong.
            verb = "went live" if self.bridge.is_started else "is live"
            self.chat.add_notice(f"{event.streamer} {verb}", event.t)
        self.on_stream_started(event)

    def on_stream_started(self, event: StreamStarted) -> None:
        """A stream started in the room."""

    @pyqtSlot(object)
    def _on_stream_ended(self, event: StreamEnded) -> None:
        self.chat.add_notice(self.stream_end_text(event), event.t)
        self.streamer_name = self.streamer_id = None
        self.on_stream_ended(event)

    def stream_end_text(self, event: StreamEnded) -> str:
        """The sentence that says a stream ended, and why when it is not ordinary."""
        whose = f"{event.streamer}'s stream" if event.streamer else "The stream"
        if event.reason is StreamEndReason.FINISHED:
            return f"{whose} has ended."
        return f"{whose} stopped unexpectedly: {stream_end_words(event)}."

    def on_stream_ended(self, event: StreamEnded) -> None:
        """The room's stream ended."""

    @pyqtSlot(object)
    def _on_lock_denied(self, event: LockDenied) -> None:
        if event.holder:
            self.show_lock_denied(event.holder)
        else:
            self.show_lock_unavailable(event.message)

    def show_lock_unavailable(self, message: str) -> None:
        """Nobody streams, but the tracker cannot grant the lock now: say why, retry."""
        self.banner.show_message(
            "error", f"Can't start streaming yet: {message}.",
            [("retry", "Retry"), ("back", "Back")],
        )

    def show_lock_denied(self, holder: str) -> None:
        """Someone else streams in this room: say who, offer to watch or go back."""
        self.banner.show_message(
            "error",
            f"{holder} is already streaming in “{self.request.room}”. Only one person "
            "can stream in a room: watch their stream, or go back and pick another room.",
            [("watch", "Watch instead"), ("back", "Back")],
        )

    @pyqtSlot(object)
    def _on_error_raised(self, event: ErrorRaised) -> None:
        if self.private_notice.handles(event):
            return
        if event.fatal:
            self.banner.show_message(
                "error", event.message, [("retry", "Retry"), ("back", "Back")]
            )
        else:
            self.banner.show_message("warning", event.message, [("dismiss", "Dismiss")])

    @pyqtSlot(object)
    def _on_stopped(self, event: Stopped) -> None:
        if self.leaving:
            return
        self.chat.set_input_enabled(False)
        if self.banner.level != "error":
            self.banner.show_message(
                "error",
                f"You are no longer in the room: {end_reason_words(event.reason)}.",
                [("retry", "Join again"), ("back", "Back")],
            )

    @pyqtSlot(object, object, str)
    def _on_action_failed(self, action: Action, kind: FailureKind, message: str) -> None:
        if self.leaving or kind is FailureKind.CLOSED:
            return
        if action is Action.SEND_CHAT:
            self.chat.show_error(message)
            return
        if action is Action.START:
            # Not "Connecting…" or "Joining…" any more: say where things stand.
            self.subtitle.setText("Not in the room")
            self.video.clear(f"Couldn't join “{self.request.room}”.")
        self.on_action_failed(action, kind, message)

    def on_action_failed(self, action: Action, kind: FailureKind, message: str) -> None:
        """Say in the window why an action failed, with the next step."""
        if kind is FailureKind.TRACKER:
            self.banner.show_message(
                "error",
                f"Can't reach the tracker {tracker_text(self.request)}. Check the address "
                "and that the tracker is running, then retry.",
                [("retry", "Retry"), ("back", "Back")],
                details=message,
            )
        elif kind is FailureKind.LOCK:
            if message and " is already streaming" not in message:
                self.show_lock_unavailable(message)
            else:
                holder = message.split(" is already streaming")[0] if message else "Someone"
                self.show_lock_denied(holder)
        elif action is Action.START:
            self.banner.show_message(
                "error", f"Couldn't join the room: {message}",
                [("retry", "Retry"), ("back", "Back")],
            )
        else:
            self.banner.show_message("error", message, [("dismiss", "Dismiss")])

    # -- banner and leaving -------------------------------------------------------------

    @pyqtSlot(str)
    def _on_banner_action(self, key: str) -> None:
        if key == "back":
            self.leave_requested.emit()
        elif key == "retry":
            self.retry_requested.emit()
        elif key == "watch":
            self.watch_requested.emit()
        else:
            self.on_banner_action(key)

    def on_banner_action(self, key: str) -> None:
        """A banner button this class does not handle (the default dismisses)."""
        self.banner.clear()

    def set_leaving(self) -> None:
        """The session is closing: freeze the controls until the node is gone."""
        self.leaving = True
        self.private_notice.stop()
        self.chat.set_input_enabled(False)
        self.controls.setEnabled(False)
        self.leave_button.setEnabled(False)
        self.banner.show_message("info", "Leaving the room…")
