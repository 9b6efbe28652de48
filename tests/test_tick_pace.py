"""The node's auto tick slows down while nothing moves (``FanoutControl.next_tick_s``,
``AutoLayer.next_look``): what it measures and when it acts, next to a tick every
``AUTO_TICK_S``, on a simulated uplink in virtual time (no links, no clock).

The model: an uplink of a given capacity drains its children's send queues (equal
shares among the non-empty ones) in 5 ms steps; each child gets a frame at 30 fps,
ten times larger at a keyframe (a second after joining, then every 5 s: other
joiners' requests and x264's 10 s backstop); a queue holds 8 frames
and pushes the oldest out when full (an overflow, as ``PeerLink.send_video``)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import pytest

from peer.node.autolayer import AutoLayer
from peer.node.fanout import (
    AUTO_TICK_S,
    CALM_TICK_S,
    IDLE_TICK_S,
    FanoutControl,
)
from peer.node.tree import actions as act
from peer.node.tree.state import TreeState
from protocol import JoinRequest
from tests.test_fanout import _root_with_children
from tests.test_tree_state import _hello

STEP_S = 0.005
FPS = 30.0
KEYFRAME_EVERY_S = 5.0
KEYFRAME_FACTOR = 10
QUEUE_FRAMES = 8


@dataclass
class _Uplink:
    """Children's send queues drained by one uplink (a fluid model)."""

    capacity_bps: float
    queues: dict[int, deque[float]] = field(default_factory=dict)
    overflows: dict[int, int] = field(default_factory=dict)
    sent: float = 0.0

    def frame(self, kid: int, nbytes: float) -> None:
        queue = self.queues.setdefault(kid, deque())
        self.overflows.setdefault(kid, 0)
        if len(queue) >= QUEUE_FRAMES:
            queue.popleft()
            self.overflows[kid] += 1
        queue.append(nbytes)

    def drain(self, seconds: float) -> None:
        budget = self.capacity_bps / 8 * seconds
        while budget > 1e-6:
            busy = [q for q in self.queues.values() if q]
            if not busy:
                return
            share = budget / len(busy)
            for queue in busy:
                take = min(share, queue[0])
                queue[0] -= take
                budget -= take
                self.sent += take
                if queue[0] <= 1e-6:
                    queue.popleft()


@dataclass
class _Run:
    ticks: int
    sheds: list[float]
    control: FanoutControl
    root: TreeState


def _simulate(paced: bool, children: int, rate_bps: float, capacity_bps: float,
              seconds: float, capacity_at: tuple[float, float] | None = None,
              join_at: float | None = None, max_children: int | None = None) -> _Run:
    """``children`` children at ``rate_bps`` each; ``capacity_at``: (time, capacity)
    from when the uplink changes; ``join_at``: one more child joins then (its join
    keyframe, to every child, follows 0.1 s later). The tick is every AUTO_TICK_S,
    or ``paced``: then a join brings it forward (the node's ``_tree_event``)."""
    max_children = max_children or children
    root = _root_with_children(children, max_children=max_children)
    control = FanoutControl(root, max_children)
    uplink = _Uplink(capacity_bps)
    delta = rate_bps / 8 / FPS
    ticks, sheds = 0, []
    # The children joined a moment ago: their join keyframes come in a second.
    t, next_tick, next_frame, next_key = 0.0, AUTO_TICK_S, 0.0, 1.0
    while t < seconds:
        if capacity_at is not None and t >= capacity_at[0]:
            uplink.capacity_bps = capacity_at[1]
        if join_at is not None and t >= join_at:
            join_at = None
            link = root.inbound(t, "10.0.1.1")
            _hello(root, link, "joiner")
            root.receive(link, JoinRequest(layer=720, listen_port=7999), t)
            next_key = t + 0.1
            if paced:
                next_tick = t
        if t >= next_frame:
            key = t >= next_key
            for kid in root.children:
                uplink.frame(kid, delta * (KEYFRAME_FACTOR if key else 1))
            next_frame += 1 / FPS
            if key:
                next_key += KEYFRAME_EVERY_S
        uplink.drain(STEP_S)
        if t >= next_tick:
            kids = root.children
            actions = control.tick(t, int(uplink.sent),
                                   [len(uplink.queues.get(k, ())) for k in kids],
                                   {k: uplink.overflows.get(k, 0) for k in kids})
            for close in (a for a in actions if isinstance(a, act.Close)):
                sheds.append(t)
                uplink.queues.pop(close.link, None)
            ticks += 1
            next_tick = t + (control.next_tick_s(t) if paced else AUTO_TICK_S)
        t = round(t + STEP_S, 6)
    return _Run(ticks, sheds, control, root)


