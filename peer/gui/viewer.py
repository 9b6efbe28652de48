"""The viewer screen: the stream, a resolution choice, fullscreen, recording."""

from __future__ import annotations

import os

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QKeySequence, QShortcut, QStandardItemModel
from PyQt6.QtWidgets import QComboBox, QLabel, QPushButton, QWidget

from peer.gui.bridge import LAYERS, Joined, NodeBridge, SessionRequest, StreamEnded, StreamStarted
from peer.gui.session import SessionView
from peer.gui.theme import Colors, icon
from peer.gui.widgets import muted_label


class ViewerView(SessionView):
    """Watch the room's stream.

    Recording is chosen on the start screen before joining (the node records from
    the start, ``NodeConfig.record_path``); this screen shows that it is on.

    Signals:
        fullscreen_changed(bool): the video went fullscreen (True) or back.
    """

    fullscreen_changed = pyqtSignal(bool)

    def __init__(
        self, bridge: NodeBridge, request: SessionRequest, parent: QWidget | None = None
    ) -> None:
        """Args:
        bridge: the session's node bridge.
        request: what the start screen asked for (streaming=False).
        parent: Qt parent.
        """
        self.placeholder_text = f"Joining “{request.room}”…"
        self.fullscreen = False
        self._was_maximized = False
        self._layer = request.resolution
        super().__init__(bridge, request, parent)
        self.subtitle.setText("Connecting…")
        self.video.double_clicked.connect(self.toggle_fullscreen)
        # Window-wide shortcuts: they only fire while this view is shown.
        QShortcut(QKeySequence(Qt.Key.Key_F11), self, self.toggle_fullscreen)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, lambda: self.set_fullscreen(False))
        self.bridge.layers_changed.connect(self.set_available_layers)
        self.bridge.resolution_changed.connect(self._on_resolution_changed)

    def build_controls(self) -> None:
        self.resolution_label = QLabel("Resolution", self.controls)
        self.resolution_combo = QComboBox(self.controls)
        for layer in LAYERS:
            self.resolution_combo.addItem(f"{layer}p", layer)
        self.resolution_combo.setCurrentIndex(LAYERS.index(self._layer))
        self.resolution_combo.setToolTip(
            "The picture size you receive. Sizes above the source are not available."
        )
        self.resolution_combo.activated.connect(self._on_resolution_picked)
        self.fullscreen_button = QPushButton("Fullscreen", self.controls)
        self.fullscreen_button.setIcon(icon(self, "SP_TitleBarMaxButton"))
        self.fullscreen_button.setToolTip("Fullscreen (F11 or double-click; Esc leaves)")
        self.fullscreen_button.clicked.connect(self.toggle_fullscreen)
        self.record_label = muted_label("", self.controls)
        self.record_label.setWordWrap(False)
        if self.request.record_path:
            name = os.path.basename(self.request.record_path)
            self.record_label.setText(
                f'<span style="color:{Colors.DANGER}">●</span> Recording to {name}'
            )
            self.record_label.setToolTip(self.request.record_path)
        self.controls_layout.addWidget(self.resolution_label)
        self.controls_layout.addWidget(self.resolution_combo)
        self.controls_layout.addWidget(self.fullscreen_button)
        self.controls_layout.addSpacing(12)
        self.controls_layout.addWidget(self.record_label)
        self.controls_layout.addStretch(1)

    # -- resolution -------------------------------------------------------------------

    @property
    def layer(self) -> int:
        """The layer the node last confirmed (or the one asked for at join)."""
        return self._layer

    @pyqtSlot(tuple)
    def set_available_layers(self, layers: tuple[int, ...]) -> None:
        """Grey out sizes the source cannot give (above it)."""
        model = self.resolution_combo.model()
        assert isinstance(model, QStandardItemModel)  # QComboBox's default model
        for row, layer in enumerate(LAYERS):
            item = model.item(row)
            if item is not None:
                item.setEnabled(not layers or layer in layers)
        if layers and self._layer not in layers:
            # The node serves the best layer not above the source; show that one.
            best = max((layer for layer in layers if layer <= self._layer), default=layers[0])
            self.resolution_combo.setCurrentIndex(LAYERS.index(best))

    def layer_enabled(self, layer: int) -> bool:
        """Whether a layer can be picked now."""
        model = self.resolution_combo.model()
        assert isinstance(model, QStandardItemModel)
        item = model.item(LAYERS.index(layer))
        return item is not None and item.isEnabled()

    @pyqtSlot(int)
    def _on_resolution_picked(self, index: int) -> None:
        layer = int(self.resolution_combo.itemData(index))
        if layer != self._layer:
            self.bridge.set_resolution(layer)

    @pyqtSlot(int)
    def _on_resolution_changed(self, layer: int) -> None:
        self._layer = layer
        self.resolution_combo.setCurrentIndex(LAYERS.index(layer))

    def on_action_failed(self, action: str, kind: str, message: str) -> None:
        if action == "set_resolution":
            # Put the choice back to what we really receive.
            self.resolution_combo.setCurrentIndex(LAYERS.index(self._layer))
            self.banner.show_message(
                "warning", f"Couldn't change the resolution: {message}", [("dismiss", "OK")]
            )
            return
        if action == "start" and kind == "media":
            self.banner.show_message(
                "error",
                f"Can't record to {self.request.record_path}: {message} "
                "Go back and pick another file, or turn recording off.",
                [("back", "Back")],
            )
            return
        super().on_action_failed(action, kind, message)

    # -- stream state -------------------------------------------------------------------

    def on_started(self) -> None:
        if self.streamer_name is None:
            self.subtitle.setText("In the room. Waiting for someone to stream…")
            self.video.set_placeholder("Nobody is streaming in this room yet.\n"
                                      "The video starts as soon as someone goes live.")

    def on_joined(self, event: Joined) -> None:
        via = event.parent or "the streamer"
        who = self.streamer_name or "the stream"
        self.subtitle.setText(f"Watching {who} · via {via} · depth {event.depth}")
        self.video.set_placeholder("Waiting for the first picture…")
        self.banner.clear("info")

    def on_stream_started(self, event: StreamStarted) -> None:
        self.live_badge.show()
        self.subtitle.setText(f"Watching {event.streamer}")
        self.video.set_placeholder(f"{event.streamer} is live. Connecting to the stream…")
        self.banner.clear("info")

    def on_stream_ended(self, event: StreamEnded) -> None:
        self.live_badge.hide()
        who = f"{event.streamer}'s stream" if event.streamer else "The stream"
        self.subtitle.setText("Waiting for someone to stream…")
        self.video.clear(f"{who} has ended.")
        self.banner.show_message(
            "info",
            f"{who} has ended ({event.reason}). Stay here to watch the next stream in "
            "this room, or go back.",
            [("back", "Back")],
        )

    # -- fullscreen ---------------------------------------------------------------------

    @pyqtSlot()
    def toggle_fullscreen(self) -> None:
        """Fullscreen video on/off (F11, double-click)."""
        self.set_fullscreen(not self.fullscreen)

    def set_fullscreen(self, on: bool) -> None:
        """Show only the video, filling the screen (or go back)."""
        if on == self.fullscreen:
            return
        self.fullscreen = on
        for widget in (self.header, self.controls, self.stats_card, self.side):
            widget.setVisible(not on)
        margin = 0 if on else 16
        self.root_layout.setContentsMargins(margin, 0 if on else 12, margin, margin)
        window = self.window()
        if window is not None:
            if on:
                self._was_maximized = window.isMaximized()
                window.showFullScreen()
            elif self._was_maximized:
                window.showMaximized()
            else:
                window.showNormal()
        self.fullscreen_changed.emit(on)

    def set_leaving(self) -> None:
        self.set_fullscreen(False)
        super().set_leaving()
