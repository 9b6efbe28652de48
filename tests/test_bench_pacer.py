"""The scale benchmark's launch pacer: a bounded rate, and a wait while the machine's
run queue is long, never longer than its bound (virtual clock, injected run queue)."""

from __future__ import annotations

import pytest

from bench.common import LaunchPacer


class _Machine:
    def __init__(self) -> None:
        self.now = 0.0
        self.runnable = 0

    def clock(self) -> float:
        return self.now


def _first_ready(pacer: LaunchPacer, machine: _Machine, until: float) -> float | None:
    while machine.now <= until:
        if pacer.ready():
            return machine.now
        machine.now = round(machine.now + 0.02, 2)
    return None


def test_launches_are_spaced_by_the_rate() -> None:
    m = _Machine()
    pacer = LaunchPacer(2.0, run_queue=4.0, max_wait_s=3.0, clock=m.clock,
                        runnable=lambda: m.runnable)
    assert pacer.ready()  # the first one at once
    pacer.launched()
    assert _first_ready(pacer, m, 5.0) == 0.5
    pacer.launched()
    assert _first_ready(pacer, m, 5.0) == 1.0
    assert pacer.waited_s == 0.0


def test_a_long_run_queue_delays_a_launch_up_to_the_bound() -> None:
    m = _Machine()
    pacer = LaunchPacer(2.0, run_queue=4.0, max_wait_s=3.0, clock=m.clock,
                        runnable=lambda: m.runnable)
    pacer.launched()
    m.runnable = 9  # a busy machine: the next launch waits ...
    assert _first_ready(pacer, m, 2.0) is None
    m.runnable = 1  # ... until the run queue's one-second average falls below 4
    ready = _first_ready(pacer, m, 5.0)
    assert ready is not None and 2.0 < ready < 3.0
    pacer.launched()
    m.runnable = 50  # a machine that stays busy still gets its viewers, late
    # (one 20 ms poll of slack: the bound is a float sum)
    assert _first_ready(pacer, m, 10.0) == pytest.approx(ready + 0.5 + 3.0, abs=0.03)
    pacer.launched()
    assert 4.5 < pacer.waited_s < 5.5
