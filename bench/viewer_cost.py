"""Where a headless viewer's CPU and memory go: the scale benchmark's unit cost.

One streamer (the scale benchmark's 640x360 test pattern at 10 fps, with sound) and a
small room of headless viewers (fan-out 4/3, so some relay and most are leaves). Over a
steady window, per viewer, from /proc:

- CPU (% of one core, utime + stime), split into user and system time;
- wake-ups: voluntary context switches per second (each is one return from the event
  loop's ``epoll_wait``, roughly: one per batch of readable data);
- memory: RSS, and from smaps_rollup the private (USS: what the process alone costs)
  and proportional (PSS: its share of the shared libraries) figures;
- what it received (video frames per second, sound kbps).

And what a viewer costs to start (the scale benchmark's join waves): the CPU seconds
and memory of importing the headless peer (``import peer.node.cli`` in a fresh
interpreter, the median of ``--import-runs``, with which of OpenCV, numpy and PyAV it
loaded), and each viewer's CPU seconds from its launch to receiving frames (the
import, TLS handshakes, the join and the first seconds of the stream).

With ``--profile``, one leaf and one relay run under cProfile over the window
(bench/profiled_peer.py; switched on by a signal, so imports and the join are not in
it) and their top functions are printed: where the CPU goes. cProfile's own overhead
inflates the total; the shares are what to read. ``--py-spy`` samples a leaf instead.

Run: ``python -m bench.viewer_cost [--viewers 10] [--seconds 15] [--profile]
[--streamer-args='--no-audio'] [--viewer-args='--no-tls']``. Writes bench/results/viewer_cost.json.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    bench_session,
    cpu_seconds,
    machine,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    table,
    user_sys,
)
from bench.profiled_peer import profile_path
from tests.support.procs import wait_for

SIZE, FPS, LAYER = "640x360", 10.0, 360


def proc_status(pid: int) -> dict[str, int]:
    """voluntary/nonvoluntary context switches and VmRSS (kB) from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches",
                           "VmRSS", "Threads"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and the private (USS) kB of a process."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss", "Private_Clean", "Private_Dirty", "Anonymous"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    out["Uss"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
    return out


_IMPORT_PROBE = """
import sys
import peer.node.cli
heavy = [m for m in ("cv2", "numpy", "av") if m in sys.modules]
with open("/proc/self/smaps_rollup") as f:
    kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f)
          if k in ("Rss", "Pss", "Private_Clean", "Private_Dirty")}
print(kb["Rss"], kb["Pss"], kb["Private_Clean"] + kb["Private_Dirty"], ",".join(heavy))
"""


def import_cost(runs: int) -> dict[str, Any]:
    """CPU seconds (user + system, from wait4) and memory of ``import peer.node.cli``
    in a fresh interpreter: what every viewer pays before it can join. USS here counts
    the pages of shared libraries no other process maps (alone on a machine, they are
    private), so the running viewers' USS (the table) is the figure for one more."""
    cpu: list[float] = []
    memory: list[str] = []
    for _ in range(runs):
        # Children's usage grows when one is reaped; this is the only child reaped here.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        memory = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True,
                                text=True, check=True, timeout=60).stdout.split()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    rss, pss, uss = (int(v) / 1024 for v in memory[:3])
    return {"runs": runs, "cpu_s": statistics.median(cpu), "cpu_s_all": cpu,
            "rss_mb": rss, "pss_mb": pss, "uss_mb": uss,
            "heavy_modules": memory[3].split(",") if len(memory) > 3 else []}


def received_rates(events: list[dict[str, Any]], t0: float, t1: float) -> tuple[
        float | None, float | None]:
    """(video fps, sound kbps) in, medians of the viewer's stats events in the window."""
    window = [e for e in events if e.get("event") == "stats" and t0 <= e["t"] <= t1]
    fps = [e["fps"] for e in window if e.get("fps") is not None]
    sound = [(e.get("audio") or {}).get("kbps") or 0.0 for e in window]
    return (statistics.median(fps) if fps else None,
            statistics.median(sound) if sound else None)


