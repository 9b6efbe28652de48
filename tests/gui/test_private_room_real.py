"""The app in a private room on the real node: a tracker process and a headless
``--secret`` streamer; the app with the right passphrase watches, with a wrong one it
says that nobody there has it."""

from __future__ import annotations

import pytest

from peer.gui.bridge import IdentityClaim
from peer.gui.private import alone_text
from peer.gui.screenshots import tracker_process
from peer.gui.session import SessionView
from peer.gui.viewer import ViewerView
from tests.gui.live_peer import live_peer

pytestmark = pytest.mark.slow
T = 60000  # real processes (and scrypt) on a slow shared machine


@pytest.fixture
def private_room():
    """A tracker and a headless streamer in private room "movies" ("open sesame")."""
    with tracker_process() as tracker, live_peer(
            "--name", "Alice", "--room", "movies", "--secret", "open sesame",
            "--tracker", f"{tracker[0]}:{tracker[1]}", "--listen", "127.0.0.1:0",
            "--test-pattern", "640x360", "--fps", "15") as (_proc, events):
        yield tracker, events


def open_view(qtbot, win, passphrase: str) -> ViewerView:
    screen = win.start_screen
    screen.passphrase_edit.setText(passphrase)
    with qtbot.wait_signal(win.session_opened, timeout=T) as opened:
        screen.join_button.click()
    view = opened.args[0]
    assert isinstance(view, ViewerView)
    return view


def test_the_right_passphrase_watches_a_wrong_one_is_told(qtbot, themed, settings, lan,
                                                          private_room, tmp_path,
                                                          monkeypatch) -> None:
    from peer.gui.app import MainWindow

    # Loopback: the tracker's list comes in milliseconds; a short wait is enough.
    monkeypatch.setattr(SessionView, "private_alone_ms", 3000)
    tracker, events = private_room
    qtbot.waitUntil(lambda: any(e["event"] == "stream_started" for e in events), timeout=T)
    win = MainWindow(settings=settings, lan=lan,
                     identity=IdentityClaim(str(tmp_path / "key")))
    try:
        screen = win.start_screen
        screen.name_edit.setText("Bob")
        screen.tracker_radio.setChecked(True)
        screen.tracker_edit.setText(f"{tracker[0]}:{tracker[1]}")
        screen.room_edit.setText("movies")
        win.show()
        # The tracker lists no private room, this one included.
        qtbot.waitUntil(lambda: screen.rooms_list.isVisible(), timeout=T)
        assert "movies" not in screen.rooms_list.item(0).text()

        view = open_view(qtbot, win, "open sesame")
        assert view.title.text() == "movies" and view.private_mark.isVisible()
        qtbot.waitUntil(lambda: view.video.frames_shown >= 3, timeout=T)
        image = view.video.image
        assert image is not None and (image.width(), image.height()) == (640, 360)
        qtbot.waitUntil(lambda: {"Alice", "Bob"} <= {
            item.text(0).lstrip("● ").removesuffix(" (you)") for item in view.tree.items.values()
        }, timeout=T)
        # Company: the "nobody here has your passphrase" advice is off for good.
        assert view.private_notice._others and not view.private_notice._timer.isActive()
        with qtbot.wait_signal(win.session_closed, timeout=T):
            view.leave_button.click()

        wrong = open_view(qtbot, win, "open barley")
        qtbot.waitUntil(lambda: wrong.bridge.is_started, timeout=T)
        # (A machine without a sound card shows its own warning first.)
        qtbot.waitUntil(lambda: wrong.banner.text() == alone_text("movies"), timeout=T)
        assert wrong.video.frames_shown == 0 and wrong.streamer_name is None
        # Alice's room never saw the wrong passphrase's peer.
        last_tree = [e for e in events if e["event"] == "tree"][-1]
        assert [p["name"] for p in last_tree["peers"]] == ["Alice"]
    finally:
        win.close()
        qtbot.waitUntil(lambda: not win.isVisible() and win.bridge is None, timeout=T)
        win.start_screen.shutdown()
        win.deleteLater()
