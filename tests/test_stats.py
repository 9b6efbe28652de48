"""StreamStats: windowed rates, latency percentiles, loss from sequence gaps."""

from __future__ import annotations

import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.node.stats import MAX_GAP_FRAMES, StreamStats, percentile


def feed(stats: StreamStats, seqs: list[int], t0: float = 0.0, fps: float = 30.0,
         epoch: int = 1, nbytes: int = 1000, latency_s: float | None = 0.1) -> float:
    """Receive ``seqs`` one per frame interval from ``t0``; returns the last time."""
    t = t0
    for i, seq in enumerate(seqs):
        t = t0 + i / fps
        stats.frame_received(t, nbytes, seq, epoch, latency_s)
    return t


# --- rates ---------------------------------------------------------------------------


def test_empty_snapshot() -> None:
    snap = StreamStats().snapshot(100.0)
    assert snap.fps == 0.0 and snap.kbps_in == 0.0 and snap.kbps_out == 0.0
    assert snap.latency_p50_ms is None and snap.latency_p95_ms is None
    assert snap.loss_pct == 0.0
    assert (snap.frames, snap.dropped, snap.lost, snap.bytes_in, snap.bytes_out) == (0,) * 5


def test_steady_stream_rates() -> None:
    stats = StreamStats(window_s=5.0)
    end = feed(stats, list(range(300)), fps=30.0, nbytes=1250)  # 10 s at 30 fps
    snap = stats.snapshot(end)
    assert snap.fps == pytest.approx(30.0, abs=0.3)
    assert snap.kbps_in == pytest.approx(30 * 1250 * 8 / 1000, rel=0.02)  # 300 kbps
    assert snap.frames == 300
    assert snap.bytes_in == 300 * 1250
    assert snap.lost == 0 and snap.loss_pct == 0.0


def test_rates_use_elapsed_time_before_the_window_fills() -> None:
    stats = StreamStats(window_s=5.0)
    end = feed(stats, list(range(61)), fps=30.0)  # 2 s of stream
    assert stats.snapshot(end).fps == pytest.approx(30.5, abs=0.1)


def test_rates_never_divide_by_less_than_one_second() -> None:
    stats = StreamStats()
    stats.frame_received(0.0, 100, 0, 1, None)
    stats.frame_received(0.01, 100, 1, 1, None)
    assert stats.snapshot(0.01).fps == pytest.approx(2.0)


def test_window_forgets_old_events_but_keeps_totals() -> None:
    stats = StreamStats(window_s=5.0)
    end = feed(stats, list(range(30)))
    stats.bytes_sent(end, 5000)
    snap = stats.snapshot(end + 5.01)
    assert snap.fps == 0.0 and snap.kbps_in == 0.0 and snap.kbps_out == 0.0
    assert snap.latency_p50_ms is None
    assert snap.frames == 30 and snap.bytes_out == 5000


def test_bytes_sent_and_control_bytes() -> None:
    stats = StreamStats(window_s=2.0)
    for i in range(20):
        stats.bytes_sent(0.05 + i * 0.1, 1000)  # 10 kB/s
    stats.control_bytes(1.9, 500, 250)
    snap = stats.snapshot(2.0)
    span = 2.0 - 0.05  # the stream is younger than the window
    assert snap.kbps_out == pytest.approx((20 * 1000 + 250) * 8 / 1000 / span)
    assert snap.kbps_in == pytest.approx(500 * 8 / 1000 / span)
    assert snap.bytes_out == 20_250 and snap.bytes_in == 500


def test_dropped_frames_total() -> None:
    stats = StreamStats()
    stats.frame_dropped(1.0)
    stats.frame_dropped(2.0, count=4)
    assert stats.snapshot(100.0).dropped == 5


def test_produced_frames_count_once_per_seq_across_layers() -> None:
    stats = StreamStats(window_s=5.0)
    for seq in range(150):  # 5 s at 30 fps, three layers each
        t = seq / 30
        for nbytes in (20_000, 40_000, 90_000):
            stats.frame_produced(t, nbytes, seq)
    snap = stats.snapshot(149 / 30)
    assert snap.frames == 150
    assert snap.fps == pytest.approx(30.0, abs=0.3)
    assert snap.bytes_in == 150 * 150_000
    assert snap.lost == 0


# --- latency -------------------------------------------------------------------------


def test_latency_percentiles() -> None:
    stats = StreamStats(window_s=10.0)
    latencies = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    for seq, lat in enumerate(latencies):
        stats.frame_received(seq * 0.01, 100, seq, 1, lat)
    snap = stats.snapshot(1.0)
    assert snap.latency_p50_ms == pytest.approx(50.5)
    assert snap.latency_p95_ms == pytest.approx(95.05)


