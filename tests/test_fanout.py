"""Child slots that follow the measured uplink, in memory: a real TreeState with three
children, the uplink fed by hand with virtual time (no links, no clock)."""

from __future__ import annotations

from peer.node.fanout import (
    NEW_CHILD_S,
    SHED_INTERVAL_S,
    UPLINK_BACKLOG_FRAMES,
    FanoutControl,
)
from peer.node.tree import actions as act
from peer.node.tree.state import StreamInfo, TreeState
from peer.node.uplink import CALM_S, FULL_HOLD_S, HEADROOM
from protocol import JoinRequest
from tests.test_tree_state import _hello, _tree

TICK_S = 0.1


def _root_with_children(n: int, max_children: int = 4) -> TreeState:
    root = _tree("root", fanout=max_children)
    root.become_root(1, StreamInfo(1280, 720, 30.0), 0.0)
    for i in range(n):
        link = root.inbound(0.0, f"10.0.0.{i + 2}")
        _hello(root, link, f"kid{i}")
        root.receive(link, JoinRequest(layer=720, listen_port=7000 + i), 0.1)
    assert len(root.children) == n
    return root


def _run(control: FanoutControl, start: float, seconds: float, rate_bps: float,
         queues: list[int], sent: int = 0) -> tuple[list[act.Action], int]:
    """Feed ``seconds`` of ticks at ``rate_bps`` in total; all actions, bytes sent."""
    actions: list[act.Action] = []
    t = start
    while t < start + seconds:
        sent += int(rate_bps / 8 * TICK_S)
        actions += control.tick(t, sent, queues)
        t = round(t + TICK_S, 6)
    return actions, sent


def test_an_unmeasured_calm_uplink_offers_max_children() -> None:
    root = _root_with_children(2)
    control = FanoutControl(root, max_children=4)
    actions, _ = _run(control, 0.0, 3.0, 4e6, [0, 0])
    assert control.fanout(3.0) == 4 and control.uplink.capacity_bps is None
    assert not [a for a in actions if isinstance(a, act.Close)]


def test_one_backed_up_child_holds_the_slots_until_calm() -> None:
    root = _root_with_children(2)
    control = FanoutControl(root, max_children=4)
    # One child's path is slow: not our uplink (unmeasured), but take no one new.
    _run(control, 0.0, 1.0, 4e6, [UPLINK_BACKLOG_FRAMES, 0])
    assert control.uplink.capacity_bps is None
    assert control.fanout(1.0) == 2
    assert root.fanout == 2  # the tree offers no free slot now
    _run(control, 1.0, CALM_S + 0.5, 4e6, [0, 0])
    assert control.fanout(1.0 + CALM_S + 0.5) == 4


