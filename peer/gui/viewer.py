"""The viewer screen: the stream, a resolution choice, fullscreen, recording."""

from __future__ import annotations

import os
import re
import time

from PyQt6.QtCore import QSettings, QStandardPaths, Qt, QUrl, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QDesktopServices, QKeySequence, QShortcut, QStandardItemModel
from PyQt6.QtWidgets import QComboBox, QFileDialog, QLabel, QPushButton, QWidget

from peer.gui import theme
from peer.gui.bridge import (
    AUTO,
    LAYERS,
    Action,
    FailureKind,
    Joined,
    NodeBridge,
    PlaybackChanged,
    SessionRequest,
    StreamEnded,
    StreamStarted,
)
from peer.gui.session import RESUMED_NOTICE_MS, SessionView
from peer.gui.sound import SoundControls
from peer.gui.theme import Colors, dot_icon, set_icon, square_icon

# What the resolution list offers: Auto first (the default), then every layer.
RESOLUTION_CHOICES: tuple[int | str, ...] = (AUTO, *LAYERS)
# The containers the node records to (its recorder also takes .m4v).
RECORD_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov")
RECORD_FILTER = "Video (*.mp4 *.avi *.mkv *.mov)"


def suggested_recording_path(room: str) -> str:
    """Where the save dialog starts: the Videos folder, the room and the time."""
    folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.MoviesLocation)
    if not folder or not os.path.isdir(folder):
        folder = os.path.expanduser("~")
    safe_room = re.sub(r"[^\w.-]+", "-", room).strip("-.") or "stream"
    stamp = time.strftime("%Y-%m-%d-%H%M")
    return os.path.join(folder, f"treecast-{safe_room}-{stamp}.mp4")


def with_video_suffix(path: str) -> str:
    """Add ".mp4" to a name typed without an extension (the dialog may not)."""
    return path if os.path.splitext(path)[1] else path + ".mp4"


def choose_recording_path(parent: QWidget, suggested: str) -> str | None:
    """Ask where to record (a save dialog). Tests replace this function."""
    path, _ = QFileDialog.getSaveFileName(parent, "Record the stream to…", suggested,
                                          RECORD_FILTER)
    return with_video_suffix(path) if path else None


def open_folder(path: str) -> None:
    """Show the folder holding ``path`` in the file manager. Tests replace this."""
    QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(os.path.abspath(path))))


def next_part_path(path: str, layer: int) -> str:
    """The file a recording continues in after a resolution change.

    A video file keeps one picture size, so the recording goes on in a new file
    named after the new size: ``seen.mp4`` -> ``seen-480p.mp4`` (and ``seen-720p.mp4``
    rather than ``seen-480p-720p.mp4`` on the next change).
    """
    stem, extension = os.path.splitext(path)
    stem = re.sub(r"-\d{3,4}p$", "", stem)
    return f"{stem}-{layer}p{extension}"


def _reason(message: str, path: str) -> str:
    """The node's message without the "cannot record to PATH: " the banner says too."""
    prefix = f"cannot record to {path}: "
    reason = message[len(prefix):] if message.startswith(prefix) else message
    return reason.rstrip(".") or "unknown error"


