"""The app on the real node: a tracker process, a headless streamer (treecast-peer) and
the app as viewer, all on loopback."""

from __future__ import annotations

import contextlib

import pytest

from peer.gui.screenshots import tracker_process
from peer.gui.viewer import ViewerView
from tests.gui.live_peer import live_peer

pytestmark = pytest.mark.slow
T = 30000  # real processes on a slow shared machine


@pytest.fixture
def live_room():
    """A tracker and a headless streamer on the test pattern; yields (tracker, events)."""
    with tracker_process() as tracker, live_peer(
            "--name", "Alice", "--tracker", f"{tracker[0]}:{tracker[1]}",
            "--listen", "127.0.0.1:0", "--test-pattern", "640x360", "--fps", "15",
            "--chat-stdin", stdin=True) as (proc, events):
        yield tracker, proc, events


def test_app_watches_and_chats_with_a_headless_streamer(qtbot, themed, settings, lan,
                                                        live_room) -> None:
    from peer.gui.app import MainWindow

    tracker, streamer, events = live_room
    qtbot.waitUntil(lambda: any(e["event"] == "stream_started" for e in events), timeout=T)
    win = MainWindow(settings=settings, lan=lan)  # the real node and tracker query
    try:
        screen = win.start_screen
        screen.name_edit.setText("Bob")
        screen.tracker_radio.setChecked(True)
        screen.tracker_edit.setText(f"{tracker[0]}:{tracker[1]}")
        win.show()
        qtbot.waitUntil(lambda: screen.holder == "Alice", timeout=T)
        with qtbot.wait_signal(win.session_opened, timeout=T) as opened:
            screen.join_button.click()
        view = opened.args[0]
        assert isinstance(view, ViewerView)
        qtbot.waitUntil(lambda: view.video.frames_shown >= 3, timeout=T)
        image = view.video.image
        assert image is not None and (image.width(), image.height()) == (640, 360)
        # The source is 360p: nothing above it can be picked.
        qtbot.waitUntil(lambda: not view.layer_enabled(480), timeout=T)
        qtbot.waitUntil(lambda: view.stats.updates >= 1, timeout=T)
        qtbot.waitUntil(lambda: {"Alice", "Bob"} <= {
            item.text(0).lstrip("● ").removesuffix(" (you)") for item in view.tree.items.values()
        }, timeout=T)

        view.chat.send_requested.emit("hello from the app")
        qtbot.waitUntil(lambda: any(e["event"] == "chat" and e["text"] == "hello from the app"
                                    for e in events), timeout=T)
        assert streamer.stdin is not None
        streamer.stdin.write("hello from the terminal\n")
        streamer.stdin.flush()
        qtbot.waitUntil(lambda: any(m.text == "hello from the terminal" and m.sender == "Alice"
                                    for m in view.chat.chat_messages()), timeout=T)
        own = [m for m in view.chat.chat_messages() if m.own]
        assert [m.text for m in own] == ["hello from the app"]
    finally:
        win.close()
        qtbot.waitUntil(lambda: not win.isVisible() and win.bridge is None, timeout=T)
        win.start_screen.shutdown()
        win.deleteLater()