def test_a_full_uplink_sheds_the_newest_child_once_per_interval() -> None:
    root = _root_with_children(3)
    control = FanoutControl(root, max_children=4)
    # Every child stays backed up at 3 Mbit/s in total: once that has held for
    # FULL_HOLD_S the uplink is full, and that is its capacity.
    backed = [UPLINK_BACKLOG_FRAMES] * 3
    actions, sent = _run(control, 0.0, 2.0, 3e6, backed)
    capacity = control.uplink.capacity_bps
    assert capacity is not None and abs(capacity - 3e6) < 0.3e6
    closes = [a for a in actions if isinstance(a, act.Close)]
    assert len(closes) == 1 and closes[0].reason == "uplink full"
    assert len(root.children) == 2
    # The two left get 1.5 Mbit/s each: one fits in the headroom; the tree offers that.
    per_child = control.uplink.rate_bps() / 2
    assert control.fanout(2.0) == int(capacity * HEADROOM // per_child) == 1
    assert root.fanout == 1
    # Still over right after: nobody else goes before SHED_INTERVAL_S (from the shed,
    # which came FULL_HOLD_S after the backlog began).
    more, _ = _run(control, 2.0, FULL_HOLD_S + SHED_INTERVAL_S - 2.0 - TICK_S, 3e6,
                   backed[:2], sent)
    assert not [a for a in more if isinstance(a, act.Close)]


def test_a_leaf_offers_no_slot_whatever_it_measures() -> None:
    leaf = _tree("leaf", fanout=0)
    control = FanoutControl(leaf, max_children=0)
    actions, _ = _run(control, 0.0, 2.0, 1e6, [])
    assert actions == [] and control.fanout(2.0) == 0


def test_keyframe_bursts_to_two_children_shed_nobody_and_sample_the_uplink() -> None:
    # Two 720p children on an 8 Mbit/s uplink: each keyframe backs both queues up for
    # a moment. The uplink carries them; nobody is shed. What it sent meanwhile is a
    # sample of its rate: a third 720p child (2.5 Mbit/s at the cap) would not fit
    # its headroom, so no third slot is offered.
    root = _root_with_children(2)
    control = FanoutControl(root, max_children=3)
    actions, sent = _run(control, 0.0, 2.0, 4.6e6, [0, 0])
    for start in (2.0, 5.0, 8.0):
        burst, sent = _run(control, start, 0.3, 8e6, [UPLINK_BACKLOG_FRAMES + 2] * 2, sent)
        calm, sent = _run(control, start + 0.3, 2.7, 4.6e6, [0, 0], sent)
        actions += burst + calm
    assert not [a for a in actions if isinstance(a, act.Close)]
    assert control.uplink.capacity_bps is None and len(root.children) == 2
    burst = control.uplink.burst_bps
    assert burst is not None and abs(burst - 8e6) < 0.5e6
    assert control.fanout(11.0) == 2 and root.fanout == 2


def _run_overflowing(control: FanoutControl, root: TreeState, start: float, seconds: float,
                     rate_bps: float, overflowing: set[int], sent: int,
                     counts: dict[int, int]) -> tuple[list[act.Action], int]:
    """Ticks at ``rate_bps`` in which the children of ``overflowing`` each push one
    more frame out of their full queue per tick (their queues never stay long)."""
    actions: list[act.Action] = []
    t = start
    while t < start + seconds:
        sent += int(rate_bps / 8 * TICK_S)
        kids = list(root.children)
        for link in kids:
            counts[link] = counts.get(link, 0) + (link in overflowing)
        actions += control.tick(t, sent, [0] * len(kids), {k: counts[k] for k in kids})
        t = round(t + TICK_S, 6)
    return actions, sent


def test_children_overflowing_together_shed_the_newest() -> None:
    # Three 720p children at 7 Mbit/s on an 8 Mbit/s uplink: a keyframe overflows two
    # queues. That uplink cannot carry three: the newest goes, once.
    root = _root_with_children(3)
    control = FanoutControl(root, max_children=3)
    counts: dict[int, int] = {}
    actions, sent = _run_overflowing(control, root, 0.0, 2.0, 7e6, set(), 0, counts)
    assert not [a for a in actions if isinstance(a, act.Close)]
    first, second = root.children[:2]
    actions, sent = _run_overflowing(control, root, 2.0, 0.3, 8e6, {first, second}, sent,
                                     counts)
    closes = [a for a in actions if isinstance(a, act.Close)]
    assert len(closes) == 1 and closes[0].reason == "uplink full"
    assert len(root.children) == 2


def test_one_child_overflowing_sheds_nobody() -> None:
    root = _root_with_children(3)
    control = FanoutControl(root, max_children=3)
    counts: dict[int, int] = {}
    actions, sent = _run_overflowing(control, root, 0.0, 2.0, 7e6, set(), 0, counts)
    slow = root.children[0]
    actions, _ = _run_overflowing(control, root, 2.0, 2.0, 7e6, {slow}, sent, counts)
    assert not [a for a in actions if isinstance(a, act.Close)]
    assert control.uplink.capacity_bps is None


def test_a_keyframe_burst_to_three_children_offers_no_fourth_slot_but_sheds_nobody() -> None:
    # Three 720p children (2.3 Mbit/s each) on an 8 Mbit/s uplink: the first keyframe
    # backs every queue up for 0.7 s at the uplink's rate. That measures the capacity:
    # two slots fit its headroom at the layer's cap (2.5 Mbit/s), so no slot is offered,
    # but the queues absorb the burst (nothing overflows): nobody is shed (all three
    # have been children for longer than NEW_CHILD_S).
    root = _root_with_children(3)
    control = FanoutControl(root, max_children=4)
    actions, sent = _run(control, 0.0, 2.0, 6.9e6, [0, 0, 0])
    for start in (2.0 + NEW_CHILD_S, 12.0 + NEW_CHILD_S):
        burst, sent = _run(control, start, 0.7, 8e6, [UPLINK_BACKLOG_FRAMES + 6] * 3, sent)
        calm, sent = _run(control, start + 0.7, 9.3, 6.9e6, [0, 0, 0], sent)
        actions += burst + calm
    capacity = control.uplink.capacity_bps
    assert capacity is not None and abs(capacity - 8e6) < 0.5e6
    assert not [a for a in actions if isinstance(a, act.Close)]
    assert len(root.children) == 3
    assert control.fanout(22.0 + NEW_CHILD_S) == 2 and root.fanout == 2


def test_slots_count_the_layers_cap_not_the_average() -> None:
    # 8.5 Mbit/s measured, children averaging 2.3 Mbit/s: at the average three would
    # fit the headroom; at 720p's cap of 2.5 Mbit/s (a keyframe bursts up to it), two.
    root = _root_with_children(2)
    control = FanoutControl(root, max_children=4)
    actions, sent = _run(control, 0.0, 2.0, 4.6e6, [0, 0])
    _, sent = _run(control, 2.0, FULL_HOLD_S + 0.2, 8.5e6, [UPLINK_BACKLOG_FRAMES] * 2,
                   sent)
    actions, _ = _run(control, 2.7, 2.5, 4.6e6, [0, 0], sent)
    capacity = control.uplink.capacity_bps
    assert capacity is not None and int(capacity * HEADROOM // 2.3e6) == 3
    assert abs(control.uplink.rate_bps() / 2 - 2.3e6) < 0.1e6
    assert control.fanout(5.2) == 2 and root.fanout == 2
    assert not [a for a in actions if isinstance(a, act.Close)]


def test_a_newcomer_a_keyframe_burst_shows_does_not_fit_is_sent_on_at_once() -> None:
    # Two 720p children for a while, then a third joins (taken before any burst said
    # how much the uplink carries): its join keyframe backs all three up at 8 Mbit/s.
    # Two fit at the cap: the newcomer, without a subtree yet, goes on at once, before
    # the uplink is overloaded; the two older children stay.
    root = _root_with_children(2)
    control = FanoutControl(root, max_children=4)
    actions, sent = _run(control, 0.0, NEW_CHILD_S + 1, 4.6e6, [0, 0])
    link = root.inbound(NEW_CHILD_S + 1, "10.0.0.9")
    _hello(root, link, "newcomer")
    root.receive(link, JoinRequest(layer=720, listen_port=7100), NEW_CHILD_S + 1)
    assert root.children[-1] == link
    t = NEW_CHILD_S + 1.5
    _, sent = _run(control, t, 0.5, 6.9e6, [0, 0, 0], sent)
    burst, sent = _run(control, t + 0.5, 0.3, 8e6, [2, 2, 2], sent)
    closes = [a for a in actions + burst if isinstance(a, act.Close)]
    assert len(closes) == 1 and closes[0].link == link and closes[0].reason == "uplink full"
    assert len(root.children) == 2 and control.uplink.capacity_bps is None


def test_a_joiner_above_our_childrens_layer_must_fit_the_uplink_at_its_own_cap() -> None:
    # Two 360p children on an uplink measured at 4 Mbit/s: slots for four more of
    # theirs (0.6 Mbit/s each), but not for a 1080p child (4.5 Mbit/s at its cap).
    root = _tree("root", fanout=4)
    root.become_root(1, StreamInfo(1920, 1080, 30.0), 0.0)
    control = FanoutControl(root, max_children=4)
    root.admits = control.fits
    for i in range(2):
        link = root.inbound(0.0, f"10.0.0.{i + 2}")
        _hello(root, link, f"kid{i}")
        root.receive(link, JoinRequest(layer=360, listen_port=7000 + i), 0.1)
    _run(control, 0.0, 2.5, 1.1e6, [0, 0])  # what two 360p children get
    assert control.fits(1080)  # unknown uplink: the slots offered decide
    control.uplink.capacity_bps = 4e6
    assert control.fits(360) and not control.fits(1080) and control.fanout(2.5) == 4
    big = root.inbound(2.5, "10.0.0.9")
    _hello(root, big, "big")
    answer = [a.message for a in root.receive(big, JoinRequest(layer=1080, listen_port=7009),
                                              2.6) if isinstance(a, act.Send)]
    assert [type(m).__name__ for m in answer] == ["Redirect"] and len(root.children) == 2
    small = root.inbound(2.5, "10.0.0.8")
    _hello(root, small, "small")
    root.receive(small, JoinRequest(layer=360, listen_port=7008), 2.7)
    assert len(root.children) == 3
