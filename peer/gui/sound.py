"""The viewer's sound controls: mute, volume, and a "no sound" note.

Volume and mute are remembered between runs (QSettings "sound/volume", "sound/muted")
and applied to the node through the bridge. The note shows when the stream has no
sound (nothing arrived for a second), so silence is never mistaken for a broken
speaker.
"""

from __future__ import annotations

from PyQt6.QtCore import QSettings, Qt, pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QWidget

from peer.node.events import Stats

VOLUME_KEY = "sound/volume"
MUTED_KEY = "sound/muted"


class SoundControls(QWidget):
    """Mute button, volume slider (0-100) and the "no sound" note.

    Signals:
        volume_changed(float): the volume, 0..1, after the user moved the slider.
        muted_changed(bool): the user muted (True) or unmuted.
    """

    volume_changed = pyqtSignal(float)
    muted_changed = pyqtSignal(bool)

    def __init__(self, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        """Args:
        settings: where volume and mute are remembered (default: the app's).
        parent: Qt parent.
        """
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings("Treecast", "Treecast")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self.mute_button = QToolButton(self)
        self.mute_button.setCheckable(True)
        self.mute_button.setAccessibleName("Mute")
        self.mute_button.setToolTip("Mute (M)")
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 100)
        self.slider.setFixedWidth(90)
        self.slider.setAccessibleName("Volume")
        self.slider.setToolTip("Volume")
        self.no_sound = QLabel("No sound", self)
        self.no_sound.setObjectName("no_sound")
        self.no_sound.setToolTip("This stream carries no sound (or none arrives)")
        self.no_sound.hide()
        layout.addWidget(self.mute_button)
        layout.addWidget(self.slider)
        layout.addWidget(self.no_sound)
        volume = _int(self.settings.value(VOLUME_KEY, 80), 80)
        self.slider.setValue(max(0, min(100, volume)))
        self.mute_button.setChecked(_bool(self.settings.value(MUTED_KEY, False)))
        self._show_mute()
        self.slider.valueChanged.connect(self._on_slider)
        self.mute_button.toggled.connect(self._on_mute)

    @property
    def volume(self) -> float:
        return self.slider.value() / 100

    @property
    def muted(self) -> bool:
        return self.mute_button.isChecked()

    def toggle_mute(self) -> None:
        """The M key."""
        self.mute_button.toggle()

    @pyqtSlot(int)
    def _on_slider(self, value: int) -> None:
        self.settings.setValue(VOLUME_KEY, value)
        self.volume_changed.emit(value / 100)

    @pyqtSlot(bool)
    def _on_mute(self, muted: bool) -> None:
        self.settings.setValue(MUTED_KEY, muted)
        self._show_mute()
        self.muted_changed.emit(muted)

    def _show_mute(self) -> None:
        self.mute_button.setText("🔇" if self.muted else "🔊")

    @pyqtSlot(object)
    def update_stats(self, stats: Stats) -> None:
        """Show the note while the stream has no sound."""
        self.no_sound.setVisible(stats.audio is None or not stats.audio.sound)


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except ValueError:
        return default


def _bool(value: object) -> bool:
    # QSettings' INI backend gives strings back ("true"/"false").
    return value is True or str(value).lower() in ("true", "1")
