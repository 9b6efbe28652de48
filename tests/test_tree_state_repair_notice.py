"""A relay repairing its own path is not failed by its children for the silence.

A relay that loses its parent sends no video until it re-attaches. Without a notice
every child (and their children) fails it as a silent parent once the no-video
allowance (2 s) runs out and re-joins elsewhere: one repair becomes many (issue 10's
scale run lost 428 parents among 151 viewers this way). With the notice (a PathUpdate
flagged ``repairing``) its subtree waits a bounded while; a parent that claims to
repair forever is still failed after the bound, and a dead one by its silence.
"""

from __future__ import annotations

from peer.node.tree import actions as act
from peer.node.tree.state import REPAIR_GRACE_EVERY_S, REPAIR_GRACE_S, TreeState, TreeTiming
from protocol import Accept, Candidate, Hello, PathEntry, PathUpdate
from tests.support.rooms import FixedRoom

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0,
                    video_timeout_s=2.0)
P = Candidate("p", "p", "10.0.0.5", 5000, 0, 1)
Q = Candidate("q", "q", "10.0.0.6", 5000, 0, 1)


def _closes(actions: list[act.Action]) -> list[act.Close]:
    return [a for a in actions if isinstance(a, act.Close)]


def _peer(peer_id: str, offers: list[Candidate]) -> TreeState:
    tree = TreeState(peer_id=peer_id, name=peer_id, room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom(offers, address=(f"10.0.1.{len(peer_id)}", 9000)),
                     timing=TIMING, now=0.0)
    return tree


class Wires:
    """Connects TreeStates' links in memory: a Send is received at once at the far end."""

    def __init__(self) -> None:
        self.ends: dict[tuple[int, int], tuple[TreeState, int]] = {}
        self.dropped: list[PathUpdate] = []
        self.drop_notices = False  # play a relay that predates the notice

    def join(self, child: TreeState, parent: TreeState, now: float) -> None:
        [dial] = [a for a in child.set_streamer("p", 1, now) if isinstance(a, act.Dial)]
        inbound = parent.inbound(now, "10.0.0.99")
        self.ends[(id(child), dial.link)] = (parent, inbound)
        self.ends[(id(parent), inbound)] = (child, dial.link)
        self.deliver(child, child.connected(dial.link, now), now)
        assert child.parent == dial.link

    def deliver(self, sender: TreeState, actions: list[act.Action], now: float) -> None:
        for action in actions:
            if not isinstance(action, act.Send):
                continue
            far = self.ends.get((id(sender), action.link))
            if far is None:
                continue
            message = action.message
            if self.drop_notices and isinstance(message, PathUpdate) and message.repairing:
                self.dropped.append(message)
                continue
            tree, link = far
            self.deliver(tree, tree.receive(link, message, now), now)


def _relay_with_subtree(wires: Wires) -> tuple[TreeState, TreeState, TreeState]:
    """p -> relay -> child -> grandchild, video flowing, the relay's parent on link 1."""
    relay = _peer("relay", [P, Q])
    relay.set_streamer("p", 1, 0.0)
    relay.connected(1, 0.02)
    relay.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.03)
    relay.receive(1, Accept(path=(PathEntry("p", "p", "10.0.0.5", 5000),), epoch=1), 0.05)
    assert relay.parent == 1
    child = _peer("child", [Candidate("relay", "relay", "10.0.1.5", 9000, 1, 1)])
    wires.join(child, relay, 0.1)
    grandchild = _peer("grandchild", [Candidate("child", "child", "10.0.1.5", 9000, 2, 1)])
    wires.join(grandchild, child, 0.2)
    assert [e.id for e in grandchild.path] == ["p", "relay", "child"]
    return relay, child, grandchild


def _tick(trees: list[TreeState], start: float, until: float, *, video: bool
          ) -> list[act.Close]:
    """Every tree's parent answers its pings and its children ping it (all alive);
    video flows only with ``video``."""
    closes: list[act.Close] = []
    t = start
    while t <= until:
        for tree in trees:
            for child in tree.children:
                tree.heard(child, t)
            if tree.parent is not None:
                tree.heard(tree.parent, t)
                if video:
                    tree.video_arrived(t)
            closes += _closes(tree.handle_timer(t))
        t = round(t + TIMING.ping_interval_s, 6)
    return closes


def _lose_parent(relay: TreeState, wires: Wires, now: float) -> int:
    """The relay's parent dies: it dials q at once (the link returned) and tells its
    children."""
    lost = relay.link_closed(1, "EOF", now)
    [dial] = [a for a in lost if isinstance(a, act.Dial)]
    assert dial.candidate.id == "q"
    wires.deliver(relay, lost, now)
    return dial.link


def _repair(relay: TreeState, link: int, wires: Wires, now: float) -> None:
    """The relay's dial of q succeeds: it re-attaches below q."""
    relay.connected(link, now)
    relay.receive(link, Hello(peer_id="q", name="q", room="lobby"), now)
    actions = relay.receive(link, Accept(path=(PathEntry("q", "q", "10.0.0.6", 5000),),
                                         epoch=1), now)
    assert relay.parent == link
    wires.deliver(relay, actions, now)


