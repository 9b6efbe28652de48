"""Upload-aware fan-out: the uplink meter (sans-IO)."""

from __future__ import annotations

from peer.node.uplink import FORGET_S, HEADROOM, UplinkMeter


def run(meter: UplinkMeter, start: float, seconds: float, bps: float, backed_up: int,
        children: int, sent: int = 0) -> int:
    t = start
    while t < start + seconds:
        sent += int(bps / 8 * 0.25)
        meter.observe(t, sent, backed_up, children)
        t += 0.25
    return sent


def test_unknown_capacity_leaves_max_children() -> None:
    meter = UplinkMeter(max_children=4)
    run(meter, 0.0, 5.0, 6e6, backed_up=0, children=3)
    assert meter.capacity_bps is None
    assert meter.slots(2.5e6) == 4


def test_a_full_uplink_limits_the_slots() -> None:
    meter = UplinkMeter(max_children=6)
    # Three 720p children (2.5 Mbit/s each) on an 8 Mbit/s uplink: they all back up.
    run(meter, 0.0, 4.0, 8e6, backed_up=3, children=3)
    assert meter.capacity_bps is not None and abs(meter.capacity_bps - 8e6) < 0.2e6
    assert meter.slots(2.5e6) == int(8e6 * HEADROOM // 2.5e6) == 2
    assert meter.slots(0.6e6) == 6  # 360p children: the bound decides
    assert meter.slots(20e6) == 1  # never below one


def test_one_slow_child_is_its_path_not_our_uplink() -> None:
    meter = UplinkMeter(max_children=4)
    run(meter, 0.0, 4.0, 5e6, backed_up=1, children=3)
    assert meter.capacity_bps is None


def test_capacity_grows_when_more_is_carried_and_is_forgotten_later() -> None:
    meter = UplinkMeter(max_children=4)
    sent = run(meter, 0.0, 3.0, 4e6, backed_up=2, children=2)
    sent = run(meter, 3.0, 3.0, 7e6, backed_up=0, children=2, sent=sent)
    assert meter.capacity_bps is not None and meter.capacity_bps > 6e6
    run(meter, 6.0, FORGET_S + 1, 1e6, backed_up=0, children=2, sent=sent)
    assert meter.capacity_bps is None


def test_a_leaf_stays_a_leaf() -> None:
    meter = UplinkMeter(max_children=0)
    run(meter, 0.0, 4.0, 8e6, backed_up=3, children=3)
    assert meter.slots(1e6) == 0


def test_calm_and_over() -> None:
    meter = UplinkMeter(max_children=4)
    assert meter.calm(0.0)
    run(meter, 0.0, 3.0, 8e6, backed_up=3, children=3)
    assert not meter.calm(3.0)
    assert meter.over(3, 3e6) and not meter.over(2, 3e6)
    assert meter.calm(6.0)
