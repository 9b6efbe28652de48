"""The streamer screen: pick a source, preview it, go live, see who watches."""

from __future__ import annotations

import dataclasses
import os

from PyQt6.QtCore import pyqtSlot
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
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
    PlaybackChanged,
    ScreenSource,
    SessionRequest,
    SourceInfo,
    SourcePreview,
    SourceProgress,
    SourceSpec,
    Stats,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
)
from peer.gui.session import SessionView, stream_end_words, viewers_of
from peer.gui.theme import icon, set_icon
from peer.gui.tree import PeerTableModel
from peer.gui.widgets import SeekBar

VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm);;All files (*)"
SOURCE_PATTERN, SOURCE_FILE, SOURCE_CAMERA, SOURCE_SCREEN = range(4)
# The test pattern's choices: the layers a viewer can pick, and common frame rates.
PATTERN_SIZES = ((1920, 1080), (1280, 720), (854, 480), (640, 360))
PATTERN_RATES = (15.0, 24.0, 30.0, 60.0)


def choose_video_file(parent: QWidget) -> str | None:
    """Ask for a video file to stream (an open dialog). Tests replace this function."""
    path, _ = QFileDialog.getOpenFileName(parent, "Choose a video to stream", "", VIDEO_FILTER)
    return path or None


def confirm_end_broadcast(parent: QWidget, viewers: int) -> bool:
    """Ask before ending a stream people watch. Tests replace this function."""
    people = "1 person is" if viewers == 1 else f"{viewers} people are"
    answer = QMessageBox.question(
        parent, "End the broadcast?",
        f"{people} watching. Ending the broadcast stops it for everyone.",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel,
    )
    return answer == QMessageBox.StandardButton.Yes


