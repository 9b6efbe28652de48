"""Liveness under a starved CPU: silence measured across our own stall is not blamed
on the neighbour, and a dead one is still found within a stated bound.

A stall is our own timer running late: ``handle_timer(now)`` long after
``get_timer()``. In asyncio, bytes that arrived during the stall are parsed by their
reader task one loop iteration after the timer callback, so the tests feed them in
(``heard``, ``receive``) after the late tick, the order the node sees.
"""

from __future__ import annotations

from peer.node.tree import actions as act
from peer.node.tree.state import TreeState, TreeTiming
from protocol import Accept, Candidate, Hello, JoinRequest, PathEntry
from tests.support.rooms import FixedRoom

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
PARENT = Candidate("p", "p", "10.0.0.5", 5000, 0, 1)
STALL_S = 3.0


def _tree(candidates: list[Candidate] | None = None) -> TreeState:
    return TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom(candidates or [PARENT]), timing=TIMING, now=0.0)


def _closes(actions: list[act.Action]) -> list[act.Close]:
    return [a for a in actions if isinstance(a, act.Close)]


def _relay() -> tuple[TreeState, int, int]:
    """A peer with a parent (link 1) and a child, both heard at 0.1."""
    tree = _tree()
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.04)
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    child = tree.inbound(0.06, "10.0.0.7")
    tree.receive(child, Hello(peer_id="c", name="c", room="lobby"), 0.08)
    tree.receive(child, JoinRequest(layer=720), 0.1)
    assert tree.parent == 1 and tree.children == [child]
    return tree, 1, child


def _tick_until(tree: TreeState, until: float, *, heard: tuple[int, ...] = ()
                ) -> list[act.Action]:
    """Run every timer on time up to ``until``; the links in ``heard`` say something
    at every tick (alive, as their pings, pongs and frames would)."""
    actions: list[act.Action] = []
    while (due := tree.get_timer()) <= until:
        for link in heard:
            tree.heard(link, due)
        actions += tree.handle_timer(due)
    return actions


def test_a_stall_of_three_seconds_keeps_a_live_parent_and_child() -> None:
    tree, parent, child = _relay()
    assert _closes(_tick_until(tree, 5.0, heard=(parent, child))) == []
    due = tree.get_timer()
    # Our loop stalls 3 s: the timer runs late, everything they sent is still unread.
    late = tree.handle_timer(due + STALL_S)
    assert _closes(late) == []
    assert act.PingDue(parent) in late  # the heartbeat goes out as usual
    # The readers run after the late timer: both were alive all along.
    for link in (parent, child):
        tree.heard(link, due + STALL_S)
    assert _closes(_tick_until(tree, due + STALL_S + 5.0, heard=(parent, child))) == []
    assert tree.parent == parent and tree.children == [child]
    assert tree.counters.parents_lost == 0


def test_without_the_stall_the_same_silence_would_close_them() -> None:
    # The control: an on-time tick that finds 3 s of silence closes both links.
    tree, parent, child = _relay()
    _tick_until(tree, 5.0, heard=(parent, child))
    closed = _closes(_tick_until(tree, 5.0 + STALL_S))
    assert {c.link for c in closed} == {parent, child}
    assert all("no heartbeat" in c.reason for c in closed)


def test_a_parent_that_died_before_our_stall_is_still_found_one_timeout_later() -> None:
    tree, parent, child = _relay()
    _tick_until(tree, 5.0, heard=(parent, child))
    died = tree.get_timer()  # the parent's last word: at this tick, then nothing
    tree.heard(parent, died)
    tree.handle_timer(died)
    resumed = tree.get_timer() + STALL_S
    assert _closes(tree.handle_timer(resumed)) == []  # the late tick judges nobody
    # Bound: the silence outside our stall reaches link_timeout within one timeout
    # and one tick of running again (a tick that is late again excuses that too).
    bound = resumed + TIMING.link_timeout_s + TIMING.ping_interval_s
    closed = _tick_until(tree, bound, heard=(child,))
    assert [c.link for c in _closes(closed)] == [parent]
    assert any(isinstance(a, act.ParentDetached) for a in closed)
    assert tree.children == [child]  # the live child stays


def test_an_answer_that_arrived_during_our_stall_is_not_a_join_timeout() -> None:
    tree = _tree()
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)  # the join's deadline: 2.02
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.04)
    _tick_until(tree, 1.9)
    # Stalled from 1.9 to 5.0; the Accept came at 0.5 s into it and waits unread.
    late = tree.handle_timer(5.0)
    # Judged again right after the readers ran (the deadline moved by the stall).
    assert _closes(late) == [] and tree.get_timer() < 5.0 + TIMING.ping_interval_s
    actions = tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 5.0)
    assert any(isinstance(a, act.ParentAttached) for a in actions)
    assert _closes(tree.handle_timer(5.0)) == []
    # An answer that never comes still times the join out, at that next tick.
    slow = _tree()
    slow.set_streamer("p", 1, 0.0)
    slow.connected(1, 0.02)
    _tick_until(slow, 1.9)
    assert _closes(slow.handle_timer(5.0)) == []
    [close] = _closes(slow.handle_timer(slow.get_timer()))
    assert close.reason == "join timed out"


def test_small_lateness_is_no_stall() -> None:
    # A tick a few ms late (an ordinary busy loop) judges as usual.
    tree, parent, child = _relay()
    _tick_until(tree, 5.0, heard=(parent, child))
    _tick_until(tree, 6.0, heard=(child,))
    closed = tree.handle_timer(tree.get_timer() + 0.01)
    assert [c.link for c in _closes(closed)] == [parent]
