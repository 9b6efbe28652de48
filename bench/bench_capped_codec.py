"""Capped hosts with real content: H.264 vs MJPEG through one tree (network namespaces).

Every peer runs on a host of its own (tests/support/netns.py) with its upload capped
at ``--cap-kbit`` (8 Mbit/s: a good home uplink); the tracker's host is uncapped. The
streamer plays a camera-like 720p30 clip (bench/clips.py: panning texture, moving
objects, sensor noise; MJPEG q80 needs ~28 Mbit/s for it, H.264 at its cap ~2.2) to
``--viewers`` (12) viewers, all at 720p, default fan-out (upload-aware, at most 3
per viewer, 4 for the streamer). Each codec gets its own run on the same hosts; over a
steady window after every viewer has joined, per codec: how much of the stream every
viewer got (by sequence numbers), the worst viewer, stalled viewers, the depth of the
tree and the true latency (all namespaces share one clock).

Target (issue 11): the H.264 tree delivers >= 99 % to everyone; MJPEG does not.

The window starts 3 s after every viewer receives, or with ``--settle S`` once no
viewer has changed parent for S seconds (a relay learns what its uplink carries at
the first keyframe it cannot pass on, and sheds a child then; that is the tree
converging, not its steady state). Per codec a hop table says where each viewer's
losses came from.

Needs root and iproute2. Run: ``python -m bench.bench_capped_codec [--quick] [--settle S]``.
Writes bench/results/capped_codec.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.clips import write_clip_file
from bench.common import (
    bench_session,
    counter_at,
    machine,
    pct,
    probe_samples,
    require,
    save,
    sigterm_as_exit,
    stats_between,
    streaming,
    table,
    upload_kbps,
    viewer_summary,
    window_delta,
)
from tests.support.procs import Peer, wait_for

# The longest wait for a tree that keeps changing (then the window starts anyway).
SETTLE_MAX_S = 40.0


def ns(host: Any) -> list[str]:
    return ["ip", "netns", "exec", host.netns]


def hops(crowd: list[Peer], streamer: Peer, t0: float, t1: float) -> list[dict[str, Any]]:
    """Where each viewer's losses in the window came from, one row per viewer.

    A viewer's ``lost`` are sequence gaps; they start at its parent: frames the
    parent's queue toward it dropped (``parent_dropped`` counts the parent's drops
    toward all its children over the same ticks), or a chain broken there and
    skipped to the next keyframe. ``keyframes`` are those it received (every forced
    one is served to the whole layer), ``joins`` re-parentings inside the window and
    ``why`` the reasons it lost a parent (from 3 s before the window) and ``lost_at``
    the seconds into the window at which its stats ticks saw new gaps; ``timeline``
    its parent changes from 3 s before the window (seconds into the window: ``+``
    joined a parent, ``-`` lost one, with the reason).
    """
    peers = {p.name: p for p in [streamer, *crowd]}
    rows = []
    for v in crowd:
        d = window_delta(v, t0, t1)
        window = stats_between(v, t0, t1)
        if d is None or not window:
            rows.append({"viewer": v.name, "measured": False})
            continue
        parents = sorted({str(e.get("parent")) for e in window})
        parent = peers.get(window[-1].get("parent") or "")
        dropped = None
        if parent is not None:
            a, b = (counter_at(parent, "dropped", t) for t in (d["t0"], d["t1"]))
            dropped = None if a is None or b is None else round(b - a)
        lost_at = [(round(b["t"] - t0, 1), b["lost"] - a["lost"])
                   for a, b in itertools.pairwise(window) if b["lost"] > a["lost"]]
        rows.append({
            "viewer": v.name, "measured": True, "depth": window[-1].get("depth"),
            "parents": parents, "lost": d["lost"], "frames": d["frames"],
            "dropped_to_children": d["dropped"], "children": window[-1].get("children"),
            "parent_dropped": dropped,
            "keyframes": window[-1].get("keyframes", 0) - window[0].get("keyframes", 0),
            "joins": sum(1 for e in v.all("joined") if t0 <= e["t"] <= t1),
            "why": sorted({str(e.get("reason")) for e in v.all("parent_lost")
                           if t0 - 3 <= e["t"] <= t1}),
            "lost_at": lost_at,
            "timeline": timeline(v, t0, t1),
            # every tree decision, for the viewers that lost frames
            "trace": timeline(v, t0, t1, trace=True) if d["lost"] else [],
        })
    return rows


def timeline(v: Peer, t0: float, t1: float, trace: bool = False) -> list[str]:
    """A viewer's parent changes from 3 s before the window to its end (``trace``: and
    its tree decisions, from the probe's ``--trace-tree`` lines)."""
    marks = [(e["t"], f"{e['t'] - t0:+.1f} +{e.get('parent')}") for e in v.all("joined")
             if t0 - 3 <= e["t"] <= t1]
    marks += [(e["t"], f"{e['t'] - t0:+.1f} -{e.get('parent')} ({e.get('reason')})")
              for e in v.all("parent_lost") if t0 - 3 <= e["t"] <= t1]
    if trace:
        for e in v.all("trace"):
            if t0 - 3 <= e["t"] <= t1:
                extra = e.get("reason") or e.get("to") or (
                    "handed over" if e.get("handed_over") else "")
                marks.append((e["t"], f"{e['t'] - t0:+.2f} {e['what']} {e.get('peer')}"
                                      + (f" ({extra})" if extra else "")))
    return [text for _, text in sorted(marks)]


