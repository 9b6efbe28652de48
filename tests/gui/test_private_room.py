"""Private rooms in the app: the start screen's passphrase field, the room it leads to
(the very room ``--secret`` leads to), the session's lock mark, nothing remembered."""

from __future__ import annotations

import pytest
from fakes import FakeLan, FakeTracker
from PyQt6.QtCore import QSettings
from PyQt6.QtWidgets import QLineEdit

from peer.gui.bridge import (
    PRIVATE_ROOM_REFUSED,
    ErrorRaised,
    LanSessionInfo,
    PrivateRoom,
    RoomProbe,
    SessionRequest,
    derive_private_room,
    make_config,
)
from peer.gui.private import alone_text, refused_text
from peer.gui.session import SessionView
from peer.gui.start import StartScreen
from peer.gui.viewer import ViewerView
from peer.node.cli import build_parser, config_from_args
from protocol.private_room import is_private

T = 10000  # generous: scrypt on a slow shared machine
PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def screen(qtbot, themed, settings, tracker, lan):
    s = StartScreen(settings=settings, probe=RoomProbe(query=tracker, lister=tracker.list_rooms),
                    lan=lan)
    qtbot.addWidget(s)
    s.show()
    s.activate()
    s.name_edit.setText("Dana")
    s.room_edit.setText("movies")
    yield s
    s.shutdown()


def cli_config(*argv: str):
    return config_from_args(build_parser().parse_args(["--name", "Dana", *argv]))


def join(qtbot, screen: StartScreen) -> SessionRequest:
    with qtbot.wait_signal(screen.join_requested, timeout=T) as blocker:
        screen.join_button.click()
    request = blocker.args[0]
    assert isinstance(request, SessionRequest)
    return request


def test_the_field_is_there_masked_and_can_be_shown(qtbot, screen) -> None:
    edit = screen.passphrase_edit
    assert edit.isVisible() and edit.text() == ""
    assert edit.echoMode() is QLineEdit.EchoMode.Password
    assert "public" in edit.placeholderText()
    # The hint says what it does, that the tracker never sees it, and that it is
    # not kept.
    hint = screen.passphrase_hint.text()
    assert "same room name and passphrase can join" in hint
    assert "tracker never sees it" in hint and "Not saved" in hint
    qtbot.keyClicks(edit, "s3cret")
    screen.show_passphrase.click()
    assert edit.echoMode() is QLineEdit.EchoMode.Normal
    assert screen.show_passphrase.text() == "Hide"
    screen.show_passphrase.click()
    assert edit.echoMode() is QLineEdit.EchoMode.Password
    assert screen.show_passphrase.text() == "Show"
    assert edit.text() == "s3cret"  # showing and hiding never changes it


def test_an_empty_field_is_the_public_room_as_before(qtbot, screen) -> None:
    for text in ("", "   "):
        screen.passphrase_edit.setText(text)
        request = join(qtbot, screen)
        assert request.private is None and request.room == "movies"
        config = make_config(request)
        assert config.room == "movies" and config.room_secret is None
        assert config.room == cli_config("--room", "movies").room


def test_a_passphrase_leads_to_the_room_the_cli_leads_to(qtbot, screen, tmp_path) -> None:
    screen.passphrase_edit.setText(PASSPHRASE)
    request = join(qtbot, screen)
    assert request.room == "movies"  # the window shows the name the user typed
    assert isinstance(request.private, PrivateRoom)
    config = make_config(request)
    (tmp_path / "pw").write_text(PASSPHRASE + "\n")
    for argv in (("--secret", PASSPHRASE), ("--secret-file", str(tmp_path / "pw"))):
        cli = cli_config("--room", "movies", *argv)
        assert (config.room, config.room_secret) == (cli.room, cli.room_secret)
    assert is_private(config.room) and config.room != "movies"
    assert PASSPHRASE not in repr(request)  # nor the secret: it is left out of repr
    assert request.private.secret.hex() not in repr(request)
    # Another passphrase, or the same one for another room: another room.
    assert derive_private_room("movies", "other").room_id != config.room
    assert derive_private_room("lobby", PASSPHRASE).room_id != config.room
    # Spaces around it are not part of it, for the CLI as for the app.
    assert derive_private_room("movies", f"  {PASSPHRASE} ").room_id == config.room
    assert cli_config("--room", "movies", "--secret", f"{PASSPHRASE} ").room == config.room


