"""The desktop app's second pass (issue 16): each numbered problem, as a user meets it."""

from __future__ import annotations

import dataclasses

from fakes import stats
from PyQt6.QtCore import Qt
from test_app import T, join, leave, stream

from peer.gui import streamer as streamer_mod
from peer.gui.bridge import PatternSource
from peer.gui.viewer import ViewerView
from peer.node.events import ChatReceived, StreamEnded, StreamEndReason, StreamStarted
from protocol.limits import LAYERS, NO_VIDEO


def test_1_someone_going_live_while_we_choose_blocks_go_live(qtbot, window, factory) -> None:
    view = stream(qtbot, window)
    assert view.live_button.isEnabled()
    factory.node.emit(StreamStarted(streamer="Alice", streamer_id="id-Alice", epoch=3))
    qtbot.waitUntil(lambda: not view.live_button.isEnabled(), timeout=T)
    assert view.live_hint.text() == (
        "Alice is streaming in this room: one stream at a time."
    )
    assert view.banner.level == "info" and "Alice went live in “lobby”" in view.banner.text()
    assert view.banner.action_keys() == ["watch", "dismiss"]
    assert view.video.placeholder().startswith("Alice is streaming in this room.")
    # Alice's frames are not shown as our preview.
    assert view.video.image is None
    # Her stream ends: the room is free again and the preview comes back.
    factory.node.emit(StreamEnded(streamer="Alice", reason=StreamEndReason.FINISHED))
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    assert view.video.image is not None and view.banner.level == ""


def test_1_the_streamer_screen_asks_its_parent_for_no_video_while_choosing(
        qtbot, window, factory) -> None:
    """Someone else going live costs the chooser no download: its node asks for
    NO_VIDEO (chat and control only); "Watch instead" opens a viewer that asks for
    the best its path carries."""
    view = stream(qtbot, window)
    config = factory.node.config
    assert config.source is None and config.resolution == NO_VIDEO
    assert not config.auto_resolution
    assert factory.node.called("set_resolution") == []  # nothing raises it meanwhile
    factory.node.emit(StreamStarted(streamer="Alice", streamer_id="id-Alice", epoch=3))
    qtbot.waitUntil(lambda: view.banner.action_keys() == ["watch", "dismiss"], timeout=T)
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        view.banner.button("watch").click()
    assert isinstance(blocker.args[0], ViewerView)
    qtbot.waitUntil(lambda: blocker.args[0].bridge.is_started, timeout=T)
    watching = factory.node.config
    assert watching is not config and watching.source is None
    assert watching.auto_resolution and watching.resolution == max(LAYERS)


def test_3_closing_the_window_while_streaming_to_viewers_asks_first(
        qtbot, window, factory, monkeypatch) -> None:
    view = stream(qtbot, window)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    node = factory.node
    node.emit(node.tree(("Bob", "Dana", 480)))
    qtbot.waitUntil(lambda: view.viewer_count() == 1, timeout=T)
    asked: list[int] = []
    monkeypatch.setattr(streamer_mod, "confirm_end_broadcast",
                        lambda parent, viewers: asked.append(viewers) or False)
    window.close()
    view.leave_button.click()
    assert asked == [1, 1] and window.isVisible() and not node.called("stop")
    monkeypatch.setattr(streamer_mod, "confirm_end_broadcast", lambda parent, viewers: True)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=T)
    assert node.called("stop") == [("left",)]