def profile(pid: int, seconds: float, top: int = 40) -> dict[str, Any]:
    """py-spy over ``seconds``: the functions with the most samples (own and total)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as out:
        path = Path(out.name)
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                    "--rate", "250", "--format", "raw", "--nonblocking",
                    "--output", str(path)], capture_output=True, check=False, timeout=seconds + 30)
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = stack.split(";")
        samples += count  # only samples where the process ran (no --idle)
        own[frames[-1]] += count
        for f in set(frames):
            total[f] += count
    path.unlink(missing_ok=True)
    return {
        "seconds": seconds, "rate": 250, "samples": samples,
        "busy_pct": 100 * samples / (250 * seconds),
        "own": [(f, n) for f, n in own.most_common(top)],
        "total": [(f, n) for f, n in total.most_common(top)],
    }


def cprofile_top(path: Path, wall: float, top: int = 45) -> list[tuple[str, float, float, float]]:
    """(function, own ms/s, cumulative ms/s, calls/s), by cumulative time."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), (_, calls, own, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else ""
        rows.append((f"{name} ({short}:{line})", 1000 * own / wall, 1000 * cum / wall,
                     calls / wall))
    rows.sort(key=lambda r: -r[2])
    return rows[:top]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true",
                        help="cProfile one leaf and one relay over the window")
    parser.add_argument("--py-spy", action="store_true",
                        help="sample one leaf viewer with py-spy over the window")
    parser.add_argument("--streamer-args", default="",
                        help="extra streamer arguments, one string (e.g. '--no-audio')")
    parser.add_argument("--tracker-args", default="",
                        help="extra tracker arguments, one string (e.g. '--no-tls')")
    parser.add_argument("--viewer-args", default="",
                        help="extra viewer arguments, one string (e.g. '--no-tls')")
    parser.add_argument("--import-runs", type=int, default=5,
                        help="fresh interpreters importing the headless peer (0: skip)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep-profiles", type=Path, default=None, metavar="DIR",
                        help="with --profile: keep each viewer's cProfile dump in DIR "
                             "(<name>.prof, for pstats' callers and callees)")
    args = parser.parse_args(argv)
    args.extra = shlex.split(args.viewer_args)
    args.streamer_args = shlex.split(args.streamer_args)
    args.tracker_args = shlex.split(args.tracker_args)
    sigterm_as_exit()
    result: dict[str, Any] = {"viewers": args.viewers, "seconds": args.seconds,
                              "viewer_args": args.extra,
                              "streamer_args": args.streamer_args, **machine()}
    if args.import_runs:
        result["import"] = import_cost(args.import_runs)
    with bench_session() as s:
        s.start_tracker(*args.tracker_args)
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "4", *args.streamer_args)
        module: dict[str, Any] = {"module": "bench.profiled_peer"} if args.profile else {}
        viewers = start_viewers(s, [f"v{i}" for i in range(args.viewers)],
                                "--resolution", str(LAYER), "--max-children", "3",
                                *args.extra, timeout=90.0, streamer=streamer,
                                **module)
        pids = {v.name: v.proc.pid for v in viewers}
        started_cpu = {n: cpu_seconds(p) for n, p in pids.items()}
        time.sleep(3.0)  # past the join: moves up, first stats
        st0 = {n: proc_status(p) for n, p in pids.items()}
        us0 = {n: user_sys(p) for n, p in pids.items()}
        meter = CpuMeter({**pids, "streamer": streamer.proc.pid}).start()
        t0 = time.time()
        spy: dict[str, Any] | None = None
        children = {v.name: (v.last("stats") or {}).get("children", 0) for v in viewers}
        leaves = [v for v in viewers if not children[v.name]]
        relays = [v for v in viewers if children[v.name]]
        profiled = [*leaves[:1], *relays[:1]] if args.profile else []
        for v in profiled:
            os.kill(v.proc.pid, signal.SIGUSR1)
        if args.py_spy and leaves:
            spy = profile(leaves[0].proc.pid, args.seconds)
            spy["viewer"] = leaves[0].name
        else:
            time.sleep(args.seconds)
        for v in profiled:
            os.kill(v.proc.pid, signal.SIGUSR2)
        t1 = time.time()
        cpu = meter.stop()
        wall = t1 - t0
        rows = []
        for v in viewers:
            p = pids[v.name]
            st1, us1 = proc_status(p), user_sys(p)
            a, b = us0[v.name], us1
            smaps = smaps_rollup(p)
            fps, sound = received_rates(v.events, t0, t1 + 1.5)
            stats = v.last("stats") or {}
            rows.append({
                "name": v.name,
                "children": stats.get("children", children[v.name]),
                "cpu_pct": cpu.get(v.name),
                "user_pct": None if a is None or b is None else 100 * (b[0] - a[0]) / wall,
                "sys_pct": None if a is None or b is None else 100 * (b[1] - a[1]) / wall,
                "wakeups_per_s": (st1.get("voluntary_ctxt_switches", 0)
                                  - st0[v.name].get("voluntary_ctxt_switches", 0)) / wall,
                "threads": st1.get("Threads"),
                "rss_mb": smaps.get("Rss", 0) / 1024,
                "pss_mb": smaps.get("Pss", 0) / 1024,
                "uss_mb": smaps.get("Uss", 0) / 1024,
                "anon_mb": smaps.get("Anonymous", 0) / 1024,
                "fps": fps,
                "sound_kbps": sound,
                "start_cpu_s": started_cpu.get(v.name),
            })
        result["streamer_cpu_pct"] = cpu.get("streamer")
        cprofiles = {}
        for v in profiled:
            path = profile_path(v.proc.pid)
            wait_for(path.exists, 5.0)
            cprofiles[v.name] = (children[v.name], cprofile_top(path, wall))
            if args.keep_profiles is not None:
                args.keep_profiles.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, args.keep_profiles / f"{v.name}.prof")
            path.unlink(missing_ok=True)
    result["rows"] = rows
    result["loadavg_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]

    def mean(key: str, sel: list[dict[str, Any]]) -> float | None:
        vals = [r[key] for r in sel if r[key] is not None]
        return statistics.mean(vals) if vals else None

    groups = {"all": rows, "leaves": [r for r in rows if not r["children"]],
              "relays": [r for r in rows if r["children"]]}
    keys = ["cpu_pct", "user_pct", "sys_pct", "wakeups_per_s", "rss_mb", "pss_mb", "uss_mb",
            "anon_mb", "fps", "sound_kbps", "threads", "start_cpu_s"]
    result["means"] = {g: {k: mean(k, sel) for k in keys} | {"n": len(sel)}
                       for g, sel in groups.items() if sel}
    text = table(["group", "n", "CPU %", "user %", "sys %", "wake-ups/s", "RSS MB", "PSS MB",
                  "USS MB", "anon MB", "fps in", "sound kbps in", "threads",
                  "start CPU s"],
                 [[g, m["n"], *[m[k] for k in keys]] for g, m in result["means"].items()],
                 ["s", "d", ".2f", ".2f", ".2f", ".0f", ".0f", ".0f", ".0f", ".0f", ".1f",
                  ".1f", ".0f", ".2f"])
    result["table"] = text
    print(f"viewer cost: {args.viewers} headless {SIZE} viewers at {FPS:g} fps, "
          f"{args.seconds:g} s window, args {args.extra}; streamer "
          f"{result['streamer_cpu_pct']:.1f} %; load {result['loadavg_at_start']} -> "
          f"{result['loadavg_at_end']}")
    print(text)
    if "import" in result:
        imp = result["import"]
        print(f"import peer.node.cli: {imp['cpu_s']:.2f} s CPU (median of {imp['runs']}), "
              f"RSS {imp['rss_mb']:.0f} MB, PSS {imp['pss_mb']:.0f} MB, USS {imp['uss_mb']:.0f} "
              f"MB; loads {', '.join(imp['heavy_modules']) or 'none of cv2, numpy, av'}")
    if spy is not None:
        result["profile"] = spy
        print(f"\npy-spy of {spy['viewer']}: {spy['samples']} samples on CPU "
              f"(~{spy['busy_pct']:.1f} % of a core)")
        print("own time:")
        for f, n in spy["own"]:
            print(f"  {100 * n / max(1, spy['samples']):5.1f} %  {f}")
        print("with callees:")
        for f, n in spy["total"]:
            print(f"  {100 * n / max(1, spy['samples']):5.1f} %  {f}")
    for name, (kids, top) in cprofiles.items():
        print(f"\ncProfile of {name} ({kids} children), ms of CPU per second of the window "
              "(own time; with callees):")
        for fn, own_ms, cum_ms, calls in top:
            print(f"  {own_ms:6.2f} {cum_ms:6.2f} {calls:7.0f}/s  {fn}")
    result["cprofile"] = {n: {"children": k, "top": t} for n, (k, t) in cprofiles.items()}
    save("viewer_cost", result, args.out)
    return result


if __name__ == "__main__":
    main()
