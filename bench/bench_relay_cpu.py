"""Relay CPU: one relay forwarding 1080p30 to 4 children, in % of one core.

A streamer (1920x1080 test pattern, 30 fps, ``--max-children 1``) feeds one relay
(``--resolution 1080 --max-children 4``), which feeds 4 leaves (1080, headless, no
children). Everyone wants 1080, so the relay forwards the bytes as received (no
decode). The relay's CPU (utime + stime from /proc/<pid>/stat) over a steady window,
with its throughput, frame rate and drops; the streamer's and the leaves' CPU for
comparison.

``--profile PATH`` runs the relay under cProfile (``bench.probe --cprofile``) and prints
where its time goes (profiling slows it down: not for the table).

Run: ``python -m bench.bench_relay_cpu [--quick] [--profile PATH]``.
Writes bench/results/relay_cpu.json.
"""

from __future__ import annotations

import argparse
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    bench_session,
    machine,
    median_of,
    require,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    stats_between,
    streaming,
    table,
    window_delta,
)
from tests.support.procs import wait_for

SIZE, FPS, LAYER, CHILDREN = "1920x1080", 30.0, 1080, 4
WARMUP_S = 3.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--profile", type=Path, default=None, help="cProfile the relay here")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    seconds = args.seconds or (3.0 if args.quick else 12.0)
    with bench_session() as s:
        s.start_tracker()
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "1")
        extra: list[str] = []
        module = "peer.node.cli"
        if args.profile:
            extra, module = ["--cprofile", str(args.profile.resolve())], "bench.probe"
        relay = s.start_peer("relay", "--watch", "--resolution", str(LAYER), "--max-children",
                             str(CHILDREN), *extra, module=module)
        require(wait_for(lambda: streaming(relay), 20), "the relay gets no frames", s, [relay])
        leaves = start_viewers(s, [f"leaf{i}" for i in range(CHILDREN)], "--resolution",
                               str(LAYER), "--max-children", "0", streamer=streamer)
        require(all((leaf.last("joined") or {}).get("parent") == "relay" for leaf in leaves),
                "a leaf did not attach to the relay")
        time.sleep(1.5 if args.quick else WARMUP_S)
        pids = {"relay": relay.proc.pid, "streamer": streamer.proc.pid,
                **{leaf.name: leaf.proc.pid for leaf in leaves}}
        meter = CpuMeter(pids).start()
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        cpu = meter.stop()
        time.sleep(1.1)
        window = stats_between(relay, t0, t1)
        delta = window_delta(relay, t0, t1) or {}
        leaf_loss = [median_of(stats_between(leaf, t0, t1), "loss_pct") for leaf in leaves]
        result: dict[str, Any] = {
            "quick": args.quick, "seconds": seconds, "source": SIZE, "fps": FPS,
            "children": CHILDREN, **machine(),
            "relay_cpu_pct": cpu.get("relay"),
            "streamer_cpu_pct": cpu.get("streamer"),
            "leaf_cpu_pct_mean": statistics.mean(cpu[leaf.name] for leaf in leaves
                                                 if leaf.name in cpu),
            "relay_fps": median_of(window, "fps"),
            "streamer_fps": median_of(stats_between(streamer, t0, t1), "fps"),
            "relay_kbps_in": median_of(window, "kbps_in"),
            "relay_kbps_out": median_of(window, "kbps_out"),
            "relay_dropped": delta.get("dropped"),
            "relay_lost": delta.get("lost"),
            "leaf_loss_pct_max": max((x for x in leaf_loss if x is not None), default=None),
            "profiled": bool(args.profile),
        }
    frame_kb = (result["relay_kbps_in"] or 0) / 8 / (result["relay_fps"] or 1)
    result["frame_kb"] = frame_kb
    text = table(
        ["relay CPU % of a core", "fps", "kbit/s in", "kbit/s out", "KB/frame", "dropped",
         "leaf loss % max", "streamer CPU %", "streamer fps", "leaf CPU %"],
        [[result["relay_cpu_pct"], result["relay_fps"], result["relay_kbps_in"],
          result["relay_kbps_out"], frame_kb, result["relay_dropped"],
          result["leaf_loss_pct_max"], result["streamer_cpu_pct"], result["streamer_fps"],
          result["leaf_cpu_pct_mean"]]],
        [".1f", ".1f", ".0f", ".0f", ".0f", "d", ".2f", ".1f", ".1f", ".1f"])
    result["table"] = text
    print(f"\nrelay CPU: one relay forwarding {SIZE} at {FPS:g} fps to {CHILDREN} children "
          f"(loopback, {seconds:g} s window{', PROFILED' if args.profile else ''})")
    print(text)
    if args.profile:
        stats = pstats.Stats(str(args.profile))
        stats.sort_stats("tottime").print_stats(15)
    else:
        save("relay_cpu", result, args.out)
    return result


if __name__ == "__main__":
    main()
