"""Pause and seek of a streamed file, end to end: a streamer process pausing with
``/pause`` on ``--chat-stdin``, a relay and a leaf seeing it as a ``playback`` event and
``paused`` in their stats, a late joiner told at once, then ``/seek`` and ``/resume``.
Also the other issue-16 node detail: a second "Bob" learns his name in ``ready``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow


def _clip(path: Path, seconds: int = 20, fps: float = 10.0) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 90))
    assert writer.isOpened()
    for index in range(int(seconds * fps)):
        writer.write(np.full((90, 160, 3), index % 250, np.uint8))
    writer.release()
    return str(path)


def _say(peer: Peer, line: str) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(line + "\n")
    peer.proc.stdin.flush()


def _frames(peer: Peer) -> int:
    return (peer.last("stats") or {}).get("frames", 0)


def test_pause_seek_resume_reach_the_whole_tree(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "clip.avi")
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--stream", clip, "--no-audio", "--max-children", "1",
                            "--chat-stdin", stdin=True)
        assert wait_for(lambda: root.last("stream_started"), 30), root.proc.stderr
        relay = s.start_peer("relay", "--watch", "--max-children", "1")
        leaf = s.start_peer("leaf", "--watch")
        assert wait_for(lambda: _frames(leaf) > 10, 60)

        _say(root, "/pause")
        for peer in (root, relay, leaf):
            assert wait_for(lambda p=peer: (p.last("playback") or {}).get("paused"), 30), \
                peer.name
        assert wait_for(lambda: all((p.last("stats") or {}).get("paused")
                                    for p in (root, relay, leaf)), 30)
        # Paused: frames stop (at most the ones in flight), and nobody lost a parent.
        held = _frames(leaf)
        stats_seen = len(leaf.all("stats"))
        assert wait_for(lambda: len(leaf.all("stats")) >= stats_seen + 3, 30)
        assert _frames(leaf) <= held + 2
        assert not leaf.all("parent_lost") and not relay.all("parent_lost")

        # A viewer joining now hears the pause from its parent at once.
        late = s.start_peer("late", "--watch")
        assert wait_for(lambda: (late.last("playback") or {}).get("paused"), 30)

        _say(root, "/seek 12.5")
        assert wait_for(lambda: (leaf.last("playback") or {}).get("position_s") == 12.5, 30)
        assert leaf.last("playback")["paused"] is True
        _say(root, "/resume")
        assert wait_for(lambda: (leaf.last("playback") or {}).get("paused") is False, 30)
        assert wait_for(lambda: _frames(leaf) > held + 10, 60)
        progress = root.last("progress")
        assert progress is not None and progress["position_s"] >= 12.5
        assert not (leaf.last("stats") or {}).get("paused")


def test_a_live_source_refuses_to_pause(tmp_path: Path) -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10", "--no-audio",
                            "--chat-stdin", stdin=True)
        assert wait_for(lambda: root.last("stream_started"), 30)
        _say(root, "/pause")
        _say(root, "still here")
        assert wait_for(lambda: any(c.get("text") == "still here" for c in root.all("chat")),
                        30)
        assert not root.all("playback")


def test_a_second_bob_is_told_his_name_in_the_ready_event() -> None:
    with session() as s:
        s.start_tracker()
        first = s.start_peer("Bob", "--watch")
        assert wait_for(lambda: first.last("ready"), 30)
        second = s.start_peer("Bob", "--watch")
        assert wait_for(lambda: second.last("ready"), 30)
        assert first.last("ready")["name"] == "Bob"
        assert second.last("ready")["name"] == "Bob (2)"
