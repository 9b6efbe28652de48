"""Churn end to end: relays killed or leaving, chat that loses nothing, lock fencing.

Real tracker and peer processes on loopback. Bounds are generous (a slow shared 2-core
machine); the measured figures live in docs/PERFORMANCE.md (bench/bench_repair.py).
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time

import pytest

from peer.node.errors import ExitCode
from tests.support.procs import Peer, Session, session, wait_for

pytestmark = pytest.mark.slow


def _stats(peer: Peer) -> dict:
    return peer.last("stats") or {}


def _frames(peer: Peer) -> int:
    return _stats(peer).get("frames", 0)


def _chat(peer: Peer, text: str) -> None:
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(text + "\n")
    peer.proc.stdin.flush()


def _build_relay_tree(s: Session) -> tuple[Peer, Peer, list[Peer]]:
    """root (1 slot) -> relay (3 slots) -> three leaves; the relay has 3 descendants."""
    s.start_tracker()
    root = s.start_peer("root", "--test-pattern", "640x360", "--fps", "10",
                        "--max-children", "1")
    assert wait_for(lambda: root.last("stream_started"), 30)
    relay = s.start_peer("relay", "--watch", "--resolution", "360", "--max-children", "3")
    assert wait_for(lambda: relay.last("joined"), 30)
    leaves = [s.start_peer(f"leaf{i}", "--watch", "--resolution", "360",
                           "--max-children", "2") for i in range(3)]
    assert wait_for(lambda: all(_frames(p) >= 10 for p in leaves), 60)
    assert all(p.last("joined")["parent"] == "relay" for p in leaves)
    return root, relay, leaves


def test_kill_9_of_a_relay_reattaches_all_descendants_loop_free() -> None:
    with session() as s:
        _, _, leaves = _build_relay_tree(s)
        killed_at = time.time()
        s.kill("relay", signal.SIGKILL)
        assert wait_for(lambda: all(p.last("resumed") for p in leaves), 30)
        for leaf in leaves:
            lost = leaf.last("parent_lost")
            assert lost is not None and lost["parent"] == "relay"
            resumed = leaf.last("resumed")
            assert resumed["t"] - killed_at < 3.0, (leaf.name, resumed)
        # Loop-free: every leaf's parent chain reaches the root.
        assert wait_for(lambda: all(_stats(p).get("parent") not in (None, "relay")
                                    for p in leaves), 10)
        parents = {p.name: _stats(p)["parent"] for p in leaves}
        for name in parents:
            seen, at = set(), name
            while at != "root":
                assert at not in seen, f"loop through {at}: {parents}"
                seen.add(at)
                at = parents[at]
        # The loss during the repair is counted, then stops.
        assert any(_stats(p)["lost"] > 0 for p in leaves) or all(
            p.last("resumed")["lost"] == 0 for p in leaves)


def test_graceful_leave_moves_children_before_they_lose_more_than_a_few_frames() -> None:
    with session() as s:
        _, relay, leaves = _build_relay_tree(s)
        left_at = time.time()
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(15) == 0
        assert wait_for(lambda: all(p.last("resumed") for p in leaves), 30)
        for leaf in leaves:
            resumed = leaf.last("resumed")
            assert resumed["lost"] <= 5, resumed
            assert resumed["t"] - left_at < 2.0, resumed
        assert "left" in leaves[0].last("parent_lost")["reason"]


def _chat_texts(peer: Peer) -> collections.Counter[str]:
    return collections.Counter(e["text"] for e in peer.all("chat"))


def test_two_hundred_messages_survive_three_relays_killed_and_restarted() -> None:
    rng = random.Random(7)
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x240", "--fps", "5",
                            "--max-children", "2", "--chat-stdin", stdin=True)
        assert wait_for(lambda: root.last("stream_started"), 30)
        peers = {"root": root}
        for i in range(9):
            peers[f"p{i}"] = s.start_peer(f"p{i}", "--watch", "--resolution", "360",
                                          "--max-children", "2", "--chat-stdin", stdin=True)
        assert wait_for(lambda: all(p.last("joined") for n, p in peers.items() if n != "root"),
                        60)
        relays = [n for n, p in peers.items() if n != "root" and _stats(p).get("children")]
        assert wait_for(lambda: len([n for n, p in peers.items()
                                     if n != "root" and _stats(p).get("children")]) >= 3, 20)
        relays = [n for n, p in peers.items() if n != "root" and _stats(p).get("children")][:3]
        sent: list[str] = []
        for i in range(200):
            if i in (40, 90, 140):  # kill one relay, restart it a little later
                victim = relays[(i // 50) % len(relays)]
                os.kill(peers[victim].proc.pid, signal.SIGKILL)
                peers[victim].proc.wait(10)
                dead = victim
            if i in (60, 110, 160):
                peers[dead] = s.start_peer(dead, "--watch", "--resolution", "360",
                                           "--max-children", "2", "--chat-stdin", stdin=True)
            alive = [n for n, p in peers.items() if p.proc.poll() is None]
            sender = rng.choice(alive)
            text = f"m{i:03d} from {sender}"
            _chat(peers[sender], text)
            sent.append(text)
            time.sleep(0.05)  # pacing the senders (churn between lines), not timing
        expected = set(sent)

        def complete() -> bool:
            return all(set(_chat_texts(p)) >= expected for p in peers.values()
                       if p.proc.poll() is None)

        assert wait_for(complete, 60), {
            n: len(expected - set(_chat_texts(p))) for n, p in peers.items()}
        for name, peer in peers.items():
            counts = _chat_texts(peer)
            dupes = {t: c for t, c in counts.items() if c > 1}
            assert not dupes, (name, dupes)


def test_chat_flood_is_limited_and_refused_with_a_reason_while_others_chat() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x240", "--fps", "5",
                            "--chat-stdin", stdin=True)
        assert wait_for(lambda: root.last("stream_started"), 30)
        flooder = s.start_peer("flooder", "--watch", "--chat-stdin", stdin=True)
        calm = s.start_peer("calm", "--watch", "--chat-stdin", stdin=True)
        assert wait_for(lambda: flooder.last("joined") and calm.last("joined"), 60)
        assert flooder.proc.stdin is not None
        flooder.proc.stdin.write("".join(f"spam {i}\n" for i in range(300)))
        flooder.proc.stdin.flush()
        for i in range(5):
            _chat(calm, f"calm {i}")
            time.sleep(0.3)  # pacing a calm sender among the flood, not timing
        assert wait_for(lambda: all(f"calm {i}" in _chat_texts(root) for i in range(5)), 20)
        spam_at_root = sum(1 for t in _chat_texts(root) if t.startswith("spam"))
        assert spam_at_root < 300
        errors = flooder.all("error")
        assert any("rate" in e["message"] for e in errors), errors


def test_late_joiner_receives_recent_chat_history() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x240", "--fps", "5",
                            "--chat-stdin", stdin=True)
        assert wait_for(lambda: root.last("stream_started"), 30)
        for i in range(5):
            _chat(root, f"hello {i}")
        assert wait_for(lambda: len(root.all("chat")) == 5, 10)
        late = s.start_peer("late", "--watch")
        assert wait_for(lambda: len(late.all("chat")) == 5, 30)
        assert [e["text"] for e in late.all("chat")] == [f"hello {i}" for i in range(5)]


def test_frozen_streamer_is_fenced_by_the_next_epoch() -> None:
    with session() as s:
        # No grace: the room is someone else's as soon as the lease is out (with the
        # grace, the frozen streamer would keep it; see tests/test_tracker_outage.py).
        s.start_tracker("--lease", "1.5", "--lease-grace", "0")
        old = s.start_peer("old", "--test-pattern", "320x240", "--fps", "10")
        assert wait_for(lambda: old.last("stream_started"), 30)
        viewers = [s.start_peer(f"v{i}", "--watch", "--resolution", "360") for i in range(3)]
        assert wait_for(lambda: all(_frames(v) > 5 for v in viewers), 60)
        old_epoch = old.last("stream_started")["epoch"]
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            # Claim until the frozen streamer's lease (1.5 s) has expired at the tracker:
            # a claimant refused before that exits with LOCK_DENIED and is started again.
            claimants: list[Peer] = []

            def own_start(peer: Peer) -> dict | None:
                # stream_started also reports the room's current streamer (the old one).
                return next((e for e in peer.all("stream_started")
                             if e.get("streamer") == "new"), None)

            def claimed() -> bool:
                if not claimants or claimants[-1].proc.poll() == ExitCode.LOCK_DENIED:
                    claimants.append(s.start_peer("new", "--test-pattern", "320x240",
                                                  "--fps", "10"))
                return own_start(claimants[-1]) is not None

            assert wait_for(claimed, 60), [c.all("error") for c in claimants]
            new_start = own_start(claimants[-1])
            assert new_start is not None
            new_epoch = new_start["epoch"]
            assert new_epoch > old_epoch
            assert wait_for(lambda: all(any(e["epoch"] == new_epoch for e in v.all("epoch"))
                                        for v in viewers), 30)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)
        # The old streamer runs again: it must not reach anyone. Once it has noticed it
        # was fenced, two more stats samples from every viewer show what they got since.
        assert wait_for(lambda: old.last("stream_ended") is not None, 30)
        samples = {v.name: len(v.all("stats")) for v in viewers}
        assert wait_for(lambda: all(len(v.all("stats")) >= samples[v.name] + 2
                                    for v in viewers), 30)
        for viewer in viewers:
            epochs = [e["epoch"] for e in viewer.all("epoch")]
            assert epochs == sorted(epochs), epochs
            assert epochs[-1] == new_epoch


def test_a_relay_stopped_for_three_seconds_keeps_its_parent_and_blames_nobody() -> None:
    # A starved CPU, played by SIGSTOP: the relay's loop runs nothing for 3 s. On
    # SIGCONT its timer is late and what the root sent meanwhile is unread: it must
    # not count that as the root's silence (tree/state.py, "Stalls"), and the root
    # keeps a child for 4 s of silence. Its leaves, which cannot tell a stopped parent
    # from a frozen one, repair as usual.
    with session() as s:
        _, relay, leaves = _build_relay_tree(s)
        os.kill(relay.proc.pid, signal.SIGSTOP)
        try:
            stopped_at = time.monotonic()
            # The stall itself (not a wait for something to happen): the leaves notice
            # it meanwhile.
            assert wait_for(lambda: all(p.last("parent_lost") for p in leaves), 10)
            time.sleep(max(0.0, 3.0 - (time.monotonic() - stopped_at)))
        finally:
            os.kill(relay.proc.pid, signal.SIGCONT)
        frames = _frames(relay)
        samples = len(relay.all("stats"))
        # It goes on receiving from the same parent: no parent lost, none re-joined.
        assert wait_for(lambda: len(relay.all("stats")) >= samples + 3
                        and _frames(relay) > frames, 30)
        assert relay.last("parent_lost") is None, relay.last("parent_lost")
        assert len(relay.all("joined")) == 1 and _stats(relay).get("parent") == "root"
        assert wait_for(lambda: all(p.last("resumed") for p in leaves), 30)
