"""The video backlog gate (sans-IO): time and queue sizes come in as arguments."""

from __future__ import annotations

import pytest

from peer.node.backlog import (
    CONGESTED_S,
    MARGIN_S,
    MIN_BUDGET_BYTES,
    MIN_PART_BYTES,
    PART_S,
    BacklogGate,
)
from protocol import limits


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


def _congested(rate_bps: float) -> BacklogGate:
    """A gate that measured ``rate_bps`` and has just held a frame."""
    gate = BacklogGate()
    _drive(gate, rate_bps, 3.0, in_flight=int(rate_bps * 0.5))
    assert not gate.allow_video(10**9, 0.01)
    return gate


def test_a_link_that_keeps_up_sends_the_protocols_large_pieces() -> None:
    gate = BacklogGate()
    _drive(gate, 30_000, 3.0, in_flight=1_000)
    assert gate.allow_video(1_000, 0.01)
    assert not gate.congested
    assert gate.part_bytes(100_000) == limits.FRAME_PART_BYTES


@pytest.mark.parametrize(("rate_bps", "piece"), [
    (30_000, MIN_PART_BYTES),  # 20 ms would be 600 bytes: one segment instead
    (400_000, int(400_000 * PART_S)),
    (10_000_000, limits.FRAME_PART_BYTES),  # never above the protocol's piece
])
def test_on_a_bottleneck_a_piece_is_twenty_ms_of_the_link(rate_bps: float,
                                                          piece: int) -> None:
    gate = _congested(rate_bps)
    assert gate.congested
    assert gate.part_bytes(100_000) == pytest.approx(piece, rel=0.05)


def test_pieces_never_outnumber_what_a_receiver_accepts() -> None:
    gate = _congested(30_000)
    total = limits.MAX_PARTS_TOTAL_BYTES
    assert -(-total // gate.part_bytes(total)) <= limits.MAX_FRAME_PARTS


def test_a_link_stops_counting_as_the_bottleneck_a_second_after_the_last_hold() -> None:
    gate = _congested(30_000)
    written = 10**6
    gate.update(3.05 + CONGESTED_S / 2, written, 0)
    assert gate.congested
    gate.update(3.1 + CONGESTED_S, written, 0)
    assert not gate.congested
    assert gate.part_bytes(100_000) == limits.FRAME_PART_BYTES
