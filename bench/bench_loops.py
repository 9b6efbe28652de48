"""asyncio's event loop against uvloop, side by side in one room.

    python -m bench.bench_loops [--viewers 12] [--seconds 40]

One streamer and ``--viewers`` headless viewers as in bench/viewer_cost.py (640x360
at 10 fps, fan-out 4/3), where every other viewer runs on asyncio's own loop
(``TREECAST_EVENT_LOOP=asyncio``) and the rest on uvloop, launched alternately. Both
halves share the tree, the streamer and the machine's load over the same window, so
run-to-run noise (the machine's other load, where the tree puts whom) falls on both
alike; separate runs of viewer_cost differ by ~5 % on their own.

Per viewer over the window: CPU from /proc/<pid>/schedstat (nanoseconds, where
/proc/<pid>/stat counts 10 ms ticks: a leaf uses only ~15 of them a second), user and
system time, voluntary context switches (wake-ups) and USS. Grouped by loop and by
role (leaf, or relay with its number of children). Prints a table, writes
bench/results/loops.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    bench_session,
    machine,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    table,
    user_sys,
)
from bench.viewer_cost import FPS, LAYER, SIZE, proc_status, smaps_rollup
from peer.node.loops import ENV_VAR

LOOPS = ("asyncio", "uvloop")


def run_ns(pid: int) -> int | None:
    """Nanoseconds the process has run on a CPU (/proc/<pid>/schedstat, all threads)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    result: dict[str, Any] = {"viewers": args.viewers, "seconds": args.seconds, **machine()}
    saved = os.environ.get(ENV_VAR)
    with bench_session() as s:
        s.start_tracker()
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "4")
        viewers = []
        loop_of: dict[str, str] = {}
        for i in range(args.viewers):
            name, loop = f"v{i}", LOOPS[i % 2]
            os.environ[ENV_VAR] = loop  # the viewer process inherits it
            viewers += start_viewers(s, [name], "--resolution", str(LAYER),
                                     "--max-children", "3", timeout=90.0,
                                     streamer=streamer)
            loop_of[name] = loop
        if saved is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved
        for v in viewers:
            ran = (v.last("ready") or {}).get("loop")
            if ran != loop_of[v.name]:
                raise SystemExit(f"{v.name} runs on {ran}, not {loop_of[v.name]}")
        time.sleep(3.0)  # past the join: moves up, first stats
        pids = {v.name: v.proc.pid for v in viewers}
        ns0 = {n: run_ns(p) for n, p in pids.items()}
        us0 = {n: user_sys(p) for n, p in pids.items()}
        st0 = {n: proc_status(p) for n, p in pids.items()}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - t0
        rows = []
        for v in viewers:
            p = pids[v.name]
            ns1, us1, st1 = run_ns(p), user_sys(p), proc_status(p)
            a, b = us0[v.name], us1
            start_ns = ns0[v.name]
            stats = v.last("stats") or {}
            rows.append({
                "name": v.name, "loop": loop_of[v.name],
                "children": stats.get("children", 0), "fps": stats.get("fps"),
                "cpu_pct": (None if ns1 is None or start_ns is None
                            else 100 * (ns1 - start_ns) / 1e9 / wall),
                "user_pct": None if a is None or b is None else 100 * (b[0] - a[0]) / wall,
                "sys_pct": None if a is None or b is None else 100 * (b[1] - a[1]) / wall,
                "wakeups_per_s": (st1.get("voluntary_ctxt_switches", 0)
                                  - st0[v.name].get("voluntary_ctxt_switches", 0)) / wall,
                "uss_mb": smaps_rollup(p).get("Uss", 0) / 1024,
            })
    result["rows"] = rows
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    def mean(key: str, sel: list[dict[str, Any]]) -> float | None:
        vals = [r[key] for r in sel if r[key] is not None]
        return statistics.mean(vals) if vals else None

    keys = ["cpu_pct", "user_pct", "sys_pct", "wakeups_per_s", "uss_mb", "fps"]
    groups: list[tuple[str, str, list[dict[str, Any]]]] = []
    for loop in LOOPS:
        mine = [r for r in rows if r["loop"] == loop]
        groups.append((loop, "leaves", [r for r in mine if not r["children"]]))
        for kids in sorted({r["children"] for r in mine if r["children"]}):
            groups.append((loop, f"relays ({kids} children)",
                           [r for r in mine if r["children"] == kids]))
    result["means"] = [{"loop": loop, "role": role, "n": len(sel),
                        **{k: mean(k, sel) for k in keys}} for loop, role, sel in groups if sel]
    text = table(["loop", "role", "n", "CPU %", "user %", "sys %", "wake-ups/s", "USS MB",
                  "fps in"],
                 [[m["loop"], m["role"], m["n"], *[m[k] for k in keys]]
                  for m in result["means"]],
                 ["s", "s", "d", ".3f", ".2f", ".2f", ".1f", ".1f", ".1f"])
    result["table"] = text
    print(f"event loops side by side: {args.viewers} headless {SIZE} viewers at {FPS:g} "
          f"fps, half on each loop, {args.seconds:g} s window; load "
          f"{result['loadavg_at_start']} -> {result['loadavg_at_end']}")
    print(text)
    save("loops", result, args.out)


if __name__ == "__main__":
    main()