def last_join(crowd: list[Peer]) -> float:
    """When a viewer last joined a parent (its first join or a re-join)."""
    return max((e["t"] for v in crowd for e in v.all("joined")), default=0.0)


def run(codec: str, clip: str, viewers: int, cap_kbit: int, seconds: float,
        settle_s: float = 0.0) -> dict[str, Any]:
    from tests.support.netns import Lan, cap_upload

    with Lan(2 + viewers) as lan, bench_session() as s:
        tracker_host, streamer_host, *viewer_hosts = lan.hosts
        port = s.start_tracker(host=tracker_host.address, prefix=ns(tracker_host))
        tracker = f"{tracker_host.address}:{port}"
        for host in [streamer_host, *viewer_hosts]:
            cap_upload(host, cap_kbit)
        streamer = s.start_peer("streamer", "--stream", clip, "--loop", "--codec", codec,
                                tracker=tracker, listen=f"{streamer_host.address}:0",
                                prefix=ns(streamer_host))
        require(wait_for(lambda: streamer.last("stream_started"), 30),
                "streamer did not start", s, [streamer])
        crowd: list[Peer] = []
        for i, host in enumerate(viewer_hosts):
            crowd.append(s.start_peer(f"v{i}", "--watch", "--resolution", "720",
                                      "--trace-tree", tracker=tracker, listen=f"{host.address}:0",
                                      prefix=ns(host), module="bench.probe"))
            wait_for(lambda p=crowd[-1]: p.last("joined"), 15, 0.1)
        joined = wait_for(lambda: all(v.last("joined") for v in crowd), 30, 0.25)
        wait_for(lambda: all(streaming(v) for v in crowd), 20, 0.25)
        all_streaming = time.time()
        time.sleep(3.0)
        settled = None
        if settle_s > 0:
            # The tree is still finding what each uplink carries (a relay learns it at
            # the first keyframe it cannot pass on, and sheds a child): measure the
            # steady state, once no viewer has changed parent for settle_s.
            settled = wait_for(lambda: time.time() - last_join(crowd) >= settle_s,
                               SETTLE_MAX_S, 0.25)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        time.sleep(1.2)
        streamer_window = window_delta(streamer, t0, t1) or {}
        stream_stats = stats_between(streamer, t0, t1)
        keyframes_made = (stream_stats[-1].get("keyframes", 0) - stream_stats[0].get("keyframes", 0)
                          if len(stream_stats) >= 2 else None)
        lat = []
        for v in crowd:
            samples = [(r[1] - r[2]) * 1000 for r in probe_samples(v, t0, t1)]
            if samples:
                lat.append((pct(samples, 50), pct(samples, 95)))
        window = [e for v in crowd for e in stats_between(v, t0, t1)]
        kbps_in = sorted(e["kbps_in"] for e in window if e.get("kbps_in") is not None)
        return {
            "codec": codec, "viewers": viewers, "cap_kbit": cap_kbit, "all_joined": joined,
            "viewer_layers": sorted({e.get("layer") for e in window if e.get("layer")}),
            "viewer_kbps_in_median": kbps_in[len(kbps_in) // 2] if kbps_in else None,
            "streamer_children": (stats_between(streamer, t0, t1) or [{}])[-1].get("children"),
            "streamer_kbps_out": upload_kbps(streamer, t0, t1),
            "true_p50_ms_median": pct([a for a, _ in lat], 50) if lat else None,
            "true_p95_ms_max": max((b for _, b in lat), default=None),
            "streamer_dropped": streamer_window.get("dropped"),
            "keyframes_made": keyframes_made,
            "hops": hops(crowd, streamer, t0, t1),
            "settle_s": settle_s, "settled": settled,
            "window_after_all_streaming_s": round(t0 - all_streaming, 1),
            "joins_before_window": sum(1 for v in crowd for e in v.all("joined")
                                       if e["t"] < t0) - len(crowd),
            **viewer_summary(crowd, streamer, t0, t1),
        }


def hop_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["viewer", "depth", "parent", "children", "frames", "lost", "parent dropped",
         "dropped to kids", "keyframes", "joins", "lost at s (frames)", "parent changes"],
        [[r["viewer"], r.get("depth"), "/".join(r.get("parents", [])), r.get("children"),
          r.get("frames"), r.get("lost"), r.get("parent_dropped"),
          r.get("dropped_to_children"), r.get("keyframes"), r.get("joins"),
          " ".join(f"{t}({n})" for t, n in r.get("lost_at", [])),
          "; ".join(r.get("timeline", []))] for r in rows],
        ["", "", "", "", "", "", "", "", "", "", "", ""])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--viewers", type=int, default=None)
    parser.add_argument("--cap-kbit", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--codecs", nargs="+", default=["h264", "mjpeg"],
                        choices=("h264", "mjpeg"))
    parser.add_argument("--settle", type=float, default=0.0, metavar="S",
                        help="start the window only once no viewer changed parent for S "
                             f"seconds (at most {SETTLE_MAX_S:g} s); 0: 3 s after all "
                             "receive")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat the whole comparison (fresh hosts each time) and "
                             "print one line per run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    viewers = args.viewers or (6 if args.quick else 12)
    seconds = args.seconds or (5.0 if args.quick else 10.0)
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, **machine()}
    from tests.support.netns import netns_unavailable

    reason = netns_unavailable()
    if reason is not None:
        print(f"capped codecs: skipped: {reason}")
        result["skipped"] = reason
        save("capped_codec", result, args.out)
        return result
    series: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="treecast-capped-") as tmp:
        clip = write_clip_file(os.path.join(tmp, "clip.avi"), 1280, 720, 10.0)
        for n in range(args.runs):
            load = os.getloadavg()[0]
            started = time.strftime("%H:%M", time.gmtime())
            rows = []
            for codec in args.codecs:
                rows.append(run(codec, clip, viewers, args.cap_kbit, seconds, args.settle))
                r = rows[-1]
                print(f"run {n + 1}, {codec}: delivered {r['delivered']}, worst "
                      f"{r['delivered_min']}, stalled {len(r['stalled'])}, keyframes made "
                      f"{r['keyframes_made']}, streamer dropped {r['streamer_dropped']}, "
                      f"window from {r['window_after_all_streaming_s']} s after all "
                      f"received (settled {r['settled']}, re-joins before "
                      f"{r['joins_before_window']})", flush=True)
                print(hop_table(r["hops"]), flush=True)
                for h in r["hops"]:
                    if h.get("trace"):
                        print(f"{h['viewer']} lost {h['lost']}: " + "; ".join(h["trace"]),
                              flush=True)
            series.append({"run": n + 1, "started": started, "load": round(load, 1),
                           "rows": rows})
            print(f"\nrun {n + 1} ({started} UTC, load {load:.1f}), capped hosts, 720p30 "
                  f"camera-like clip, every upload {args.cap_kbit} kbit/s, {viewers} "
                  f"viewers, {seconds:g} s window"
                  + (f" once no parent changed for {args.settle:g} s" if args.settle else ""))
            print(codec_table(rows), flush=True)
    text = codec_table(series[-1]["rows"])
    result.update({"rows": series[-1]["rows"], "runs": series, "cap_kbit": args.cap_kbit,
                   "table": text})
    if args.runs > 1:
        result["series_table"] = series_table(series)
        print("\n" + result["series_table"])
    save("capped_codec", result, args.out)
    return result


