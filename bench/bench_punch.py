"""TCP hole punching success per NAT pair type, in the NAT lab.

Routers drop unasked-for connection attempts silently (as home routers do).

Part 1, the primitive (peer/node/punch.py): for each pair of NAT kinds, ``--trials``
punches (each between a fresh port on both sides, started at an agreed moment 2 s
ahead); a punch counts as a success when both sides connected and swapped a line.

Part 2, in the tree (peer/node/punching.py): a tracker on a public host, a streamer
behind NAT kind A and, per trial, a fresh viewer behind kind B, no relay peer and no
UPnP, so a punch the tracker coordinates is the only way the viewer can be served. A
trial succeeds when the viewer joins and reports ``punched``; reported: the time from
the viewer's ``ready`` to ``joined`` and, for failures, to its stranded-viewer error.

Run (root; ip netns, iptables): ``python -m bench.bench_punch [--trials 5]
[--tree-trials 3]``. Writes bench/results/punch.json.
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from typing import Any

from bench.common import machine, save, table
from tests.support import netns
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


TREE_PAIRS = ((Kind.CONE, Kind.CONE), (Kind.CONE, Kind.SYMMETRIC),
              (Kind.SYMMETRIC, Kind.CONE), (Kind.SYMMETRIC, Kind.SYMMETRIC))
# A viewer that has neither joined nor been told it is stranded by then has failed.
TRIAL_TIMEOUT_S = 20.0
START_TIMEOUT_S = 60.0


def _is(kind: str) -> Any:
    return lambda e: e.get("event") == kind


def run_tree(trials: int) -> list[dict[str, Any]]:
    """Part 2 (module docs): one row per (streamer NAT, viewer NAT)."""
    rows = []
    kinds = (Kind.PUBLIC, Kind.CONE, Kind.CONE, Kind.SYMMETRIC, Kind.SYMMETRIC)
    with NatLab(kinds, drop_unsolicited=True) as lab:
        tracker_host, *homes = lab.hosts
        hosts = {Kind.CONE: homes[:2], Kind.SYMMETRIC: homes[2:]}
        _, _, port = netns.start_tracker(tracker_host, "--no-mdns")
        for s_kind, v_kind in TREE_PAIRS:
            room = ("--room", f"punch-{uuid.uuid4().hex[:8]}", "--tracker",
                    f"{tracker_host.address}:{port}")
            streamer, s_events = netns.start_peer(
                hosts[s_kind][0], "--name", "S", *room, "--test-pattern", "320x240",
                "--fps", "10")
            s_events.find(lambda e: e.get("event") == "stats"
                          and e.get("reachability") == "outbound-only",
                          timeout=START_TIMEOUT_S)
            joined_s: list[float] = []
            stranded_s: list[float] = []
            for trial in range(trials):
                viewer, events = netns.start_peer(hosts[v_kind][1], "--name", f"V{trial}",
                                                  *room, "--watch")
                ready = events.next(_is("ready"), timeout=START_TIMEOUT_S)
                try:
                    joined = events.next(_is("joined"), timeout=TRIAL_TIMEOUT_S)
                except TimeoutError:
                    error = next((e for e in events.lines if e.get("event") == "error"),
                                 None)
                    if error is not None:
                        stranded_s.append(error["t"] - ready["t"])
                else:
                    events.find(lambda e: e.get("event") == "stats"
                                and e.get("reachability") == "punched",
                                timeout=START_TIMEOUT_S)
                    joined_s.append(joined["t"] - ready["t"])
                viewer.terminate()
                viewer.wait(timeout=30)
            streamer.terminate()
            streamer.wait(timeout=30)
            rows.append({
                "streamer_nat": s_kind.value, "viewer_nat": v_kind.value, "trials": trials,
                "joined_by_punch": len(joined_s),
                "success_pct": round(100 * len(joined_s) / trials, 1),
                "median_ready_to_joined_s": (round(statistics.median(joined_s), 2)
                                             if joined_s else None),
                "median_ready_to_stranded_error_s": (round(statistics.median(stranded_s), 2)
                                                     if stranded_s else None)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--tree-trials", type=int, default=3,
                        help="viewers per NAT pair in part 2 (0: skip it)")
    args = parser.parse_args()
    why = natlab_unavailable((Kind.CONE, Kind.SYMMETRIC))
    if why is not None:
        raise SystemExit(f"cannot run: {why}")
    result = run(args.trials)
    cols = ["pair", "trials", "succeeded", "success_pct", "max_s"]
    print(table(cols, [[r[c] for c in cols] for r in result["pairs"]],
                ["s", "d", "d", ".0f", ".2f"]))
    if args.tree_trials > 0:
        result["tree"] = run_tree(args.tree_trials)
        cols = ["streamer_nat", "viewer_nat", "trials", "joined_by_punch", "success_pct",
                "median_ready_to_joined_s", "median_ready_to_stranded_error_s"]
        print(table(cols, [[r[c] for c in cols] for r in result["tree"]],
                    ["s", "s", "d", "d", ".0f", ".2f", ".2f"]))
    save("punch", result)


if __name__ == "__main__":
    main()
