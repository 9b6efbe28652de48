"""The room simulator (bench/sim.py) runs a small room to the end, repeatably.

The figures of docs/PERFORMANCE.md section 17 come from much larger rooms; here a
small one with heavy churn checks that a run ends (no timer spins at one instant),
that the same seed gives the same room, and that the tree it reports is sound.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench import sim

ARGS = ["--peers", "150", "--churn", "30", "--seconds", "20", "--join-seconds", "5"]
MACHINE = ("wall_s", "cpu_s", "loadavg_1min_at_end")  # vary with the machine


def _run(out: Path, seed: int) -> dict[str, object]:
    assert sim.main([*ARGS, "--seed", str(seed), "--out", str(out)]) == 0
    result: dict[str, object] = json.loads(out.read_text())
    return {k: v for k, v in result.items() if k not in MACHINE}


def test_a_small_room_with_churn_runs_to_the_end_repeatably(tmp_path: Path) -> None:
    first = _run(tmp_path / "a.json", seed=3)
    assert first == _run(tmp_path / "b.json", seed=3)
    assert first["departures"] > 0 and first["repairs"] > 0  # type: ignore[operator]
    assert first["depth_max"] <= first["depth_bound"]  # type: ignore[operator]
    assert first["receiving_fraction_steady"] >= 0.95  # type: ignore[operator]
    assert first != _run(tmp_path / "c.json", seed=4)
