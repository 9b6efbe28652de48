"""The main window on a fake node: sessions open and close, errors are shown in the
window with a next step, chat/stats/tree/resolution work, nothing leaks."""

from __future__ import annotations

import threading

from fakes import bgr_frame, stats
from PyQt6.QtCore import Qt

from peer.gui import streamer as streamer_mod
from peer.gui import viewer as viewer_mod
from peer.gui.bridge import FileSource, PatternSource
from peer.gui.streamer import StreamerView
from peer.gui.viewer import ViewerView
from peer.node.errors import TrackerUnreachableError
from peer.node.events import (
    ChatReceived,
    ErrorRaised,
    Joined,
    ParentLost,
    Resumed,
    SourceProgress,
    StreamEnded,
    StreamEndReason,
)

T = 10000  # generous: a slow shared CI machine


def join(qtbot, window) -> ViewerView:
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        window.start_screen.join_button.click()
    view = blocker.args[0]
    assert isinstance(view, ViewerView)
    qtbot.waitUntil(lambda: view.bridge.is_started, timeout=T)
    return view


def stream(qtbot, window, someone_live: bool = False) -> StreamerView:
    if not someone_live:
        window.node_factory.script.streamer = None  # the room is free to stream in
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        window.start_screen.stream_button.click()
    view = blocker.args[0]
    assert isinstance(view, StreamerView)
    qtbot.waitUntil(lambda: view.bridge.is_started, timeout=T)
    if not someone_live:
        qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    return view


def leave(qtbot, window) -> None:
    with qtbot.wait_signal(window.session_closed, timeout=T):
        window.view.leave_button.click()
    assert window.stack.currentWidget() is window.start_screen


def test_join_shows_viewer_then_back_to_start(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    assert factory.node.config.source is None and factory.node.config.decode
    qtbot.waitUntil(lambda: "Watching Alice" in view.subtitle.text(), timeout=T)
    assert view.live_badge.isVisible()
    leave(qtbot, window)
    assert factory.node.called("stop") == [("left",)]
    assert not any(t.name == "treecast-node" for t in threading.enumerate())


def test_chat_send_and_receive_with_history(qtbot, window, factory) -> None:
    factory.script.history = (("Alice", "welcome!"), ("Bob", "hi all"))
    view = join(qtbot, window)
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 2, timeout=T)
    assert view.chat.input.isEnabled()
    qtbot.keyClicks(view.chat.input, "hello there")
    qtbot.keyClick(view.chat.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 3, timeout=T)
    own = view.chat.chat_messages()[-1]
    assert own.own and own.text == "hello there"
    html = view.chat.view.toPlainText()
    assert "Dana (you) hello there" in html and "Alice welcome!" in html
    assert view.chat.name_color("id-Alice") != view.chat.name_color("id-Bob")
    # An older message (late history) lands in time order, a duplicate is ignored.
    early = ChatReceived(id="old", origin_id="id-Eve", sender="Eve", text="first!",
                         sent_at=1.0)
    factory.node.emit(early)
    factory.node.emit(early)
    qtbot.waitUntil(lambda: len(view.chat.chat_messages()) == 4, timeout=T)
    assert view.chat.chat_messages()[0].text == "first!"
    assert view.chat.view.toPlainText().index("first!") < html.index("welcome!") + 200


