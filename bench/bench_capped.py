"""Capped hosts: tree vs star when every host's upload is limited (network namespaces).

Every peer runs on a host of its own (tests/support/netns.py: network namespaces on a private
bridge); the tracker has an uncapped host, and every other host, the streamer's
included, has its upload capped with tc tbf at ``CAP_FACTOR`` (3) times the stream's
bitrate. The stream is a 640x360 test pattern at 10 fps; its bitrate is measured
first (JPEG size of the pattern at that size, plus framing).

* tree: fan-out 2 everywhere: no host ever uploads more than 2 streams (< 3).
* star: the streamer takes every viewer, viewers forward nothing: the streamer's host
  must upload N streams through a pipe of 3.

Viewers are added one host at a time up to each N (2, 3, 4, 8; quick: 2, 4, with tree
and star side by side on hosts of their own), and after each step, over a steady window:
delivered fraction (by sequence numbers, see ``bench.common.delivery``), the share of
the produced frames received within the window (a viewer falling behind receives
every frame, late), stalled viewers, and the true latency of every frame
(viewers are ``bench.probe`` peers; all namespaces share one clock): median over
viewers of their p50 and p95, and the worst p95. The star breaks where N x stream
exceeds the streamer's cap.

Needs root and iproute2 (``ip netns``, ``tc``); without them it writes a result that
says why it was skipped. Run: ``python -m bench.bench_capped [--quick]``.
Writes bench/results/capped.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    bench_session,
    machine,
    median_of,
    pct,
    probe_samples,
    require,
    save,
    sigterm_as_exit,
    stats_between,
    stream_alive,
    streaming,
    table,
    upload_kbps,
    viewer_summary,
)
from protocol import VideoFrame, encode
from tests.support.procs import Peer, wait_for

SIZE, FPS, LAYER = "640x360", 10.0, 360
CAP_FACTOR = 3.0
TREE_FANOUT = 2
WARMUP_S = 2.0


def stream_kbit() -> float:
    """The pattern stream's bitrate on the wire: mean framed JPEG size x fps."""
    from peer.node.codec import encode_jpeg
    from peer.node.media import PatternFrameSource

    width, height = (int(x) for x in SIZE.split("x"))
    source = PatternFrameSource(width, height, FPS)
    sizes = []
    for seq in range(20):
        jpeg = encode_jpeg(source.read())
        sizes.append(len(encode(VideoFrame(1, seq, time.time(), width, height, LAYER, jpeg))))
    return statistics.mean(sizes) * 8 * FPS / 1000


def ns(host: Any) -> list[str]:
    return ["ip", "netns", "exec", host.netns]