def test_a_calm_relay_ticks_at_the_calm_pace_and_offers_the_same_slots() -> None:
    # Three 1 Mbit/s children on a 20 Mbit/s uplink: keyframes drain in ~50 ms.
    fixed = _simulate(False, 3, 1e6, 20e6, 20.0)
    paced = _simulate(True, 3, 1e6, 20e6, 20.0)
    assert fixed.sheds == paced.sheds == []
    assert fixed.control.fanout(20.0) == paced.control.fanout(20.0) == 3
    # Fast for the children's joins (NEW_CHILD_S), then mostly at the calm pace.
    assert paced.ticks <= fixed.ticks / 3, (paced.ticks, fixed.ticks)


def test_a_join_keyframe_still_samples_the_uplink() -> None:
    # Two 720p children (2.3 Mbit/s) on 8 Mbit/s: every keyframe backs both queues up
    # for ~0.3 s; what the uplink sends then says a third child does not fit. The
    # join keyframe comes while the pace is fast (NEW_CHILD_S).
    fixed = _simulate(False, 2, 2.3e6, 8e6, 12.0)
    paced = _simulate(True, 2, 2.3e6, 8e6, 12.0)
    for run in (fixed, paced):
        burst = run.control.uplink.burst_bps
        assert burst is not None and abs(burst - 8e6) < 0.8e6, burst
        assert run.sheds == [] and run.control.fanout(12.0) == 2
    assert paced.ticks < fixed.ticks


def test_an_uplink_that_narrows_is_measured_and_shed_as_soon() -> None:
    # Three 1.2 Mbit/s children on 20 Mbit/s (calm), narrowing to 3 Mbit/s at 8 s:
    # the queues back up, the capacity is measured and the newest child goes.
    fixed = _simulate(False, 3, 1.2e6, 20e6, 16.0, capacity_at=(8.0, 3e6))
    paced = _simulate(True, 3, 1.2e6, 20e6, 16.0, capacity_at=(8.0, 3e6))
    for run in (fixed, paced):
        capacity = run.control.uplink.capacity_bps
        assert capacity is not None and abs(capacity - 3e6) < 0.3e6, capacity
        assert len(run.sheds) == 1 and run.sheds[0] > 8.0
        assert len(run.root.children) == 2
    # Seen at most one calm tick later than every AUTO_TICK_S.
    assert paced.sheds[0] <= fixed.sheds[0] + CALM_TICK_S


@pytest.mark.parametrize("join_at", [12.3, 12.35, 12.7])
def test_a_second_child_joining_a_calm_relay_is_sampled_by_its_join_keyframe(
        join_at: float) -> None:
    # One 720p child (2.3 Mbit/s) calm on 8 Mbit/s (one child samples no burst); a
    # second joins. Its join keyframe backs both up for ~0.3 s: what the uplink sends
    # then shows that a third 720p child would not fit, before one is taken. At the
    # calm pace alone that burst can fall between two ticks (0.5 s apart; at these
    # join times it does): the join brings the tick forward, so it is sampled.
    for paced in (False, True):
        run = _simulate(paced, 1, 2.3e6, 8e6, 16.0, join_at=join_at, max_children=3)
        burst = run.control.uplink.burst_bps
        assert burst is not None and abs(burst - 8e6) < 0.8e6, (paced, burst)
        assert run.sheds == [] and len(run.root.children) == 2
        assert run.control.fanout(16.0) == 2 and run.root.fanout == 2