def test_chat_error_shown_under_the_input(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    view.chat.send_requested.emit("x" * 600)  # past the node's limit
    qtbot.waitUntil(lambda: view.chat.error.isVisible(), timeout=T)
    assert "1-500" in view.chat.error.text()


def test_tracker_unreachable_offers_retry_and_back(qtbot, window, factory) -> None:
    factory.script.start_error = TrackerUnreachableError("connection refused")
    window.start_screen.tracker_radio.setChecked(True)
    window.start_screen.tracker_edit.setText("127.0.0.1:9")
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        window.start_screen.join_button.click()
    view = blocker.args[0]
    qtbot.waitUntil(lambda: view.banner.level == "error", timeout=T)
    assert "Can't reach the tracker at 127.0.0.1:9" in view.banner.text()
    assert view.subtitle.text() == "Not in the room"  # not "Connecting…" forever
    assert view.video.placeholder() == "Couldn't join “lobby”."
    assert view.banner.action_keys() == ["retry", "back"]
    # Retry builds a fresh node; this time it works.
    factory.script.start_error = None
    with qtbot.wait_signal(window.session_opened, timeout=T) as again:
        view.banner.button("retry").click()
    assert len(factory.nodes) == 2
    qtbot.waitUntil(lambda: again.args[0].bridge.is_started, timeout=T)
    leave(qtbot, window)


def test_lock_denied_shown_in_window_and_watch_instead(qtbot, window, factory) -> None:
    factory.script.lock_holder = "Alice"
    view = stream(qtbot, window)
    view.live_button.click()
    qtbot.waitUntil(lambda: view.banner.level == "error", timeout=T)
    assert "Alice is already streaming in “lobby”" in view.banner.text()
    assert view.banner.action_keys() == ["watch", "back"]
    assert view.live_button.text() == "Go live"
    assert view.subtitle.text() == "Alice is streaming in this room."
    # Alice's viewers are not ours: the tab stays empty until we are live.
    view.bridge.tree_changed.emit(factory.node.tree(("Bob", "Alice", 480)))
    assert view.viewers_model.rowCount() == 0 and view.side.tabText(1) == "Viewers"
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        view.banner.button("watch").click()
    assert isinstance(blocker.args[0], ViewerView)


def test_streamer_goes_live_with_chosen_file_and_shows_viewers(
        qtbot, window, factory, monkeypatch, video_file) -> None:
    view = stream(qtbot, window)
    monkeypatch.setattr(streamer_mod, "choose_video_file", lambda parent: video_file)
    view.source_combo.setCurrentIndex(streamer_mod.SOURCE_FILE)
    assert view.source() is None and not view.live_button.isEnabled()  # no file yet
    assert view.live_hint.text() == "Choose a video file first."
    view.browse_button.click()
    view.loop_check.setChecked(True)
    assert view.source() == FileSource(video_file, loop=True)
    # The file is tried before going live: its first picture is the preview.
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    assert view.video.image is not None and view.video.badge() == "PREVIEW"
    assert view.subtitle.text().startswith("Preview: 160x90 at 10 fps · 0:02.")
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T):
        view.live_button.click()
    node = factory.node
    assert node.called("start_streaming") == [(FileSource(video_file, loop=True),)]
    assert view.live_badge.isVisible() and view.live_button.text() == "Stop streaming"
    assert not view.source_combo.isEnabled()
    node.emit(node.tree(("Bob", "Dana", 480), ("Carol", "Bob", 360)))
    node.emit(SourceProgress(position_s=30.0, duration_s=120.0))
    qtbot.waitUntil(lambda: view.viewers_model.rowCount() == 2, timeout=T)
    assert view.viewers_model.rows() == [("Bob", "480p", "you (direct)"),
                                         ("Carol", "360p", "Bob")]
    assert view.side.tabText(1) == "Viewers (2)"
    qtbot.waitUntil(lambda: view.progress_label.text() == "0:30 / 2:00", timeout=T)
    assert view.progress.value() == 250
    # The preview shows captured frames.
    node.push_frame(bgr_frame(640, 360))
    qtbot.waitUntil(lambda: view.video.image is not None, timeout=T)
    # Two people watch: stopping asks first; "Cancel" keeps the broadcast going.
    asked: list[int] = []
    monkeypatch.setattr(streamer_mod, "confirm_end_broadcast",
                        lambda parent, viewers: asked.append(viewers) or False)
    view.live_button.click()
    assert asked == [2] and view.bridge.is_streaming and not node.called("stop_streaming")
    monkeypatch.setattr(streamer_mod, "confirm_end_broadcast", lambda parent, viewers: True)
    with qtbot.wait_signal(view.bridge.streaming_changed, timeout=T) as off:
        view.live_button.click()
    assert off.args == [False]
    assert view.live_button.text() == "Go live"
    # Our own end reads as ours, in words: no "Dana's stream ended (stopped)".
    qtbot.waitUntil(lambda: "You stopped streaming." in view.chat.view.toPlainText(), timeout=T)
    assert "Dana's stream" not in view.chat.view.toPlainText()