def test_4_stream_end_reasons_read_as_words(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    node = factory.node
    node.emit(StreamEnded(streamer="Alice", reason=StreamEndReason.FINISHED))
    qtbot.waitUntil(lambda: view.banner.level == "info", timeout=T)
    assert view.banner.text().startswith("Alice's stream has ended.")
    assert "(stream ended)" not in view.banner.text()
    assert "Alice's stream has ended." in view.chat.view.toPlainText()
    node.emit(StreamStarted(streamer="Alice", streamer_id="id-Alice", epoch=4))
    node.emit(StreamEnded(streamer="Alice", reason=StreamEndReason.SOURCE_FAILED,
                          detail="cannot read video from x.mp4: bad data"))
    qtbot.waitUntil(lambda: "unexpectedly" in view.banner.text(), timeout=T)
    assert view.banner.text().startswith(
        "Alice's stream stopped unexpectedly: cannot read video from x.mp4: bad data."
    )


def test_4_own_file_reaching_its_end_is_not_a_crash(qtbot, window, factory) -> None:
    from peer.node.events import SourceProgress

    view = stream(qtbot, window)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    node = factory.node
    node.emit(SourceProgress(position_s=119.5, duration_s=120.0))
    node.source = None
    node.emit(StreamEnded(streamer="Dana", reason=StreamEndReason.FINISHED))
    qtbot.waitUntil(lambda: view.banner.level == "info", timeout=T)
    assert view.banner.text() == "Your video reached its end. Pick a source to go live again."
    node.emit(StreamStarted(streamer="Dana", streamer_id="id-Dana", epoch=5))
    view.bridge._streaming = True  # as if live again, then the source breaks
    node.emit(StreamEnded(streamer="Dana", reason=StreamEndReason.SOURCE_FAILED,
                          detail="camera 0 stopped delivering frames"))
    qtbot.waitUntil(lambda: "stopped:" in view.banner.text(), timeout=T)
    assert view.banner.text() == (
        "Your stream stopped: camera 0 stopped delivering frames. "
        "Pick a source to go live again."
    )
    assert "Dana's stream" not in view.chat.view.toPlainText()


def test_6_went_live_and_own_lines_after_rejoin(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    # Alice was already live when we joined: no "went live" stamped with our join time.
    qtbot.waitUntil(lambda: "Alice is live" in view.chat.view.toPlainText(), timeout=T)
    assert "went live" not in view.chat.view.toPlainText()
    first_id = view.bridge.peer_id
    leave(qtbot, window)
    # Rejoin: the history holds our line from the first visit, under the old id.
    factory.script.history = ()
    view = join(qtbot, window)
    old = ChatReceived(id="m1", origin_id=first_id, sender="Dana", text="I was here",
                       sent_at=1.0)
    factory.node.emit(old)
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 1, timeout=T)
    assert "Dana (you) I was here" in view.chat.view.toPlainText()
    # A live start while we are in the room is "went live", at the time it happened.
    factory.node.emit(StreamStarted(streamer="Bob", streamer_id="id-Bob", epoch=9, t=3600.0))
    qtbot.waitUntil(lambda: "Bob went live" in view.chat.view.toPlainText(), timeout=T)


def test_12_stats_after_stop_streaming_show_no_resolution(qtbot, window, factory) -> None:
    view = stream(qtbot, window)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    factory.node.emit(stats(height=720, width=1280))
    qtbot.waitUntil(lambda: view.stats.value("resolution") == "720p", timeout=T)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    factory.node.emit(stats(height=360, width=640))
    qtbot.waitUntil(lambda: view.stats.updates == 2, timeout=T)
    assert view.stats.value("resolution") == "—"


def test_12_test_pattern_size_and_rate_can_be_chosen(qtbot, window, factory) -> None:
    view = stream(qtbot, window)
    assert view.pattern_size_combo.isVisible() and view.pattern_rate_combo.isVisible()
    view.pattern_size_combo.setCurrentIndex(view.pattern_size_combo.findText("480p"))
    view.pattern_rate_combo.setCurrentIndex(view.pattern_rate_combo.findText("15 fps"))
    assert view.source() == PatternSource(854, 480, 15.0)
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    assert view.subtitle.text().startswith("Preview: 854x480 at 15 fps.")
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    assert factory.node.called("start_streaming") == [(PatternSource(854, 480, 15.0),)]
    assert not view.pattern_size_combo.isEnabled()


def test_2_same_names_are_told_apart(qtbot, window, factory) -> None:
    from peer.node.events import Ready

    view = join(qtbot, window)
    factory.node.emit(Ready(id=view.bridge.peer_id, listen="x:1", name="Dana (2)"))
    qtbot.waitUntil(lambda: view.own_name == "Dana (2)", timeout=T)
    assert "you are “Dana (2)” in this room" in view.chat.view.toPlainText()
    # Two different people called Bob: each line says which one.
    for serial, origin in enumerate(("id-bob-aaaa", "id-bob-bbbb")):
        factory.node.emit(ChatReceived(id=f"b{serial}", origin_id=origin, sender="Bob",
                                       text=f"hi {serial}", sent_at=10.0 + serial))
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 2, timeout=T)
    text = view.chat.view.toPlainText()
    assert "Bob #aaaa hi 0" in text and "Bob #bbbb hi 1" in text


