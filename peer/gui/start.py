"""The start screen: who you are, where to meet, which room (public, or private behind a
passphrase), stream or watch."""

from __future__ import annotations

import getpass
import html
from typing import Any

from PyQt6.QtCore import QSettings, Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QIcon
from PyQt6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from peer.gui import theme
from peer.gui.bridge import (
    MAX_NAME_CHARS,
    MAX_ROOM_CHARS,
    PRIVATE_PREFIX,
    LanSessionInfo,
    LanSessions,
    PrivateRoom,
    PrivateRoomKeys,
    RoomListing,
    RoomProbe,
    RoomStatus,
    SessionRequest,
    parse_trackers,
)
from peer.gui.theme import Colors, dot_icon
from peer.gui.widgets import card, muted_label, section_label

DEFAULT_ROOM = "lobby"
# Typing an address fires a question per keystroke otherwise.
STATUS_DEBOUNCE_MS = 400
# The tracker's answer goes stale as people come and go; ask again now and then.
STATUS_REFRESH_MS = 5000
# mDNS answers arrive within a second or two on a LAN; after this, say that nothing
# was found instead of "Looking…" forever.
LAN_SEARCH_MS = 4000
LAN_LOOKING = "Looking for sessions on this network…"
LAN_NOTHING = "No sessions on this network yet. Type a room name and start one."
# Long enough for any passphrase anyone types or pastes; bounds what we stretch.
MAX_PASSPHRASE_CHARS = 256
PASSPHRASE_HINT = (
    "A private room: only people with the same room name and passphrase can join, "
    "chat or watch. The tracker never sees it. Not saved: type it each time.")
PASSPHRASE_TIP = (
    "Leave empty for a public room anyone can join.\n"
    "With a passphrase, only people who type the same room name and passphrase can "
    "join, see who is in the room, chat or watch. The tracker knows the room only by "
    "an id made from both, and can read neither the video nor the chat.\n"
    "Treecast never saves the passphrase: you type it again next time.")

KEY_NAME = "start/name"
KEY_MODE = "start/mode"
KEY_TRACKER = "start/tracker"
KEY_ROOM = "start/room"


def parse_address(text: str) -> tuple[str, int] | None:
    """Parse "host:port" (or "[v6]:port"), or a list "A:P,B:P" of trackers (the first
    is returned; ``parse_trackers`` gives them all); None when it is not usable."""
    try:
        return parse_trackers(text)[0]
    except ValueError:
        return None


def room_icon(streamer: str | None) -> QIcon:
    """A green dot for a room with a live stream, a grey one for a quiet room."""
    return dot_icon(Colors.LIVE if streamer else Colors.MUTED)


def _default_name() -> str:
    try:
        return getpass.getuser()[:MAX_NAME_CHARS]
    except Exception:  # no login name (containers, odd platforms): leave it empty
        return ""