def test_streaming_into_a_private_room(qtbot, screen) -> None:
    screen.passphrase_edit.setText(PASSPHRASE)
    with qtbot.wait_signal(screen.stream_requested, timeout=T) as blocker:
        screen.stream_button.click()
    request = blocker.args[0]
    assert request.streaming and request.private == derive_private_room("movies", PASSPHRASE)


def test_the_buttons_wait_for_the_derivation_and_a_changed_field_cancels_it(
        qtbot, screen) -> None:
    screen.passphrase_edit.setText(PASSPHRASE)
    with qtbot.assert_not_emitted(screen.join_requested, wait=0):
        screen.join_button.click()
        # Deriving: the buttons wait and say why; a second click does nothing.
        assert not screen.join_button.isEnabled() and not screen.stream_button.isEnabled()
        assert screen.hint_label.text() == "Opening the private room…"
        screen.passphrase_edit.setText(PASSPHRASE + "!")  # changed its mind
        assert screen.join_button.isEnabled()
    # The stale derivation's answer is dropped: the next click joins the new room.
    request = join(qtbot, screen)
    assert request.private == derive_private_room("movies", PASSPHRASE + "!")


def test_the_passphrase_is_never_saved(qtbot, screen, settings) -> None:
    screen.passphrase_edit.setText(PASSPHRASE)
    join(qtbot, screen)
    settings.sync()
    with open(settings.fileName(), encoding="utf-8") as file:
        saved = file.read()
    assert "movies" in saved and "Dana" in saved  # the other fields are kept...
    assert PASSPHRASE not in saved and "horse" not in saved  # ...the passphrase is not
    again = StartScreen(settings=QSettings(settings.fileName(), QSettings.Format.IniFormat),
                        probe=RoomProbe(query=FakeTracker()), lan=FakeLan())
    qtbot.addWidget(again)
    assert again.passphrase_edit.text() == "" and again.room_edit.text() == "movies"
    again.shutdown()


def test_a_private_room_is_not_asked_about_and_not_blocked(qtbot, screen, tracker) -> None:
    tracker.rooms["movies"] = ("Alice", 3)  # the public room of the same name is live
    screen.tracker_radio.setChecked(True)
    screen.tracker_edit.setText("127.0.0.1:7700")
    qtbot.waitUntil(lambda: screen.holder == "Alice", timeout=T)
    asked = len(tracker.queries)
    screen.passphrase_edit.setText(PASSPHRASE)
    assert "Private room" in screen.status_label.text()
    assert screen.holder is None and screen.stream_button.isEnabled()
    screen.refresh_status()
    # The tracker tells nobody about a private room: nothing is asked of it.
    assert len(tracker.queries) == asked
    screen.passphrase_edit.setText("")
    qtbot.waitUntil(lambda: screen.holder == "Alice", timeout=T)


def test_private_rooms_on_the_lan_are_not_listed(qtbot, screen, lan) -> None:
    lan.publish(LanSessionInfo("lobby", "Alice", 2, None),
                LanSessionInfo(derive_private_room("x", "y").room_id, "Bob", 2, None))
    qtbot.waitUntil(lambda: "lobby" in screen.lan_list.item(0).text(), timeout=T)
    assert screen.lan_list.count() == 1