def test_app_records_what_it_watches_with_the_real_node(qtbot, themed, settings, lan, live_room,
                                                        tmp_path, monkeypatch) -> None:
    import cv2

    from peer.gui import viewer as viewer_mod
    from peer.gui.app import MainWindow

    tracker, _streamer, events = live_room
    qtbot.waitUntil(lambda: any(e["event"] == "stream_started" for e in events), timeout=T)
    win = MainWindow(settings=settings, lan=lan)
    try:
        screen = win.start_screen
        screen.name_edit.setText("Bob")
        screen.tracker_radio.setChecked(True)
        screen.tracker_edit.setText(f"{tracker[0]}:{tracker[1]}")
        win.show()
        with qtbot.wait_signal(win.session_opened, timeout=T) as opened:
            screen.join_button.click()
        view = opened.args[0]
        assert isinstance(view, ViewerView)
        qtbot.waitUntil(lambda: view.video.frames_shown >= 1 and view.record_button.isEnabled(),
                        timeout=T)
        errors: list[object] = []
        view.bridge.error_raised.connect(errors.append)

        # A folder that does not exist: said in the window, the session goes on.
        missing = str(tmp_path / "missing" / "seen.mp4")
        monkeypatch.setattr(viewer_mod, "choose_recording_path", lambda parent, s: missing)
        view.record_button.click()
        qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
        assert "Couldn't record to seen.mp4" in view.banner.text()
        assert "does not exist" in view.banner.text()
        assert not view.recording and view.record_button.isEnabled()
        assert errors == []  # the node's fatal-looking report of it is not passed on

        target = tmp_path / "seen.avi"
        monkeypatch.setattr(viewer_mod, "choose_recording_path", lambda parent, s: str(target))
        with qtbot.wait_signal(view.bridge.recording_changed, timeout=T):
            view.record_button.click()
        assert view.record_indicator.text() == "● REC seen.avi"
        shown = view.video.frames_shown
        qtbot.waitUntil(lambda: view.video.frames_shown >= shown + 10, timeout=T)
        with qtbot.wait_signal(view.bridge.recording_changed, timeout=T) as stopped:
            view.record_button.click()
        assert stopped.args == [None]
        assert view.banner.text() == f"Saved the recording to {target}."
        assert view.banner.level == "ok"  # the earlier failure did not end the session
        capture = cv2.VideoCapture(str(target))
        try:
            ok, frame = capture.read()
            assert ok and frame.shape[:2] == (360, 640)  # the resolution we watch
        finally:
            capture.release()
    finally:
        win.close()
        qtbot.waitUntil(lambda: not win.isVisible() and win.bridge is None, timeout=T)
        win.start_screen.shutdown()
        win.deleteLater()


def test_app_pauses_its_file_for_a_headless_viewer(qtbot, themed, settings, lan,
                                                   video_file, monkeypatch) -> None:
    from peer.gui import streamer as streamer_mod
    from peer.gui.app import MainWindow
    from peer.gui.streamer import StreamerView

    # Closing at the end ends a watched broadcast: the answer is yes.
    monkeypatch.setattr(streamer_mod, "confirm_end_broadcast", lambda parent, viewers: True)

    with tracker_process() as tracker, contextlib.ExitStack() as viewer:
        win = MainWindow(settings=settings, lan=lan)
        try:
            screen = win.start_screen
            screen.name_edit.setText("Alice")
            screen.tracker_radio.setChecked(True)
            screen.tracker_edit.setText(f"{tracker[0]}:{tracker[1]}")
            win.show()
            with qtbot.wait_signal(win.session_opened, timeout=T) as opened:
                screen.stream_button.click()
            view = opened.args[0]
            assert isinstance(view, StreamerView)
            view.set_file(video_file)
            view.loop_check.setChecked(True)
            qtbot.waitUntil(view.live_button.isEnabled, timeout=T)
            view.live_button.click()
            qtbot.waitUntil(lambda: view.pause_button.isVisible(), timeout=T)
            _bob, events = viewer.enter_context(live_peer(
                "--name", "Bob", "--tracker", f"{tracker[0]}:{tracker[1]}",
                "--listen", "127.0.0.1:0", "--watch"))
            qtbot.waitUntil(lambda: any(e["event"] == "joined" for e in events), timeout=T)
            view.pause_button.click()
            qtbot.waitUntil(lambda: view.paused and view.video.overlay() == "Paused",
                            timeout=T)
            qtbot.waitUntil(lambda: any(e["event"] == "playback" and e["paused"]
                                        for e in events), timeout=T)
            view.pause_button.click()
            qtbot.waitUntil(lambda: any(e["event"] == "playback" and not e["paused"]
                                        for e in events), timeout=T)
            qtbot.waitUntil(lambda: not view.paused and view.video.overlay() == "", timeout=T)
        finally:
            viewer.close()  # Bob ends before the window does
            win.close()
            qtbot.waitUntil(lambda: not win.isVisible() and win.bridge is None, timeout=T)
            win.start_screen.shutdown()
            win.deleteLater()
