"""Start screen: fields, remembered settings, LAN list, room status, refusing to stream
into a room that already has a streamer."""

from __future__ import annotations

import pytest
from fakes import FakeLan, FakeTracker
from PyQt6.QtCore import QSettings

from peer.gui.bridge import LanSessionInfo, RoomProbe, SessionRequest
from peer.gui.start import StartScreen, parse_address


@pytest.fixture
def screen(qtbot, themed, settings, tracker, lan):
    s = StartScreen(settings=settings, probe=RoomProbe(query=tracker, lister=tracker.list_rooms),
                    lan=lan)
    qtbot.addWidget(s)
    s.show()
    s.activate()
    yield s
    s.shutdown()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:7700", ("127.0.0.1", 7700)),
    (" tracker.example:1 ", ("tracker.example", 1)),
    ("[::1]:7700", ("::1", 7700)),
    ("host", None), ("host:", None), (":7700", None), ("host:0", None),
    ("host:65536", None), ("host:x", None), ("::1:7700", None), ("[::1]7700", None),
])
def test_parse_address(text: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(text) == expected


def test_buttons_follow_the_fields(screen: StartScreen) -> None:
    screen.name_edit.setText("")
    assert not screen.join_button.isEnabled() and not screen.stream_button.isEnabled()
    assert "Type your name." in screen.join_button.toolTip()
    screen.name_edit.setText("Dana")
    assert screen.join_button.isEnabled() and screen.stream_button.isEnabled()
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("not an address")
    assert not screen.join_button.isEnabled()
    screen.tracker_edit.setText("127.0.0.1:7700")
    assert screen.join_button.isEnabled()
    screen.room_edit.setText("")
    assert screen.room == "lobby"  # empty room means the default one


def test_join_emits_the_request_and_remembers_fields(qtbot, screen, settings) -> None:
    screen.name_edit.setText("Dana")
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("10.0.0.5:7700")
    screen.room_edit.setText("movies")
    with qtbot.wait_signal(screen.join_requested, timeout=5000) as blocker:
        screen.join_button.click()
    assert blocker.args == [SessionRequest(
        name="Dana", room="movies", tracker=("10.0.0.5", 7700), lan=False, streaming=False)]
    # A new screen on the same settings comes back filled in.
    again = StartScreen(settings=QSettings(settings.fileName(), QSettings.Format.IniFormat),
                        probe=RoomProbe(query=FakeTracker()), lan=FakeLan())
    qtbot.addWidget(again)
    assert again.name_edit.text() == "Dana"
    assert again.tracker_radio.isChecked()
    assert again.tracker_edit.text() == "10.0.0.5:7700"
    assert again.room_edit.text() == "movies"
    again.shutdown()


def test_lan_sessions_update_live_and_selecting_fills_the_room(qtbot, screen, lan) -> None:
    assert screen.lan_radio.isChecked()  # LAN first when nothing is remembered
    assert lan.started == 1
    assert "Looking for sessions" in screen.lan_list.item(0).text()
    lan.publish(LanSessionInfo("lobby", "Alice", 3, None),
                LanSessionInfo("movies", None, 1, ("10.0.0.9", 7700)))
    qtbot.waitUntil(lambda: screen.lan_list.count() == 2, timeout=5000)
    assert "Alice is live" in screen.lan_list.item(0).text()
    screen.lan_list.setCurrentRow(1)
    assert screen.room_edit.text() == "movies"
    # The LAN session's tracker is used when joining through the LAN.
    assert screen.request(streaming=False).tracker == ("10.0.0.9", 7700)
    assert screen.request(streaming=False).lan
    lan.publish()
    # The sessions went away: the list says nothing is there, it does not search forever.
    qtbot.waitUntil(lambda: "No sessions on this network yet" in screen.lan_list.item(0).text(),
                    timeout=5000)


def test_live_room_refuses_start_streaming_with_holder_name(qtbot, screen, tracker) -> None:
    tracker.rooms["lobby"] = ("Alice", 4)
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("127.0.0.1:7700")
    qtbot.waitUntil(lambda: "Alice" in screen.status_label.text(), timeout=10000)
    assert "3 watching" in screen.status_label.text()
    emitted: list[object] = []
    screen.stream_requested.connect(emitted.append)
    screen.stream_button.click()
    assert emitted == []
    assert screen.error_label.isVisible()
    assert "Alice is already streaming" in screen.error_label.text()
    # Another room is free: streaming goes ahead there.
    screen.room_edit.setText("studio")
    qtbot.waitUntil(lambda: "Nobody is streaming" in screen.status_label.text(), timeout=10000)
    with qtbot.wait_signal(screen.stream_requested, timeout=5000) as blocker:
        screen.stream_button.click()
    assert blocker.args[0].room == "studio" and blocker.args[0].streaming


def test_lan_room_with_streamer_refuses_too(qtbot, screen, lan) -> None:
    lan.publish(LanSessionInfo("lobby", "Bob", 2, None))
    qtbot.waitUntil(lambda: screen.holder == "Bob", timeout=5000)
    screen.stream_button.click()
    assert "Bob is already streaming" in screen.error_label.text()


def test_unreachable_tracker_is_said_in_plain_words(qtbot, screen, tracker) -> None:
    tracker.reachable = False
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("127.0.0.1:9")
    qtbot.waitUntil(lambda: "Can't reach the tracker" in screen.status_label.text(),
                    timeout=10000)
    assert screen.join_button.isEnabled()  # joining still says why in the session