def test_7_recording_follows_a_resolution_change(qtbot, window, factory, monkeypatch) -> None:
    from peer.gui import viewer as viewer_mod

    view = join(qtbot, window)
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/videos/seen.mp4")
    with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
        view.record_button.click()
    row = view.resolution_combo.findData(480)
    view.resolution_combo.setCurrentIndex(row)
    view.resolution_combo.activated.emit(row)
    qtbot.waitUntil(lambda: factory.node.recording == "/videos/seen-480p.mp4", timeout=T)
    qtbot.waitUntil(lambda: view.banner.level == "ok", timeout=T)
    assert view.banner.text() == (
        "Saved seen.mp4; recording goes on at 480p in seen-480p.mp4."
    )
    assert view.record_indicator.text() == "● REC seen-480p.mp4"
    assert viewer_mod.next_part_path("/v/seen-480p.mp4", 720) == "/v/seen-720p.mp4"


def test_8_lan_list_says_when_nothing_is_found_and_keeps_its_width(
        qtbot, themed, settings, tracker, lan, monkeypatch) -> None:
    from peer.gui import start as start_mod
    from peer.gui.bridge import LanSessionInfo, RoomProbe

    monkeypatch.setattr(start_mod, "LAN_SEARCH_MS", 50)
    screen = start_mod.StartScreen(
        settings=settings, probe=RoomProbe(query=tracker, lister=tracker.list_rooms), lan=lan)
    qtbot.addWidget(screen)
    screen.resize(960, 640)
    screen.show()
    screen.activate()
    assert screen.lan_list.item(0).text() == start_mod.LAN_LOOKING
    qtbot.waitUntil(lambda: screen.lan_list.item(0).text() == start_mod.LAN_NOTHING,
                    timeout=T)
    # A LAN streamer the LAN tracker does not know about is still live.
    lan.publish(LanSessionInfo("lobby", "Alice", 2, ("10.0.0.9", 7700)))
    qtbot.waitUntil(lambda: "Alice" in screen.status_label.text(), timeout=T)
    assert "is live in “lobby”" in screen.status_label.text()
    # Switching modes back and forth leaves the list as wide as the room field.
    screen.tracker_radio.setChecked(True)
    screen.lan_radio.setChecked(True)
    qtbot.waitUntil(lambda: screen.lan_list.width() == screen.room_edit.width(), timeout=T)
    assert not screen.lan_list.horizontalScrollBar().isVisible()
    screen.shutdown()


def test_10_tree_shows_what_viewers_get_with_whole_names(qtbot, window, factory) -> None:
    factory.script.layers = (360, 480, 720)
    view = join(qtbot, window)
    node = factory.node
    long_name = "Bartholomew the Very Patient Viewer"
    node.emit(node.tree((long_name, "Dana", 1080)))
    qtbot.waitUntil(lambda: "id-" + long_name in view.tree.items, timeout=T)
    item = view.tree.items["id-" + long_name]
    assert item.text(1) == "720p"  # asked for 1080p, the source gives 720p
    assert item.toolTip(1) == "receives 720p (asked for 1080p)"
    metrics = view.tree.fontMetrics()
    assert view.tree.columnWidth(0) >= metrics.horizontalAdvance(long_name)