def _clock(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StreamerView(SessionView):
    """Stream a file, the test pattern, a camera or the screen to the room.

    The node joins the room as soon as the screen opens (so chat and the tree work
    before going live); "Go live" claims the streamer lock with the chosen source.
    Each source is tried when it is chosen: its first picture is the preview, and a
    file that is not a video is reported at once.
    """

    placeholder_text = "Pick a source, then press “Go live”.\nThe preview shows here."

    def __init__(
        self,
        bridge: NodeBridge,
        request: SessionRequest,
        parent: QWidget | None = None,
        preview: SourcePreview | None = None,
    ) -> None:
        """Args:
        bridge: the session's node bridge (started as a viewer; we stream on demand).
        request: what the start screen asked for (streaming=True).
        parent: Qt parent.
        preview: tries sources before going live (a worker-thread one by default).
        """
        self._pending = False
        self._stop_asked = False  # the user pressed Stop: the end is theirs, not the file's
        self._tree: TreeChanged | None = None
        self._preview_ok: SourceSpec | None = None  # the last source that opened
        self._preview_error = ""
        self._last_progress: SourceProgress | None = None
        self.paused = False  # our file stream is paused (as the node confirmed)
        super().__init__(bridge, request, parent)
        self.preview = preview if preview is not None else SourcePreview(parent=self)
        self.preview.previewed.connect(self._on_previewed)
        self.preview.failed.connect(self._on_preview_failed)
        self.subtitle.setText("Connecting…")
        self.bridge.streaming_changed.connect(self._on_streaming_changed)
        self.bridge.source_progress.connect(self.on_source_progress)
        self.bridge.playback_changed.connect(self.on_playback_changed)
        self.bridge.layers_changed.connect(self._on_layers)
        self._source_changed()

    def add_side_tabs(self) -> None:
        self.viewers_model = PeerTableModel(self)
        self.viewers_table = QTableView(self.side)
        self.viewers_table.setModel(self.viewers_model)
        self.viewers_table.setShowGrid(False)
        self.viewers_table.setSelectionMode(QTableView.SelectionMode.NoSelection)
        self.viewers_table.setAccessibleName("Viewers of your stream")
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
        self.source_combo.addItem(icon(self, "SP_DesktopIcon"), "Screen")
        self.source_combo.setAccessibleName("Source")
        self.source_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.source_combo.currentIndexChanged.connect(self._source_changed)
        self.pattern_size_combo = QComboBox(self.controls)
        for width, height in PATTERN_SIZES:
            self.pattern_size_combo.addItem(f"{height}p", (width, height))
        self.pattern_size_combo.setCurrentIndex(PATTERN_SIZES.index((1280, 720)))
        self.pattern_size_combo.setAccessibleName("Test pattern size")
        self.pattern_size_combo.setToolTip("The test pattern's picture size")
        self.pattern_size_combo.currentIndexChanged.connect(self._source_changed)
        self.pattern_rate_combo = QComboBox(self.controls)
        for rate in PATTERN_RATES:
            self.pattern_rate_combo.addItem(f"{rate:g} fps", rate)
        self.pattern_rate_combo.setCurrentIndex(PATTERN_RATES.index(30.0))
        self.pattern_rate_combo.setAccessibleName("Test pattern frame rate")
        self.pattern_rate_combo.setToolTip("The test pattern's frame rate")
        self.pattern_rate_combo.currentIndexChanged.connect(self._source_changed)
        for combo in (self.pattern_size_combo, self.pattern_rate_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.file_edit = QLineEdit(self.controls)
        self.file_edit.setPlaceholderText("Paste a path or press Browse…")
        self.file_edit.setAccessibleName("Video file path")
        self.file_edit.setClearButtonEnabled(True)
        self.file_edit.editingFinished.connect(self._on_path_edited)
        self.file_edit.textChanged.connect(self._on_path_typed)
        self.browse_button = QPushButton("Browse…", self.controls)
        set_icon(self.browse_button, "SP_DirOpenIcon")
        self.browse_button.setAccessibleName("Browse for a video file")
        self.browse_button.clicked.connect(self._browse)
        self.loop_check = QCheckBox("Loop", self.controls)
        self.loop_check.setToolTip("Start the file again when it ends")
        self.loop_check.toggled.connect(self._update_controls)
        self.camera_label = QLabel("Camera", self.controls)
        self.camera_spin = QSpinBox(self.controls)
        self.camera_spin.setRange(0, 15)
        self.camera_spin.setToolTip("The camera's number (0 is the first camera)")
        self.camera_spin.setAccessibleName("Camera number")
        self.camera_label.setBuddy(self.camera_spin)
        self.camera_spin.valueChanged.connect(self._source_changed)
        self.screen_label = QLabel("Monitor", self.controls)
        self.screen_spin = QSpinBox(self.controls)
        self.screen_spin.setRange(0, 8)
        self.screen_spin.setValue(1)
        self.screen_spin.setToolTip("The monitor to share: 1 is the first, 0 all of them")
        self.screen_spin.setAccessibleName("Monitor to share")
        self.screen_label.setBuddy(self.screen_spin)
        self.screen_spin.valueChanged.connect(self._source_changed)
        self.live_button = QPushButton("Go live", self.controls)
        self.live_button.setObjectName("primary")
        set_icon(self.live_button, "SP_MediaPlay", "ON_ACCENT")
        self.live_button.clicked.connect(self._on_live_clicked)
        self.pause_button = QPushButton("Pause", self.controls)
        set_icon(self.pause_button, "SP_MediaPause")
        self.pause_button.setToolTip("Pause the video for everyone (Space)")
        self.pause_button.clicked.connect(self.toggle_pause)
        self.progress = SeekBar(self.controls)
        self.progress.setMaximumWidth(260)
        self.progress.setMinimumWidth(120)
        self.progress.setAccessibleName("Position in the file")
        self.progress.setToolTip("Click or drag to jump; everyone watching jumps too")
        self.progress.seek_requested.connect(self._on_seek_requested)
        self.progress_label = QLabel("", self.controls)
        for widget in (
            self.source_combo, self.pattern_size_combo, self.pattern_rate_combo,
            self.file_edit, self.browse_button, self.loop_check,
            self.camera_label, self.camera_spin, self.screen_label, self.screen_spin,
        ):
            self.controls_layout.addWidget(widget)
        self.controls_layout.setStretchFactor(self.file_edit, 1)
        self.controls_layout.addStretch(0)
        self.controls_layout.addWidget(self.pause_button)
        self.controls_layout.addWidget(self.progress)
        self.controls_layout.addWidget(self.progress_label)
        self.controls_layout.addWidget(self.live_button)
        self.progress.hide()
        self.progress_label.hide()
        self.pause_button.hide()
        # Why "Go live" is greyed out, in words (a tooltip alone is never seen).
        self.live_hint = self.controls_hint

    # -- source ---------------------------------------------------------------------------

    def source(self) -> SourceSpec | None:
        """The source the picker describes (None: a file is needed but not chosen)."""
        kind = self.source_combo.currentIndex()
        if kind == SOURCE_FILE:
            path = self.file_edit.text().strip()
            return FileSource(path, loop=self.loop_check.isChecked()) if path else None
        if kind == SOURCE_CAMERA:
            return CameraSource(self.camera_spin.value())
        if kind == SOURCE_SCREEN:
            return ScreenSource(self.screen_spin.value())
        width, height = self.pattern_size_combo.currentData()
        return PatternSource(width, height, float(self.pattern_rate_combo.currentData()))

    def set_file(self, path: str) -> None:
        """Pick a video file as the source (it is tried at once)."""
        self.source_combo.setCurrentIndex(SOURCE_FILE)
        self.file_edit.setText(path)
        self.file_edit.setToolTip(path)
        self.banner.clear("error")
        self._source_changed()

    def _browse(self) -> None:
        path = choose_video_file(self)
        if path:
            self.set_file(path)

    @pyqtSlot()
    def _on_path_edited(self) -> None:
        self.file_edit.setToolTip(self.file_edit.text())
        self._source_changed()

    @pyqtSlot(str)
    def _on_path_typed(self, _: str) -> None:
        # Typing invalidates the last check until Enter or leaving the field.
        self._preview_ok = None
        self._preview_error = ""
        self._update_controls()

    def _comparable(self, spec: SourceSpec | None) -> SourceSpec | None:
        # Looping does not change what opens: a check of the file covers both.
        return dataclasses.replace(spec, loop=False) if isinstance(spec, FileSource) else spec

    @pyqtSlot()
    def _source_changed(self, *_: object) -> None:
        """The picker changed: try the new source (unless we are live)."""
        self._preview_ok = None
        self._preview_error = ""
        spec = self.source()
        if not self.bridge.is_streaming and not self._pending:
            self.video.clear("Trying the source…" if spec is not None else self.placeholder_text)
            if spec is not None and not self._other_is_live():
                self.preview.check(self._comparable(spec))  # type: ignore[arg-type]
            else:
                self.preview.cancel()
        self._update_controls()

    @pyqtSlot(object)
    def _on_previewed(self, info: SourceInfo) -> None:
        if info.spec != self._comparable(self.source()):
            return
        self._preview_ok = info.spec
        self._preview_error = ""
        if not self.bridge.is_streaming and not self._pending:
            self.video.set_image(info.image)
            self.video.set_badge("PREVIEW")
            length = f" · {_clock(info.duration_s)}" if info.duration_s else ""
            self.subtitle.setText(
                f"Preview: {info.width}x{info.height} at {info.fps:g} fps{length}. "
                "Press “Go live” when ready."
            )
        self._update_controls()

    @pyqtSlot(object, str)
    def _on_preview_failed(self, spec: SourceSpec, message: str) -> None:
        if spec != self._comparable(self.source()):
            return
        self._preview_ok = None
        self._preview_error = message
        if not self.bridge.is_streaming and not self._pending:
            self.video.set_badge("")
            self.video.clear(f"Can't use this source: {message}")
        self._update_controls()

    def _other_is_live(self) -> bool:
        return self.streamer_id not in (None, self.bridge.peer_id)

    def live_blocker(self) -> str:
        """Why "Go live" can't be pressed now, in words ("" when it can)."""
        if not self.bridge.is_started:
            return "Joining the room…"
        if self._other_is_live():
            return f"{self.streamer_name} is streaming in this room: one stream at a time."
        spec = self.source()
        if spec is None:
            return "Choose a video file first."
        if self._preview_error:
            return f"Can't use this source: {self._preview_error}"
        if self._preview_ok != self._comparable(spec):
            return "Checking the source…"
        return ""

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
        for widget in (self.screen_label, self.screen_spin):
            widget.setVisible(kind == SOURCE_SCREEN)
        for widget in (self.pattern_size_combo, self.pattern_rate_combo):
            widget.setVisible(kind == SOURCE_PATTERN)
        inputs: tuple[QWidget, ...] = (
            self.source_combo, self.file_edit, self.browse_button, self.loop_check,
            self.camera_spin, self.screen_spin, self.pattern_size_combo,
            self.pattern_rate_combo,
        )
        for widget in inputs:
            widget.setEnabled(editable)
        blocker = ""
        if streaming:
            self.live_button.setText("Stop streaming")
            self.live_button.setObjectName("danger")
            set_icon(self.live_button, "SP_MediaStop", "ON_ACCENT")
            self.live_button.setEnabled(not self._pending)
        else:
            blocker = "" if self._pending else self.live_blocker()
            self.live_button.setText("Starting…" if self._pending else "Go live")
            self.live_button.setObjectName("primary")
            set_icon(self.live_button, "SP_MediaPlay", "ON_ACCENT")
            self.live_button.setEnabled(not self._pending and not blocker)
        self.live_button.setToolTip(blocker)
        self.live_hint.setText(blocker)
        self.live_hint.setVisible(bool(blocker))
        # The object name picks the stylesheet rule; re-polish to apply the new one.
        style = self.live_button.style()
        if style is not None:
            style.unpolish(self.live_button)
            style.polish(self.live_button)

    @pyqtSlot()
    def _on_live_clicked(self) -> None:
        if self.bridge.is_streaming:
            if not self.confirm_end():
                return
            self._pending = True
            self._stop_asked = True
            self.bridge.stop_streaming()
        else:
            source = self.source()
            if source is None or self.live_blocker():
                return
            self._pending = True
            self._stop_asked = False
            self._last_progress = None
            self.banner.clear()
            self.video.set_badge("")
            self.video.clear("Opening the source…")
            self.bridge.start_streaming(source)
        self._update_controls()

    def viewer_count(self) -> int:
        """People watching our stream now (0 when we are not live)."""
        if not self.bridge.is_streaming or self._tree is None:
            return 0
        return len(viewers_of(self._tree))

    def confirm_end(self) -> bool:
        """True when the broadcast may end: nobody watches, or the user agrees."""
        viewers = self.viewer_count()
        return viewers == 0 or confirm_end_broadcast(self, viewers)

    # -- bridge signals -------------------------------------------------------------------

    @pyqtSlot()
    def _on_frame_ready(self) -> None:
        image = self.bridge.take_frame()
        # Before going live the node is a plain viewer of the room: another peer's
        # stream must not pass for our preview.
        if self.bridge.is_streaming or self._pending:
            self.show_frame(image)

    def update_stats(self, stats: Stats) -> None:
        # Not live, the node's "resolution" is the layer it would watch at: we send
        # and show nothing, so there is no resolution to speak of.
        if not self.bridge.is_streaming:
            stats = dataclasses.replace(stats, width=0, height=0)
        super().update_stats(stats)

    def on_started(self) -> None:
        if self._other_is_live():
            self.subtitle.setText(f"{self.streamer_name} is streaming in this room.")
        elif self._preview_ok is None:
            self.subtitle.setText("In the room. Pick a source and go live.")
        self._update_controls()

    def _idle_placeholder(self) -> str:
        if self._other_is_live() and not self.bridge.is_streaming:
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
            self.video.set_badge("")
            self.banner.clear()
        else:
            self.subtitle.setText("Not streaming. Pick a source and go live.")
            self.progress.hide()
            self.progress_label.hide()
            self.pause_button.hide()
            self._show_paused(False)
            self._source_changed()  # the preview comes back
            if self._other_is_live():
                self.video.clear(self._idle_placeholder())
        self._show_viewers()
        self._update_controls()

    @pyqtSlot(object)
    def on_source_progress(self, event: SourceProgress) -> None:
        """Show how far into the file the stream is."""
        self._last_progress = event
        if event.duration_s:
            self.progress.show()
            self.pause_button.show()
            self.progress.show_position(
                int(1000 * min(event.position_s / event.duration_s, 1.0)))
            self.progress_label.setText(
                f"{_clock(event.position_s)} / {_clock(event.duration_s)}"
            )
        else:
            self.progress.hide()
            self.progress_label.setText(f"live · {_clock(event.position_s)}")
        self.progress_label.show()

    @pyqtSlot(tuple)
    def _on_layers(self, layers: tuple[int, ...]) -> None:
        self.viewers_model.set_available_layers(layers)
        self._show_viewers()

    # -- pause and seek (files) ------------------------------------------------------------

    def can_pause(self) -> bool:
        """Live with a file of known length (a camera or the screen can't pause)."""
        progress = self._last_progress
        return (self.bridge.is_streaming and progress is not None
                and bool(progress.duration_s))

    def toggle_pause(self) -> bool:
        """Space / the Pause button: pause or resume our file for everyone."""
        if not self.can_pause():
            return False
        self.bridge.set_paused(not self.paused)
        return True

    @pyqtSlot(int)
    def _on_seek_requested(self, value: int) -> None:
        progress = self._last_progress
        if self.can_pause() and progress is not None and progress.duration_s:
            self.bridge.seek(value / 1000 * progress.duration_s)

    @pyqtSlot(object)
    def on_playback_changed(self, event: PlaybackChanged) -> None:
        """The node paused, resumed or moved our file."""
        self._show_paused(event.paused)
        if event.duration_s:
            self.on_source_progress(SourceProgress(position_s=event.position_s,
                                                   duration_s=event.duration_s))

    def _show_paused(self, paused: bool) -> None:
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        set_icon(self.pause_button, "SP_MediaPlay" if paused else "SP_MediaPause")
        self.pause_button.setToolTip(
            "Play on for everyone (Space)" if paused else "Pause the video for everyone (Space)")
        self.video.set_overlay("Paused" if paused else "")
        if self.bridge.is_streaming:
            room = self.request.room
            self.subtitle.setText(f"Paused in “{room}”: everyone sees the pause"
                                  if paused else f"You are live in “{room}”")

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
            self.preview.cancel()
            self.video.set_badge("")
            self.video.clear(self._idle_placeholder())
            if self.bridge.is_started and not self._pending:
                self.banner.show_message(
                    "info",
                    f"{event.streamer} went live in “{self.request.room}”. Only one person "
                    "streams at a time: watch their stream, or wait until it ends.",
                    [("watch", "Watch instead"), ("dismiss", "OK")],
                )
        self._update_controls()

    def own_stream_end_text(self, event: StreamEnded) -> str:
        """What ended our own stream, in words."""
        if self._stop_asked:
            return "You stopped streaming."
        if event.reason is StreamEndReason.FINISHED:
            progress = self._last_progress
            if progress is not None and progress.duration_s:
                return "Your video reached its end."
            return "Your stream ended."
        return f"Your stream stopped: {stream_end_words(event)}."

    def stream_end_text(self, event: StreamEnded) -> str:
        if self._is_own_end(event):
            return self.own_stream_end_text(event)
        return super().stream_end_text(event)

    def _is_own_end(self, event: StreamEnded) -> bool:
        return self._pending or self.bridge.is_streaming or self._stop_asked or (
            event.streamer is not None and event.streamer == self.own_name
            and not self._other_is_live()
        )

    def on_stream_ended(self, event: StreamEnded) -> None:
        own = self._is_own_end(event)
        self._update_controls()
        if not own:
            if not self.bridge.is_streaming and not self._pending:
                self.banner.clear("info")
                self._source_changed()  # the room is free: the preview comes back
            return
        if self._pending:
            return
        text = self.own_stream_end_text(event)
        self._stop_asked = False
        if text != "You stopped streaming.":
            self.banner.show_message(
                "info", f"{text} Pick a source to go live again.", [("dismiss", "OK")],
            )

    def on_action_failed(self, action: Action, kind: FailureKind, message: str) -> None:
        if action in (Action.START_STREAMING, Action.STOP_STREAMING):
            self._pending = False
            self._stop_asked = False
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
                f"Can't stream the {what}: {message.rstrip('.')}. "
                "Pick another file or source.",
                [("dismiss", "OK")],
            )
            return
        super().on_action_failed(action, kind, message)

    def show_lock_denied(self, holder: str) -> None:
        super().show_lock_denied(holder)
        self.subtitle.setText(f"{holder} is streaming in this room.")

    def set_leaving(self) -> None:
        self.preview.close()
        super().set_leaving()
