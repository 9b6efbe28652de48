"""ClockEstimator: offset recovery, min-RTT filtering, sliding window; frame latency."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.node.clock import (
    NEGATIVE_RTT_TOLERANCE_S,
    ClockEstimator,
    chain_root_offset,
    frame_latency_s,
)


def probe(
    est: ClockEstimator,
    t0: float,
    theta: float,
    up: float,
    down: float,
    processing: float = 0.001,
) -> bool:
    """One simulated probe: remote clock = local + theta, one-way delays up/down."""
    t1 = t0 + up + theta
    t2 = t1 + processing
    t3 = t2 - theta + down
    return est.add_sample(t0, t1, t2, t3)


def test_empty_estimator_has_no_offset_or_rtt() -> None:
    est = ClockEstimator()
    assert est.offset is None
    assert est.rtt is None
    assert est.samples == 0


def test_symmetric_delay_recovers_offset_exactly() -> None:
    est = ClockEstimator()
    # Binary fractions keep float arithmetic exact.
    assert probe(est, t0=100.0, theta=-37.25, up=0.015625, down=0.015625, processing=0.125)
    assert est.offset == -37.25
    assert est.rtt == 0.03125


@given(
    theta=st.floats(-1e5, 1e5),
    delay=st.floats(0.0, 2.0),
    processing=st.floats(0.0, 0.5),
    t0=st.floats(0.0, 1e6),
)
def test_symmetric_delay_recovers_any_offset(
    theta: float, delay: float, processing: float, t0: float
) -> None:
    est = ClockEstimator()
    assert probe(est, t0, theta, delay, delay, processing)
    assert est.offset is not None and est.rtt is not None
    assert math.isclose(est.offset, theta, abs_tol=1e-6)
    assert math.isclose(est.rtt, 2 * delay, abs_tol=1e-6)


def test_asymmetric_queueing_is_filtered_by_min_rtt() -> None:
    est = ClockEstimator(window=16)
    theta = 5.0
    # Most probes sit behind a video frame in one direction or the other...
    for i, (up, down) in enumerate([(0.2, 0.01), (0.01, 0.3), (0.5, 0.01), (0.01, 0.08)]):
        probe(est, t0=float(i), theta=theta, up=up, down=down)
    assert est.offset is not None
    assert abs(est.offset - theta) > 0.03  # every one of them is skewed
    # ...one crosses an idle link: it has the lowest rtt and wins.
    probe(est, t0=10.0, theta=theta, up=0.01, down=0.01)
    for i, (up, down) in enumerate([(0.4, 0.01), (0.01, 0.25)]):
        probe(est, t0=11.0 + i, theta=theta, up=up, down=down)
    assert est.offset == pytest.approx(theta, abs=1e-9)
    assert est.rtt == pytest.approx(0.02, abs=1e-9)


def test_min_rtt_bounds_the_error_to_half_the_rtt() -> None:
    est = ClockEstimator()
    probe(est, t0=0.0, theta=1.0, up=0.03, down=0.01)
    assert est.offset is not None and est.rtt is not None
    assert abs(est.offset - 1.0) <= est.rtt / 2 + 1e-12


def test_window_slides_and_forgets_the_old_best_sample() -> None:
    est = ClockEstimator(window=3)
    probe(est, t0=0.0, theta=2.0, up=0.001, down=0.001)  # the best, for now
    for i in range(2):
        probe(est, t0=1.0 + i, theta=2.5, up=0.05, down=0.05)
    assert est.offset == pytest.approx(2.0)
    assert est.samples == 3
    # A third worse sample pushes the best one out of the window.
    probe(est, t0=5.0, theta=3.0, up=0.02, down=0.02)
    assert est.samples == 3
    assert est.offset == pytest.approx(3.0)
    assert est.rtt == pytest.approx(0.04)


def test_window_follows_a_clock_that_drifted() -> None:
    est = ClockEstimator(window=4)
    for i in range(4):
        probe(est, t0=float(i), theta=1.0, up=0.01, down=0.01)
    for i in range(4):
        probe(est, t0=10.0 + i, theta=1.002, up=0.01, down=0.01)
    assert est.offset == pytest.approx(1.002)


def test_equal_rtt_prefers_the_newest_sample() -> None:
    est = ClockEstimator(window=4)
    probe(est, t0=0.0, theta=1.0, up=0.01, down=0.01)
    probe(est, t0=1.0, theta=1.5, up=0.01, down=0.01)
    assert est.offset == pytest.approx(1.5)


def test_negative_rtt_beyond_tolerance_is_rejected() -> None:
    est = ClockEstimator()
    # Remote claims it spent 2 s processing during a 1 s round trip.
    assert not est.add_sample(0.0, 10.0, 12.0, 1.0)
    assert est.offset is None
    assert est.samples == 0


def test_negative_rtt_within_tolerance_counts_as_zero() -> None:
    est = ClockEstimator()
    eps = NEGATIVE_RTT_TOLERANCE_S / 2
    assert est.add_sample(0.0, 5.0, 5.0 + eps, 0.0)
    assert est.rtt == 0.0
    assert est.offset == pytest.approx(5.0, abs=eps)


def test_negative_rtt_at_tolerance_edge() -> None:
    est = ClockEstimator()
    assert est.add_sample(0.0, 0.0, 0.0009, 0.0)  # rtt = -0.9 ms: kept
    assert not est.add_sample(0.0, 0.0, 0.0011, 0.0)  # rtt = -1.1 ms: rejected
    assert est.samples == 1


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_timestamps_are_rejected(bad: float) -> None:
    est = ClockEstimator()
    assert not est.add_sample(0.0, bad, 1.0, 2.0)
    assert est.offset is None


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be at least 1, got 0"):
        ClockEstimator(window=0)


def test_reset_forgets_samples() -> None:
    est = ClockEstimator()
    probe(est, t0=0.0, theta=1.0, up=0.01, down=0.01)
    est.reset()
    assert est.offset is None and est.rtt is None and est.samples == 0


def test_root_offset_adds_up_along_a_path() -> None:
    # Clocks: root = 1000, A = root - 3 (A behind root), B = A + 7.
    root_clock, a_clock, b_clock = 1000.0, 997.0, 1004.0
    a_est, b_est = ClockEstimator(), ClockEstimator()
    probe(a_est, t0=a_clock, theta=root_clock - a_clock, up=0.005, down=0.005)
    probe(b_est, t0=b_clock, theta=a_clock - b_clock, up=0.005, down=0.005)
    assert a_est.offset is not None and b_est.offset is not None
    a_root = chain_root_offset(0.0, a_est.offset)  # the root reports 0
    b_root = chain_root_offset(a_root, b_est.offset)
    assert a_root == pytest.approx(3.0)
    assert b_root == pytest.approx(-4.0)
    # A frame captured at root time 1000.0 seen by B when B's clock reads 1004.25.
    assert frame_latency_s(1000.0, now=1004.25, root_offset=b_root) == pytest.approx(0.25)


def test_frame_latency_on_the_root_is_plain_difference() -> None:
    assert frame_latency_s(captured_at=10.0, now=10.5, root_offset=0.0) == 0.5
