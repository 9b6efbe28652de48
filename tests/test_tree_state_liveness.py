"""Liveness under a starved CPU: silence measured across our own stall is not blamed
on the neighbour, and a dead one is still found within a stated bound.

A stall is our own timer running late: ``handle_timer(now)`` long after
``get_timer()``. In asyncio, bytes that arrived during the stall are parsed by their
reader task one loop iteration after the timer callback, so the tests feed them in
(``heard``, ``receive``) after the late tick, the order the node sees.
"""

from __future__ import annotations

from peer.node.tree import actions as act
from peer.node.tree.simnet import Peer, SimNet
from peer.node.tree.state import RECHECK_S, TreeState, TreeTiming
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


def test_a_stall_longer_than_every_timeout_keeps_them_too() -> None:
    tree, parent, child = _relay()
    _tick_until(tree, 5.0, heard=(parent, child))
    stall = 2 * TIMING.child_timeout_s
    assert _closes(tree.handle_timer(tree.get_timer() + stall)) == []
    now = 5.0 + stall + 1.0
    assert _closes(_tick_until(tree, now, heard=(parent, child))) == []
    assert tree.parent == parent and tree.children == [child]


def test_without_a_stall_the_same_silence_closes_them() -> None:
    # The control: ticks on time that hear nothing close the parent after
    # link_timeout and the child after child_timeout.
    tree, parent, child = _relay()
    _tick_until(tree, 5.0, heard=(parent, child))
    closed = _closes(_tick_until(tree, 5.0 + STALL_S))
    assert [c.link for c in closed] == [parent]
    closed = _closes(_tick_until(tree, 5.0 + 2 * TIMING.child_timeout_s))
    assert [c.link for c in closed] == [child]
    assert "no heartbeat" in closed[0].reason


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


# --- the heartbeat economy -------------------------------------------------------


def _pings(actions: list[act.Action]) -> int:
    return sum(isinstance(a, act.PingDue) for a in actions)


def _child_of(parent_hello: Hello) -> TreeState:
    tree = _tree()
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, parent_hello, 0.04)
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    return tree


def _run(tree: TreeState, until: float, *, flowing: bool = False) -> list[act.Action]:
    """Ticks on time; the parent answers every ping at once and, when ``flowing``,
    sends video between ticks."""
    actions: list[act.Action] = []
    while (due := tree.get_timer()) <= until:
        if flowing:
            tree.heard(1, due - 0.05)  # a frame just before the tick
        out = tree.handle_timer(due)
        if _pings(out):
            tree.heard(1, due, answer=True)  # its Pong
        actions += out
    return actions


def test_while_video_flows_a_child_pings_only_every_keepalive() -> None:
    tree = _child_of(Hello(peer_id="p", name="p", room="lobby"))
    actions = _run(tree, 20.0, flowing=True)
    # One at attach (the clock offset starts at once), then one a keepalive.
    assert _pings(actions) <= 1 + 20.0 / TIMING.keepalive_s
    assert _pings(actions) >= 20.0 / TIMING.keepalive_s - 1
    assert _closes(actions) == [] and tree.parent == 1


def test_a_quiet_parent_is_probed_once_silent_for_half_the_link_timeout() -> None:
    # Nothing but Pongs (a paused room, no video wanted): a probe whenever it has been
    # silent for half the link timeout (its Pong has the other half to come).
    tree = _child_of(Hello(peer_id="p", name="p", room="lobby"))
    probes = 20.0 / (TIMING.link_timeout_s / 2)
    actions = _run(tree, 20.0)
    assert probes - 1 <= _pings(actions) <= probes + 1 and _closes(actions) == []


def test_an_older_parent_is_pinged_every_tick_even_while_video_flows() -> None:
    # Its Hello does not say it keeps slowly pinging children: it drops a child
    # silent for link_timeout, so the child pings as it always did.
    tree = _child_of(Hello(peer_id="p", name="p", room="lobby", slow_pings=False))
    actions = _run(tree, 20.0, flowing=True)
    assert _pings(actions) >= 20.0 / TIMING.ping_interval_s - 1


def test_a_parent_that_stops_while_video_flowed_is_found_one_timeout_after_its_last_byte(
        ) -> None:
    tree = _child_of(Hello(peer_id="p", name="p", room="lobby"))
    _run(tree, 10.0, flowing=True)
    last = tree._links[1].last_heard  # its last byte; from here on it neither sends
    actions: list[act.Action] = []  # nor answers
    while tree.parent is not None:
        found = tree.get_timer()
        actions += tree.handle_timer(found)
    # Probed once quiet, closed once silent for link_timeout (after a re-check that
    # lets our readers run): within the bound of link_timeout + one tick, and exactly
    # at the timeout now that the timer wakes for it instead of at the next tick.
    [close] = _closes(actions)
    assert "no heartbeat" in close.reason
    assert last + TIMING.link_timeout_s <= found <= last + TIMING.link_timeout_s + RECHECK_S
    assert found <= last + TIMING.link_timeout_s + TIMING.ping_interval_s
    assert _pings(actions) >= 1  # it was probed while quiet