def test_a_relay_repairing_for_five_seconds_keeps_its_whole_subtree() -> None:
    wires = Wires()
    relay, child, grandchild = _relay_with_subtree(wires)
    subtree = [child, grandchild]
    assert _tick(subtree, 0.25, 1.0, video=True) == []
    # The relay's parent dies: it dials q at once and tells its children.
    dial = _lose_parent(relay, wires, 1.1)
    assert child.counters.repair_graces == 1 and grandchild.counters.repair_graces == 1
    # Five seconds without video (well past the 2 s allowance): nobody leaves.
    assert _tick(subtree, 1.25, 6.0, video=False) == []
    _repair(relay, dial, wires, 6.1)
    assert [e.id for e in grandchild.path] == ["q", "relay", "child"]
    # Video from the new path: the same parents, no re-join, no silent parent.
    assert _tick(subtree, 6.25, 20.0, video=True) == []
    for tree, parent in ((child, "relay"), (grandchild, "child")):
        assert tree.parent_id == parent
        assert tree.counters.joins == 1 and tree.counters.silent_parents == 0


def test_without_the_notice_the_same_repair_costs_the_children_their_parent() -> None:
    # The control: a relay that predates the notice is failed by its children.
    wires = Wires()
    wires.drop_notices = True
    relay, child, grandchild = _relay_with_subtree(wires)
    _tick([child, grandchild], 0.25, 1.0, video=True)
    _lose_parent(relay, wires, 1.1)
    assert wires.dropped  # the notice was sent, and lost
    closes = _tick([child, grandchild], 1.25, 6.0, video=False)
    assert [c.reason for c in closes][:2] == ["no video for 2 s"] * 2  # both leave
    assert child.counters.silent_parents == 1


def test_the_allowance_counts_again_from_the_end_of_the_notice() -> None:
    # A relay that re-attached but whose new path sends nothing is failed as usual,
    # one allowance after its notice ended.
    wires = Wires()
    relay, child, _ = _relay_with_subtree(wires)
    _tick([child], 0.25, 1.0, video=True)
    dial = _lose_parent(relay, wires, 1.1)
    assert _tick([child], 1.25, 4.0, video=False) == []
    _repair(relay, dial, wires, 4.1)
    assert _tick([child], 4.25, 6.0, video=False) == []  # within 2 s of the re-attach
    closes = _tick([child], 6.25, 6.5, video=False)
    assert [c.reason for c in closes] == ["no video for 2 s"]


# --- the attacker: a parent that claims to repair forever ---------------------------


def _attached() -> TreeState:
    tree = _peer("me", [P, Q])
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.03)
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    assert tree.parent == 1
    return tree


def test_a_parent_claiming_to_repair_forever_is_failed_after_the_bound() -> None:
    tree = _attached()
    notice = PathUpdate(path=(PathEntry("p", "p"),), repairing=True)
    closes: list[act.Close] = []
    t, failed_at = 0.25, None
    while t <= 30.0 and failed_at is None:
        if tree.parent is not None:
            tree.receive(1, notice, t)  # again and again, every tick
            tree.heard(1, t)  # and it answers pings: alive
        closes += _closes(tree.handle_timer(t))
        failed_at = t if closes else None
        t = round(t + TIMING.ping_interval_s, 6)
    # One notice believed (at 0.25): grace until 8.25, then the 2 s allowance.
    assert failed_at is not None and [c.reason for c in closes] == ["no video for 2 s"]
    assert 0.25 + REPAIR_GRACE_S + 2.0 <= failed_at <= 0.25 + REPAIR_GRACE_S + 2.5
    assert tree.counters.repair_graces == 1 and tree.parent is None


def test_a_parent_that_ends_and_restarts_its_notice_is_believed_once_per_while() -> None:
    tree = _attached()
    path = (PathEntry("p", "p"),)
    said = {0.5: PathUpdate(path=path, repairing=True), 1.0: PathUpdate(path=path),
            1.5: PathUpdate(path=path, repairing=True)}  # the last one not believed
    t, closes = 0.25, []
    while not closes:
        if t in said:
            tree.receive(1, said[t], t)
        tree.heard(1, t)
        closes = _closes(tree.handle_timer(t))
        t = round(t + TIMING.ping_interval_s, 6)
    assert tree.counters.repair_graces == 1
    # The allowance counted from the notice's end at 1.0 (and a tick of judging).
    assert 1.0 + 2.0 <= t - 0.25 <= 1.0 + 2.0 + 0.5
    assert REPAIR_GRACE_EVERY_S > REPAIR_GRACE_S


def test_a_dead_repairing_parent_is_still_found_by_its_silence() -> None:
    tree = _attached()
    tree.receive(1, PathUpdate(path=(PathEntry("p", "p"),), repairing=True), 0.5)
    t, closes = 0.75, []
    while not closes:
        closes = _closes(tree.handle_timer(t))  # not a byte heard: no pongs
        t = round(t + TIMING.ping_interval_s, 6)
    assert closes[0].reason == "no heartbeat for 1 s" and t - 0.25 <= 0.5 + 1.0 + 0.5
