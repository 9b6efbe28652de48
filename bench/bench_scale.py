"""Scale: how many headless 360p viewers this machine holds, and where the knee is.

One streamer (640x360 test pattern, 10 fps, like ``bench_tree_vs_star``) and the relay
tree with the default fan-out (4 at the root, 3 below), all on loopback. Viewers are
added in steps; after each step, over a steady window: delivered fraction (by sequence
numbers, see ``bench.common.delivery``), latency (median over viewers of their p50 and
p95, and the worst p95), CPU per peer from /proc/<pid>/stat (mean viewer, the streamer,
the tracker), the whole machine's busy CPU (/proc/stat: other users' load included)
and memory per peer. The ramp stops at the last step, when delivery falls below
``STOP_DELIVERED``, or when the time budget is spent.

The viewers stand for users on machines of their own, so two things of the harness
keep one machine from being something no real room is. They run at niceness 10
(``--nice``): on a real network the streamer and the tracker have machines of their
own. And they arrive paced (``bench.common.LaunchPacer``): at most ``--launch-rate``
new viewers a second, each waiting (up to ``--launch-max-wait`` s) while the machine's
run queue is above ``--run-queue``: dozens of interpreters starting in the same second
(each ~0.3 s of CPU to import) would starve the viewers already streaming, which in a
real room run on their own CPUs. A thread pings the tracker every 0.2 s over its own
TLS connection: the worst round trip during each join wave and during the steady
window show how responsive it stays (the streamer's lease renewals wait in the same
loop).

The knee is the first step where delivery falls below 99.5 %, the machine is more than
90 % busy in steady state, or the session failed while growing to it (a viewer that
never gets frames, the streamer ending its stream).

Run: ``python -m bench.bench_scale [--quick] [--steps 16 32 ...]``.
Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    CpuMeter,
    LaunchPacer,
    Peer,
    TrackerPinger,
    bench_session,
    machine,
    median_of,
    procs_running,
    rss_mb,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    stats_between,
    streaming,
    system_cpu,
    table,
    upload_kbps,
    viewer_summary,
)
from bench.viewer_cost import smaps_rollup

SIZE, FPS, LAYER = "640x360", 10.0, 360
FULL_STEPS = [16, 32, 64, 96, 128, 160, 192]
QUICK_STEPS = [8, 16]
STOP_DELIVERED = 0.95
WARMUP_S = 2.0


def diagnose(viewers: list[Peer]) -> dict[str, Any]:
    """What the viewers went through, for a failed step: parent losses and joins of
    everyone, and the last events of those that do not stream."""
    lost = {v.name: len(v.all("parent_lost")) for v in viewers}
    stuck = {}
    for v in viewers:
        if streaming(v):
            continue
        with v.lock:
            tail = [{k: e.get(k) for k in ("event", "t", "depth", "reason", "fps", "parent")
                     if k in e} for e in v.events[-8:]]
        stuck[v.name] = {"alive": v.proc.poll() is None, "joins": len(v.all("joined")),
                         "parent_lost": lost[v.name], "last_events": tail}
    return {"parent_lost_total": sum(lost.values()),
            "viewers_that_lost_a_parent": sum(1 for n in lost.values() if n),
            "not_streaming": stuck}


class Timeline:
    """The machine's busy CPU and run queue once a second (a thread): when the load
    rose, next to the steps."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, int]] = []  # (t, busy % of all, run queue)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="timeline", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        busy0, total0 = system_cpu()
        cpus = os.cpu_count() or 1
        while not self._stop.wait(1.0):
            busy1, total1 = system_cpu()
            pct = 100.0 * (busy1 - busy0) / max(1, total1 - total0) * cpus
            self.samples.append((round(time.time(), 1), round(pct), procs_running() - 1))
            busy0, total0 = busy1, total1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def find_tracker_pid(s: Any) -> int | None:
    return s.procs[0].pid if s.procs else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, nargs="+", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--budget", type=float, default=None, help="seconds for the ramp")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness of the viewer processes (0: same as the streamer)")
    parser.add_argument("--join-timeout", type=float, default=90.0,
                        help="seconds a step's new viewers have to all receive frames, "
                             "from the last one's launch")
    parser.add_argument("--launch-rate", type=float, default=2.0,
                        help="most new viewers per second (the room's arrival rate)")
    parser.add_argument("--run-queue", type=float, default=None,
                        help="a launch waits while the machine's run queue (runnable "
                             "tasks, 1 s average) is above this (default: 2 per CPU)")
    parser.add_argument("--launch-max-wait", type=float, default=3.0,
                        help="longest a launch waits for the run queue, seconds")
    parser.add_argument("--joining", type=int, default=4,
                        help="most viewers launched and not yet receiving frames at once")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    steps = args.steps or (QUICK_STEPS if args.quick else FULL_STEPS)
    seconds = args.seconds or (3.0 if args.quick else 6.0)
    budget = args.budget or (30.0 if args.quick else 130.0)
    run_queue = args.run_queue if args.run_queue is not None else 2.0 * (os.cpu_count() or 1)
    pacer = LaunchPacer(args.launch_rate, run_queue, args.launch_max_wait)
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, "viewer_nice": args.nice,
                              "launch_rate_per_s": args.launch_rate, "run_queue_max": run_queue,
                              "launch_max_wait_s": args.launch_max_wait, **machine(),
                              "rows": []}
    began = time.monotonic()
    with bench_session() as s, contextlib.ExitStack() as stack:
        port = s.start_tracker("--max-connections-per-address", "4096",
                               "--max-peers-per-room", "256")
        tracker_pid = find_tracker_pid(s)
        pinger = TrackerPinger(port)
        stack.callback(pinger.close)
        timeline = Timeline()
        stack.callback(timeline.close)
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "4")
        viewers: list[Peer] = []
        for n in steps:
            if time.monotonic() - began > budget:
                print(f"time budget ({budget:g} s) spent before N={n}")
                break
            started, join_t0, waited0 = time.monotonic(), time.time(), pacer.waited_s
            result.setdefault("step_started_at", {})[n] = round(join_t0, 1)
            names = [f"v{i}" for i in range(len(viewers), n)]
            try:
                viewers += start_viewers(s, names, "--resolution", str(LAYER),
                                         "--max-children", "3", timeout=args.join_timeout,
                                         streamer=streamer, nice=args.nice, pacer=pacer,
                                         joining=args.joining)
            except BenchError as exc:
                reason = str(exc).splitlines()[0]
                result["failed"] = {"n": n, "reason": reason,
                                    "tracker_ping_max_ms": pinger.max_between(join_t0,
                                                                              time.time()),
                                    **diagnose([p for name, p in s.peers.items()
                                                if name != streamer.name])}
                print(f"N={n}: failed: {reason}", flush=True)
                break
            join_s = time.monotonic() - started
            join_ping = pinger.max_between(join_t0, time.time())
            latency_from = time.time() + 1.0 + 5.0  # stats windows that start after the join
            time.sleep(1.0 if args.quick else WARMUP_S)
            pids = {"streamer": streamer.proc.pid, **{v.name: v.proc.pid for v in viewers}}
            if tracker_pid is not None:
                pids["tracker"] = tracker_pid
            meter = CpuMeter(pids).start()
            busy0, total0 = system_cpu()
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            busy1, total1 = system_cpu()
            cpu = meter.stop()
            rss = [m for v in viewers if (m := rss_mb(v.proc.pid)) is not None]
            # RSS counts the shared libraries (OpenCV, FFmpeg) in full in every viewer:
            # PSS shares them out, USS is what one more viewer costs.
            smaps = [smaps_rollup(v.proc.pid) for v in viewers]
            time.sleep(1.1)
            viewer_cpu = [cpu[v.name] for v in viewers if v.name in cpu]
            summary = viewer_summary(viewers, streamer, t0, t1, latency_from)
            window = stats_between(streamer, t0, t1)
            row = {
                "n": n,
                "join_s": round(join_s, 2),
                "launch_waited_s": round(pacer.waited_s - waited0, 1),
                "viewer_cpu_pct_mean": statistics.mean(viewer_cpu) if viewer_cpu else None,
                "viewer_cpu_pct_max": max(viewer_cpu, default=None),
                "streamer_cpu_pct": cpu.get("streamer"),
                "tracker_cpu_pct": cpu.get("tracker"),
                "peers_cpu_pct_total": sum(cpu.values()),
                "machine_busy_pct": 100.0 * (busy1 - busy0) / max(1, total1 - total0)
                * (result["cpus"] or 1),
                "viewer_rss_mb_mean": statistics.mean(rss) if rss else None,
                "viewer_pss_mb_mean": statistics.mean(m["Pss"] / 1024 for m in smaps)
                if smaps else None,
                "viewer_uss_mb_mean": statistics.mean(m["Uss"] / 1024 for m in smaps)
                if smaps else None,
                "streamer_fps": median_of(window, "fps"),
                "streamer_kbps_out": upload_kbps(streamer, t0, t1),
                "tracker_ping_join_max_ms": join_ping,
                "tracker_ping_steady_max_ms": pinger.max_between(t0, t1),
                "parent_lost_total": sum(len(v.all("parent_lost")) for v in viewers),
                **summary,
            }
            result["rows"].append(row)
            print(f"N={n}: delivered {row['delivered']}, viewer CPU "
                  f"{row['viewer_cpu_pct_mean']:.2f} %, machine {row['machine_busy_pct']:.0f} %, "
                  f"p95 {row['latency_p95_ms_median']} ms", flush=True)
            if row["delivered"] is not None and row["delivered"] < STOP_DELIVERED:
                break
            if streamer.last("stream_ended"):
                result["failed"] = {"n": n, "reason": "the streamer ended the stream: "
                                    f"{(streamer.last('stream_ended') or {}).get('reason')}"}
                break
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["tracker_ping_error"] = pinger.error
    result["timeline"] = timeline.samples
    rows = result["rows"]
    knee = None
    for row in rows:
        if (row["delivered"] or 0) < 0.995 or (row["machine_busy_pct"] or 0) > 0.9 * 100 * (
                result["cpus"] or 1):
            knee = row["n"]
            break
    result["knee_n"] = knee
    # The bar: every frame the streamer sent in the window reached every viewer
    # (no sequence gap anywhere, nobody stalled).
    full = [r["n"] for r in rows if r["delivered"] == 1.0 and r["lost_frames"] == 0
            and not r["stalled"]]
    result["full_delivery_n"] = max(full, default=None)
    text = table(
        ["N", "depth", "join s", "launch wait s", "delivered %", "worst %", "stalled",
         "p50 ms", "p95 ms med", "p95 ms max", "CPU %/viewer", "streamer %", "tracker %",
         "peers % total", "machine %", "RSS MB/viewer", "PSS MB/viewer", "USS MB/viewer",
         "trk ping join ms", "trk ping steady ms"],
        [[r["n"], r["depth_max"], r["join_s"], r["launch_waited_s"],
          None if r["delivered"] is None else 100 * r["delivered"],
          None if r["delivered_min"] is None else 100 * r["delivered_min"], len(r["stalled"]),
          r["latency_p50_ms_median"], r["latency_p95_ms_median"], r["latency_p95_ms_max"],
          r["viewer_cpu_pct_mean"], r["streamer_cpu_pct"], r["tracker_cpu_pct"],
          r["peers_cpu_pct_total"], r["machine_busy_pct"], r["viewer_rss_mb_mean"],
          r["viewer_pss_mb_mean"], r["viewer_uss_mb_mean"],
          r["tracker_ping_join_max_ms"], r["tracker_ping_steady_max_ms"]]
         for r in rows],
        ["d", "d", ".1f", ".1f", ".2f", ".2f", "d", ".1f", ".1f", ".1f", ".2f", ".1f", ".1f", ".0f",
         ".0f", ".0f", ".0f", ".0f", ".0f", ".0f"])
    result["table"] = text
    print(f"\nscale: headless {SIZE} viewers at {FPS:g} fps, tree (fan-out 4/3), loopback, "
          f"{result['cpus']} CPUs, {seconds:g} s windows; viewers launched at most "
          f"{args.launch_rate:g}/s, waiting up to {args.launch_max_wait:g} s while the run "
          f"queue is above {run_queue:g}")
    print(text)
    if result.get("failed"):
        failed = result["failed"]
        print(f"failed while growing to N={failed['n']}: {failed['reason']}")
        if knee is None:
            knee = result["knee_n"] = failed["n"]
    if pinger.error:
        print(f"the tracker pinger stopped early: {pinger.error}")
    print(f"knee: {knee if knee is not None else 'not reached'}")
    print(f"100 % delivered up to N={result['full_delivery_n']} (load average at start "
          f"{result['loadavg_at_start']}, at end {result['loadavg_at_end']})")
    save("scale", result, args.out)
    return result


if __name__ == "__main__":
    main()