def test_latency_ignores_unknown_and_duplicates() -> None:
    stats = StreamStats()
    stats.frame_received(0.0, 100, 0, 1, None)
    stats.frame_received(0.1, 100, 1, 1, 0.2)
    stats.frame_received(0.2, 100, 1, 1, 9.0)  # duplicate: its latency is not a sample
    snap = stats.snapshot(0.3)
    assert snap.latency_p50_ms == pytest.approx(200.0)
    assert snap.latency_p95_ms == pytest.approx(200.0)


def test_percentile_matches_statistics_inclusive() -> None:
    data = sorted([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    quartiles = statistics.quantiles(data, n=4, method="inclusive")
    assert [percentile(data, p) for p in (25, 50, 75)] == pytest.approx(quartiles)
    assert percentile([7.0], 95) == 7.0
    assert percentile(data, 0) == 1.0 and percentile(data, 100) == 9.0


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="percentile of no samples"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"percentile 101 outside 0\.\.100"):
        percentile([1.0], 101)


# --- loss ------------------------------------------------------------------------------


def test_gap_counts_as_loss() -> None:
    stats = StreamStats(window_s=5.0)
    end = feed(stats, [0, 1, 2, 6, 7, 8, 9])  # 3, 4, 5 missing
    snap = stats.snapshot(end)
    assert snap.lost == 3
    assert snap.frames == 7
    assert snap.loss_pct == pytest.approx(30.0)


def test_duplicates_are_not_counted_twice() -> None:
    stats = StreamStats()
    end = feed(stats, [0, 1, 1, 2, 2, 2, 3, 0])
    assert not stats.frame_received(end, 10, 3, 1, None)
    snap = stats.snapshot(end)
    assert snap.frames == 4 and snap.lost == 0
    assert snap.bytes_in == 8 * 1000 + 10  # duplicates still crossed the link


def test_late_frame_is_un_lost() -> None:
    stats = StreamStats()
    end = feed(stats, [0, 1, 4, 5, 3, 2])  # 2 and 3 arrive late
    snap = stats.snapshot(end)
    assert snap.lost == 0 and snap.frames == 6 and snap.loss_pct == 0.0


def test_late_frame_in_the_middle_of_a_hole_splits_it() -> None:
    stats = StreamStats()
    end = feed(stats, [0, 10, 5])
    snap = stats.snapshot(end)
    assert snap.lost == 8 and snap.frames == 3
    # Each of the remaining 8 can still be un-lost exactly once.
    for seq in (1, 2, 3, 4, 6, 7, 8, 9, 5, 4):
        stats.frame_received(end, 10, seq, 1, None)
    snap = stats.snapshot(end)
    assert snap.lost == 0 and snap.frames == 11


def test_late_frame_after_the_window_corrects_the_total() -> None:
    stats = StreamStats(window_s=1.0)
    stats.frame_received(0.0, 10, 0, 1, None)
    stats.frame_received(0.1, 10, 2, 1, None)  # 1 lost
    stats.frame_received(3.0, 10, 3, 1, None)
    assert stats.snapshot(3.0).lost == 1
    assert stats.snapshot(3.0).loss_pct == 0.0  # the hole left the window
    assert stats.frame_received(3.1, 10, 1, 1, None)
    snap = stats.snapshot(3.1)
    assert snap.lost == 0 and snap.frames == 4


def test_loss_pct_is_windowed() -> None:
    stats = StreamStats(window_s=2.0)
    feed(stats, [0, 5], t0=0.0)  # 4 lost at t=1/30
    end = feed(stats, list(range(6, 96)), t0=1.0)  # 3 s of clean stream
    snap = stats.snapshot(end)
    assert snap.loss_pct == 0.0
    assert snap.lost == 4


def test_layer_change_is_not_loss() -> None:
    # The parent switches us from 720 to 480: same counter, no gap.
    stats = StreamStats()
    t = 0.0
    for seq in range(60):
        stats.frame_received(t, 50_000 if seq < 30 else 20_000, seq, 1, None)
        t += 1 / 30
    assert stats.snapshot(t).lost == 0


def test_new_epoch_starts_fresh() -> None:
    stats = StreamStats()
    end = feed(stats, [100, 101, 102], epoch=1)
    end = feed(stats, [0, 1, 2], t0=end + 0.1, epoch=2)
    snap = stats.snapshot(end)
    assert snap.lost == 0 and snap.frames == 6


def test_stale_epoch_frames_are_ignored() -> None:
    stats = StreamStats()
    end = feed(stats, [0, 1, 2], epoch=2)
    assert not stats.frame_received(end, 10, 50, 1, 0.1)
    end = feed(stats, [3, 4], t0=end + 0.1, epoch=2)
    snap = stats.snapshot(end)
    assert snap.frames == 5 and snap.lost == 0


def test_huge_forward_jump_is_a_restart_not_loss() -> None:
    stats = StreamStats(max_gap_frames=100)
    end = feed(stats, [0, 1, 2, 10_000, 10_001])
    snap = stats.snapshot(end)
    assert snap.lost == 0 and snap.frames == 5


def test_gap_at_the_cap_counts_and_one_more_restarts() -> None:
    stats = StreamStats(max_gap_frames=100)
    feed(stats, [0, 101])  # gap of exactly 100
    assert stats.snapshot(1.0).lost == 100
    stats = StreamStats(max_gap_frames=100)
    feed(stats, [0, 102])  # gap of 101
    assert stats.snapshot(1.0).lost == 0


def test_huge_backward_jump_is_a_restart() -> None:
    stats = StreamStats(max_gap_frames=100)
    end = feed(stats, [5000, 5001, 3, 4, 6])
    snap = stats.snapshot(end)
    assert snap.frames == 5 and snap.lost == 1  # only 5, after re-anchoring at 3


def test_reattach_in_same_epoch_counts_the_outage_once() -> None:
    stats = StreamStats()
    end = feed(stats, list(range(30)))
    # 1 s outage: the new parent resumes at 60, then delivers 58 and 59 late.
    end = feed(stats, [60, 58, 59, 61, 62], t0=end + 1.0)
    snap = stats.snapshot(end)
    assert snap.lost == 28  # 30..57
    assert snap.frames == 35


def test_reset_sequence_counts_no_loss_across_it() -> None:
    stats = StreamStats()
    end = feed(stats, list(range(30)))
    stats.reset_sequence()
    end = feed(stats, [200, 201, 203], t0=end + 1.0)
    snap = stats.snapshot(end)
    assert snap.lost == 1 and snap.frames == 33


def test_reset_sequence_keeps_stale_epochs_out() -> None:
    stats = StreamStats()
    feed(stats, [0, 1], epoch=3)
    stats.reset_sequence()
    assert not stats.frame_received(1.0, 10, 7, 2, None)
    assert stats.frame_received(1.1, 10, 7, 3, None)


def test_memory_is_bounded_by_the_window() -> None:
    stats = StreamStats(window_s=1.0, max_gap_frames=50)
    seq = 0
    for i in range(20_000):  # 10 min at ~33 fps with regular losses
        seq += 1 if i % 7 else 3
        t = i * 0.03
        stats.frame_received(t, 1000, seq, 1, 0.05)
        stats.bytes_sent(t, 1000)
        stats.bytes_sent(t + 0.001, 1000)
    snap = stats.snapshot(t)
    assert snap.lost > 5000
    assert len(stats._frames._entries) <= 40
    assert len(stats._bytes_in._entries) <= 40
    assert len(stats._bytes_out._entries) <= 40
    assert len(stats._latency) <= 40
    assert len(stats._holes) <= 50


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="window_s must be positive, got 0"):
        StreamStats(window_s=0)
    with pytest.raises(ValueError, match="max_gap_frames must be at least 1, got 0"):
        StreamStats(max_gap_frames=0)


