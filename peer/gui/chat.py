"""The chat panel: the room's messages (history included) and a line to type in."""

from __future__ import annotations

import bisect
import html
import time

from PyQt6.QtCore import pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from peer.gui import theme
from peer.gui.bridge import MAX_CHAT_CHARS, ChatReceived
from peer.gui.theme import Colors

# Others' names get a colour each, picked from hues that read well on the theme's
# surface, in the order people first speak (so the first few never share one); our
# own name always uses Colors.OWN.
NAME_COLORS = ("#7cc4ff", "#b69cff", "#ff9ec7", "#7ee0c3", "#ffb27a", "#a5d86e", "#f7a8a8")
# The same hues, dark enough to read on the light theme's white.
NAME_COLORS_LIGHT = ("#0b5cab", "#5b3cc4", "#b0306b", "#0f7a5c", "#a34a00", "#3f7a12",
                     "#a8323a")
# A long session must not grow the panel without bound; the node's own history is
# bounded too, so the panel keeps a bit more than a late joiner can receive.
MAX_LINES = 1000
# The length counter appears this close to the limit, so it is there before it matters.
COUNTER_FROM_CHARS = MAX_CHAT_CHARS - 100


def _clock(timestamp: float) -> str:
    return time.strftime("%H:%M", time.localtime(timestamp))


