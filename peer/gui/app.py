"""The main window: the start screen, then one session (streamer or viewer) at a time.

Session lifecycle: a request from the start screen builds a NodeBridge and its view
and starts the node. Leaving (Back, Leave, Retry, "Watch instead", closing the
window) calls ``bridge.shutdown()`` and waits for ``closed`` before the view is
dropped, so the node always gets to say goodbye and its thread always ends; the GUI
keeps running meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from PyQt6.QtCore import QEvent, QSettings, Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QCloseEvent
from PyQt6.QtWidgets import QMainWindow, QStackedWidget, QWidget

from peer.gui.bridge import (
    STOP_GRACE_MS,
    IdentityClaim,
    LanSessions,
    NodeBridge,
    NodeError,
    NodeFactory,
    RoomProbe,
    SessionRequest,
    make_config,
)
from peer.gui.mini import MiniPlayer
from peer.gui.session import SessionView
from peer.gui.start import StartScreen
from peer.gui.streamer import StreamerView
from peer.gui.viewer import ViewerView

log = logging.getLogger(__name__)

# If a bridge never reports "closed" (a wedged node thread), close the window anyway
# this long after the bridge's own grace period.
FORCE_CLOSE_MS = STOP_GRACE_MS + 6000


class MainWindow(QMainWindow):
    """Treecast's window.

    Signals:
        session_opened(SessionView): a streamer or viewer screen is shown.
        session_closed(): the session's node has stopped; the start screen is back.
    """

    session_opened = pyqtSignal(object)
    session_closed = pyqtSignal()

    def __init__(
        self,
        node_factory: NodeFactory | None = None,
        settings: QSettings | None = None,
        probe: RoomProbe | None = None,
        lan: LanSessions | None = None,
        parent: QWidget | None = None,
        identity: IdentityClaim | None = None,
    ) -> None:
        """Args:
        node_factory: builds the node (the real one by default; tests pass a fake).
        settings: where the start screen remembers its fields.
        probe: the start screen's room probe (tests pass one with a fake query).
        lan: the start screen's LAN sessions source.
        parent: Qt parent.
        identity: the kept key this window may use (claimed here by default).
        """
        super().__init__(parent)
        self.setWindowTitle("Treecast")
        self.resize(1280, 800)
        self.setMinimumSize(960, 640)
        self.node_factory = node_factory
        self.identity = identity if identity is not None else IdentityClaim()
        self.stack = QStackedWidget(self)
        self.stack.setObjectName("mainStack")
        self.setCentralWidget(self.stack)
        self.start_screen = StartScreen(settings=settings, probe=probe, lan=lan, parent=self)
        self.start_screen.stream_requested.connect(self.open_session)
        self.start_screen.join_requested.connect(self.open_session)
        self.stack.addWidget(self.start_screen)

        self.bridge: NodeBridge | None = None
        self.view: SessionView | None = None
        # Our peer ids in this run of the app: chat shows our lines from before a
        # rejoin as ours too.
        self.own_peer_ids: set[str] = set()
        self._after_close: Callable[[], None] | None = None
        self._quitting = False
        self._force_timer = QTimer(self)
        self._force_timer.setSingleShot(True)
        self._force_timer.timeout.connect(self._force_close)
        self.mini = MiniPlayer(self)
        self.mini.restore_requested.connect(self.restore_from_mini)
        self.start_screen.activate()

    # -- sessions -------------------------------------------------------------------------

    @pyqtSlot(object)
    def open_session(self, request: SessionRequest) -> None:
        """Build the node for a request and show its screen."""
        if self.bridge is not None:
            # Still leaving the previous session: open this one once it is gone.
            self._after_close = lambda: self.open_session(request)
            return
        try:
            config = make_config(request, identity_path=self.identity.path)
            bridge = NodeBridge(config, node_factory=self.node_factory, parent=self)
        except (NodeError, ValueError) as exc:
            self.start_screen.show_error(f"Couldn't start: {exc}")
            return
        view: SessionView
        if request.streaming:
            view = StreamerView(bridge, request, self.stack)
        else:
            view = ViewerView(bridge, request, self.stack,
                              settings=self.start_screen.settings)
        view.chat.own_ids = self.own_peer_ids
        view.frame_shown.connect(self.mini.show_image)
        self.own_peer_ids.add(bridge.peer_id)
        view.leave_requested.connect(self.leave_session)
        view.retry_requested.connect(lambda: self._leave_then(lambda: self.open_session(request)))
        view.watch_requested.connect(
            lambda: self._leave_then(
                lambda: self.open_session(dataclasses.replace(request, streaming=False))
            )
        )
        bridge.closed.connect(self._on_bridge_closed)
        self.bridge, self.view = bridge, view
        self.start_screen.deactivate()
        self.stack.addWidget(view)
        self.stack.setCurrentWidget(view)
        # The room only: Qt appends the application display name ("— Treecast").
        self.setWindowTitle(request.room)
        self.session_opened.emit(view)
        bridge.start()

    @pyqtSlot()
    def leave_session(self) -> None:
        """Leave the room and go back to the start screen (once the node stopped)."""
        if self.may_end_broadcast():
            self._leave_then(None)

    def may_end_broadcast(self) -> bool:
        """True unless we stream to viewers and the user does not want to stop."""
        view = self.view
        if not isinstance(view, StreamerView) or view.leaving:
            return True
        return view.confirm_end()

    def _leave_then(self, then: Callable[[], None] | None) -> None:
        if self.bridge is None or self.view is None:
            if then is not None:
                then()
            return
        self._after_close = then
        self.view.set_leaving()
        self.bridge.shutdown("left")

    @pyqtSlot()
    def _on_bridge_closed(self) -> None:
        bridge, view = self.bridge, self.view
        self.bridge = self.view = None
        self.mini.hide()
        if view is not None:
            if isinstance(view, ViewerView):
                view.set_fullscreen(False)
            self.stack.removeWidget(view)
            view.deleteLater()
        if bridge is not None:
            bridge.deleteLater()
        self.setWindowTitle("Treecast")
        self.session_closed.emit()
        if self._quitting:
            self.close()
            return
        self.stack.setCurrentWidget(self.start_screen)
        self.start_screen.activate()
        then, self._after_close = self._after_close, None
        if then is not None:
            then()

    # -- mini player -------------------------------------------------------------------------

    def changeEvent(self, event: QEvent | None) -> None:
        """Minimised during a session: the mini player keeps the video on screen."""
        super().changeEvent(event)
        if event is None or event.type() != QEvent.Type.WindowStateChange:
            return
        if self.isMinimized() and self.view is not None and not self.view.leaving:
            self.mini.show_for(self.view.video)
        elif not self.isMinimized():
            self.mini.hide()

    @pyqtSlot()
    def restore_from_mini(self) -> None:
        """Bring the main window back (the mini player goes away)."""
        self.mini.hide()
        # Clearing only "minimised" keeps a maximised or fullscreen window so.
        self.setWindowState(self.windowState() & ~Qt.WindowState.WindowMinimized)
        self.show()
        self.activateWindow()

    # -- closing ---------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent | None) -> None:
        """Leave the room first; the window closes when the node has stopped."""
        if event is None:
            return
        if self.bridge is not None:
            event.ignore()
            if not self._quitting and not self.may_end_broadcast():
                return
            if not self._quitting:
                self._quitting = True
                self._after_close = None
                self._force_timer.start(FORCE_CLOSE_MS)
                self._leave_then(None)
            return
        self._force_timer.stop()
        self.start_screen.shutdown()
        self.identity.release()
        event.accept()

    def _force_close(self) -> None:
        log.warning("the node did not stop in time; closing anyway")
        self.bridge = None
        self.view = None
        self.close()