class StartScreen(QWidget):
    """First screen: name, LAN session or tracker address, room, stream or watch.

    Signals:
        stream_requested(SessionRequest): "Start streaming" with valid fields and
            nobody else streaming in the room.
        join_requested(SessionRequest): "Join stream" with valid fields.

    With a passphrase, a click first derives the private room (scrypt, on a worker
    thread: :class:`~peer.gui.bridge.PrivateRoomKeys`) and the request follows when
    it is ready; the buttons wait meanwhile. The passphrase stays in its field for
    this run only: :meth:`save` never writes it.
    """

    stream_requested = pyqtSignal(object)
    join_requested = pyqtSignal(object)

    def __init__(
        self,
        settings: QSettings | None = None,
        probe: RoomProbe | None = None,
        lan: LanSessions | Any | None = None,
        parent: QWidget | None = None,
    ) -> None:
        """Args:
        settings: where fields are remembered (organization "Treecast" by default).
        probe: asks the tracker who streams in the room (a worker-thread probe by
            default).
        lan: live LAN sessions (an mDNS browser by default).
        parent: Qt parent.
        """
        super().__init__(parent)
        self.setObjectName("page")
        self.settings = settings if settings is not None else QSettings("Treecast", "Treecast")
        self.probe = probe if probe is not None else RoomProbe(parent=self)
        self.lan = lan if lan is not None else LanSessions(parent=self)
        self.keys = PrivateRoomKeys(parent=self)
        # The click waiting for its private room: (ticket, streaming).
        self._pending: tuple[int, bool] | None = None
        self.status: RoomStatus | None = None
        self.holder: str | None = None
        self._lan_sessions: list[LanSessionInfo] = []
        self._lan_searched = False  # the first search is over (found or not)

        self._build()
        self._restore()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(STATUS_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh_status)
        self._refresh = QTimer(self)
        self._refresh.setInterval(STATUS_REFRESH_MS)
        self._refresh.timeout.connect(self.refresh_status)
        self._lan_timer = QTimer(self)
        self._lan_timer.setSingleShot(True)
        self._lan_timer.setInterval(LAN_SEARCH_MS)
        self._lan_timer.timeout.connect(self._on_lan_search_done)

        self.probe.room_checked.connect(self._on_room_checked)
        self.probe.rooms_listed.connect(self.set_tracker_rooms)
        self.lan.sessions_changed.connect(self.set_lan_sessions)
        self.keys.derived.connect(self._on_private_room)
        self.keys.failed.connect(self._on_private_room_failed)
        for edit in (self.name_edit, self.room_edit, self.tracker_edit, self.passphrase_edit):
            edit.textChanged.connect(self._on_fields_changed)
            # Enter in any field does what the screen is for: join the room.
            edit.returnPressed.connect(self._on_join_clicked)
        self.mode_group.idToggled.connect(self._on_mode_toggled)
        theme.notifier.changed.connect(self._restyle)
        self._on_mode_toggled(0, True)
        self._update_buttons()

    @pyqtSlot(object)
    def _restyle(self, _palette: object) -> None:
        self.error_label.setStyleSheet(f"color: {Colors.DANGER};")
        self.refresh_status()  # the room status line carries colours

    # -- layout ---------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 24, 24, 24)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        box = card(self)
        box.setMinimumWidth(520)
        box.setMaximumWidth(600)
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        row.addWidget(box, 3)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(1)

        layout = QVBoxLayout(box)
        layout.setContentsMargins(32, 28, 32, 28)
        layout.setSpacing(8)
        title = QLabel("Treecast", box)
        title.setObjectName("title")
        subtitle = QLabel("Live video, passed along from peer to peer.", box)
        subtitle.setObjectName("subtitle")
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addSpacing(14)

        layout.addWidget(section_label("Your name", box))
        self.name_edit = QLineEdit(box)
        self.name_edit.setMaxLength(MAX_NAME_CHARS)
        self.name_edit.setPlaceholderText("How others see you")
        self.name_edit.setAccessibleName("Your name")
        layout.addWidget(self.name_edit)
        layout.addSpacing(8)

        layout.addWidget(section_label("Where to meet", box))
        modes = QHBoxLayout()
        self.lan_radio = QRadioButton("On this network", box)
        self.tracker_radio = QRadioButton("Through a tracker", box)
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.lan_radio, 0)
        self.mode_group.addButton(self.tracker_radio, 1)
        modes.addWidget(self.lan_radio)
        modes.addWidget(self.tracker_radio)
        modes.addStretch(1)
        layout.addLayout(modes)

        self.where_stack = QStackedWidget(box)
        lan_page = QWidget()
        lan_layout = QVBoxLayout(lan_page)
        lan_layout.setContentsMargins(0, 0, 0, 0)
        self.lan_list = QListWidget(lan_page)
        self.lan_list.setMinimumHeight(96)
        self.lan_list.setMaximumHeight(130)
        self.lan_list.setAccessibleName("Sessions on this network")
        self.lan_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.lan_list.setWordWrap(True)
        self.lan_list.currentItemChanged.connect(self._on_lan_selected)
        lan_layout.addWidget(self.lan_list)
        tracker_page = QWidget()
        tracker_layout = QVBoxLayout(tracker_page)
        tracker_layout.setContentsMargins(0, 0, 0, 0)
        self.tracker_edit = QLineEdit(tracker_page)
        self.tracker_edit.setPlaceholderText("host:port, e.g. 192.168.1.20:7700")
        self.tracker_edit.setAccessibleName("Tracker address")
        tracker_layout.addWidget(self.tracker_edit)
        tracker_layout.addWidget(
            muted_label("The address of a Treecast tracker (treecast-tracker).", tracker_page)
        )
        # The tracker's rooms: pick one instead of having to know its name.
        self.rooms_list = QListWidget(tracker_page)
        self.rooms_list.setAccessibleName("Rooms at this tracker")
        self.rooms_list.setMinimumHeight(96)
        self.rooms_list.setMaximumHeight(130)
        self.rooms_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.rooms_list.currentItemChanged.connect(self._on_lan_selected)
        self.rooms_list.hide()
        tracker_layout.addWidget(self.rooms_list)
        tracker_layout.addStretch(1)
        self.where_stack.addWidget(lan_page)
        self.where_stack.addWidget(tracker_page)
        layout.addWidget(self.where_stack)
        layout.addSpacing(8)

        layout.addWidget(section_label("Room", box))
        self.room_edit = QLineEdit(box)
        self.room_edit.setMaxLength(MAX_ROOM_CHARS)
        self.room_edit.setPlaceholderText(DEFAULT_ROOM)
        self.room_edit.setAccessibleName("Room")
        layout.addWidget(self.room_edit)
        self.status_label = QLabel(box)
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.status_label)
        layout.addSpacing(8)

        layout.addWidget(section_label("Passphrase (optional)", box))
        secret_row = QHBoxLayout()
        secret_row.setSpacing(8)
        self.passphrase_edit = QLineEdit(box)
        self.passphrase_edit.setMaxLength(MAX_PASSPHRASE_CHARS)
        self.passphrase_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase_edit.setPlaceholderText("Empty: a public room")
        self.passphrase_edit.setAccessibleName("Room passphrase")
        self.passphrase_edit.setToolTip(PASSPHRASE_TIP)
        # Not offered to input methods' word memories and predictions.
        self.passphrase_edit.setInputMethodHints(
            Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
            | Qt.InputMethodHint.ImhNoPredictiveText)
        secret_row.addWidget(self.passphrase_edit, 1)
        self.show_passphrase = QPushButton("Show", box)
        self.show_passphrase.setCheckable(True)
        self.show_passphrase.setAccessibleName("Show the passphrase")
        self.show_passphrase.setToolTip("Show or hide the passphrase as you type it")
        self.show_passphrase.toggled.connect(self._on_show_passphrase)
        secret_row.addWidget(self.show_passphrase)
        layout.addLayout(secret_row)
        self.passphrase_hint = muted_label(PASSPHRASE_HINT, box)
        layout.addWidget(self.passphrase_hint)

        self.error_label = QLabel(box)
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {Colors.DANGER};")
        self.error_label.hide()
        layout.addWidget(self.error_label)
        layout.addSpacing(10)

        buttons = QHBoxLayout()
        buttons.setSpacing(12)
        self.stream_button = QPushButton("Start streaming", box)
        self.stream_button.setObjectName("big")
        self.stream_button.clicked.connect(self._on_stream_clicked)
        self.join_button = QPushButton("Join stream", box)
        self.join_button.setObjectName("big")
        self.join_button.clicked.connect(self._on_join_clicked)
        buttons.addWidget(self.stream_button, 1)
        buttons.addWidget(self.join_button, 1)
        layout.addLayout(buttons)
        # Why the buttons are greyed out, in words (a tooltip on a disabled button is
        # easy to miss).
        self.hint_label = muted_label("", box)
        self.hint_label.hide()
        layout.addWidget(self.hint_label)

    def _restore(self) -> None:
        name = str(self.settings.value(KEY_NAME, "") or "") or _default_name()
        self.name_edit.setText(name)
        self.tracker_edit.setText(str(self.settings.value(KEY_TRACKER, "") or ""))
        self.room_edit.setText(str(self.settings.value(KEY_ROOM, DEFAULT_ROOM) or DEFAULT_ROOM))
        mode = str(self.settings.value(KEY_MODE, "lan") or "lan")
        (self.tracker_radio if mode == "tracker" else self.lan_radio).setChecked(True)
        self._show_where_page(1 if mode == "tracker" else 0)
        self._fill_lan_list()

    def save(self) -> None:
        """Remember the fields for next time."""
        self.settings.setValue(KEY_NAME, self.name_edit.text().strip())
        self.settings.setValue(KEY_MODE, self.mode)
        self.settings.setValue(KEY_TRACKER, self.tracker_edit.text().strip())
        self.settings.setValue(KEY_ROOM, self.room)
        self.settings.sync()

    # -- lifecycle ------------------------------------------------------------------

    def activate(self) -> None:
        """The screen is shown: browse the LAN and ask the tracker again."""
        self.lan.start()
        if not self._lan_sessions and not self._lan_searched:
            self._lan_timer.start()
        self._refresh.start()
        self.refresh_status()
        self._update_buttons()

    def deactivate(self) -> None:
        """The screen is hidden: stop asking the tracker."""
        self._refresh.stop()
        self._debounce.stop()
        self.probe.cancel()

    def shutdown(self) -> None:
        """Stop the worker threads (app exit)."""
        self.deactivate()
        self.keys.cancel()
        self.probe.close()
        self.lan.close()

    # -- fields ---------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """ "lan" or "tracker"."""
        return "tracker" if self.tracker_radio.isChecked() else "lan"

    @property
    def room(self) -> str:
        """The room typed in (the default when empty)."""
        return self.room_edit.text().strip() or DEFAULT_ROOM

    @property
    def passphrase(self) -> str:
        """The private room's passphrase; empty for a public room."""
        return self.passphrase_edit.text().strip()

    def tracker_address(self) -> tuple[str, int] | None:
        """The tracker to use: the typed one, or the selected LAN session's."""
        if self.mode == "tracker":
            return parse_address(self.tracker_edit.text())
        session = self._lan_session_for(self.room)
        return session.tracker if session is not None else None

    def more_trackers(self) -> tuple[tuple[str, int], ...]:
        """The typed list's other trackers, which the node moves to when the first
        fails (none in LAN mode: a LAN session names one tracker)."""
        if self.mode != "tracker":
            return ()
        try:
            return parse_trackers(self.tracker_edit.text())[1:]
        except ValueError:
            return ()

    def problems(self) -> list[str]:
        """What stops the buttons from working, in plain words (empty when fine)."""
        problems = []
        if not self.name_edit.text().strip():
            problems.append("Type your name.")
        if self.mode == "tracker" and parse_address(self.tracker_edit.text()) is None:
            problems.append("Type the tracker's address as host:port.")
        return problems

    def request(self, streaming: bool, private: PrivateRoom | None = None) -> SessionRequest:
        """The session the fields describe (``private``: the passphrase's room)."""
        return SessionRequest(
            name=self.name_edit.text().strip(),
            room=self.room,
            tracker=self.tracker_address(),
            more_trackers=self.more_trackers(),
            lan=self.mode == "lan",
            streaming=streaming,
            private=private,
        )

    def show_error(self, text: str) -> None:
        """Say why the last request could not go ahead."""
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))

    # -- room status ----------------------------------------------------------------

    @pyqtSlot()
    def refresh_status(self) -> None:
        """Find out (again) who streams in the chosen room."""
        room = self.room
        if self.passphrase:
            self._show_private_status(room)
            return
        if self.mode == "lan":
            session = self._lan_session_for(room)
            if session is None:
                self._set_holder(None, 0, room)
                return
            if session.tracker is None:
                self._set_holder(session.streamer, session.peers, room)
                return
            host, port = session.tracker
        else:
            address = parse_address(self.tracker_edit.text())
            if address is None:
                self.probe.cancel()
                self.holder = None
                self.status_label.setText("")
                self.rooms_list.hide()
                return
            host, port = address
            self.probe.list_rooms(host, port)
        self.probe.check(host, port, room)

    def _show_private_status(self, room: str) -> None:
        # The tracker tells nobody who is in a private room (not even whether it
        # exists): there is nothing to ask it, and nobody blocks "Start streaming".
        self.probe.cancel()
        if self.mode == "tracker":
            address = parse_address(self.tracker_edit.text())
            if address is not None:
                self.probe.list_rooms(*address)  # its public rooms, to pick a name from
        self._set_private_status(room)

    def _set_private_status(self, room: str) -> None:
        self.holder = None
        self.status_label.setText(
            f'<span style="color:{Colors.ACCENT}">&#128274;</span> Private room '
            f"“{html.escape(room)}”: who is in it shows once you are in, "
            "to people with the same passphrase only."
        )
        self._update_buttons()

    @pyqtSlot(object)
    def _on_room_checked(self, status: RoomStatus) -> None:
        if self.passphrase:
            return  # a late answer about the public room of the same name
        self.status = status
        if self.mode == "lan" and not status.streamer:
            # The LAN tracker may not know a streamer that advertises on mDNS only:
            # what the LAN says is live is live.
            session = self._lan_session_for(status.room)
            if session is not None and session.streamer:
                self._set_holder(session.streamer, max(session.peers, status.peers),
                                 status.room)
                return
        if status.error is not None:
            self.holder = None
            if status.error == "unavailable":
                self.status_label.setText("")
            else:
                self.status_label.setText(
                    f'<span style="color:{Colors.WARN}">Can\'t reach the tracker at '
                    f"{html.escape(status.host)}:{status.port} right now.</span>"
                )
            self._update_buttons()
            return
        self._set_holder(status.streamer, status.peers, status.room)

    def _set_holder(self, streamer: str | None, peers: int, room: str) -> None:
        self.holder = streamer
        room_html = html.escape(room)
        if streamer:
            watching = max(peers - 1, 0)
            who = "1 watching" if watching == 1 else f"{watching} watching"
            self.status_label.setText(
                f'<span style="color:{Colors.LIVE}">●</span> <b>{html.escape(streamer)}</b>'
                f" is live in “{room_html}” · {who}"
            )
        else:
            self.status_label.setText(
                f'<span style="color:{Colors.MUTED}">Nobody is streaming in '
                f"“{room_html}” yet.</span>"
            )
        self._update_buttons()

    # -- a tracker's rooms --------------------------------------------------------------

    @pyqtSlot(object)
    def set_tracker_rooms(self, listing: RoomListing) -> None:
        """Show the tracker's rooms (the typed room stays selected when listed)."""
        if self.mode != "tracker" or parse_address(self.tracker_edit.text()) != (
                listing.host, listing.port):
            return
        self.rooms_list.blockSignals(True)
        self.rooms_list.clear()
        if listing.error is None and not listing.rooms:
            item = QListWidgetItem("No rooms yet. Type a room name and start one.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.rooms_list.addItem(item)
        for room, streamer, peers in listing.rooms:
            who = f"{streamer} is live" if streamer else "no stream yet"
            watching = max(peers - 1, 0) if streamer else peers
            count = f"{watching} watching" if streamer else (
                "1 peer" if peers == 1 else f"{peers} peers")
            item = QListWidgetItem(f"{room}  —  {who} · {count}")
            item.setData(Qt.ItemDataRole.UserRole, room)
            item.setIcon(room_icon(streamer))
            self.rooms_list.addItem(item)
            if room == self.room:
                self.rooms_list.setCurrentItem(item)
        if listing.total > len(listing.rooms):
            item = QListWidgetItem(f"… the {len(listing.rooms)} busiest of {listing.total}")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.rooms_list.addItem(item)
        self.rooms_list.blockSignals(False)
        # An unreachable tracker already says so under the room field.
        self.rooms_list.setVisible(listing.error is None)

    # -- LAN sessions -----------------------------------------------------------------

    @pyqtSlot(list)
    def set_lan_sessions(self, sessions: list[LanSessionInfo]) -> None:
        """Show the sessions found on the LAN (keeps the selection by room).

        Private rooms are left out: their opaque ids mean nothing to anyone, and
        their members know the name and passphrase to type."""
        sessions = [s for s in sessions if not s.room.startswith(PRIVATE_PREFIX)]
        self._lan_sessions = list(sessions)
        if sessions:
            self._lan_searched = True
            self._lan_timer.stop()
        self._fill_lan_list()
        if self.mode == "lan":
            self.refresh_status()
            self._update_buttons()

    def _fill_lan_list(self) -> None:
        selected = self.room
        self.lan_list.blockSignals(True)
        self.lan_list.clear()
        if not self._lan_sessions:
            item = QListWidgetItem(LAN_NOTHING if self._lan_searched else LAN_LOOKING)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.lan_list.addItem(item)
        for session in sorted(self._lan_sessions, key=lambda s: s.room):
            who = f"{session.streamer} is live" if session.streamer else "no stream yet"
            count = "1 peer" if session.peers == 1 else f"{session.peers} peers"
            item = QListWidgetItem(f"{session.room}  —  {who} · {count}")
            item.setData(Qt.ItemDataRole.UserRole, session.room)
            item.setIcon(room_icon(session.streamer))
            self.lan_list.addItem(item)
            if session.room == selected:
                self.lan_list.setCurrentItem(item)
        self.lan_list.blockSignals(False)

    @pyqtSlot()
    def _on_lan_search_done(self) -> None:
        self._lan_searched = True
        self._fill_lan_list()

    def _lan_session_for(self, room: str) -> LanSessionInfo | None:
        for session in self._lan_sessions:
            if session.room == room:
                return session
        return None

    @pyqtSlot(QListWidgetItem, QListWidgetItem)
    def _on_lan_selected(self, current: QListWidgetItem | None, _: Any = None) -> None:
        if current is None:
            return
        room = current.data(Qt.ItemDataRole.UserRole)
        if room:
            self.room_edit.setText(str(room))

    # -- reactions -------------------------------------------------------------------

    def _on_mode_toggled(self, button_id: int, checked: bool) -> None:
        if not checked:
            return
        self._show_where_page(1 if self.mode == "tracker" else 0)
        self._on_fields_changed()

    def _show_where_page(self, index: int) -> None:
        # A stack is as tall as its tallest page; ignoring the hidden page's size lets
        # the short tracker page leave no hole in the card.
        for page_index in range(self.where_stack.count()):
            page = self.where_stack.widget(page_index)
            if page is not None:
                policy = (QSizePolicy.Policy.Preferred if page_index == index
                          else QSizePolicy.Policy.Ignored)
                page.setSizePolicy(policy, policy)
        self.where_stack.setCurrentIndex(index)
        # Only the height may change: adjustSize() here shrank the stack to the
        # hidden-page width (half the card) until the next layout pass.
        self.where_stack.updateGeometry()

    def _on_fields_changed(self, *_: Any) -> None:
        self.holder = None
        self.show_error("")
        if self._pending is not None:  # a changed field: the click was for other values
            self._pending = None
            self.keys.cancel()
        if self.passphrase:
            self._set_private_status(self.room)
        elif self.mode == "tracker" and parse_address(self.tracker_edit.text()) is not None:
            self.status_label.setText(
                f'<span style="color:{Colors.MUTED}">Checking the room…</span>'
            )
        self._debounce.start()
        self._update_buttons()

    def _update_buttons(self) -> None:
        problems = self.problems()
        tip = " ".join(problems)
        waiting = self._pending is not None
        if waiting and not problems:
            tip = "Opening the private room…"
        self.hint_label.setText(tip)
        self.hint_label.setVisible(bool(tip))
        self.join_button.setEnabled(not problems and not waiting)
        self.join_button.setToolTip(tip)
        self.stream_button.setEnabled(not problems and not waiting)
        if self.holder:
            self.stream_button.setToolTip(f"{self.holder} is streaming in this room.")
        else:
            self.stream_button.setToolTip(tip)
        # Someone is live: watching is the likely next step, so it gets the accent.
        self._set_style(self.stream_button, "bigSecondary" if self.holder else "big")

    @staticmethod
    def _set_style(button: QPushButton, name: str) -> None:
        if button.objectName() == name:
            return
        button.setObjectName(name)
        style = button.style()
        if style is not None:  # re-polish so the stylesheet rule for the name applies
            style.unpolish(button)
            style.polish(button)

    def _on_stream_clicked(self) -> None:
        if self.holder:
            # The tracker would refuse the lock anyway; say so before leaving the screen.
            self.show_error(
                f"{self.holder} is already streaming in “{self.room}”. "
                "Join their stream, or pick another room."
            )
            return
        if self.problems() and not self.stream_button.isEnabled():
            return
        self._go(streaming=True)

    def _on_join_clicked(self) -> None:
        if self.problems():
            return
        self._go(streaming=False)

    def _go(self, streaming: bool) -> None:
        if self._pending is not None:
            return  # a second click while the first one's room is being derived
        self.show_error("")
        self.save()
        if not self.passphrase:
            self._emit_request(streaming, None)
            return
        self._pending = (self.keys.derive(self.room, self.passphrase), streaming)
        self._update_buttons()

    @pyqtSlot(int, object)
    def _on_private_room(self, ticket: int, private: PrivateRoom) -> None:
        if self._pending is None or self._pending[0] != ticket:
            return
        streaming = self._pending[1]
        self._pending = None
        self._update_buttons()
        self._emit_request(streaming, private)

    @pyqtSlot(int, str)
    def _on_private_room_failed(self, ticket: int, error: str) -> None:
        if self._pending is None or self._pending[0] != ticket:
            return
        self._pending = None
        self._update_buttons()
        self.show_error(f"Couldn't open the private room: {error}.")

    def _emit_request(self, streaming: bool, private: PrivateRoom | None) -> None:
        request = self.request(streaming=streaming, private=private)
        (self.stream_requested if streaming else self.join_requested).emit(request)

    @pyqtSlot(bool)
    def _on_show_passphrase(self, shown: bool) -> None:
        self.passphrase_edit.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)
        self.show_passphrase.setText("Hide" if shown else "Show")
