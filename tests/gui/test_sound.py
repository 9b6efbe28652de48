"""The viewer's sound controls: remembered volume and mute, the M key, the no-sound
note and the sound line in the stats."""

from __future__ import annotations

from fakes import stats
from PyQt6.QtCore import Qt
from test_app import T, join

from peer.gui.sound import SoundControls
from peer.gui.stats import format_stats
from peer.node.audio.stats import AudioStats


def _audio(**overrides: object) -> AudioStats:
    values: dict[str, object] = dict(sound=True, kbps=64.2, loss_pct=0.0, lost=0,
                                     concealed=0, late=0, skipped=0, dropped=0, delay_ms=80.0,
                                     transit_ms=4.0, av_offset_ms=-3.0)
    values.update(overrides)
    return AudioStats(**values)  # type: ignore[arg-type]


def test_volume_and_mute_are_remembered_between_runs(qtbot, settings) -> None:
    first = SoundControls(settings)
    qtbot.addWidget(first)
    with qtbot.wait_signal(first.volume_changed) as volume:
        first.slider.setValue(35)
    assert volume.args == [0.35]
    with qtbot.wait_signal(first.muted_changed) as muted:
        first.toggle_mute()
    assert muted.args == [True]
    settings.sync()
    again = SoundControls(settings)
    qtbot.addWidget(again)
    assert again.volume == 0.35 and again.muted


def test_the_viewer_applies_the_remembered_sound_and_m_mutes(qtbot, window, factory,
                                                              settings) -> None:
    settings.setValue("sound/volume", 40)
    view = join(qtbot, window)
    node = factory.node
    # Both calls run in order on the node thread: wait for the second too.
    qtbot.waitUntil(lambda: node.called("set_volume") == [(0.4,)]
                    and node.called("set_muted") == [(False,)], timeout=T)
    assert node.config.audio.play  # a viewer plays the sound
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_M)
    qtbot.waitUntil(lambda: node.called("set_muted")[-1:] == [(True,)], timeout=T)
    assert view.sound.muted and settings.value("sound/muted") in (True, "true")
    # Typing an "m" in the chat is a letter, not the mute key.
    view.chat.input.setFocus()
    qtbot.keyClicks(view.chat.input, "mm")
    assert view.chat.input.text() == "mm" and view.sound.muted


def test_no_sound_note_and_the_sound_line(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    node = factory.node
    node.emit(stats(audio=_audio()))
    qtbot.waitUntil(lambda: view.stats.value("sound") == "64 kbps · 0.0 % · A/V -3 ms",
                    timeout=T)
    assert view.sound.no_sound.isHidden()
    node.emit(stats(audio=None))
    qtbot.waitUntil(lambda: view.stats.value("sound") == "none", timeout=T)
    assert not view.sound.no_sound.isHidden()


def test_sound_line_without_a_measured_offset() -> None:
    assert format_stats(stats(audio=_audio(av_offset_ms=None)))["sound"] == "64 kbps · 0.0 %"
    assert format_stats(stats(audio=_audio(sound=False)))["sound"] == "none"