class ChatPanel(QWidget):
    """Chat lines ordered by send time, de-duplicated by message id.

    History for late joiners arrives as ordinary ChatReceived events, possibly
    older than lines already shown, so lines are kept sorted by their send time.

    Signals:
        send_requested(str): the user wants to send this line (already stripped).
    """

    send_requested = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(parent)
        self._seen: set[str] = set()
        # Parallel lists kept sorted by (sent_at, arrival): bisect needs the bare keys.
        self._keys: list[tuple[float, int]] = []
        self._lines: list[str] = []
        self._messages: list[ChatReceived | str] = []  # a str is an app notice's text
        self._serial = 0
        self._colors: dict[str, str] = {}  # origin id -> its name colour
        self._ids_by_name: dict[str, set[str]] = {}  # sender name -> origin ids seen
        # Our peer ids, this session's and earlier ones' (the window shares the set
        # between sessions): our own lines from before a rejoin are still "(you)".
        self.own_ids: set[str] = set()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        self.view = QTextBrowser(self)
        self.view.setOpenLinks(False)
        self.view.setPlaceholderText("No messages yet. Say hello!")
        layout.addWidget(self.view, 1)

        self.error = QLabel(self)
        self.error.setStyleSheet(f"color: {Colors.DANGER};")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)

        row = QHBoxLayout()
        row.setSpacing(6)
        self.input = QLineEdit(self)
        self.input.setPlaceholderText("Write a message…")
        self.input.setAccessibleName("Chat message")
        # No maxLength: it would cut a pasted text silently. The counter says instead.
        self.input.returnPressed.connect(self._submit)
        self.input.textChanged.connect(self._on_text_changed)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("primary")
        self.send_button.setEnabled(False)
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self._submit)
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
        layout.addLayout(row)
        self.counter = QLabel(self)
        self.counter.setObjectName("muted")
        self.counter.hide()
        layout.addWidget(self.counter)
        self.view.setAccessibleName("Chat messages")
        self.set_input_enabled(False)
        theme.notifier.changed.connect(self.restyle)

    def set_input_enabled(self, enabled: bool) -> None:
        """Allow typing (only once the node is in the room)."""
        self.input.setEnabled(enabled)
        self.input.setPlaceholderText(
            "Write a message…" if enabled else "Chat opens after joining…"
        )
        self._on_text_changed(self.input.text())

    @pyqtSlot(object)
    def add_message(self, message: ChatReceived) -> None:
        """Show a chat line unless it is already shown (same id)."""
        if message.id in self._seen:
            return
        self._seen.add(message.id)
        ids = self._ids_by_name.setdefault(message.sender, set())
        if message.origin_id not in ids:
            ids.add(message.origin_id)
            if len(ids) == 2:
                # Two people now share this name: earlier lines need the tag too.
                self._lines = [
                    self._format(m) if isinstance(m, ChatReceived) and m.sender == message.sender
                    else line
                    for line, m in zip(self._lines, self._messages, strict=True)
                ]
                self._render()
        self._serial += 1
        key = (message.sent_at, self._serial)
        index = bisect.bisect(self._keys, key)
        self._keys.insert(index, key)
        self._lines.insert(index, self._format(message))
        self._messages.insert(index, message)
        trimmed = len(self._lines) > MAX_LINES
        if trimmed:
            del self._keys[0], self._lines[0], self._messages[0]
        if not trimmed and index == len(self._lines) - 1:
            self.view.append(self._lines[-1])  # the common case: newest at the bottom
        else:
            self._render()
        self._scroll_to_end()

    def add_notice(self, text: str, at: float | None = None) -> None:
        """A line from the app itself (someone went live, the stream ended...).

        Args:
            text: the sentence.
            at: when it happened (unix seconds); now by default.
        """
        self._serial += 1
        key = (time.time() if at is None else at, self._serial)
        line = self._format_notice(text, key[0])
        index = bisect.bisect(self._keys, key)
        self._keys.insert(index, key)
        self._lines.insert(index, line)
        self._messages.insert(index, text)
        if index == len(self._lines) - 1:
            self.view.append(line)
        else:
            self._render()
        self._scroll_to_end()

    def chat_messages(self) -> list[ChatReceived]:
        """The chat lines shown, oldest first (notices left out)."""
        return [m for m in self._messages if isinstance(m, ChatReceived)]

    def show_error(self, text: str) -> None:
        """Say why the last line could not be sent."""
        self.error.setText(text)
        self.error.show()

    @pyqtSlot()
    def on_chat_sent(self) -> None:
        """The node took our line: clear any earlier error."""
        self.error.hide()

    def is_own(self, message: ChatReceived) -> bool:
        """Ours: sent by this session's node or by ours in an earlier session."""
        return message.own or message.origin_id in self.own_ids

    def display_name(self, message: ChatReceived) -> str:
        """The sender's name, tagged with a short id when two people share it."""
        if len(self._ids_by_name.get(message.sender, ())) > 1:
            return f"{message.sender} #{message.origin_id[-4:]}"
        return message.sender

    def _format(self, message: ChatReceived) -> str:
        name = html.escape(self.display_name(message))
        if self.is_own(message):
            color = Colors.OWN
            name += " (you)"
        else:
            color = self.name_color(message.origin_id)
        text = html.escape(message.text)
        return (
            f'<span style="color:{Colors.MUTED}">{_clock(message.sent_at)}</span> '
            f'<b style="color:{color}">{name}</b> {text}'
        )

    def name_color(self, origin_id: str) -> str:
        """The colour of someone's name: the next free one the first time they speak."""
        color = self._colors.get(origin_id)
        if color is None:
            colors = NAME_COLORS_LIGHT if Colors.NAME == "light" else NAME_COLORS
            color = colors[len(self._colors) % len(colors)]
            self._colors[origin_id] = color
        return color

    @staticmethod
    def _format_notice(text: str, at: float) -> str:
        return (
            f'<span style="color:{Colors.MUTED}">{_clock(at)} · '
            f"<i>{html.escape(text)}</i></span>"
        )

    @pyqtSlot(object)
    def restyle(self, _palette: object = None) -> None:
        """The theme changed: every line again in its colours (names keep their order)."""
        order = list(self._colors)
        self._colors = {}
        for origin in order:
            self.name_color(origin)
        self._lines = [
            self._format(m) if isinstance(m, ChatReceived) else self._format_notice(m, key[0])
            for m, key in zip(self._messages, self._keys, strict=True)
        ]
        self._render()
        self.error.setStyleSheet(f"color: {Colors.DANGER};")
        self._on_text_changed(self.input.text())

    def _render(self) -> None:
        self.view.setHtml("".join(f"<div>{line}</div>" for line in self._lines))

    def _scroll_to_end(self) -> None:
        bar = self.view.verticalScrollBar()
        if bar is not None:
            bar.setValue(bar.maximum())

    def _on_text_changed(self, text: str) -> None:
        length = len(text.strip())
        too_long = length > MAX_CHAT_CHARS
        self.send_button.setEnabled(self.input.isEnabled() and 0 < length <= MAX_CHAT_CHARS)
        if too_long:
            self.counter.setText(
                f"{length} / {MAX_CHAT_CHARS} characters: "
                f"{length - MAX_CHAT_CHARS} too many to send."
            )
            self.counter.setStyleSheet(f"color: {Colors.DANGER};")
        else:
            self.counter.setText(f"{length} / {MAX_CHAT_CHARS} characters")
            self.counter.setStyleSheet("")
        self.counter.setVisible(length >= COUNTER_FROM_CHARS)

    def _submit(self) -> None:
        text = self.input.text().strip()
        if not text or not self.input.isEnabled() or len(text) > MAX_CHAT_CHARS:
            return
        self.input.clear()
        self.error.hide()
        self.send_requested.emit(text)
