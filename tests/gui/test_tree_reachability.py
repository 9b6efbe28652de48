"""The relay tree shows who nobody can connect to (issue 15), with a plain-words hint."""

from __future__ import annotations

from peer.gui.bridge import TreeChanged, TreePeer
from peer.gui.tree import RelayTreeView, reach_tip


def test_outbound_only_peers_are_marked_and_explained(qtbot) -> None:
    view = RelayTreeView()
    qtbot.addWidget(view)
    view.set_tree(TreeChanged(self_id="b", peers=(
        TreePeer("a", "Alice", None, 0, None, "streamer", False),
        TreePeer("b", "Bob", "a", 1, 720, "viewer", False),
        TreePeer("c", "Carol", "a", 1, 720, "viewer", True),
        TreePeer("d", "Dave", "c", 2, 720, "viewer", None),  # LAN: not known
    )))
    assert view.items["a"].text(0) == "● Alice ⇡"
    assert view.items["b"].text(0) == "Bob (you) ⇡"
    assert view.items["c"].text(0) == "Carol" and view.items["d"].text(0) == "Dave"
    assert "accepts no incoming connections" in view.items["b"].toolTip(0)
    assert "UPnP" in view.items["b"].toolTip(0)
    assert "nobody can connect to it" in view.items["a"].toolTip(0)
    assert "others can connect" in view.items["c"].toolTip(0)


def test_reach_tip_words() -> None:
    assert reach_tip(None, False) == "" and reach_tip(None, True) == ""
    assert reach_tip(True, True) == reach_tip(True, False)
    assert reach_tip(False, True) != reach_tip(False, False)


def test_punched_links_are_marked_and_explained(qtbot) -> None:
    view = RelayTreeView()
    qtbot.addWidget(view)
    view.set_tree(TreeChanged(self_id="b", peers=(
        TreePeer("a", "Alice", None, 0, None, "streamer", False),
        TreePeer("b", "Bob", "a", 1, 720, "viewer", False, punched=True),
        TreePeer("c", "Carol", "a", 1, 720, "viewer", True),
    )))
    assert view.items["b"].text(0) == "Bob (you) ⇡ ⇄"
    assert "hole punching" in view.items["b"].toolTip(0)
    assert "⇄" not in view.items["a"].text(0) + view.items["c"].text(0)
    assert "hole punching" not in view.items["c"].toolTip(0)
