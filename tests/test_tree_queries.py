"""What a TreeState says about the picture: the layers on offer and the size shown
(at the root, below it, on NO_VIDEO, before any stream), without sockets."""

from __future__ import annotations

from peer.node.tree.state import StreamInfo
from protocol import limits
from tests.test_tree_state import _tree


def test_before_a_stream_every_layer_is_offered_and_nothing_is_shown() -> None:
    tree = _tree()
    assert tree.available_layers() == limits.LAYERS
    assert tree.view_size() == (0, 0)
    assert tree.view_size_for(720) is None


def test_the_root_shows_its_source_and_offers_layers_up_to_it() -> None:
    root = _tree("root")
    root.become_root(1, StreamInfo(1280, 720, 30.0), 0.0)
    assert root.available_layers() == (360, 480, 720)
    assert root.view_size() == (1280, 720)
    root.set_layer(limits.NO_VIDEO, 0.0)
    assert root.view_size() == (1280, 720)  # a streamer always sees its own picture


def test_a_viewer_shows_its_layer_and_shrinks_a_larger_frame_to_it() -> None:
    viewer = _tree("v")
    viewer.stream = StreamInfo(1920, 1080, 30.0)
    viewer.set_layer(480, 0.0)
    assert viewer.view_size() == (854, 480)
    # The parent sends our subtree's largest layer: shown at ours.
    assert viewer.view_size_for(720) == (854, 480)
    assert viewer.view_size_for(480) is None and viewer.view_size_for(360) is None
    # Wanting more than the source has: the source's size.
    viewer.stream = StreamInfo(1280, 720, 30.0)
    viewer.set_layer(1080, 0.0)
    assert viewer.view_size() == (1280, 720)


def test_a_no_video_viewer_shows_nothing_even_when_a_frame_arrives() -> None:
    viewer = _tree("v")
    viewer.stream = StreamInfo(1280, 720, 30.0)
    viewer.set_layer(limits.NO_VIDEO, 0.0)
    assert viewer.view_size() == (0, 0)
    assert viewer.view_size_for(720) is None  # sent before our demand arrived