def test_a_child_that_never_pings_is_dropped_and_one_that_keeps_alive_is_kept() -> None:
    tree, parent, mute = _relay()
    chatty = tree.inbound(0.2, "10.0.0.8")
    tree.receive(chatty, Hello(peer_id="k", name="k", room="lobby"), 0.2)
    tree.receive(chatty, JoinRequest(layer=720), 0.2)
    closed: list[tuple[float, act.Close]] = []
    kept_alive = 0.2
    while (due := tree.get_timer()) <= 20.0:
        tree.heard(parent, due)
        if due - kept_alive >= TIMING.keepalive_s - 0.3:  # about once a second
            tree.heard(chatty, due)
            kept_alive = due
        closed += [(due, c) for c in _closes(tree.handle_timer(due))]
    [(when, close)] = closed
    assert close.link == mute and tree.children == [chatty]
    # The mute child said its last at 0.1 s: it goes once silent for child_timeout
    # (a re-check later at most).
    assert 0.1 + TIMING.child_timeout_s <= when <= 0.1 + TIMING.child_timeout_s + RECHECK_S


# --- a room in virtual time (SimNet: video flows, the real timing) -----------------


def _room(n: int, seed: int) -> tuple[SimNet, Peer]:
    net = SimNet(timing=TreeTiming(), latency_s=0.01, seed=seed)
    root = net.add_peer("root", fanout=3)
    net.make_root(root)
    for i in range(n):
        peer = net.add_peer(f"p{i}", fanout=3)
        net.apply(peer, peer.tree.set_streamer("root", 1, net.now))
    net.run_until(8.0)
    assert net.receiving(root) == {p.id for p in net.peers.values() if p is not root}
    return net, root


def _relay_below_a_relay(net: SimNet, root: Peer) -> Peer:
    return next(p for p in net.peers.values()
                if p.tree.children and (up := net.parent_of(p)) is not None and up is not root)


def _record_closes(net: SimNet, peer: Peer) -> list[act.Close]:
    """Every Close ``peer`` decides from now on."""
    closes: list[act.Close] = []
    apply = net.apply

    def recording(who: Peer, actions: list[act.Action]) -> None:
        if who is peer:
            closes.extend(_closes(actions))
        apply(who, actions)
    net.apply = recording  # type: ignore[method-assign]
    return closes


def test_a_relay_stalled_three_seconds_keeps_its_parent_and_blames_nobody() -> None:
    net, root = _room(40, seed=4)
    stalled = _relay_below_a_relay(net, root)
    parent = net.parent_of(stalled)
    assert parent is not None
    parent_link = stalled.tree.parent
    closes = _record_closes(net, stalled)
    net.stall(stalled, STALL_S)
    net.run_until(net.now + STALL_S + 5.0)
    # It closed nothing for silence, kept its parent, and its parent kept it (a
    # child is dropped only after child_timeout, 4 s).
    assert [c.reason for c in closes if "heartbeat" in c.reason] == []
    assert stalled.tree.parent == parent_link and net.parent_of(stalled) is parent
    assert stalled.tree.counters.parents_lost == 0
    # Its children saw their parent silent past link_timeout and repaired, as they
    # must (a stalled parent looks like a frozen one); the whole room receives.
    assert net.receiving(root) == {p.id for p in net.peers.values() if p is not root}


def test_a_parent_frozen_during_our_stall_is_found_one_timeout_after_it() -> None:
    net, root = _room(40, seed=6)
    stalled = _relay_below_a_relay(net, root)
    parent = net.parent_of(stalled)
    assert parent is not None
    net.stall(stalled, STALL_S)
    net.freeze(parent)
    resumed = net.now + STALL_S
    # Stated bound: one link_timeout and one tick after it runs again (the late tick
    # judges nobody; the silence before the stall counts).
    bound = resumed + TIMING.link_timeout_s + TIMING.ping_interval_s
    net.run_until(bound)
    assert stalled.tree.counters.parents_lost == 1
    assert stalled.lost_at is not None or stalled.repairs
    detected = stalled.lost_at if stalled.lost_at is not None \
        else stalled.attached_at - stalled.repairs[-1]  # type: ignore[operator]
    assert resumed < detected <= bound