def test_12_plot_titles_fit_at_the_minimum_width(qtbot, window, factory) -> None:
    window.resize(960, 640)
    view = join(qtbot, window)
    factory.node.emit(stats(parent="Bob Viewer With A Rather Long Name"))
    qtbot.waitUntil(lambda: view.stats.updates == 1, timeout=T)
    qtbot.waitUntil(lambda: window.width() == 960, timeout=T)
    for plot in (view.stats.latency_plot, view.stats.bandwidth_plot):
        title = plot.getPlotItem().titleLabel.item.boundingRect().width()
        assert plot.width() >= title + 8, (plot.title, plot.width(), title)
    parent = view.stats.metrics["parent"]
    assert parent.value.text().endswith("…")
    assert parent.value.toolTip() == "Bob Viewer With A Rather Long Name"


def test_12_enter_in_the_name_field_joins_and_an_empty_name_says_why(
        qtbot, window, factory) -> None:
    screen = window.start_screen
    screen.name_edit.setText("")
    assert not screen.join_button.isEnabled()
    assert screen.hint_label.isVisible() and screen.hint_label.text() == "Type your name."
    screen.name_edit.setText("Dana")
    assert not screen.hint_label.isVisible()
    with qtbot.wait_signal(window.session_opened, timeout=T):
        qtbot.keyClick(screen.name_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.view.bridge.is_started, timeout=T)
    # The window title names the room once; Qt adds the app name ("lobby — Treecast").
    assert window.windowTitle() == "lobby"


def test_12_icons_have_contrast_on_both_themes(qtbot, qapp) -> None:
    from PyQt6.QtWidgets import QPushButton

    from peer.gui import theme

    def luminance(color) -> float:
        def channel(c: float) -> float:
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        return (0.2126 * channel(color.redF()) + 0.7152 * channel(color.greenF())
                + 0.0722 * channel(color.blueF()))

    def contrast(a, b) -> float:
        la, lb = sorted((luminance(a), luminance(b)), reverse=True)
        return (la + 0.05) / (lb + 0.05)

    from PyQt6.QtGui import QColor

    try:
        for palette in (theme.DARK, theme.LIGHT):
            theme.apply(qapp, palette)
            button = QPushButton()
            qtbot.addWidget(button)
            for name in ("SP_TitleBarMaxButton", "SP_ArrowBack"):
                image = theme.icon(button, name).pixmap(32, 32).toImage()
                inked = [image.pixelColor(x, y) for x in range(32) for y in range(32)
                         if image.pixelColor(x, y).alpha() > 200]
                assert inked, name
                background = QColor(palette.SURFACE_2)
                worst = min(contrast(c, background) for c in inked)
                assert worst >= 3.0, (palette.name, name, worst)
    finally:
        theme.apply(qapp, theme.DARK)


def test_12_emoji_are_drawn_in_colour_and_digits_stay_digits(qtbot, themed) -> None:
    import pytest
    from PyQt6.QtGui import QFontDatabase
    from PyQt6.QtWidgets import QLabel

    from peer.gui import theme

    if not any(name in QFontDatabase.families() for name in theme.EMOJI_FONTS):
        pytest.skip("no emoji font installed (Debian: fonts-noto-color-emoji)")

    def render(text: str):
        label = QLabel(text)
        qtbot.addWidget(label)
        label.adjustSize()
        return label, label.grab().toImage()

    _, image = render("😀")
    colour = [image.pixelColor(x, y) for x in range(image.width())
              for y in range(image.height())]
    assert any(abs(c.red() - c.blue()) > 60 for c in colour)  # a colour glyph, no box
    # Digits keep the UI font (an emoji font must not draw them as keycap bases).
    label, _ = render("1280x720")
    metrics = label.fontMetrics()
    assert metrics.horizontalAdvance("1280x720") <= 2 * metrics.horizontalAdvance("abcdefgh")
    assert metrics.inFont("0")