class ViewerView(SessionView):
    """Watch the room's stream.

    "Record" asks for a file and starts recording what we watch, at the resolution
    we receive (``NodeBridge.set_recording``); "Stop recording" finishes the file.
    While recording a red "● REC name" shows next to the button (and "● REC" over
    the video in fullscreen).

    Signals:
        fullscreen_changed(bool): the video went fullscreen (True) or back.
    """

    fullscreen_changed = pyqtSignal(bool)

    def __init__(
        self, bridge: NodeBridge, request: SessionRequest, parent: QWidget | None = None,
        settings: QSettings | None = None,
    ) -> None:
        """Args:
        bridge: the session's node bridge.
        request: what the start screen asked for (streaming=False).
        parent: Qt parent.
        settings: where volume and mute are remembered (default: the app's).
        """
        self._settings = settings
        self.placeholder_text = f"Joining “{request.room}”…"
        self.fullscreen = False
        self._was_maximized = False
        self._layer = request.resolution
        self._record_pending = False
        self._record_target: str | None = None  # the path asked for, while pending
        self._last_recording: str | None = None  # the file being written, to name it
        self._record_warning = ""  # the banner text of a failed attempt, to clear it
        self._rolled_from: str | None = None  # the file finished by a resolution change
        self._last_saved = ""  # the file "Open folder" shows
        super().__init__(bridge, request, parent)
        self.subtitle.setText("Connecting…")
        self.video.double_clicked.connect(self.toggle_fullscreen)
        # Window-wide shortcuts: they only fire while this view is shown.
        # F11 works from anywhere in the window (F, Esc, M: SessionView.keyPressEvent,
        # so a text field keeps its letters).
        QShortcut(QKeySequence(Qt.Key.Key_F11), self, self.toggle_fullscreen)
        self.sound.volume_changed.connect(self.bridge.set_volume)
        self.sound.muted_changed.connect(self.bridge.set_muted)
        self.bridge.stats_updated.connect(self.sound.update_stats)
        self.bridge.layers_changed.connect(self.set_available_layers)
        self.bridge.resolution_changed.connect(self._on_resolution_changed)
        self.bridge.recording_changed.connect(self._on_recording_changed)
        self.bridge.playback_changed.connect(self.on_playback_changed)
        theme.notifier.changed.connect(self._update_record_controls)
        self.bridge.stopped.connect(self._update_record_controls)
        self._update_record_controls()

    def build_controls(self) -> None:
        self.resolution_label = QLabel("Resolution", self.controls)
        self.resolution_combo = QComboBox(self.controls)
        for choice in RESOLUTION_CHOICES:
            self.resolution_combo.addItem("Auto" if choice == AUTO else f"{choice}p", choice)
        self.resolution_combo.setCurrentIndex(self._row(self._layer))
        self.resolution_combo.setToolTip(
            "The picture size you receive. Auto: the best your connection carries. "
            "Sizes above the source are not available."
        )
        self.resolution_combo.activated.connect(self._on_resolution_picked)
        self.resolution_combo.setAccessibleName("Resolution")
        self.resolution_label.setBuddy(self.resolution_combo)
        self.fullscreen_button = QPushButton("Fullscreen", self.controls)
        set_icon(self.fullscreen_button, "SP_TitleBarMaxButton")
        self.fullscreen_button.setToolTip("Fullscreen (F, F11 or double-click; Esc leaves)")
        self.fullscreen_button.clicked.connect(self.toggle_fullscreen)
        self.record_button = QPushButton("Record", self.controls)
        self.record_button.clicked.connect(self.toggle_recording)
        self.record_indicator = QLabel(self.controls)
        self.record_indicator.setObjectName("rec")
        self.record_indicator.hide()
        self.controls_layout.addWidget(self.resolution_label)
        self.controls_layout.addWidget(self.resolution_combo)
        self.controls_layout.addWidget(self.fullscreen_button)
        self.controls_layout.addSpacing(12)
        self.sound = SoundControls(self._settings, self.controls)
        self.controls_layout.addWidget(self.sound)
        self.controls_layout.addSpacing(12)
        self.controls_layout.addWidget(self.record_button)
        self.controls_layout.addWidget(self.record_indicator)
        self.controls_layout.addStretch(1)

    # -- resolution -------------------------------------------------------------------

    @property
    def layer(self) -> int | str:
        """The layer the node last confirmed (or the one asked for at join); "auto"
        when the parent picks what the path carries."""
        return self._layer

    def _row(self, choice: int | str) -> int:
        return RESOLUTION_CHOICES.index(choice)

    @pyqtSlot(tuple)
    def set_available_layers(self, layers: tuple[int, ...]) -> None:
        """Grey out sizes the source cannot give (above it); Auto is always there."""
        model = self.resolution_combo.model()
        assert isinstance(model, QStandardItemModel)  # QComboBox's default model
        for layer in LAYERS:
            item = model.item(self._row(layer))
            if item is not None:
                item.setEnabled(not layers or layer in layers)
        if layers and self._layer != AUTO and self._layer not in layers:
            # The node serves the best layer not above the source; show that one.
            wanted = int(self._layer)
            best = max((layer for layer in layers if layer <= wanted), default=layers[0])
            self.resolution_combo.setCurrentIndex(self._row(best))

    def layer_enabled(self, layer: int | str) -> bool:
        """Whether a choice can be picked now."""
        model = self.resolution_combo.model()
        assert isinstance(model, QStandardItemModel)
        item = model.item(self._row(layer))
        return item is not None and item.isEnabled()

    @pyqtSlot(int)
    def _on_resolution_picked(self, index: int) -> None:
        choice = self.resolution_combo.itemData(index)
        if choice != self._layer:
            self.bridge.set_resolution(choice)

    @pyqtSlot(object)
    def _on_resolution_changed(self, layer: int | str) -> None:
        self._layer = layer
        self.resolution_combo.setCurrentIndex(self._row(layer))
        path = self.bridge.recording_path
        if path is not None and not self._record_pending and layer != AUTO:
            # The recorder keeps the size it started with: go on in a new file at the
            # size we receive now, and say so. (On Auto the size follows the path,
            # so the file keeps the size it started with.)
            self._rolled_from = path
            self._record_target = next_part_path(path, int(layer))
            self._record_pending = True
            self._update_record_controls()
            self.bridge.set_recording(self._record_target)

    def on_action_failed(self, action: Action, kind: FailureKind, message: str) -> None:
        if action is Action.SET_RESOLUTION:
            # Put the choice back to what we really receive.
            self.resolution_combo.setCurrentIndex(self._row(self._layer))
            self.banner.show_message(
                "warning", f"Couldn't change the resolution: {message}", [("dismiss", "OK")]
            )
            return
        if action is Action.SET_RECORDING:
            self._on_recording_failed(message)
            return
        super().on_action_failed(action, kind, message)

    # -- recording --------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        """True while the node records (as it confirmed)."""
        return self.bridge.recording_path is not None

    @pyqtSlot()
    def toggle_recording(self) -> None:
        """Record: ask for a file and start; Stop recording: finish the file."""
        if self._record_pending or not self.bridge.is_started:
            return
        if self.recording:
            self._record_target = None
        else:
            path = choose_recording_path(self, suggested_recording_path(self.request.room))
            if not path:
                return  # the dialog was cancelled
            self._record_target = path
        self._record_pending = True
        self._update_record_controls()
        self.bridge.set_recording(self._record_target)

    @pyqtSlot(object)
    def _on_recording_changed(self, path: str | None) -> None:
        finished, self._last_recording = self._last_recording, path
        self._record_target = None
        self._record_pending = False
        self._update_record_controls()
        if self._record_warning and self.banner.text() == self._record_warning:
            self.banner.clear()  # an earlier failed attempt is settled now
        self._record_warning = ""
        rolled, self._rolled_from = self._rolled_from, None
        if path is not None and rolled is not None and not self.leaving:
            self.banner.show_message(
                "ok",
                f"Saved {os.path.basename(rolled)}; recording goes on at {self._layer}p "
                f"in {os.path.basename(path)}.",
                [("open_folder", "Open folder")], details=path,
            )
            self._last_saved = path
            self._ok_timer.start(RESUMED_NOTICE_MS)
        if path is None and finished and not self.leaving:
            self._last_saved = finished
            self.banner.show_message(
                "ok", f"Saved the recording to {finished}.",
                [("open_folder", "Open folder")], details=finished,
            )
            self._ok_timer.start(RESUMED_NOTICE_MS)

    def _on_recording_failed(self, message: str) -> None:
        target, self._record_target = self._record_target, None
        self._record_pending = False
        self._update_record_controls()
        if target is None:  # stopping failed: the node has dropped the recording anyway
            finished = self._last_recording or "the file"
            self._last_recording = None
            self.banner.show_message(
                "warning",
                f"The recording stopped, but {os.path.basename(finished)} may be incomplete "
                f"({message}). Press Record to start a new file.",
                [("dismiss", "OK")], details=message,
            )
            return
        self.banner.show_message(
            "warning",
            f"Couldn't record to {os.path.basename(target)}: {_reason(message, target)}. "
            "Choose a file ending in .mp4, .avi, .mkv or .mov in a folder you can "
            "write to.",
            [("record", "Choose another file…"), ("dismiss", "OK")],
            details=message,
        )
        self._record_warning = self.banner.text()

    def on_banner_action(self, key: str) -> None:
        if key == "open_folder":
            if self._last_saved:
                open_folder(self._last_saved)
            self.banner.clear()
        elif key == "record":
            self.banner.clear()
            self.toggle_recording()
        else:
            super().on_banner_action(key)

    def _update_record_controls(self, *_: object) -> None:
        recording = self.recording
        self.record_button.setText("Stop recording" if recording else "Record")
        self.record_button.setIcon(
            square_icon(Colors.TEXT) if recording else dot_icon(Colors.DANGER)
        )
        self.record_button.setEnabled(
            self.bridge.is_started and not self._record_pending and not self.leaving
        )
        if self._record_pending:
            self.record_button.setToolTip("Stopping…" if recording else "Starting…")
        elif recording:
            self.record_button.setToolTip("Finish the recording file")
        else:
            self.record_button.setToolTip(
                "Record what you watch to a video file, at the resolution you receive"
            )
        path = self.bridge.recording_path
        if path is not None:
            self.record_indicator.setText(f"● REC {os.path.basename(path)}")
            self.record_indicator.setToolTip(f"Recording to {path}")
        self.record_indicator.setVisible(path is not None)
        self._update_video_badge()

    def _update_video_badge(self) -> None:
        # Controls are hidden in fullscreen: the video itself says it is recorded.
        self.video.set_badge("● REC" if self.fullscreen and self.recording else "")

    # -- stream state -------------------------------------------------------------------

    def on_started(self) -> None:
        self._update_record_controls()
        # The remembered volume and mute apply from the first sound on.
        self.bridge.set_volume(self.sound.volume)
        self.bridge.set_muted(self.sound.muted)
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

    @pyqtSlot(object)
    def on_playback_changed(self, event: PlaybackChanged) -> None:
        """The streamer paused or played on: say so over the picture."""
        self.video.set_overlay("Paused" if event.paused else "")
        who = self.streamer_name or "The streamer"
        if event.paused:
            self.subtitle.setText(f"{who} paused the video")
        elif self.streamer_name:
            self.subtitle.setText(f"Watching {self.streamer_name}")

    def on_stream_started(self, event: StreamStarted) -> None:
        self.video.set_overlay("")
        self.live_badge.show()
        self.subtitle.setText(f"Watching {event.streamer}")
        self.video.set_placeholder(f"{event.streamer} is live. Connecting to the stream…")
        self.banner.clear("info")

    def on_stream_ended(self, event: StreamEnded) -> None:
        self.video.set_overlay("")
        self.live_badge.hide()
        sentence = self.stream_end_text(event)
        self.subtitle.setText("Waiting for someone to stream…")
        self.video.clear(sentence)
        self.banner.show_message(
            "info",
            f"{sentence} Stay here to watch the next stream in this room, or go back.",
            [("back", "Back")],
        )

    # -- fullscreen ---------------------------------------------------------------------

    @pyqtSlot()
    def toggle_fullscreen(self) -> bool:
        """Fullscreen video on/off (F, F11, double-click)."""
        self.set_fullscreen(not self.fullscreen)
        return True

    def toggle_mute(self) -> bool:
        """M: sound off/on (the volume controls' mute button)."""
        self.sound.toggle_mute()
        return True

    def leave_fullscreen(self) -> bool:
        if not self.fullscreen:
            return False
        self.set_fullscreen(False)
        return True

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
        self._update_video_badge()
        self.fullscreen_changed.emit(on)

    def set_leaving(self) -> None:
        self.set_fullscreen(False)
        super().set_leaving()
