"""Tree vs star: the same N viewers served by the relay tree and by the streamer alone.

* tree: the streamer takes at most 4 children, every viewer at most 3 (the defaults);
  the others are redirected down the tree.
* star: the client-server design: the streamer takes every viewer (``--max-children``
  the largest N), the viewers forward nothing (``--max-children 0``).

N = 4, 16, 64 (quick: 4, 16), all processes on loopback; one session per topology, with
viewers added up to each N in turn (``--quick``: both topologies side by side in two
rooms of one session, sharing the CPU). 64 viewer processes plus a
streamer on two cores is heavy, so the stream is a 640x360 test pattern at 10 fps and
the viewers are headless (they never decode: forwarding needs no pixels).

Per run, over a steady window after every viewer receives frames: the streamer's upload
(``kbps_out``) and CPU, delivered fraction (frames received / frames the streamer
produced, counted by sequence numbers: see ``bench.common.delivery``; all viewers and
the worst one), viewers that stalled, the worst loss_pct, and latency (per viewer the
median over the window of its p50 and p95; median and worst viewer).

Run: ``python -m bench.bench_tree_vs_star [--quick] [--n 4 16 64]``.
Writes bench/results/tree_vs_star.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    bench_session,
    machine,
    median_of,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    stats_between,
    table,
    upload_kbps,
    viewer_summary,
)
from tests.support.procs import Peer

SIZE, FPS, LAYER = "640x360", 10.0, 360
TREE_ROOT_FANOUT, TREE_FANOUT = 4, 3
WARMUP_S = 2.0
STATS_WINDOW_S = 5.0  # the node's stats window: latency figures cover the 5 s before


def ramp(topologies: list[str], counts: list[int], seconds: float,
         warmup: float = WARMUP_S) -> list[dict[str, Any]]:
    """One session; viewers are added up to each N in turn and measured.

    Adding viewers to a running session is what a fresh session of N would do too: they
    join the tree (or the streamer) the same way; it saves starting everything again.
    Several topologies run side by side in rooms of their own (``--quick`` does that to
    save time; they then share the CPU).
    """
    results = []
    with bench_session() as s:
        s.start_tracker("--max-connections-per-address", "1024")
        streamers: dict[str, Peer] = {}
        viewers: dict[str, list[Peer]] = {}
        for topology in topologies:
            root_fanout = TREE_ROOT_FANOUT if topology == "tree" else max(counts)
            streamers[topology] = start_streamer(
                s, SIZE, FPS, "--max-children", str(root_fanout), "--room", topology,
                name=f"{topology}-streamer")
            viewers[topology] = []
        windows = []
        for n in counts:
            join_s: dict[str, float] = {}
            for topology in topologies:
                started = time.monotonic()
                have = viewers[topology]
                have += start_viewers(
                    s, [f"{topology}-v{i}" for i in range(len(have), n)], "--room", topology,
                    "--resolution", str(LAYER), "--max-children",
                    str(TREE_FANOUT if topology == "tree" else 0),
                    streamer=streamers[topology])
                join_s[topology] = time.monotonic() - started
            joined_at = time.time()
            time.sleep(warmup)
            pids = {p.name: p.proc.pid for p in [*streamers.values(),
                                                 *(v for vs in viewers.values() for v in vs)]}
            meter = CpuMeter(pids).start()
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            windows.append((n, t0, t1, meter.stop(), {t: list(v) for t, v in viewers.items()},
                            join_s, joined_at + 1.0 + STATS_WINDOW_S))
        time.sleep(1.1)  # a stats tick of each streamer after the last window
        for n, t0, t1, cpu, crowd, join_s, latency_from in windows:
            for topology in topologies:
                streamer, them = streamers[topology], crowd[topology]
                window = stats_between(streamer, t0, t1)
                viewer_cpu = [cpu[v.name] for v in them if v.name in cpu]
                r = {
                    "topology": topology,
                    "n": n,
                    "root_fanout": TREE_ROOT_FANOUT if topology == "tree" else max(counts),
                    "fanout": TREE_FANOUT if topology == "tree" else 0,
                    "side_by_side": len(topologies) > 1,
                    "join_s": round(join_s[topology], 2),
                    "streamer_children": median_of(window, "children"),
                    "streamer_kbps_out": upload_kbps(streamer, t0, t1),
                    "streamer_fps": median_of(window, "fps"),
                    "streamer_cpu_pct": cpu.get(streamer.name),
                    "viewer_cpu_pct_mean": (sum(viewer_cpu) / len(viewer_cpu)
                                            if viewer_cpu else None),
                    **viewer_summary(them, streamer, t0, t1, latency_from),
                }
                results.append(r)
                print(f"{topology} N={n}: streamer {r['streamer_kbps_out']} kbit/s, "
                      f"delivered {r['delivered']}", flush=True)
    return results


COLUMNS = ["topology", "N", "root kids", "depth", "streamer kbit/s", "streamer CPU %",
           "delivered %", "worst %", "stalled", "lost", "loss % max", "p50 ms",
           "p95 ms med", "p95 ms max"]
SPECS = ["", "d", ".0f", "d", ".0f", ".1f", ".2f", ".2f", "d", "d", ".2f", ".1f", ".1f",
         ".1f"]


def row(r: dict[str, Any]) -> list[Any]:
    def percent(x: float | None) -> float | None:
        return None if x is None else 100 * x
    return [r["topology"], r["n"], r["streamer_children"], r["depth_max"],
            r["streamer_kbps_out"], r["streamer_cpu_pct"], percent(r["delivered"]),
            percent(r["delivered_min"]), len(r["stalled"]), r["lost_frames"],
            r["loss_pct_max"], r["latency_p50_ms_median"], r["latency_p95_ms_median"],
            r["latency_p95_ms_max"]]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, nargs="+", default=None, help="viewer counts")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    counts = args.n or ([4, 16] if args.quick else [4, 16, 64])
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, **machine(), "runs": []}
    if args.quick:  # side by side, to fit the quick run's time
        result["runs"] += ramp(["tree", "star"], counts, seconds, 1.0)
    else:
        for topology in ("tree", "star"):
            result["runs"] += ramp([topology], counts, seconds)
    result["runs"].sort(key=lambda r: (r["n"], r["topology"] != "tree"))
    text = table(COLUMNS, [row(r) for r in result["runs"]], SPECS)
    result["table"] = text
    print(f"\ntree vs star ({SIZE} test pattern at {FPS:g} fps, headless viewers, loopback, "
          f"{seconds:g} s window)")
    print(text)
    save("tree_vs_star", result, args.out)
    return result


if __name__ == "__main__":
    main()