def test_12_chat_says_when_a_message_is_too_long(qtbot, window, factory) -> None:
    from peer.gui.bridge import MAX_CHAT_CHARS

    view = join(qtbot, window)
    view.chat.input.setText("x" * (MAX_CHAT_CHARS + 12))
    assert view.chat.input.text() == "x" * (MAX_CHAT_CHARS + 12)  # nothing cut silently
    assert view.chat.counter.isVisible() and "12 too many" in view.chat.counter.text()
    assert not view.chat.send_button.isEnabled()
    qtbot.keyClick(view.chat.input, Qt.Key.Key_Return)
    assert not factory.node.called("send_chat")
    view.chat.input.setText("x" * MAX_CHAT_CHARS)
    assert view.chat.send_button.isEnabled()
    assert view.chat.counter.text() == f"{MAX_CHAT_CHARS} / {MAX_CHAT_CHARS} characters"


def _unnamed_tab_stops(root) -> list[str]:
    from PyQt6.QtWidgets import QWidget

    unnamed = []
    for widget in root.findChildren(QWidget):
        if not (widget.isVisibleTo(root) and widget.isEnabled()):
            continue
        if not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            continue
        text = widget.text() if hasattr(widget, "text") and callable(widget.text) else ""
        if not (widget.accessibleName() or (isinstance(text, str) and text.strip())):
            unnamed.append(f"{type(widget).__name__}:{widget.objectName()}")
    return unnamed


def test_keyboard_every_control_is_a_named_tab_stop(qtbot, window, factory) -> None:
    assert _unnamed_tab_stops(window.start_screen) == []
    view = join(qtbot, window)
    assert _unnamed_tab_stops(view) == []
    leave(qtbot, window)
    view = stream(qtbot, window)
    assert _unnamed_tab_stops(view) == []


