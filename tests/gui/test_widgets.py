"""Video letterboxing, the relay tree and viewers model, the stats panel, the banner."""

from __future__ import annotations

import pytest
from fakes import stats
from PyQt6.QtCore import QRect, QSize, Qt
from PyQt6.QtGui import QImage

from peer.gui.bridge import TreeChanged, TreePeer
from peer.gui.stats import HISTORY_S, StatsPanel, format_stats
from peer.gui.tree import PeerTableModel, RelayTreeView
from peer.gui.video import VideoWidget, letterbox
from peer.gui.widgets import Banner
from protocol.records import TreeLevel


@pytest.mark.parametrize(("image", "area", "expected"), [
    (QSize(1280, 720), QRect(0, 0, 800, 800), QRect(0, 175, 800, 450)),   # bars top/bottom
    (QSize(640, 480), QRect(0, 0, 1600, 900), QRect(200, 0, 1200, 900)),  # bars left/right
    (QSize(1920, 1080), QRect(10, 20, 320, 180), QRect(10, 20, 320, 180)),  # exact fit
    (QSize(0, 0), QRect(0, 0, 100, 100), QRect()),
])
def test_letterbox(image: QSize, area: QRect, expected: QRect) -> None:
    assert letterbox(image, area) == expected


def test_video_widget_paints_latest_frame_with_aspect(qtbot) -> None:
    video = VideoWidget("Waiting…")
    qtbot.addWidget(video)
    video.resize(900, 400)
    video.show()
    video.grab()  # placeholder paint must not fail
    assert video.image_rect().isNull()
    image = QImage(640, 480, QImage.Format.Format_RGB32)
    image.fill(0xFF3366)
    video.set_image(image)
    video.set_image(None)  # "no new frame" keeps the current one
    assert video.image is image and video.frames_shown == 1
    rect = video.image_rect()
    assert rect.height() == 400 and rect.width() == 533
    shot = video.grab().toImage()
    assert shot.pixelColor(450, 200).red() == 0xFF  # picture in the middle
    assert shot.pixelColor(5, 200).red() == 0       # black bar at the side
    with qtbot.wait_signal(video.double_clicked, timeout=5000):
        qtbot.mouseDClick(video, Qt.MouseButton.LeftButton)


def _tree() -> TreeChanged:
    return TreeChanged(self_id="b", peers=(
        TreePeer("c", "Carol", "b", 2, 360, "viewer"),
        TreePeer("a", "Alice", None, 0, None, "streamer"),
        TreePeer("b", "Bob", "a", 1, 720, "viewer"),
        TreePeer("d", "Dave", None, None, 480, "viewer"),      # joining
        TreePeer("e", "Eve", "f", 3, 480, "viewer"),           # cycle in stale data
        TreePeer("f", "Finn", "e", 3, 480, "viewer"),
    ))


def test_relay_tree_nests_peers_and_marks_own(qtbot) -> None:
    view = RelayTreeView()
    qtbot.addWidget(view)
    view.set_tree(_tree())
    top = [view.topLevelItem(i).text(0) for i in range(view.topLevelItemCount())]
    assert top[:2] == ["● Alice", "Dave"]
    assert view.items["b"].parent() is view.items["a"]
    assert view.items["c"].parent() is view.items["b"]
    assert view.items["b"].text(0) == "Bob (you)" and view.items["b"].font(0).bold()
    assert view.items["c"].text(1) == "360p" and view.items["a"].text(1) == "source"
    assert set(view.items) == {"a", "b", "c", "d", "e", "f"}  # cycle shown, no hang


def test_viewers_model(qtmodeltester) -> None:
    model = PeerTableModel()
    model.set_tree(_tree())
    qtmodeltester.check(model)
    rows = model.rows()
    assert ("Carol", "360p", "you (direct)") in rows
    assert ("Dave", "480p", "joining…") in rows
    assert all(name not in ("Alice", "Bob") for name, _, _ in rows)
    assert model.headerData(2, Qt.Orientation.Horizontal) == "Through"


def test_stats_panel_formats_and_keeps_a_minute(qtbot) -> None:
    panel = StatsPanel()
    qtbot.addWidget(panel)
    for i in range(100):
        panel.update_stats(stats(t=1000.0 + i))
    assert panel.history_len() == int(HISTORY_S) + 1
    panel.update_stats(stats(t=2000.0, latency_ms=None, latency_p95_ms=None, depth=None,
                             parent=None, kbps_out=25000.0))
    assert panel.value("latency") == "—"
    assert panel.value("kbps_out") == "25.0 Mbps"
    assert panel.value("depth") == "—" and panel.value("parent") == "—"
    assert panel.history_len() == 1
    panel.clear()
    assert panel.value("fps") == "—"


def test_format_stats() -> None:
    text = format_stats(stats(loss_pct=1.5, height=480, children=0))
    assert text["loss"] == "1.5 %"
    assert text["resolution"] == "480p" and text["children"] == "0"


