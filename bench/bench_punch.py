"""TCP hole punching success per NAT pair type, in the NAT lab (peer/node/punch.py).

Routers drop unasked-for connection attempts silently (as home routers do). For each
pair of NAT kinds, ``--trials`` punches (each between a fresh port on both sides,
started at an agreed moment 2 s ahead); a punch counts as a success when both sides
connected and swapped a line.

Run (root; ip netns, iptables): ``python -m bench.bench_punch [--trials 5]``.
Writes bench/results/punch.json.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench.common import machine, save, table
from tests.support.natlab import Kind, NatLab, natlab_unavailable, punch_between

PAIRS = ((Kind.CONE, Kind.CONE), (Kind.CONE, Kind.SYMMETRIC),
         (Kind.SYMMETRIC, Kind.SYMMETRIC))


def run(trials: int) -> dict[str, Any]:
    rows = []
    with NatLab((Kind.CONE, Kind.CONE, Kind.SYMMETRIC, Kind.SYMMETRIC),
                drop_unsolicited=True) as lab:
        hosts = {Kind.CONE: lab.hosts[:2], Kind.SYMMETRIC: lab.hosts[2:]}
        for a_kind, b_kind in PAIRS:
            a = hosts[a_kind][0]
            b = hosts[b_kind][1]
            ok, times = 0, []
            for trial in range(trials):
                one, two = punch_between(a, b, port=7500 + trial)
                if one.startswith("connected") and two.startswith("connected"):
                    ok += 1
                times.append(max(float(one.split()[1]), float(two.split()[1])))
            rows.append({"pair": f"{a_kind.value}-{b_kind.value}", "trials": trials,
                         "succeeded": ok, "success_pct": round(100 * ok / trials, 1),
                         "max_s": max(times)})
    return {"machine": machine(), "pairs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    why = natlab_unavailable((Kind.CONE, Kind.SYMMETRIC))
    if why is not None:
        raise SystemExit(f"cannot run: {why}")
    result = run(args.trials)
    cols = ["pair", "trials", "succeeded", "success_pct", "max_s"]
    print(table(cols, [[r[c] for c in cols] for r in result["pairs"]],
                ["s", "d", "d", ".0f", ".2f"]))
    save("punch", result)


if __name__ == "__main__":
    main()