def test_keyboard_f_esc_and_typing_in_chat(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    view.video.setFocus()
    qtbot.keyClick(view.video, Qt.Key.Key_F)
    assert view.fullscreen
    qtbot.keyClick(view.video, Qt.Key.Key_Escape)
    assert not view.fullscreen
    # In the chat field F is a letter and Enter sends.
    qtbot.keyClicks(view.chat.input, "fine")
    assert not view.fullscreen and view.chat.input.text() == "fine"
    qtbot.keyClick(view.chat.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: factory.node.called("send_chat") == [("fine",)], timeout=T)
    # M mutes (the sound controls' button), and in the chat field it is a letter.
    muted = view.sound.muted
    qtbot.keyClick(view.video, Qt.Key.Key_M)
    assert view.sound.muted is not muted
    qtbot.keyClicks(view.chat.input, "m")
    assert view.sound.muted is not muted and view.chat.input.text() == "m"


def test_viewer_count_and_names_for_everyone(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    node = factory.node
    node.emit(node.tree(("Bob", "Dana", 480), ("Carol", "Alice", 720)))
    qtbot.waitUntil(lambda: view.watchers.text() == "3 watching", timeout=T)
    assert view.watchers.isVisible()
    assert view.watchers.toolTip() == "Watching: Bob, Carol, Dana (you)"


def test_viewer_count_in_a_large_room_counts_the_unlisted(qtbot, window, factory) -> None:
    # Above a few hundred peers the tracker lists only part of the room.
    view = join(qtbot, window)
    node = factory.node
    listed = node.tree(("Bob", "Dana", 480))
    node.emit(dataclasses.replace(listed, room_size=1500))
    qtbot.waitUntil(lambda: view.watchers.text() == "1,499 watching", timeout=T)
    assert view.watchers.toolTip() == "Watching: Bob, Dana (you), and 1,497 more"


def test_9_room_browser_lists_a_trackers_rooms(qtbot, window, tracker) -> None:
    tracker.rooms = {"lobby": ("Alice", 4), "movies": (None, 2)}
    screen = window.start_screen
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("127.0.0.1:7700")
    qtbot.waitUntil(lambda: screen.rooms_list.count() == 2, timeout=T)
    assert screen.rooms_list.isVisible()
    assert screen.rooms_list.item(0).text() == "lobby  —  Alice is live · 3 watching"
    assert screen.rooms_list.item(1).text() == "movies  —  no stream yet · 2 peers"
    screen.rooms_list.setCurrentRow(1)
    assert screen.room_edit.text() == "movies"
    # An unreachable tracker: no stale list.
    tracker.reachable = False
    screen.tracker_edit.setText("127.0.0.1:7701")
    qtbot.waitUntil(lambda: not screen.rooms_list.isVisible(), timeout=T)


def test_screen_share_is_a_source_with_a_preview(qtbot, window, factory, display,
                                                 monkeypatch) -> None:
    from peer.gui.bridge import ScreenSource

    monkeypatch.setenv("DISPLAY", display)
    view = stream(qtbot, window)
    view.source_combo.setCurrentIndex(streamer_mod.SOURCE_SCREEN)
    assert view.screen_spin.isVisible() and not view.camera_spin.isVisible()
    assert view.source() == ScreenSource(1)
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    assert view.subtitle.text().startswith("Preview: 640x360 at 15 fps.")
    # A monitor that is not there is explained before going live.
    view.screen_spin.setValue(3)
    qtbot.waitUntil(lambda: "no monitor 3" in view.live_hint.text(), timeout=T)
    assert not view.live_button.isEnabled()
    view.screen_spin.setValue(1)
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    assert factory.node.called("start_streaming") == [(ScreenSource(1),)]


def test_mini_player_plays_while_the_window_is_minimised(qtbot, window, factory) -> None:
    from fakes import bgr_frame

    view = join(qtbot, window)
    factory.node.push_frame(bgr_frame(640, 360))
    qtbot.waitUntil(lambda: view.video.image is not None, timeout=T)
    window.setWindowState(Qt.WindowState.WindowMinimized)
    qtbot.waitUntil(lambda: window.mini.isVisible(), timeout=T)
    assert window.mini.windowFlags() & Qt.WindowType.WindowStaysOnTopHint
    assert window.mini.video.image is not None  # the current picture at once
    shown = window.mini.video.frames_shown
    factory.node.push_frame(bgr_frame(640, 360, (0, 255, 0)), seq=1)
    qtbot.waitUntil(lambda: window.mini.video.frames_shown > shown, timeout=T)
    # Double-click: the main window comes back and the mini player goes.
    qtbot.mouseDClick(window.mini.video, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.mini.isVisible(), timeout=T)
    assert not window.isMinimized()
    # Leaving the room while minimised closes the mini player too.
    window.setWindowState(Qt.WindowState.WindowMinimized)
    qtbot.waitUntil(lambda: window.mini.isVisible(), timeout=T)
    with qtbot.wait_signal(window.session_closed, timeout=T):
        window.leave_session()
    assert not window.mini.isVisible()


def test_11_streamer_pauses_and_seeks_for_everyone(qtbot, window, factory, video_file) -> None:
    from peer.node.events import SourceProgress

    view = stream(qtbot, window)
    view.set_file(video_file)
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    node = factory.node
    assert not view.pause_button.isVisible()  # until the file's length is known
    node.emit(SourceProgress(position_s=30.0, duration_s=120.0))
    qtbot.waitUntil(lambda: view.pause_button.isVisible(), timeout=T)
    view.video.setFocus()
    qtbot.keyClick(view.video, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: view.paused, timeout=T)
    assert node.called("set_paused") == [(True,)]
    assert view.pause_button.text() == "Resume" and view.video.overlay() == "Paused"
    # A click in the middle of the bar jumps to the middle of the file.
    bar = view.progress
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.rect().center())
    qtbot.waitUntil(lambda: len(node.called("seek")) == 1, timeout=T)
    [(seconds,)] = node.called("seek")
    assert abs(seconds - 60.0) < 6.0
    qtbot.waitUntil(lambda: view.progress_label.text().startswith("1:0")
                    or view.progress_label.text().startswith("0:5"), timeout=T)
    view.pause_button.click()
    qtbot.waitUntil(lambda: not view.paused, timeout=T)
    assert view.video.overlay() == "" and view.pause_button.text() == "Pause"


def test_11_viewers_see_paused_not_a_frozen_picture(qtbot, window, factory) -> None:
    from fakes import bgr_frame

    from peer.node.events import PlaybackChanged

    view = join(qtbot, window)
    factory.node.push_frame(bgr_frame(640, 360))
    qtbot.waitUntil(lambda: view.video.image is not None, timeout=T)
    factory.node.emit(PlaybackChanged(paused=True, position_s=61.0, duration_s=120.0))
    qtbot.waitUntil(lambda: view.video.overlay() == "Paused", timeout=T)
    assert view.subtitle.text() == "Alice paused the video"
    assert view.banner.level == ""  # not a lost parent
    factory.node.emit(PlaybackChanged(paused=False, position_s=61.0, duration_s=120.0))
    qtbot.waitUntil(lambda: view.video.overlay() == "", timeout=T)
    assert view.subtitle.text() == "Watching Alice"


def test_themes_switch_while_a_session_runs(qtbot, window, factory, qapp) -> None:
    from peer.gui import theme

    view = join(qtbot, window)
    factory.node.emit(ChatReceived(id="c1", origin_id="id-Alice", sender="Alice",
                                   text="hi", sent_at=5.0))
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 1, timeout=T)
    view.banner.show_message("info", "Something to read.")
    try:
        theme.apply(qapp, theme.LIGHT)
        assert theme.Colors.NAME == "light"
        # Widgets that paint their own colours follow: banner, plots, chat, icons.
        assert theme.LIGHT.SURFACE_2 in view.banner.styleSheet()
        plot = view.stats.latency_plot
        assert plot.backgroundBrush().color().name() == theme.LIGHT.SURFACE
        assert theme.LIGHT.MUTED in view.chat.view.toHtml().lower() or (
            "#5b6472" in view.chat.view.toHtml())
        image = view.leave_button.icon().pixmap(32, 32).toImage()
        inked = [image.pixelColor(x, y) for x in range(32) for y in range(32)
                 if image.pixelColor(x, y).alpha() > 200]
        assert inked and all(c.name() == theme.LIGHT.TEXT for c in inked)
    finally:
        theme.apply(qapp, theme.DARK)
    assert theme.DARK.SURFACE_2 in view.banner.styleSheet()


def test_themes_follow_the_systems_colour_scheme() -> None:
    from peer.gui import theme

    class Hints:
        def __init__(self, scheme) -> None:
            self.scheme = scheme

        def colorScheme(self):
            return self.scheme

    class App:
        def __init__(self, scheme) -> None:
            self.hints = Hints(scheme)

        def styleHints(self):
            return self.hints

    assert theme.system_palette(App(Qt.ColorScheme.Light)) is theme.LIGHT
    assert theme.system_palette(App(Qt.ColorScheme.Dark)) is theme.DARK
    # A system that does not say gets the dark one: video looks best on a dark surround.
    assert theme.system_palette(App(Qt.ColorScheme.Unknown)) is theme.DARK


def test_ctrl_enter_sends_too(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    qtbot.keyClicks(view.chat.input, "with ctrl")
    qtbot.keyClick(view.chat.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: factory.node.called("send_chat") == [("with ctrl",)], timeout=T)