def test_a_leaf_ticks_once_a_second() -> None:
    root = _root_with_children(0)
    control = FanoutControl(root, 3)
    control.tick(1.0, 0, [], {})
    assert control.next_tick_s(1.0) == IDLE_TICK_S
    assert control.next_tick_s(1.0, seeking=True) == AUTO_TICK_S


# --- automatic layers --------------------------------------------------------------

LADDER_BPS = {360: 0.6e6, 480: 1.0e6, 720: 2.5e6}


def _auto_path(paced: bool, seconds: float, capacity: list[tuple[float, float]],
               ) -> list[tuple[float, int]]:
    """One ``auto`` child on a path whose capacity follows ``capacity`` ((from, bps),
    ...): the layers it was moved to and when. Paced: the tick comes when
    ``next_look`` asks (at least every CALM_TICK_S, at most every AUTO_TICK_S) while
    its queue is empty, every AUTO_TICK_S while not (the node's rule)."""
    auto = AutoLayer(tuple(LADDER_BPS), 720, 0.0)
    queue: deque[float] = deque()
    dropped = 0
    moves: list[tuple[float, int]] = []
    t, next_tick, next_frame = 0.0, AUTO_TICK_S, 0.0
    while t < seconds:
        sent_bps = next(bps for start, bps in reversed(capacity) if start <= t)
        if t >= next_frame:
            if len(queue) >= QUEUE_FRAMES:
                queue.popleft()
                dropped += 1
            queue.append(LADDER_BPS[auto.layer] / 8 / FPS)
            next_frame += 1 / FPS
        budget = sent_bps / 8 * STEP_S
        while queue and budget > 0:
            take = min(budget, queue[0])
            queue[0] -= take
            budget -= take
            if queue[0] <= 1e-6:
                queue.popleft()
        if t >= next_tick:
            before = auto.layer
            auto.observe(t, len(queue), dropped)
            if auto.layer != before:
                moves.append((round(t, 3), auto.layer))
            interval = AUTO_TICK_S
            if paced and not queue:
                interval = min(CALM_TICK_S, max(AUTO_TICK_S, auto.next_look(t) - t))
            next_tick = t + interval
        t = round(t + STEP_S, 6)
    return moves


def test_an_auto_child_moves_down_as_soon_and_probes_up_at_the_same_time() -> None:
    # A 720p path that narrows to 1.2 Mbit/s at 5 s (480p fits, 720p does not) and
    # widens again at 15 s: down within a calm tick of the fixed pace; back up (the
    # probe is due at a time the child says) as the fixed pace does (within two
    # fast ticks: the ticks' phase alone moves where a backlog's hold begins).
    path = [(0.0, 5e6), (5.0, 1.2e6), (15.0, 5e6)]
    fixed = _auto_path(False, 40.0, path)
    paced = _auto_path(True, 40.0, path)
    assert [layer for _, layer in fixed] == [layer for _, layer in paced]
    down_fixed = next(t for t, layer in fixed if layer < 720)
    down_paced = next(t for t, layer in paced if layer < 720)
    assert 5.0 < down_fixed <= down_paced <= down_fixed + CALM_TICK_S
    assert down_paced - 5.0 < 2.0
    up_fixed = [t for t, layer in fixed if t > 15.0]
    up_paced = [t for t, layer in paced if t > 15.0]
    assert up_fixed and len(up_fixed) == len(up_paced)
    assert all(abs(a - b) <= 2 * AUTO_TICK_S for a, b in zip(up_fixed, up_paced, strict=True))


def test_next_look_is_now_while_a_backlog_is_held_and_never_at_the_top() -> None:
    auto = AutoLayer(tuple(LADDER_BPS), 720, 0.0)
    auto.observe(0.1, 0, 0)
    assert auto.next_look(0.1) == math.inf  # at its ceiling, calm: only a backlog moves it
    auto.observe(0.2, 3, 0)
    assert auto.next_look(0.2) == 0.2  # holding a backlog: look again at the fast pace