def test_the_session_shows_the_rooms_name_and_a_lock(qtbot, window, factory) -> None:
    screen = window.start_screen
    screen.room_edit.setText("movies")
    screen.passphrase_edit.setText(PASSPHRASE)
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        screen.join_button.click()
    view = blocker.args[0]
    assert isinstance(view, ViewerView)
    qtbot.waitUntil(lambda: view.bridge.is_started, timeout=T)
    assert view.title.text() == "movies" and window.windowTitle() == "movies"
    assert view.private_mark.isVisible() and "Private room" in view.private_mark.text()
    assert factory.node.config.room == derive_private_room("movies", PASSPHRASE).room_id
    assert factory.node.config.room_secret is not None
    with qtbot.wait_signal(window.session_closed, timeout=T):
        view.leave_button.click()
    # Back on the start screen the passphrase is still there for this run.
    assert screen.passphrase_edit.text() == PASSPHRASE
    screen.passphrase_edit.setText("")
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        screen.join_button.click()
    public = blocker.args[0]
    qtbot.waitUntil(lambda: public.bridge.is_started, timeout=T)
    assert not public.private_mark.isVisible() and factory.node.config.room == "movies"


def join_private(qtbot, window, passphrase: str = PASSPHRASE) -> ViewerView:
    screen = window.start_screen
    screen.room_edit.setText("movies")
    screen.passphrase_edit.setText(passphrase)
    with qtbot.wait_signal(window.session_opened, timeout=T) as blocker:
        screen.join_button.click()
    view = blocker.args[0]
    assert isinstance(view, ViewerView)
    qtbot.waitUntil(lambda: view.bridge.is_started, timeout=T)
    return view


def test_alone_in_a_private_room_the_viewer_hears_why(qtbot, window, factory,
                                                      monkeypatch) -> None:
    monkeypatch.setattr(SessionView, "private_alone_ms", 300)
    factory.script.streamer = None  # nobody else in the room (a mistyped passphrase)
    view = join_private(qtbot, window, "open barley")
    qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
    assert view.banner.text() == alone_text("movies")
    assert "Nobody else is in the private room “movies”" in view.banner.text()
    assert view.banner.action_keys() == ["back", "dismiss"]
    # Someone with the passphrase comes after all: the advice goes.
    factory.node.emit(factory.node.tree(("Erin", "Alice", 720)))
    qtbot.waitUntil(lambda: view.banner.level == "", timeout=T)
    view.private_notice._on_alone()  # not again: someone has been here
    assert view.banner.level == ""


def test_change_passphrase_goes_back_to_the_start_screen(qtbot, window, factory,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(SessionView, "private_alone_ms", 300)
    factory.script.streamer = None
    view = join_private(qtbot, window, "open barley")
    qtbot.waitUntil(lambda: view.banner.level == "warning", timeout=T)
    with qtbot.wait_signal(window.session_closed, timeout=T):
        view.banner.button("back").click()
    assert window.stack.currentWidget() is window.start_screen
    assert window.start_screen.passphrase_edit.text() == "open barley"


def test_a_viewer_with_company_or_in_a_public_room_is_not_told(qtbot, window,
                                                                factory) -> None:
    view = join_private(qtbot, window)  # the fake room has Alice streaming
    qtbot.waitUntil(lambda: view.private_notice._others, timeout=T)
    assert not view.private_notice._timer.isActive() and view.banner.level == ""
    with qtbot.wait_signal(window.session_closed, timeout=T):
        view.leave_button.click()
    factory.script.streamer = None
    public = join_private(qtbot, window, "")
    assert not public.private_notice._timer.isActive()
    public.bridge.error_raised.emit(ErrorRaised(message=PRIVATE_ROOM_REFUSED))
    assert public.banner.text() == PRIVATE_ROOM_REFUSED  # a public room: shown as is


def test_the_members_refusal_reads_as_advice(qtbot, window, factory) -> None:
    view = join_private(qtbot, window)
    view.bridge.error_raised.emit(ErrorRaised(message=PRIVATE_ROOM_REFUSED))
    assert view.banner.text() == refused_text("movies")
    assert "Nobody in the private room “movies” accepted your passphrase" in view.banner.text()
    assert view.banner.level == "warning" and "back" in view.banner.action_keys()
