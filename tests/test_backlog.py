"""The video backlog gate (sans-IO): time and queue sizes come in as arguments."""

from __future__ import annotations

import pytest

from peer.node.backlog import MARGIN_S, MIN_BUDGET_BYTES, BacklogGate


def _drive(gate: BacklogGate, rate_bps: float, seconds: float, in_flight: int) -> int:
    """A link that acknowledges ``rate_bps`` while ``in_flight`` bytes wait in it."""
    written = in_flight
    t = 0.0
    while t <= seconds:
        gate.update(t, written, in_flight)
        written += int(rate_bps * 0.05)
        t += 0.05
    return written - int(rate_bps * 0.05)


def test_without_a_round_trip_measurement_nothing_is_held() -> None:
    gate = BacklogGate()
    assert gate.allow_video(10**9, None)
    assert gate.held == 0


def test_the_delivery_rate_is_measured_from_the_queue_drain() -> None:
    gate = BacklogGate()
    _drive(gate, 100_000, 3.0, in_flight=30_000)
    assert gate.rate_bps == pytest.approx(100_000, rel=0.05)


def test_video_waits_once_the_bottleneck_holds_more_than_the_margin() -> None:
    gate = BacklogGate()
    _drive(gate, 1_000_000, 3.0, in_flight=50_000)
    rtt = 0.02
    budget = gate.budget(rtt)
    assert budget == pytest.approx(1_000_000 * (rtt + MARGIN_S), rel=0.05)
    assert gate.allow_video(int(budget) - 1, rtt)
    assert not gate.allow_video(int(budget) + 1, rtt)
    assert gate.held == 1


def test_small_frames_always_go_even_before_any_rate_is_known() -> None:
    gate = BacklogGate()
    assert gate.budget(0.01) == MIN_BUDGET_BYTES
    assert gate.allow_video(MIN_BUDGET_BYTES, 0.01)
    assert not gate.allow_video(MIN_BUDGET_BYTES + 1, 0.01)


def test_an_idle_link_does_not_lower_the_rate() -> None:
    gate = BacklogGate()
    written = _drive(gate, 500_000, 2.0, in_flight=20_000)
    before = gate.rate_bps
    # The last bytes are acknowledged, then nothing is written and nothing is in
    # flight: the link is idle, not slow.
    for step in range(40):
        gate.update(2.1 + step * 0.05, written, 0)
    assert gate.rate_bps >= before * 0.99


def test_a_long_haul_link_keeps_its_bandwidth_delay_product_in_flight() -> None:
    """At 200 ms rtt the budget covers rate x rtt: the gate never starves a fast link."""
    gate = BacklogGate()
    _drive(gate, 600_000, 3.0, in_flight=120_000)
    assert gate.budget(0.2) >= 600_000 * 0.2
