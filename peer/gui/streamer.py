"""The streamer screen: pick a source, preview it, go live, see who watches."""

from __future__ import annotations

import os

from PyQt6.QtCore import pyqtSlot
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableView,
    QWidget,
)

from peer.gui.bridge import (
    Action,
    CameraSource,
    FailureKind,
    FileSource,
    NodeBridge,
    PatternSource,
    SessionRequest,
    SourceProgress,
    SourceSpec,
    StreamEnded,
    StreamStarted,
    TreeChanged,
)
from peer.gui.session import SessionView
from peer.gui.theme import icon
from peer.gui.tree import PeerTableModel

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm);;All files (*)"
SOURCE_PATTERN, SOURCE_FILE, SOURCE_CAMERA = range(3)


def choose_video_file(parent: QWidget) -> str | None:
    """Ask for a video file to stream (an open dialog). Tests replace this function."""
    path, _ = QFileDialog.getOpenFileName(parent, "Choose a video to stream", "", VIDEO_FILTER)
    return path or None


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StreamerView(SessionView):
    """Stream a file, the test pattern or a camera to the room.

    The node joins the room as soon as the screen opens (so chat and the tree work
    before going live); "Go live" claims the streamer lock with the chosen source.
    """

    placeholder_text = "Pick a source, then press “Go live”.\nThe preview shows here."

    def __init__(
        self, bridge: NodeBridge, request: SessionRequest, parent: QWidget | None = None
    ) -> None:
        """Args:
        bridge: the session's node bridge (started as a viewer; we stream on demand).
        request: what the start screen asked for (streaming=True).
        parent: Qt parent.
        """
        self._pending = False
        self._tree: TreeChanged | None = None
        super().__init__(bridge, request, parent)
        self.subtitle.setText("Connecting…")
        self.bridge.streaming_changed.connect(self._on_streaming_changed)
        self.bridge.source_progress.connect(self.on_source_progress)
        self._update_controls()

    def add_side_tabs(self) -> None:
        self.viewers_model = PeerTableModel(self)
        self.viewers_table = QTableView(self.side)
        self.viewers_table.setModel(self.viewers_model)
        self.viewers_table.setShowGrid(False)
        self.viewers_table.setSelectionMode(QTableView.SelectionMode.NoSelection)
        self.viewers_table.verticalHeader().hide()  # type: ignore[union-attr]
        header = self.viewers_table.horizontalHeader()
        if header is not None:
            header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.side.addTab(self.viewers_table, "Viewers")

    def build_controls(self) -> None:
        self.source_combo = QComboBox(self.controls)
        self.source_combo.addItem(icon(self, "SP_DesktopIcon"), "Test pattern")
        self.source_combo.addItem(icon(self, "SP_FileIcon"), "Video file")
        self.source_combo.addItem(icon(self, "SP_ComputerIcon"), "Camera")
        self.source_combo.currentIndexChanged.connect(self._update_controls)
        self.file_edit = QLineEdit(self.controls)
        self.file_edit.setReadOnly(True)
        self.file_edit.setPlaceholderText("No file chosen")
        self.browse_button = QPushButton("Browse…", self.controls)
        self.browse_button.setIcon(icon(self, "SP_DirOpenIcon"))
        self.browse_button.clicked.connect(self._browse)
        self.loop_check = QCheckBox("Loop", self.controls)
        self.loop_check.setToolTip("Start the file again when it ends")
        self.camera_label = QLabel("Camera", self.controls)
        self.camera_spin = QSpinBox(self.controls)
        self.camera_spin.setRange(0, 15)
        self.camera_spin.setToolTip("The camera's number (0 is the first camera)")
        self.live_button = QPushButton("Go live", self.controls)
        self.live_button.setObjectName("primary")
        self.live_button.setIcon(icon(self, "SP_MediaPlay"))
        self.live_button.clicked.connect(self._on_live_clicked)
        self.progress = QProgressBar(self.controls)
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.setMinimumWidth(120)
        self.progress_label = QLabel("", self.controls)
        for widget in (
            self.source_combo, self.file_edit, self.browse_button, self.loop_check,
            self.camera_label, self.camera_spin,
        ):
            self.controls_layout.addWidget(widget)
        self.controls_layout.setStretchFactor(self.file_edit, 1)
        self.controls_layout.addStretch(0)
        self.controls_layout.addWidget(self.progress)
        self.controls_layout.addWidget(self.progress_label)
        self.controls_layout.addWidget(self.live_button)
        self.progress.hide()
        self.progress_label.hide()

    # -- source ---------------------------------------------------------------------------

    def source(self) -> SourceSpec | None:
        """The source the picker describes (None: a file is needed but not chosen)."""
        kind = self.source_combo.currentIndex()
        if kind == SOURCE_FILE:
            path = self.file_edit.text()
            return FileSource(path, loop=self.loop_check.isChecked()) if path else None
        if kind == SOURCE_CAMERA:
            return CameraSource(self.camera_spin.value())
        return PatternSource()

    def set_file(self, path: str) -> None:
        """Pick a video file as the source."""
        self.source_combo.setCurrentIndex(SOURCE_FILE)
        self.file_edit.setText(path)
        self.file_edit.setToolTip(path)
        self.banner.clear("error")
        self._update_controls()

    def _browse(self) -> None:
        path = choose_video_file(self)
        if path:
            self.set_file(path)

    @pyqtSlot()
    def _update_controls(self, *_: object) -> None:
        kind = self.source_combo.currentIndex()
        streaming = self.bridge.is_streaming
        editable = not streaming and not self._pending
        file_widgets: tuple[QWidget, ...] = (self.file_edit, self.browse_button, self.loop_check)
        for widget in file_widgets:
            widget.setVisible(kind == SOURCE_FILE)
        for widget in (self.camera_label, self.camera_spin):
            widget.setVisible(kind == SOURCE_CAMERA)
        inputs: tuple[QWidget, ...] = (
            self.source_combo, self.browse_button, self.loop_check, self.camera_spin,
        )
        for widget in inputs:
            widget.setEnabled(editable)
        if streaming:
            self.live_button.setText("Stop streaming")
            self.live_button.setObjectName("danger")
            self.live_button.setIcon(icon(self, "SP_MediaStop"))
            self.live_button.setEnabled(not self._pending)
        else:
            self.live_button.setText("Starting…" if self._pending else "Go live")
            self.live_button.setObjectName("primary")
            self.live_button.setIcon(icon(self, "SP_MediaPlay"))
            self.live_button.setEnabled(
                self.bridge.is_started and not self._pending and self.source() is not None
            )
        # The object name picks the stylesheet rule; re-polish to apply the new one.
        style = self.live_button.style()
        if style is not None:
            style.unpolish(self.live_button)
            style.polish(self.live_button)

    @pyqtSlot()
    def _on_live_clicked(self) -> None:
        if self.bridge.is_streaming:
            self._pending = True
            self.bridge.stop_streaming()
        else:
            source = self.source()
            if source is None:
                return
            self._pending = True
            self.banner.clear()
            self.video.clear("Opening the source…")
            self.bridge.start_streaming(source)
        self._update_controls()

    # -- bridge signals -------------------------------------------------------------------

    @pyqtSlot()
    def _on_frame_ready(self) -> None:
        image = self.bridge.take_frame()
        # Before going live the node is a plain viewer of the room: another peer's
        # stream must not pass for our preview.
        if self.bridge.is_streaming or self._pending:
            self.video.set_image(image)

    def on_started(self) -> None:
        if self.streamer_id not in (None, self.bridge.peer_id):
            self.subtitle.setText(f"{self.streamer_name} is streaming in this room.")
        else:
            self.subtitle.setText("In the room. Pick a source and go live.")
        self._update_controls()

    def _idle_placeholder(self) -> str:
        other = self.streamer_id not in (None, self.bridge.peer_id)
        if other and not self.bridge.is_streaming:
            return (
                f"{self.streamer_name} is streaming in this room.\n"
                "Only one person streams at a time."
            )
        return self.placeholder_text

    @pyqtSlot(bool)
    def _on_streaming_changed(self, streaming: bool) -> None:
        self._pending = False
        self.live_badge.setVisible(streaming)
        if streaming:
            self.subtitle.setText(f"You are live in “{self.request.room}”")
            self.banner.clear()
        else:
            self.subtitle.setText("Not streaming. Pick a source and go live.")
            self.video.clear(self._idle_placeholder())
            self.progress.hide()
            self.progress_label.hide()
        self._show_viewers()
        self._update_controls()

    @pyqtSlot(object)
    def on_source_progress(self, event: SourceProgress) -> None:
        """Show how far into the file the stream is."""
        if event.duration_s:
            self.progress.show()
            self.progress.setValue(int(1000 * min(event.position_s / event.duration_s, 1.0)))
            self.progress_label.setText(
                f"{_clock(event.position_s)} / {_clock(event.duration_s)}"
            )
        else:
            self.progress.hide()
            self.progress_label.setText(f"live · {_clock(event.position_s)}")
        self.progress_label.show()

    def on_tree_changed(self, tree: object) -> None:
        assert isinstance(tree, TreeChanged)
        self._tree = tree
        self._show_viewers()

    def _show_viewers(self) -> None:
        """Our viewers while live; before that the room's peers watch someone else."""
        live = self.bridge.is_streaming and self._tree is not None
        tree = self._tree if live else None
        self.viewers_model.set_tree(
            tree or TreeChanged(peers=(), self_id=self.bridge.peer_id)
        )
        index = self.side.indexOf(self.viewers_table)
        count = f" ({self.viewers_model.rowCount()})" if live else ""
        self.side.setTabText(index, f"Viewers{count}")

    def on_stream_started(self, event: StreamStarted) -> None:
        if event.streamer_id != self.bridge.peer_id and not self.bridge.is_streaming:
            self.subtitle.setText(f"{event.streamer} is streaming in this room.")
            self.video.clear(self._idle_placeholder())

    def on_stream_ended(self, event: StreamEnded) -> None:
        if self._pending or self.bridge.is_streaming:
            return
        if event.streamer in (None, self.request.name):
            self.banner.show_message(
                "info",
                f"Your stream ended ({event.reason}). Pick a source to go live again.",
                [("dismiss", "OK")],
            )

    def on_action_failed(self, action: Action, kind: FailureKind, message: str) -> None:
        if action in (Action.START_STREAMING, Action.STOP_STREAMING):
            self._pending = False
            self._update_controls()
            self.video.clear(self._idle_placeholder())
        if action is Action.START_STREAMING and kind is FailureKind.MEDIA:
            what = (
                os.path.basename(self.file_edit.text())
                if self.source_combo.currentIndex() == SOURCE_FILE
                else self.source_combo.currentText().lower()
            )
            self.banner.show_message(
                "error",
                f"Can't stream the {what}: {message} Pick another file or source.",
                [("dismiss", "OK")],
            )
            return
        super().on_action_failed(action, kind, message)
