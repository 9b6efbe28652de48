"""Control overhead: bytes that are not video, per peer, in steady state.

From the stats totals every peer reports (all its peer links, framing included):
``overhead = (bytes_in + bytes_out - video_bytes_in - video_bytes_out) / video bytes``,
over a steady window (deltas between two stats events). Control is pings/pongs (4 per
second per link, both ways: liveness and clock), layer demand, path updates, chat (none
here), and the 12-byte header plus metadata of every VideoFrame counts as video.

The peer's tracker connection is not in those totals: it is measured on the tracker's
side with ``ss -ti`` (kernel byte counters of every connection to the tracker's port)
and reported per peer next to it.

Two streams: 1280x720 at 30 fps and 640x360 at 10 fps (a low bitrate: the fixed
control traffic weighs more). A streamer and 8 viewers, fan-out 2, loopback (``--quick``:
4 viewers, both streams side by side in two rooms).

Run: ``python -m bench.bench_overhead [--quick]``. Writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    bench_session,
    machine,
    run_cmd,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    table,
    window_delta,
)
from tests.support.procs import Peer

CONFIGS = [("1280x720", 30.0, 720), ("640x360", 10.0, 360)]
VIEWERS, FANOUT = 8, 2
WARMUP_S = 2.0


def tracker_bytes(port: int) -> dict[str, tuple[int, int]]:
    """Per connection to the tracker (keyed by the peer's address): (sent, received),
    as the tracker's side of the socket counts them."""
    out = run_cmd(["ss", "-tinH", "state", "established", f"( sport = :{port} )"])
    result: dict[str, tuple[int, int]] = {}
    for block in re.split(r"\n(?=\S)", out.strip()):
        parts = block.split()
        if len(parts) < 4:
            continue
        peer = parts[3]
        sent = re.search(r"bytes_sent:(\d+)", block)
        received = re.search(r"bytes_received:(\d+)", block)
        result[peer] = (int(sent.group(1)) if sent else 0,
                        int(received.group(1)) if received else 0)
    return result


def run(configs: list[tuple[str, float, int]], seconds: float, viewers_n: int = VIEWERS
        ) -> list[dict[str, Any]]:
    """One session; each stream in a room of its own (several side by side in --quick)."""
    with bench_session() as s:
        port = s.start_tracker()
        crowds = []
        for size, fps, layer in configs:
            room = f"r{layer}"
            streamer = start_streamer(s, size, fps, "--max-children", str(FANOUT),
                                      "--room", room, name=f"{room}-streamer")
            viewers = start_viewers(s, [f"{room}-v{i}" for i in range(viewers_n)],
                                    "--room", room, "--resolution", str(layer),
                                    "--max-children", str(FANOUT), streamer=streamer)
            crowds.append((size, fps, layer, [streamer, *viewers]))
        time.sleep(WARMUP_S)
        trk0, t0 = tracker_bytes(port), time.time()
        time.sleep(seconds)
        trk1, t1 = tracker_bytes(port), time.time()
        time.sleep(1.1)
        conns = [(trk1[k][0] - trk0[k][0], trk1[k][1] - trk0[k][1]) for k in trk1 if k in trk0]
        tracker_bps = [(a + b) * 8 / (t1 - t0) for a, b in conns]
        tracker_per_peer = statistics.median(tracker_bps) if tracker_bps else None
        return [summarize(size, fps, layer, peers, t0, t1, tracker_per_peer, len(conns))
                for size, fps, layer, peers in crowds]


def summarize(size: str, fps: float, layer: int, crowd: list[Peer], t0: float, t1: float,
              tracker_per_peer: float | None, connections: int) -> dict[str, Any]:
    peers = []
    for peer in crowd:
        d = window_delta(peer, t0, t1 + 1.0)
        if d is None:
            continue
        total = d["bytes_in"] + d["bytes_out"]
        video = d["video_bytes_in"] + d["video_bytes_out"]
        stats = peer.last("stats") or {}
        peers.append({
            "peer": peer.name,
            "depth": stats.get("depth"),
            "children": stats.get("children"),
            "video_kbps": video * 8 / 1000 / d["seconds"],
            "control_bps": (total - video) * 8 / d["seconds"],
            "overhead_pct": 100.0 * (total - video) / video if video else None,
        })
    overheads = [p["overhead_pct"] for p in peers if p["overhead_pct"] is not None]
    video = [p["video_kbps"] for p in peers]
    return {
        "source": size, "fps": fps, "layer": layer, "viewers": len(crowd) - 1,
        "fanout": FANOUT, "seconds": t1 - t0, "peers": peers,
        "overhead_pct_median": statistics.median(overheads) if overheads else None,
        "overhead_pct_max": max(overheads, default=None),
        "control_bps_median": statistics.median(p["control_bps"] for p in peers),
        "tracker_bps_per_peer": tracker_per_peer,
        "tracker_connections": connections,
        "overhead_with_tracker_pct_max": max(
            (100.0 * (p["control_bps"] + (tracker_per_peer or 0)) / (p["video_kbps"] * 1000)
             for p in peers if p["video_kbps"]), default=None),
        "video_kbps_median": statistics.median(video) if video else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    viewers_n = 4 if args.quick else VIEWERS
    if args.quick:  # side by side, to fit the quick run's time
        runs = run(CONFIGS, seconds, viewers_n)
    else:
        runs = [r for config in CONFIGS for r in run([config], seconds, viewers_n)]
    text = table(
        ["stream", "fps", "peers", "video kbit/s (median peer)", "control bit/s (median)",
         "overhead % median", "overhead % max", "tracker bit/s per peer",
         "max % incl. tracker"],
        [[r["source"], r["fps"], len(r["peers"]), r["video_kbps_median"],
          r["control_bps_median"], r["overhead_pct_median"], r["overhead_pct_max"],
          r["tracker_bps_per_peer"], r["overhead_with_tracker_pct_max"]] for r in runs],
        ["", ".0f", "d", ".0f", ".0f", ".3f", ".3f", ".0f", ".3f"])
    print(f"\ncontrol overhead (stats totals, {seconds:g} s steady window; streamer + "
          f"{viewers_n} viewers, fan-out {FANOUT}, loopback)")
    print(text)
    per_peer = table(
        ["stream", "peer", "depth", "children", "video kbit/s", "control bit/s", "overhead %"],
        [[r["source"], p["peer"], p["depth"], p["children"], p["video_kbps"],
          p["control_bps"], p["overhead_pct"]] for r in runs for p in r["peers"]],
        ["", "", "d", "d", ".0f", ".0f", ".3f"])
    print(per_peer)
    result = {"quick": args.quick, **machine(), "runs": runs, "table": text,
              "per_peer_table": per_peer}
    save("overhead", result, args.out)
    return result


if __name__ == "__main__":
    main()
