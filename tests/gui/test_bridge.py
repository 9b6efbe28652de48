"""NodeBridge: node events become GUI-thread signals, frames are latest-wins, actions
report back as signals, and shutdown ends the node thread."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from fakes import bgr_frame, stats
from PyQt6.QtCore import QThread
from PyQt6.QtGui import QColor

from peer.gui.bridge import (
    Action,
    FailureKind,
    NodeBridge,
    PatternSource,
    SessionRequest,
    frame_to_qimage,
    make_config,
)
from peer.gui.bridge import node_bridge as bridge_mod
from peer.node.errors import MediaError, TrackerUnreachableError
from peer.node.events import ChatReceived, ErrorRaised, Joined, Stats, Stopped

REQUEST = SessionRequest(name="Dana", room="lobby", tracker=("127.0.0.1", 7700), lan=False,
                         streaming=False)


@pytest.fixture
def make_bridge(qtbot, factory):
    made: list[NodeBridge] = []

    def make(request: SessionRequest = REQUEST) -> NodeBridge:
        b = NodeBridge(make_config(request), node_factory=factory)
        made.append(b)
        return b

    yield make
    for b in made:
        if not b.is_closed:
            with qtbot.wait_signal(b.closed, timeout=15000):
                b.shutdown()


def test_make_config_always_decodes_and_keeps_fields() -> None:
    request = SessionRequest(name="Dana", room="r1", tracker=None, lan=True, streaming=False,
                             resolution=480)
    config = make_config(request, PatternSource())
    assert config.decode and config.lan and config.tracker is None
    # Recording starts from the viewer screen, never at join.
    assert (config.room, config.resolution, config.record_path) == ("r1", 480, None)
    assert config.source == PatternSource()


def test_events_arrive_as_signals_in_the_gui_thread(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    seen: list[tuple[object, bool]] = []
    b.stats_updated.connect(
        lambda e: seen.append((e, QThread.currentThread() is b.thread())))
    with qtbot.wait_signals([b.started, b.joined, b.stream_started, b.tree_changed],
                            timeout=10000):
        b.start()
    event = stats()
    with qtbot.wait_signal(b.stats_updated, timeout=10000):
        # From a foreign thread, as the node does.
        threading.Thread(target=factory.node.emit, args=(event,)).start()
    assert seen == [(event, True)]
    assert b.is_started


def test_layers_reported_after_joined(qtbot, make_bridge, factory) -> None:
    factory.script.layers = (360, 480)
    b = make_bridge()
    with qtbot.wait_signal(b.layers_changed, timeout=10000) as blocker:
        b.start()
    assert blocker.args == [(360, 480)]


def test_start_failure_reported_with_kind(qtbot, make_bridge, factory) -> None:
    factory.script.start_error = TrackerUnreachableError("connection refused")
    b = make_bridge()
    with qtbot.wait_signal(b.action_failed, timeout=10000) as blocker:
        b.start()
    assert blocker.args == [Action.START, FailureKind.TRACKER, "connection refused"]
    assert not b.is_started


def test_actions_reach_the_node_and_confirm(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signal(b.resolution_changed, timeout=10000) as blocker:
        b.set_resolution(480)
    assert blocker.args == [480]
    with qtbot.wait_signals([b.chat_sent, b.chat_received], timeout=10000):
        b.send_chat("hello")
    with qtbot.wait_signal(b.action_failed, timeout=10000) as failed:
        b.send_chat("   ")
    assert failed.args[:2] == [Action.SEND_CHAT, FailureKind.INVALID]
    with qtbot.wait_signal(b.action_failed, timeout=10000) as failed:
        b.set_resolution(1080)
    assert failed.args[:2] == [Action.SET_RESOLUTION, FailureKind.INVALID]
    node = factory.node
    assert node.called("set_resolution") == [(480,), (1080,)]
    assert node.called("send_chat") == [("hello",), ("   ",)]
    # Every call ran on the node thread, never on the GUI thread.
    assert node.threads == {"treecast-node"}


def test_streaming_on_and_off(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signal(b.streaming_changed, timeout=10000) as on:
        b.start_streaming(PatternSource())
    assert on.args == [True] and b.is_streaming
    with qtbot.wait_signal(b.streaming_changed, timeout=10000) as off:
        b.stop_streaming()
    assert off.args == [False] and not b.is_streaming


def test_media_error_on_start_streaming(qtbot, make_bridge, factory) -> None:
    factory.script.media_error = "cannot open clip.mp4: not a video"
    b = make_bridge()
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signal(b.action_failed, timeout=10000) as blocker:
        b.start_streaming(PatternSource())
    assert blocker.args == [Action.START_STREAMING, FailureKind.MEDIA,
                            "cannot open clip.mp4: not a video"]
    assert not b.is_streaming


def test_recording_on_off_and_bad_path(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    errors: list[object] = []
    b.error_raised.connect(errors.append)
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signal(b.recording_changed, timeout=10000) as on:
        b.set_recording("/tmp/seen.mkv")
    assert on.args == ["/tmp/seen.mkv"] and b.recording_path == "/tmp/seen.mkv"
    with qtbot.wait_signal(b.recording_changed, timeout=10000) as off:
        b.set_recording(None)
    assert off.args == [None] and b.recording_path is None
    with qtbot.wait_signal(b.action_failed, timeout=10000) as failed:
        b.set_recording("/tmp/notes.txt")
    assert failed.args[:2] == [Action.SET_RECORDING, FailureKind.MEDIA]
    assert "unsupported recording format .txt" in failed.args[2]
    assert b.recording_path is None
    # The failure was reported once, as action_failed; other errors still come through.
    factory.node.emit(ErrorRaised(message="later, unrelated"))
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=10000)
    assert [e.message for e in errors] == ["later, unrelated"]
    assert factory.node.called("set_recording") == [
        ("/tmp/seen.mkv",), (None,), ("/tmp/notes.txt",)]
    assert factory.node.threads == {"treecast-node"}


def test_node_stop_ends_the_recording(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signal(b.recording_changed, timeout=10000):
        b.set_recording("/tmp/seen.mp4")
    with qtbot.wait_signal(b.recording_changed, timeout=10000) as off:
        factory.node.emit(Stopped(reason="kicked"))
    assert off.args == [None] and b.recording_path is None and not b.is_started


def test_frame_to_qimage_owns_its_pixels_and_swaps_channels() -> None:
    image = bgr_frame(64, 36, color=(255, 0, 0))  # blue in BGR
    qimage = frame_to_qimage(image)
    image[:] = 0  # the node reuses its buffers: the QImage must not change
    assert (qimage.width(), qimage.height()) == (64, 36)
    assert qimage.pixelColor(50, 10) == QColor(0, 0, 255)
    assert qimage.pixelColor(1, 1) == QColor(255, 255, 255)
    with pytest.raises(ValueError):
        frame_to_qimage(np.zeros((4, 4), np.uint8))


def test_frames_are_latest_wins(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    notified: list[int] = []
    b.frame_ready.connect(lambda: notified.append(1))
    node = factory.node
    # A burst while the GUI is busy: one notification, and the picture is the last.
    for width in (32, 48, 64, 80):
        node.push_frame(bgr_frame(width, 20), seq=width)
    qtbot.waitUntil(lambda: len(notified) == 1, timeout=10000)
    image = b.take_frame()
    assert image is not None and image.width() == 80
    assert b.take_frame() is None
    node.push_frame(bgr_frame(16, 16))
    qtbot.waitUntil(lambda: len(notified) == 2, timeout=10000)
    qtbot.wait(50)  # nothing more may arrive: no backlog of notifications
    assert len(notified) == 2


def test_shutdown_stops_node_and_thread(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    with qtbot.wait_signal(b.started, timeout=10000):
        b.start()
    with qtbot.wait_signals([b.stopped, b.closed], timeout=15000):
        b.shutdown("left")
    assert factory.node.called("stop") == [("left",)]
    assert b.is_closed
    assert not any(t.name == "treecast-node" for t in threading.enumerate())
    with qtbot.wait_signal(b.action_failed, timeout=5000) as blocker:
        b.send_chat("too late")
    assert blocker.args[:2] == [Action.SEND_CHAT, FailureKind.CLOSED]
    b.shutdown()  # idempotent


def test_wedged_node_is_torn_down_after_grace(qtbot, monkeypatch, make_bridge, factory) -> None:
    monkeypatch.setattr(bridge_mod, "STOP_GRACE_MS", 200)
    factory.script.block_stop = True
    b = make_bridge()
    with qtbot.wait_signal(b.closed, timeout=15000):
        b.shutdown()
    assert b.is_closed


def test_bridge_construction_failure_stops_its_thread() -> None:
    def broken(*args: object) -> None:
        raise MediaError("no")

    with pytest.raises(MediaError):
        NodeBridge(make_config(REQUEST), node_factory=broken)  # type: ignore[arg-type]


def test_events_after_shutdown_are_dropped(qtbot, make_bridge, factory) -> None:
    b = make_bridge()
    got: list[object] = []
    b.chat_received.connect(got.append)
    with qtbot.wait_signal(b.closed, timeout=15000):
        b.shutdown()
    factory.node.emit(ChatReceived(id="x", origin_id="o", sender="s", text="t", sent_at=0.0))
    factory.node.emit(Joined(parent="p", parent_id="q", depth=1, width=1, height=1))
    qtbot.wait(50)
    assert got == []
    assert isinstance(stats(), Stats)


def test_default_factory_builds_the_real_node() -> None:
    Node = pytest.importorskip("peer.node.node").Node
    b_config = make_config(REQUEST)
    node = bridge_mod.default_node_factory(b_config, lambda e: None, None)
    assert isinstance(node, Node)



def test_pause_on_a_node_that_cannot_is_refused_in_words(qtbot) -> None:
    """A node without set_paused/seek (an older build): the bridge says so, no crash."""

    class PlainNode:
        peer_id = "id-plain"

        def __init__(self, config, on_event, on_frame) -> None:
            self.on_event = on_event

        async def start(self) -> None: ...
        async def stop(self, reason: str = "quit") -> None: ...
        async def set_resolution(self, layer) -> None: ...
        async def send_chat(self, text: str) -> None: ...
        async def start_streaming(self, source) -> None: ...
        async def stop_streaming(self) -> None: ...
        async def set_recording(self, path) -> None: ...
        def available_layers(self) -> tuple[int, ...]:
            return (360,)

    b = NodeBridge(make_config(REQUEST), node_factory=PlainNode)
    try:
        with qtbot.wait_signal(b.action_failed, timeout=10000) as failed:
            b.set_paused(True)
        assert failed.args == [Action.SET_PAUSED, FailureKind.NODE,
                               "This peer cannot pause a stream."]
        with qtbot.wait_signal(b.action_failed, timeout=10000) as failed:
            b.seek(3.0)
        assert failed.args[:2] == [Action.SEEK, FailureKind.NODE]
    finally:
        with qtbot.wait_signal(b.closed, timeout=15000):
            b.shutdown()
