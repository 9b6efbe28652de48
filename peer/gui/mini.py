"""The mini player: a small always-on-top window that keeps playing while the main
window is minimised (watch while working in another app)."""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QCloseEvent, QImage
from PyQt6.QtWidgets import QVBoxLayout, QWidget

from peer.gui.video import VideoWidget

# Small enough to sit in a corner, big enough to follow a talk or a game.
MINI_SIZE = (400, 225)


class MiniPlayer(QWidget):
    """A frameless-looking tool window with only the video in it.

    The main window feeds it the same pictures as its own video (``show_image``);
    double-clicking it brings the main window back.

    Signals:
        restore_requested(): the user wants the full window again.
    """

    restore_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent (the main window: a Tool window follows it).
        """
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint)
        self.setWindowTitle("Treecast mini player")
        self.setAccessibleName("Mini player")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.video = VideoWidget("", self)
        self.video.setToolTip("Double-click to bring Treecast back")
        self.video.double_clicked.connect(self.restore_requested)
        layout.addWidget(self.video)
        self.resize(*MINI_SIZE)

    def show_image(self, image: QImage | None) -> None:
        """Show a new picture (only painted while the mini player is visible)."""
        if image is not None and self.isVisible():
            self.video.set_image(image)

    def show_for(self, source: VideoWidget) -> None:
        """Appear with what ``source`` shows now (its picture or its placeholder)."""
        self.video.set_placeholder(source.placeholder())
        self.video.set_badge(source.badge())
        self.video.set_overlay(source.overlay())
        if source.image is not None:
            self.video.set_image(source.image)
        else:
            self.video.clear()
        self.show()

    def closeEvent(self, event: QCloseEvent | None) -> None:
        """Closing the mini player brings the main window back (nothing is lost)."""
        self.restore_requested.emit()
        if event is not None:
            event.accept()