def test_banner_actions(qtbot) -> None:
    banner = Banner()
    qtbot.addWidget(banner)
    banner.show_message("error", "It broke.", [("retry", "Retry"), ("back", "Back")])
    assert banner.text() == "It broke." and banner.action_keys() == ["retry", "back"]
    with qtbot.wait_signal(banner.action_triggered, timeout=5000) as blocker:
        banner.button("back").click()
    assert blocker.args == ["back"]
    banner.clear("warning")  # another level: stays
    assert banner.level == "error"
    banner.clear()
    assert banner.text() == "" and banner.isHidden()


def test_recording_file_names(qapp) -> None:
    from peer.gui.viewer import suggested_recording_path, with_video_suffix

    assert with_video_suffix("/v/seen") == "/v/seen.mp4"
    assert with_video_suffix("/v/seen.mkv") == "/v/seen.mkv"
    assert with_video_suffix("/v/seen.txt") == "/v/seen.txt"  # the node explains that one
    path = suggested_recording_path("movie night/2")
    name = path.rsplit("/", 1)[-1]
    assert name.startswith("treecast-movie-night-2-") and name.endswith(".mp4")


def test_video_badge(qtbot) -> None:
    video = VideoWidget()
    qtbot.addWidget(video)
    video.resize(400, 300)
    video.set_badge("● REC")
    shot = video.grab().toImage()
    assert video.badge() == "● REC"
    # Something red is drawn in the top-right corner, nothing at the top-left.
    assert any(shot.pixelColor(x, y).red() > 150 for x in range(300, 400) for y in range(10, 40))
    assert all(shot.pixelColor(x, 20).red() < 50 for x in range(0, 100))


def _large_room() -> TreeChanged:
    """A 250-peer room as the tracker sends it: a bounded list plus per-depth counts."""
    listed = [TreePeer("root", "Alice", None, 0, None, "streamer"),
              TreePeer("p1", "Bob", "root", 1, 720, "viewer"),
              TreePeer("p2", "Carol", "root", 1, 480, "viewer"),
              TreePeer("me", "Dana", "p1", 2, 720, "viewer"),
              TreePeer("j1", "Joiner", None, None, 360, "viewer")]
    levels = (TreeLevel(0, 1, 0), TreeLevel(1, 4, 0), TreeLevel(2, 16, 0),
              TreeLevel(3, 64, 2), TreeLevel(4, 160, 300), TreeLevel(None, 5, 0))
    return TreeChanged(self_id="me", peers=tuple(listed), room_size=250, levels=levels)


def test_a_large_room_shows_aggregate_rows_for_the_peers_not_listed(qtbot) -> None:
    view = RelayTreeView()
    qtbot.addWidget(view)
    tree = _large_room()
    assert sum(level.peers for level in tree.levels) == tree.room_size
    view.set_tree(tree)
    # The listed peers keep their places in the tree...
    assert view.items["me"].parent() is view.items["p1"]
    assert view.items["p1"].parent() is view.items["root"]
    # ...and the rest are counted per depth, after it, never passed off as the room.
    rows = [(item.text(0), item.text(2)) for item in view.aggregates]
    assert rows == [("2 more peers at depth 1", "1"), ("15 more peers at depth 2", "2"),
                    ("64 more peers at depth 3", "3"), ("160 more peers at depth 4", "4"),
                    ("4 more peers not in the tree yet", "—")]
    top = [view.topLevelItem(i) for i in range(view.topLevelItemCount())]
    assert top[-len(rows):] == view.aggregates
    assert all(item.font(0).italic() and item.childCount() == 0 for item in view.aggregates)
    assert "250 peers" in view.aggregates[0].toolTip(0)
    listed = len(view.items)
    counts = [item.data(0, Qt.ItemDataRole.UserRole) for item in view.aggregates]
    assert counts == [2, 15, 64, 160, 4] and listed + sum(counts) == tree.room_size


def test_aggregate_rows_only_when_the_listing_is_partial(qtbot) -> None:
    view = RelayTreeView()
    qtbot.addWidget(view)
    view.set_tree(_tree())  # a small room is listed whole: no aggregate rows
    assert view.aggregates == []
    whole = view.topLevelItemCount()
    # A room size above the listing but no per-depth counts: one row for the rest.
    view.set_tree(TreeChanged(self_id="b", peers=_tree().peers, room_size=9))
    assert [item.text(0) for item in view.aggregates] == ["3 more peers"]
    view.set_tree(TreeChanged(self_id="b", peers=_tree().peers, room_size=7))
    assert [item.text(0) for item in view.aggregates] == ["1 more peer"]
    # The next listing replaces the rows, it does not add to them.
    view.set_tree(_tree())
    assert view.aggregates == [] and view.topLevelItemCount() == whole
