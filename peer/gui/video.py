"""The video surface: paints the latest picture, letterboxed, never stretched."""

from __future__ import annotations

from PyQt6.QtCore import QRect, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QMouseEvent, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

from peer.gui.theme import Colors


def letterbox(image_size: QSize, area: QRect) -> QRect:
    """The largest rectangle with the image's aspect ratio centred in ``area``.

    Args:
        image_size: the picture's size in pixels.
        area: where it may be drawn.

    Returns:
        The target rectangle (empty when either size is empty).
    """
    if image_size.isEmpty() or area.isEmpty():
        return QRect()
    scaled = image_size.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - scaled.width()) // 2
    y = area.y() + (area.height() - scaled.height()) // 2
    return QRect(x, y, scaled.width(), scaled.height())


class VideoWidget(QWidget):
    """Shows the most recent frame scaled to fit, with black bars (letterbox).

    Painting only ever uses the newest image handed over; ``update()`` coalesces
    repaints, so a burst of frames costs at most one paint per screen refresh.

    Signals:
        double_clicked(): the user double-clicked the picture (fullscreen toggle).
    """

    double_clicked = pyqtSignal()

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        """Args:
        placeholder: text shown while there is no picture.
        parent: Qt parent.
        """
        super().__init__(parent)
        self._image: QImage | None = None
        self._placeholder = placeholder
        self._badge = ""
        self._overlay = ""
        self.frames_shown = 0
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        # We paint every pixel ourselves: skip Qt's background erase.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)

    @property
    def image(self) -> QImage | None:
        """The picture being shown, if any."""
        return self._image

    def set_image(self, image: QImage | None) -> None:
        """Show a new picture (None keeps the current one)."""
        if image is None or image.isNull():
            return
        self._image = image
        self.frames_shown += 1
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        """Drop the picture and show the placeholder text instead."""
        self._image = None
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def set_placeholder(self, text: str) -> None:
        """Text shown while there is no picture."""
        self._placeholder = text
        if self._image is None:
            self.update()

    def placeholder(self) -> str:
        """The current placeholder text."""
        return self._placeholder

    def set_badge(self, text: str) -> None:
        """A small red tag over the top-right corner (e.g. "● REC"); "" hides it."""
        if text != self._badge:
            self._badge = text
            self.update()

    def badge(self) -> str:
        """The tag shown over the picture ("" when none)."""
        return self._badge

    def set_overlay(self, text: str) -> None:
        """Dim the picture and say ``text`` over it (e.g. "Paused"); "" removes it.

        A paused stream keeps its last picture: dimmed and labelled, it cannot be
        mistaken for a frozen one.
        """
        if text != self._overlay:
            self._overlay = text
            self.update()

    def overlay(self) -> str:
        """The text over the picture ("" when none)."""
        return self._overlay

    def image_rect(self) -> QRect:
        """Where the picture is drawn (empty when there is none)."""
        if self._image is None:
            return QRect()
        return letterbox(self._image.size(), self.rect())

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(Colors.VIDEO_BG))
            if self._image is None:
                self._paint_placeholder(painter)
            else:
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
                painter.drawImage(self.image_rect(), self._image)
            if self._overlay:
                self._paint_overlay(painter)
            if self._badge:
                self._paint_badge(painter)
        finally:
            painter.end()

    def _paint_placeholder(self, painter: QPainter) -> None:
        if not self._placeholder:
            return
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 1.3, 11.0))
        painter.setFont(font)
        painter.setPen(QColor(Colors.MUTED))
        painter.drawText(
            self.rect().adjusted(20, 20, -20, -20),
            Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
            self._placeholder,
        )

    def _paint_overlay(self, painter: QPainter) -> None:
        painter.fillRect(self.rect(), QColor(0, 0, 0, 150))
        font = QFont(self.font())
        font.setPointSizeF(max(font.pointSizeF() * 2.2, 18.0))
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(QColor("#ffffff"))  # on the dimmed video, whatever the theme
        painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._overlay)

    def _paint_badge(self, painter: QPainter) -> None:
        font = QFont(self.font())
        font.setBold(True)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width = metrics.horizontalAdvance(self._badge) + 16
        height = metrics.height() + 8
        box = QRect(self.width() - width - 12, 12, width, height)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(Colors.DANGER))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, self._badge)

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:
        self.double_clicked.emit()
