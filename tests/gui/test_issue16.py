"""The desktop app's second pass (issue 16): each numbered problem, as a user meets it."""

from __future__ import annotations

from fakes import stats
from test_app import T, join, leave, stream

from peer.gui import streamer as streamer_mod
from peer.gui.bridge import PatternSource
from peer.node.events import ChatReceived, StreamEnded, StreamStarted


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
    factory.node.emit(StreamEnded(streamer="Alice", reason="stream ended"))
    qtbot.waitUntil(lambda: view.live_button.isEnabled(), timeout=T)
    assert view.video.image is not None and view.banner.level == ""


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
    node.emit(StreamEnded(streamer="Alice", reason="stream ended"))
    qtbot.waitUntil(lambda: view.banner.level == "info", timeout=T)
    assert view.banner.text().startswith("Alice's stream has ended.")
    assert "(stream ended)" not in view.banner.text()
    assert "Alice's stream has ended." in view.chat.view.toPlainText()
    node.emit(StreamStarted(streamer="Alice", streamer_id="id-Alice", epoch=4))
    node.emit(StreamEnded(streamer="Alice", reason="cannot read video from x.mp4: bad data"))
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
    node.emit(StreamEnded(streamer="Dana", reason="stream ended"))
    qtbot.waitUntil(lambda: view.banner.level == "info", timeout=T)
    assert view.banner.text() == "Your video reached its end. Pick a source to go live again."
    node.emit(StreamStarted(streamer="Dana", streamer_id="id-Dana", epoch=5))
    view.bridge._streaming = True  # as if live again, then the source breaks
    node.emit(StreamEnded(streamer="Dana", reason="camera 0 stopped delivering frames"))
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
