"""Small building blocks shared by the screens: cards, banners, headings."""

from __future__ import annotations

from collections.abc import Sequence

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QKeyEvent, QMouseEvent
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QStyleOptionSlider,
    QVBoxLayout,
    QWidget,
)

from peer.gui import theme
from peer.gui.theme import Colors


def card(parent: QWidget | None = None) -> QFrame:
    """A rounded surface that groups related controls."""
    frame = QFrame(parent)
    frame.setObjectName("card")
    return frame


def section_label(text: str, parent: QWidget | None = None) -> QLabel:
    """A small upper-case heading above a group of controls."""
    label = QLabel(text.upper(), parent)
    label.setObjectName("section")
    return label


def muted_label(text: str = "", parent: QWidget | None = None) -> QLabel:
    """Secondary text (hints, statuses)."""
    label = QLabel(text, parent)
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


def _level_color(level: str) -> str:
    # Looked up at call time: the palette may change (light/dark) after import.
    return {
        "error": Colors.DANGER,
        "warning": Colors.WARN,
        "info": Colors.ACCENT,
        "ok": Colors.LIVE,
    }.get(level, Colors.ACCENT)


class Banner(QFrame):
    """A strip that says what went wrong in plain words, and offers the next step.

    Hidden while there is nothing to say.

    Signals:
        action_triggered(str): the key of the button the user pressed.
    """

    action_triggered = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(parent)
        self.setObjectName("banner")
        self.level = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(14, 10, 10, 10)
        layout.setSpacing(10)
        self._text = QLabel(self)
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self._text, 1)
        self._buttons_box = QHBoxLayout()
        self._buttons_box.setSpacing(6)
        layout.addLayout(self._buttons_box)
        self._buttons: dict[str, QPushButton] = {}
        theme.notifier.changed.connect(self._apply_style)
        self.hide()

    def text(self) -> str:
        """The message shown (empty when hidden)."""
        return self._text.text() if self.level else ""

    def action_keys(self) -> list[str]:
        """Keys of the buttons offered now."""
        return list(self._buttons)

    def button(self, key: str) -> QPushButton:
        """The button for an action key (KeyError when not offered)."""
        return self._buttons[key]

    def show_message(
        self,
        level: str,
        text: str,
        actions: Sequence[tuple[str, str]] = (),
        details: str = "",
    ) -> None:
        """Show a message.

        Args:
            level: "error", "warning", "info" or "ok" (sets the colour).
            text: the sentence to show.
            actions: (key, button label) pairs; pressing one emits its key.
            details: technical detail, shown as the tooltip (kept out of the sentence).
        """
        self._text.setToolTip(details)
        self.level = level
        self._apply_style()
        self._text.setText(text)
        for button in self._buttons.values():
            self._buttons_box.removeWidget(button)
            button.deleteLater()
        self._buttons = {}
        for index, (key, label) in enumerate(actions):
            button = QPushButton(label, self)
            if index == 0 and level == "error":
                button.setObjectName("primary")
            button.clicked.connect(lambda _=False, k=key: self.action_triggered.emit(k))
            self._buttons_box.addWidget(button)
            self._buttons[key] = button
        self.show()

    @pyqtSlot(object)
    def _apply_style(self, _palette: object = None) -> None:
        color = _level_color(self.level)
        self.setStyleSheet(
            f"QFrame#banner {{ background: {Colors.SURFACE_2};"
            f" border: 1px solid {color}; border-left: 4px solid {color};"
            f" border-radius: 8px; }}"
        )

    def clear(self, level: str | None = None) -> None:
        """Hide the banner (only if it shows ``level``, when given)."""
        if level is None or level == self.level:
            self.level = ""
            self._text.setText("")
            self.hide()


class Metric(QWidget):
    """A value with its name under it, for the stats panel."""

    def __init__(self, name: str, parent: QWidget | None = None) -> None:
        """Args:
        name: the caption.
        parent: Qt parent.
        """
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.text = "—"  # the whole value (the label may show it elided)
        self.value = QLabel(self.text, self)
        self.value.setObjectName("metricValue")
        self.caption = QLabel(name, self)
        self.caption.setObjectName("metricName")
        layout.addWidget(self.value)
        layout.addWidget(self.caption)

    def set(self, text: str) -> None:
        """Show a new value (elided to the label's maximum width; whole in the tooltip)."""
        self.text = text
        limit = self.value.maximumWidth()
        if limit < 16777215:  # a maximum was set: a long name must not widen the panel
            shown = self.value.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, limit)
            self.value.setToolTip(text if shown != text else "")
            text = shown
        self.value.setText(text)


class SeekBar(QSlider):
    """A position bar the user can click or drag to jump (0-1000 of the length).

    Position updates from the stream do not fight the user: while the handle is held
    they are ignored, and the jump is asked for once, on release (or on a click, or
    the arrow keys).

    Signals:
        seek_requested(int): the user chose this value.
    """

    seek_requested = pyqtSignal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(Qt.Orientation.Horizontal, parent)
        self.setRange(0, 1000)
        self.setPageStep(50)
        self.sliderReleased.connect(lambda: self.seek_requested.emit(self.value()))

    def show_position(self, value: int) -> None:
        """The stream moved on (ignored while the user holds the handle)."""
        if not self.isSliderDown():
            self.blockSignals(True)
            self.setValue(value)
            self.blockSignals(False)

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        """A click on the groove jumps there (not one page step towards it).

        The handle moves under the pointer first, so the press grabs it: the jump
        is asked for on release, like a drag.
        """
        style = self.style()
        if (event is not None and style is not None
                and event.button() == Qt.MouseButton.LeftButton):
            option = QStyleOptionSlider()
            self.initStyleOption(option)
            groove = style.subControlRect(QStyle.ComplexControl.CC_Slider, option,
                                          QStyle.SubControl.SC_SliderGroove, self)
            if groove.width() > 0:
                x = int(event.position().x()) - groove.x()
                self.setValue(QStyle.sliderValueFromPosition(
                    self.minimum(), self.maximum(), x, groove.width()))
        super().mousePressEvent(event)

    def keyPressEvent(self, event: QKeyEvent | None) -> None:
        """Arrow keys and Page Up/Down move the stream too."""
        before = self.value()
        super().keyPressEvent(event)
        if self.value() != before:
            self.seek_requested.emit(self.value())