def ramp(topologies: list[str], counts: list[int], seconds: float, cap_kbit: int,
         warmup: float = WARMUP_S) -> list[dict[str, Any]]:
    """One Lan and session; each topology has a room, a streamer host and viewer hosts of
    its own (several side by side with ``--quick``: they share the CPU, not the links)."""
    from tests.support.netns import Lan, cap_upload

    per = 1 + max(counts)
    rows = []
    with Lan(1 + per * len(topologies)) as lan, bench_session() as s:
        tracker_host = lan.hosts[0]
        port = s.start_tracker(host=tracker_host.address, prefix=ns(tracker_host))
        tracker = f"{tracker_host.address}:{port}"
        streamers: dict[str, Peer] = {}
        hosts: dict[str, list[Any]] = {}
        for i, topology in enumerate(topologies):
            streamer_host, *hosts[topology] = lan.hosts[1 + i * per: 1 + (i + 1) * per]
            for host in [streamer_host, *hosts[topology]]:
                cap_upload(host, cap_kbit)
            root_fanout = TREE_FANOUT if topology == "tree" else max(counts)
            streamers[topology] = s.start_peer(
                f"{topology}-streamer", "--test-pattern", SIZE, "--fps", f"{FPS:g}",
                "--max-children", str(root_fanout), "--room", topology, tracker=tracker,
                listen=f"{streamer_host.address}:0", prefix=ns(streamer_host))
        for streamer in streamers.values():
            require(wait_for(lambda st=streamer: st.last("stream_started"), 20),
                    "streamer did not start", s, [streamer])
        viewers: dict[str, list[Peer]] = {t: [] for t in topologies}
        windows = []
        for n in counts:
            for topology in topologies:
                them = viewers[topology]
                while len(them) < n:
                    host = hosts[topology][len(them)]
                    them.append(s.start_peer(
                        f"{topology}-v{len(them)}", "--watch", "--room", topology,
                        "--resolution", str(LAYER), "--max-children",
                        str(TREE_FANOUT if topology == "tree" else 0), tracker=tracker,
                        listen=f"{host.address}:0", prefix=ns(host), module="bench.probe"))
            everyone = [v for them in viewers.values() for v in them]
            ok = wait_for(lambda everyone=everyone: all(streaming(v) for v in everyone),
                            30, 0.25)
            for streamer in streamers.values():
                stream_alive(streamer)
            require(ok, f"N={n}: not every viewer receives frames", s,
                    [v for v in everyone if not streaming(v)])
            time.sleep(warmup)
            t0 = time.time()
            time.sleep(seconds)
            windows.append((n, t0, time.time(), {t: list(v) for t, v in viewers.items()}))
        time.sleep(1.2)  # the streamers' next stats tick, the probes' last lines
        for n, t0, t1, crowd in windows:
            for topology in topologies:
                streamer, them = streamers[topology], crowd[topology]
                p50s, p95s = [], []
                for v in them:
                    lat = [(r[1] - r[2]) * 1000 for r in probe_samples(v, t0, t1)]
                    if lat:
                        p50s.append(pct(lat, 50))
                        p95s.append(pct(lat, 95))
                window = stats_between(streamer, t0, t1)
                rows.append({
                    "topology": topology, "n": n, "cap_kbit": cap_kbit,
                    "side_by_side": len(topologies) > 1,
                    "streamer_children": median_of(window, "children"),
                    "streamer_kbps_out": upload_kbps(streamer, t0, t1),
                    "streamer_dropped": (window[-1]["dropped"] - window[0]["dropped"]
                                         if len(window) > 1 else None),
                    "true_p50_ms_median": statistics.median(p50s) if p50s else None,
                    "true_p95_ms_median": statistics.median(p95s) if p95s else None,
                    "true_p95_ms_max": max(p95s, default=None),
                    **viewer_summary(them, streamer, t0, t1),
                })
                r = rows[-1]
                print(f"{topology} N={n}: delivered {r['delivered']}, p95 "
                      f"{r['true_p95_ms_median']} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, nargs="+", default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    counts = sorted(args.n or ([2, 4] if args.quick else [2, 3, 4, 8]))
    seconds = args.seconds or (3.0 if args.quick else 5.0)
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, **machine()}
    from tests.support.netns import netns_unavailable

    reason = netns_unavailable()
    if reason is not None:
        print(f"capped hosts: skipped: {reason}")
        result["skipped"] = reason
        save("capped", result, args.out)
        return result
    kbit = stream_kbit()
    cap = round(CAP_FACTOR * kbit)
    result.update({"stream_kbit": kbit, "cap_kbit": cap, "cap_factor": CAP_FACTOR,
                   "rows": []})
    print(f"stream {kbit:.0f} kbit/s; every host but the tracker's capped at {cap} kbit/s")
    if args.quick:  # side by side, to fit the quick run's time
        result["rows"] += ramp(["tree", "star"], counts, seconds, cap, 1.0)
    else:
        for topology in ("tree", "star"):
            result["rows"] += ramp([topology], counts, seconds, cap)
    result["rows"].sort(key=lambda r: (r["n"], r["topology"] != "tree"))

    def percent(x: float | None) -> float | None:
        return None if x is None else 100 * x

    text = table(
        ["topology", "N", "streamer kids", "depth", "streamer kbit/s", "streamer drops",
         "delivered %", "worst %", "recv/produced %", "stalled", "p50 ms", "p95 ms med",
         "p95 ms max"],
        [[r["topology"], r["n"], r["streamer_children"], r["depth_max"],
          r["streamer_kbps_out"], r["streamer_dropped"], percent(r["delivered"]),
          percent(r["delivered_min"]), percent(r["received_per_produced"]),
          len(r["stalled"]), r["true_p50_ms_median"], r["true_p95_ms_median"],
          r["true_p95_ms_max"]] for r in result["rows"]],
        ["", "d", ".0f", "d", ".0f", "d", ".2f", ".2f", ".1f", "d", ".0f", ".0f", ".0f"])
    result["table"] = text
    print(f"\ncapped hosts: upload {cap} kbit/s = {CAP_FACTOR:g} x the {kbit:.0f} kbit/s stream "
          f"({SIZE}, {FPS:g} fps); one peer per network namespace; {seconds:g} s windows")
    print(text)
    save("capped", result, args.out)
    return result


if __name__ == "__main__":
    main()
