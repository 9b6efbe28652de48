"""Upload-aware fan-out: the uplink meter (sans-IO)."""

from __future__ import annotations

from peer.node.uplink import FORGET_S, FULL_HOLD_S, HEADROOM, UplinkMeter


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


def test_a_keyframe_burst_is_not_a_full_uplink() -> None:
    # Two children at 2.3 Mbit/s each on an 8 Mbit/s uplink: a keyframe to both backs
    # them up together for a moment (0.25 s), then they drain. Not our uplink's limit.
    meter = UplinkMeter(max_children=3)
    sent = run(meter, 0.0, 3.0, 4.6e6, backed_up=0, children=2)
    for start in (3.0, 6.0, 9.0):
        sent = run(meter, start, FULL_HOLD_S / 2, 8e6, backed_up=2, children=2, sent=sent)
        sent = run(meter, start + FULL_HOLD_S / 2, 2.5, 4.6e6, backed_up=0, children=2,
                   sent=sent)
    assert meter.capacity_bps is None
    assert not meter.over(2, 2.3e6) and meter.slots(2.3e6) == 3


def test_capacity_is_what_was_sent_while_full_not_the_window_average() -> None:
    meter = UplinkMeter(max_children=4)
    sent = run(meter, 0.0, 2.0, 4e6, backed_up=0, children=3)
    # Then the children stay backed up while the uplink sends 8 Mbit/s flat out.
    run(meter, 2.0, 1.0, 8e6, backed_up=3, children=3, sent=sent)
    assert meter.capacity_bps is not None and abs(meter.capacity_bps - 8e6) < 0.2e6


def test_a_child_leaving_mid_backlog_starts_the_measure_again() -> None:
    meter = UplinkMeter(max_children=4)
    sent = run(meter, 0.0, FULL_HOLD_S / 2, 8e6, backed_up=3, children=3)
    # One child goes: the byte count (over the current children) drops.
    run(meter, FULL_HOLD_S / 2, FULL_HOLD_S * 0.75, 8e6, backed_up=2, children=2,
        sent=sent // 2)
    assert meter.capacity_bps is None  # neither stretch alone was long enough


def test_queues_overflowing_together_are_a_full_uplink() -> None:
    # Three children at 7.5 Mbit/s on an 8 Mbit/s uplink: a keyframe to all of them
    # overflows their queues (which are then cleared: they never stay backed up).
    meter = UplinkMeter(max_children=3)
    sent = run(meter, 0.0, 2.0, 7.5e6, backed_up=0, children=3)
    assert meter.capacity_bps is None
    meter.observe(2.0, sent + int(7.5e6 / 8 * 0.25), 0, 3, overflowing=2)
    assert meter.capacity_bps is not None and abs(meter.capacity_bps - 7.5e6) < 0.3e6
    assert meter.over(3, 7.5e6 / 3) and not meter.over(2, 7.5e6 / 3)


def test_one_overflowing_child_is_its_path() -> None:
    meter = UplinkMeter(max_children=3)
    sent = run(meter, 0.0, 2.0, 7e6, backed_up=0, children=3)
    meter.observe(2.0, sent + 100_000, 0, 3, overflowing=1)
    assert meter.capacity_bps is None


def test_a_keyframe_burst_samples_the_uplink_for_slots_but_never_sheds() -> None:
    # Ticks of 0.1 s (the node's): a keyframe backs two children up for 0.3 s while
    # the uplink sends 8 Mbit/s. Not full (no capacity), but a sample of the rate:
    # at 720p's cap two children fit its headroom, a third would not.
    meter = UplinkMeter(max_children=3)
    sent, t = 0, 0.0
    for seconds, bps, backed in ((2.0, 4.6e6, 0), (0.3, 8e6, 2), (2.0, 4.6e6, 0)):
        end = t + seconds
        while t < end - 1e-9:
            sent += int(bps / 8 * 0.1)
            meter.observe(t, sent, backed, 2)
            t = round(t + 0.1, 6)
    assert meter.capacity_bps is None and meter.burst_bps is not None
    assert abs(meter.burst_bps - 8e6) < 0.5e6
    assert meter.slots(2.5e6) == 2 and not meter.over(2, 2.5e6)
    assert not meter.over(3, 2.5e6)  # a burst is no reason to send a child away
    # Forgotten like a capacity.
    meter.observe(t + FORGET_S + 1, sent, 0, 2)
    assert meter.burst_bps is None and meter.slots(2.5e6) == 3


def test_a_cpu_stall_is_no_sample_of_the_uplink() -> None:
    # Frames queue up at both children because this peer stalled, not its uplink:
    # it sent less than its average meanwhile. That says nothing about the uplink.
    meter = UplinkMeter(max_children=3)
    sent, t = 0, 0.0
    for seconds, bps, queued in ((2.0, 4.6e6, 0), (0.4, 1e6, 2), (1.0, 4.6e6, 0)):
        end = t + seconds
        while t < end - 1e-9:
            sent += int(bps / 8 * 0.1)
            meter.observe(t, sent, 0, 2, bursting=queued)
            t = round(t + 0.1, 6)
    assert meter.burst_bps is None and meter.slots(2.5e6) == 3