def test_a_file_that_is_not_a_video_is_refused_when_picked(
        qtbot, window, factory, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    view = stream(qtbot, window)
    # The path field takes a pasted path; Enter (editingFinished) tries it.
    view.source_combo.setCurrentIndex(streamer_mod.SOURCE_FILE)
    view.file_edit.setText(str(notes))
    view.file_edit.editingFinished.emit()
    qtbot.waitUntil(lambda: view.live_hint.text().startswith("Can't use this source:"),
                    timeout=T)
    assert "not a video file" in view.live_hint.text()
    assert not view.live_button.isEnabled() and view.live_hint.isVisible()
    assert view.video.placeholder().startswith("Can't use this source:")


def test_media_error_at_go_live_is_explained(qtbot, window, factory, video_file) -> None:
    factory.script.media_error = "cannot open clip.avi (not a video)."
    view = stream(qtbot, window)
    view.set_file(video_file)
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    view.live_button.click()
    qtbot.waitUntil(lambda: view.banner.level == "error", timeout=T)
    assert view.banner.text() == (
        "Can't stream the clip.avi: cannot open clip.avi (not a video). "
        "Pick another file or source."
    )
    assert view.live_button.isEnabled()


def test_resolution_choice_reaches_the_node(qtbot, window, factory) -> None:
    factory.script.layers = (360, 480, 720)
    view = join(qtbot, window)
    qtbot.waitUntil(lambda: not view.layer_enabled(1080), timeout=T)
    assert view.layer_enabled(360) and view.layer_enabled(720)
    combo = view.resolution_combo
    # Auto is the default: the parent picks what the path carries.
    assert view.layer == "auto" and combo.currentText() == "Auto"
    assert factory.node.config.auto_resolution
    row = combo.findData(480)
    combo.setCurrentIndex(row)
    combo.activated.emit(row)  # what a user's pick emits
    qtbot.waitUntil(lambda: view.layer == 480, timeout=T)
    row = combo.findData("auto")
    combo.setCurrentIndex(row)
    combo.activated.emit(row)
    qtbot.waitUntil(lambda: view.layer == "auto", timeout=T)
    assert factory.node.called("set_resolution") == [(480,), ("auto",)]


def test_stats_and_tree_update(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    node = factory.node
    for i in range(3):
        node.emit(stats(t=1000.0 + i, latency_ms=80.0 + i, fps=25.0))
    node.emit(node.tree(("Bob", "Dana", 480)))
    qtbot.waitUntil(lambda: view.stats.updates == 3, timeout=T)
    assert view.stats.value("fps") == "25.0"
    assert view.stats.value("latency") == "82 / 140 ms"
    assert view.stats.value("parent") == "Alice"
    assert view.stats.history_len() == 3
    qtbot.waitUntil(lambda: "id-Bob" in view.tree.items, timeout=T)
    me = view.tree.items["id-Dana"]
    assert me.text(0) == "Dana (you)" and me.font(0).bold()
    assert me.parent() is view.tree.items["id-Alice"]
    assert view.tree.items["id-Bob"].parent() is me


def test_parent_lost_then_rejoined_and_stream_end(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    node = factory.node
    node.emit(ParentLost(parent="Bob", parent_id="id-Bob", reason="eof"))
    qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
    assert "Lost the connection to Bob" in view.banner.text()
    node.emit(Joined(parent="Alice", parent_id="id-Alice", depth=1, width=1280, height=720))
    qtbot.waitUntil(lambda: view.banner.level == "", timeout=T)
    node.emit(Resumed(parent="Alice", gap_ms=420.0, lost=12))
    qtbot.waitUntil(lambda: view.banner.level == "ok", timeout=T)
    assert view.banner.text() == "Back on the stream via Alice after 0.4 s, 12 frames missed."
    node.emit(StreamEnded(streamer="Alice", reason=StreamEndReason.FINISHED))
    qtbot.waitUntil(lambda: view.banner.level == "info", timeout=T)
    assert "Alice's stream has ended" in view.banner.text()
    assert view.banner.action_keys() == ["back"]
    assert not view.live_badge.isVisible()
    node.emit(ErrorRaised(message="lost the connection to the tracker"))
    qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
    with qtbot.wait_signal(window.session_closed, timeout=T):
        node.emit(ErrorRaised(message="the node broke", fatal=True))
        qtbot.waitUntil(lambda: view.banner.level == "error", timeout=T)
        view.banner.button("back").click()


def test_video_keeps_aspect_and_fullscreen_toggles(qtbot, window, factory) -> None:
    view = join(qtbot, window)
    factory.node.push_frame(bgr_frame(1280, 720))
    qtbot.waitUntil(lambda: view.video.image is not None, timeout=T)
    rect = view.video.image_rect()
    assert abs(rect.width() / rect.height() - 16 / 9) < 0.02
    assert view.video.rect().contains(rect)
    qtbot.keyClick(view, Qt.Key.Key_F11)
    assert view.fullscreen and not view.side.isVisible()
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert not view.fullscreen and view.side.isVisible()
    qtbot.mouseDClick(view.video, Qt.MouseButton.LeftButton)
    assert view.fullscreen
    qtbot.mouseDClick(view.video, Qt.MouseButton.LeftButton)
    assert not view.fullscreen
    view.fullscreen_button.click()
    assert view.fullscreen
    view.toggle_fullscreen()
    assert not view.fullscreen


def test_record_toggle_reaches_the_node(qtbot, window, factory, monkeypatch) -> None:
    view = join(qtbot, window)
    node = factory.node
    assert view.record_button.text() == "Record" and view.record_button.isEnabled()
    assert not view.record_indicator.isVisible()
    asked: list[str] = []

    def cancel(parent, suggested):
        asked.append(suggested)
        return None

    monkeypatch.setattr(viewer_mod, "choose_recording_path", cancel)
    view.record_button.click()  # dialog cancelled: nothing happens
    assert asked and asked[0].endswith(".mp4") and "treecast-lobby-" in asked[0]
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/videos/seen.mp4")
    with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
        view.record_button.click()
        assert not view.record_button.isEnabled()  # no double start while pending
    assert node.called("set_recording") == [("/videos/seen.mp4",)]
    assert node.recording == "/videos/seen.mp4"
    assert view.recording and view.record_button.text() == "Stop recording"
    assert view.record_indicator.isVisible()
    assert view.record_indicator.text() == "● REC seen.mp4"
    assert view.record_indicator.toolTip() == "Recording to /videos/seen.mp4"
    # Fullscreen hides the controls: the video shows that it is being recorded.
    assert view.video.badge() == ""
    view.toggle_fullscreen()
    assert view.video.badge() == "● REC"
    view.toggle_fullscreen()
    assert view.video.badge() == ""
    with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
        view.record_button.click()
    assert node.called("set_recording")[-1] == (None,) and node.recording is None
    assert not view.recording and view.record_button.text() == "Record"
    assert not view.record_indicator.isVisible()
    assert view.banner.level == "ok"
    # The whole path, and a way to the folder.
    assert view.banner.text() == "Saved the recording to /videos/seen.mp4."
    opened: list[str] = []
    monkeypatch.setattr(viewer_mod, "open_folder", opened.append)
    view.banner.button("open_folder").click()
    assert opened == ["/videos/seen.mp4"] and view.banner.level == ""


def test_recording_error_is_shown_in_plain_words(qtbot, window, factory, monkeypatch) -> None:
    view = join(qtbot, window)
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/videos/notes.txt")
    view.record_button.click()
    qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
    text = view.banner.text()
    assert text.startswith("Couldn't record to notes.txt: unsupported recording format .txt")
    assert "Choose a file ending in .mp4, .avi, .mkv or .mov" in text
    assert view.banner.action_keys() == ["record", "dismiss"]
    assert not view.recording and view.record_button.text() == "Record"
    assert view.record_button.isEnabled() and not view.record_indicator.isVisible()
    # The session goes on: no fatal error, chat still works.
    assert view.chat.input.isEnabled()
    # A missing folder, reported the node's way, reads without the repeated path.
    factory.script.record_error = "cannot record to /gone/seen.mp4: folder /gone does not exist"
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/gone/seen.mp4")
    view.banner.button("record").click()  # the next step: choose another file
    qtbot.waitUntil(lambda: "folder /gone does not exist" in view.banner.text(), timeout=T)
    assert view.banner.text().startswith("Couldn't record to seen.mp4: folder /gone does")
    # Then a good file: recording starts and the stale warning goes away.
    factory.script.record_error = None
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/videos/ok.mkv")
    with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
        view.banner.button("record").click()
    assert view.recording and view.banner.level == ""
    assert view.record_indicator.text() == "● REC ok.mkv"


def test_leaving_while_recording_finishes_the_file(qtbot, window, factory, monkeypatch) -> None:
    view = join(qtbot, window)
    monkeypatch.setattr(viewer_mod, "choose_recording_path",
                        lambda parent, suggested: "/videos/seen.mp4")
    with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
        view.record_button.click()
    leave(qtbot, window)
    assert factory.node.called("stop") == [("left",)] and factory.node.recording is None


def test_closing_the_window_leaves_and_ends_threads(qtbot, window, factory) -> None:
    join(qtbot, window)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=T)
    assert factory.node.called("stop") == [("left",)]
    assert window.bridge is None


def test_pattern_is_the_default_source(qtbot, window) -> None:
    view = stream(qtbot, window)
    assert view.source() == PatternSource()


def test_a_list_of_trackers_reaches_the_node_whole(qtbot, window, factory) -> None:
    """Issue 14 item 4: "A:P,B:P" in the tracker field gives the node both trackers
    (it moves to the second when the first fails), as ``--tracker A:P,B:P`` does."""
    screen = window.start_screen
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("127.0.0.1:7700, [::1]:7701,127.0.0.1:7702")
    request = screen.request(streaming=False)
    assert request.tracker == ("127.0.0.1", 7700)
    assert request.more_trackers == (("::1", 7701), ("127.0.0.1", 7702))
    join(qtbot, window)
    config = factory.node.config
    assert config.tracker == ("127.0.0.1", 7700)
    assert config.more_trackers == (("::1", 7701), ("127.0.0.1", 7702))
    leave(qtbot, window)
    # One address: nothing further; LAN mode: the LAN session's single tracker.
    screen.tracker_edit.setText("127.0.0.1:7700")
    assert screen.request(streaming=True).more_trackers == ()
    screen.tracker_edit.setText("127.0.0.1:7700,127.0.0.1:7701")
    screen.lan_radio.setChecked(True)
    assert screen.request(streaming=False).more_trackers == ()