@given(
    start=st.integers(0, 10_000),
    present=st.lists(st.booleans(), min_size=1, max_size=200),
    dup_idx=st.lists(st.integers(0, 199), max_size=40),
    order=st.randoms(use_true_random=False),
)
def test_any_order_with_duplicates_counts_each_frame_once(
    start: int, present: list[bool], dup_idx: list[int], order: random.Random
) -> None:
    """Whatever the arrival order, after everything arrived: every seq at or above the
    first one received counts once, and the holes that stayed are exactly the loss."""
    seqs = [start + i for i, ok in enumerate(present) if ok]
    if not seqs:
        return
    arrivals = seqs + [seqs[i % len(seqs)] for i in dup_idx]
    order.shuffle(arrivals)
    stats = StreamStats(window_s=1000.0, max_gap_frames=MAX_GAP_FRAMES)
    for i, seq in enumerate(arrivals):
        stats.frame_received(i * 0.001, 10, seq, 1, None)
    first = arrivals[0]
    counted = {s for s in seqs if s >= first}
    expected_lost = (max(seqs) - first + 1) - len(counted)
    snap = stats.snapshot(len(arrivals) * 0.001)
    assert snap.frames == len(counted)
    assert snap.lost == expected_lost
    total = snap.frames + snap.lost
    assert snap.loss_pct == pytest.approx(100.0 * expected_lost / total)
