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

from peer.gui.bridge import MAX_CHAT_CHARS, ChatReceived
from peer.gui.theme import Colors

# Others' names get a colour each, picked from hues that read well on the dark
# surface, in the order people first speak (so the first few never share one); our
# own name always uses Colors.OWN.
NAME_COLORS = ("#7cc4ff", "#b69cff", "#ff9ec7", "#7ee0c3", "#ffb27a", "#a5d86e", "#f7a8a8")
# A long session must not grow the panel without bound; the node's own history is
# bounded too, so the panel keeps a bit more than a late joiner can receive.
MAX_LINES = 1000


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
        self._messages: list[ChatReceived | None] = []  # None marks an app notice
        self._serial = 0
        self._colors: dict[str, str] = {}  # origin id -> its name colour

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
        self.input.setMaxLength(MAX_CHAT_CHARS)
        self.input.returnPressed.connect(self._submit)
        self.input.textChanged.connect(self._on_text_changed)
        self.send_button = QPushButton("Send", self)
        self.send_button.setObjectName("primary")
        self.send_button.setEnabled(False)
        self.send_button.clicked.connect(self._submit)
        row.addWidget(self.input, 1)
        row.addWidget(self.send_button)
        layout.addLayout(row)
        self.set_input_enabled(False)

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

    def add_notice(self, text: str) -> None:
        """A line from the app itself (someone went live, the stream ended...)."""
        self._serial += 1
        key = (time.time(), self._serial)
        line = (
            f'<span style="color:{Colors.MUTED}">{_clock(key[0])} · '
            f"<i>{html.escape(text)}</i></span>"
        )
        self._keys.append(key)
        self._lines.append(line)
        self._messages.append(None)
        self.view.append(line)
        self._scroll_to_end()

    def chat_messages(self) -> list[ChatReceived]:
        """The chat lines shown, oldest first (notices left out)."""
        return [m for m in self._messages if m is not None]

    def show_error(self, text: str) -> None:
        """Say why the last line could not be sent."""
        self.error.setText(text)
        self.error.show()

    @pyqtSlot()
    def on_chat_sent(self) -> None:
        """The node took our line: clear any earlier error."""
        self.error.hide()

    def _format(self, message: ChatReceived) -> str:
        name = html.escape(message.sender)
        if message.own:
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
            color = NAME_COLORS[len(self._colors) % len(NAME_COLORS)]
            self._colors[origin_id] = color
        return color

    def _render(self) -> None:
        self.view.setHtml("".join(f"<div>{line}</div>" for line in self._lines))

    def _scroll_to_end(self) -> None:
        bar = self.view.verticalScrollBar()
        if bar is not None:
            bar.setValue(bar.maximum())

    def _on_text_changed(self, text: str) -> None:
        self.send_button.setEnabled(self.input.isEnabled() and bool(text.strip()))

    def _submit(self) -> None:
        text = self.input.text().strip()
        if not text or not self.input.isEnabled():
            return
        self.input.clear()
        self.error.hide()
        self.send_requested.emit(text)
