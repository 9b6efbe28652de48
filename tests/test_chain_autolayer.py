"""The keyframe chain gate and the automatic layer choice (both sans-IO)."""

from __future__ import annotations

from peer.node.autolayer import (
    BACKLOG_HOLD_S,
    FIRST_PROBE_S,
    MAX_PROBE_S,
    SETTLE_S,
    AutoLayer,
)
from peer.node.codecs.chain import ChainGate

LAYERS = (360, 480, 720, 1080)


def test_gate_starts_at_a_keyframe_and_follows_the_chain() -> None:
    gate = ChainGate()
    assert gate.waiting
    assert not gate.admit(720, 5, 4, keyframe=False)  # joined mid-chain
    assert gate.refused == 1
    assert gate.admit(720, 6, 5, keyframe=True)
    assert gate.admit(720, 7, 6, keyframe=False)
    assert gate.admit(720, 9, 7, keyframe=False)  # the encoder skipped 8: still whole
    assert not gate.admit(720, 11, 10, keyframe=False)  # 10 never came: broken
    assert gate.waiting
    assert not gate.admit(720, 12, 11, keyframe=False)
    assert gate.admit(720, 13, -1, keyframe=True)


def test_gate_after_a_drop_waits_for_a_keyframe() -> None:
    gate = ChainGate()
    gate.admit(480, 1, -1, keyframe=True)
    gate.broke()
    assert gate.waiting
    assert not gate.admit(480, 2, 1, keyframe=False)
    assert gate.admit(480, 3, 2, keyframe=True)


def test_gate_switch_is_make_before_break() -> None:
    gate = ChainGate()
    gate.admit(720, 1, -1, keyframe=True)
    assert gate.switch(480)  # a keyframe of 480 is needed
    assert gate.admit(720, 2, 1, keyframe=False)  # old chain flows meanwhile
    assert not gate.admit(480, 2, 1, keyframe=False)
    assert not gate.admit(1080, 3, -1, keyframe=True)  # a keyframe of another layer
    assert gate.admit(720, 3, 2, keyframe=False)
    assert gate.admit(480, 3, 2, keyframe=True)  # the switch
    assert gate.layer == 480
    assert not gate.admit(720, 4, 3, keyframe=False)
    assert gate.admit(480, 4, 3, keyframe=False)
    assert not gate.switch(480)


def feed(auto: AutoLayer, start: float, end: float, queued: int, dropped: int,
         step: float = 0.1) -> list[tuple[float, int]]:
    changes = []
    t = start
    while t < end:
        before = auto.layer
        if auto.observe(t, queued, dropped) != before:
            changes.append((round(t, 2), auto.layer))
        t += step
    return changes


def test_auto_moves_down_on_drops_within_the_settle_time() -> None:
    auto = AutoLayer(LAYERS, 720, now=0.0)
    assert auto.layer == 720
    assert auto.observe(0.1, queued=3, dropped_total=1) == 480  # first drop: down now
    assert auto.observe(0.2, queued=3, dropped_total=2) == 480  # settling
    assert auto.observe(0.1 + SETTLE_S, queued=3, dropped_total=3) == 360
    assert auto.observe(3.0, queued=3, dropped_total=9) == 360  # the floor


def test_auto_short_backlog_is_a_burst_long_backlog_is_congestion() -> None:
    auto = AutoLayer(LAYERS, 1080, now=0.0)
    assert auto.observe(1.0, queued=2, dropped_total=0) == 1080
    assert auto.observe(1.0 + BACKLOG_HOLD_S / 2, queued=0, dropped_total=0) == 1080
    assert auto.observe(2.0, queued=2, dropped_total=0) == 1080
    assert auto.observe(2.0 + BACKLOG_HOLD_S + 0.01, queued=2, dropped_total=0) == 720


def test_auto_probes_up_when_calm_and_reverts_a_failed_probe() -> None:
    auto = AutoLayer(LAYERS, 720, now=0.0)
    auto.observe(0.0, 3, 1)
    auto.observe(SETTLE_S, 3, 2)
    assert auto.layer == 360
    # calm: probe 480 after FIRST_PROBE_S
    changes = feed(auto, SETTLE_S, SETTLE_S + FIRST_PROBE_S + 0.2, queued=0, dropped=2)
    assert changes and changes[0][1] == 480
    probe_at = changes[0][0]
    # the probe backs up: straight back down at the first backlog (no hold), and the
    # next probe waits longer
    assert auto.observe(probe_at + 0.3, queued=3, dropped_total=2) == 360
    failed_at = probe_at + 0.3
    later = feed(auto, failed_at, failed_at + MAX_PROBE_S + 0.3, queued=0, dropped=2)
    assert later and later[0][0] - failed_at >= min(MAX_PROBE_S, 2 * FIRST_PROBE_S) - 0.11


def test_auto_returns_to_the_ceiling_within_ten_seconds_once_the_path_is_free() -> None:
    auto = AutoLayer(LAYERS, 720, now=0.0)
    feed(auto, 0.0, 2.0, queued=3, dropped=5)
    assert auto.layer == 360
    changes = feed(auto, 2.0, 12.0, queued=0, dropped=5)
    assert auto.layer == 720
    assert changes[-1][0] - 2.0 <= 10.0


def test_auto_ceiling_bounds_it() -> None:
    auto = AutoLayer(LAYERS, 480, now=0.0)
    assert auto.layer == 480
    feed(auto, 0.0, 20.0, queued=0, dropped=0)
    assert auto.layer == 480
    assert auto.set_ceiling(360, 20.0) == 360
    assert auto.set_ceiling(1080, 21.0) == 360  # up only by probing