def _percent(x: float | None) -> float | None:
    return None if x is None else 100 * x


def codec_table(rows: list[dict[str, Any]]) -> str:
    return table(
        ["codec", "viewers", "all joined", "window at s", "streamer kids", "streamer kbit/s",
         "viewer kbit/s in", "layers", "depth", "delivered %", "worst %", "stalled",
         "p50 ms", "p95 ms max"],
        [[r["codec"], r["viewers"], r["all_joined"], r["window_after_all_streaming_s"],
          r["streamer_children"],
          r["streamer_kbps_out"], r["viewer_kbps_in_median"],
          "/".join(map(str, r["viewer_layers"])), r["depth_max"],
          _percent(r["delivered"]), _percent(r["delivered_min"]), len(r["stalled"]),
          r["true_p50_ms_median"], r["true_p95_ms_max"]] for r in rows],
        ["", "d", "", ".1f", "", ".0f", ".0f", "", "d", ".2f", ".2f", "d", ".0f", ".0f"])


def series_table(series: list[dict[str, Any]]) -> str:
    """One line per run: each codec's delivered / worst / stalled side by side, and
    how many parent changes the H.264 window saw."""
    codecs = [r["codec"] for r in series[0]["rows"]]
    columns = ["run", "UTC", "load (1 min)"]
    for codec in codecs:
        columns += [f"{codec} delivered %", f"{codec} worst %", f"{codec} stalled"]
    columns += ["h264 re-joins in window"]
    lines = []
    for run_ in series:
        line: list[Any] = [run_["run"], run_["started"], run_["load"]]
        by_codec = {r["codec"]: r for r in run_["rows"]}
        for codec in codecs:
            r = by_codec[codec]
            line += [_percent(r["delivered"]), _percent(r["delivered_min"]), len(r["stalled"])]
        h264 = by_codec.get("h264")
        line.append(sum(h.get("joins", 0) for h in h264["hops"]) if h264 else None)
        lines.append(line)
    formats = ["d", "", ".1f"] + [".2f", ".2f", "d"] * len(codecs) + [""]
    text = table(columns, lines, formats)
    worst = [r["delivered_min"] for run_ in series for r in run_["rows"]
             if r["codec"] == "h264" and r["delivered_min"] is not None]
    if worst:
        text += (f"\nh264: worst viewer >= 99 % in {sum(w >= 0.99 for w in worst)} of "
                 f"{len(worst)} runs; mean of the worst {100 * sum(worst) / len(worst):.2f} %")
    return text

if __name__ == "__main__":
    main()
