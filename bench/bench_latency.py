"""Latency per depth along a chain, and glass to glass at depth 3 (loopback, 720p30).

One streamer (1280x720 test pattern, 30 fps) and a chain of five peers, every peer with
``--max-children 1``, so peer *d* sits at depth *d*. The chain peers are ``bench.probe``
(the real node plus a line of per-frame arrival times), so the latency of every frame at
every depth is known, and the time a frame spends on each hop is the difference of its
arrival at depth *d* and *d - 1* (same frame, same clock). Two runs:

* ``untouched``: everyone watches 720: every relay forwards the bytes as received.
* ``transcode``: depths 1-2 watch 720, depths 3-5 watch 480: the depth-2 relay decodes,
  resizes and re-encodes to 480 for its child (demand keeps the links above at 720),
  and depths 3-4 forward 480 untouched.

Latency is "capture to receive" (capture = the pacer releasing the frame, before the
streamer encodes it). All processes share one clock, so it is measured exactly;
the table also gives what the node itself reports (its NTP-style offsets along the
path) as a check.

Glass to glass: a chain of three at 720 whose leaf decodes every frame, as a display
does (``--probe-decode``: the node's display path with a callback at the decoded
picture). The node has no event for decode completion; see docs/PERFORMANCE.md.

``--quick`` runs one chain, 720-720-720-480, whose depth-3 peer also decodes (glass to
glass) and transcodes for the depth-4 leaf: both share its two worker threads, so its
figures are a smoke test, not the reference.

Run: ``python -m bench.bench_latency [--quick]``. Writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchSession,
    bench_session,
    machine,
    median_of,
    pct,
    probe_samples,
    require,
    save,
    sigterm_as_exit,
    start_streamer,
    stats_between,
    streaming,
    table,
)
from tests.support.procs import Peer, wait_for

SIZE, FPS = "1280x720", 30.0
CLOCK_WARMUP_S = 4.0  # the link clock filter keeps the best of 16 pings at 4 per second
CHAINS = {
    "untouched": [720, 720, 720, 720, 720],
    "transcode": [720, 720, 480, 480, 480],
}
# --quick: one chain for everything: depth 3 also decodes (glass to glass) and feeds a
# 480 leaf (a transcoding hop).
QUICK_CHAINS = {"quick": [720, 720, 720, 480]}


def build_chain(s: BenchSession, layers: list[int], decode_depth: int | None = None
                ) -> list[Peer]:
    start_streamer(s, SIZE, FPS, "--max-children", "1")
    chain: list[Peer] = []
    for depth, layer in enumerate(layers, start=1):
        extra = ["--probe-decode"] if depth == decode_depth else []
        peer = s.start_peer(f"d{depth}", "--watch", "--resolution", str(layer),
                            "--max-children", "1", *extra, module="bench.probe")
        require(wait_for(lambda p=peer: p.last("joined"), 20), f"d{depth} did not join",
                s, [peer])
        joined = peer.last("joined") or {}
        require(joined.get("depth") == depth,
                f"d{depth} joined at depth {joined.get('depth')}, not {depth}")
        chain.append(peer)
    require(wait_for(lambda: streaming(chain[-1]), 15), "the leaf gets no frames", s, chain)
    return chain


def measure_chain(chain: list[Peer], t0: float, t1: float) -> list[dict[str, Any]]:
    rows = []
    previous: dict[int, float] | None = None
    for depth, peer in enumerate(chain, start=1):
        samples = probe_samples(peer, t0, t1)
        arrival = {row[0]: row[1] for row in samples}
        true_ms = [(row[1] - row[2]) * 1000 for row in samples]
        node_ms = [(row[1] + row[3] - row[2]) * 1000 for row in samples if row[3] is not None]
        hop_ms = ([(arrival[seq] - previous[seq]) * 1000 for seq in arrival if seq in previous]
                  if previous is not None else [])
        window = stats_between(peer, t0, t1)
        layer_in = [e.get("layer_in") for e in window if e.get("layer_in")]
        rows.append({
            "depth": depth,
            "layer": (peer.last("stats") or {}).get("layer"),
            "layer_in": statistics.mode(layer_in) if layer_in else None,
            "frames": len(samples),
            "p50_ms": pct(true_ms, 50),
            "p95_ms": pct(true_ms, 95),
            "node_p50_ms": pct(node_ms, 50),
            "node_p95_ms": pct(node_ms, 95),
            "stats_p50_ms": median_of(window, "latency_ms"),
            "hop_p50_ms": pct(hop_ms, 50),
            "hop_p95_ms": pct(hop_ms, 95),
            "loss_pct": max((e["loss_pct"] for e in window), default=None),
        })
        previous = arrival
    return rows


def run_chain(layers: list[int], seconds: float, decode_depth: int | None = None,
              warmup: float = CLOCK_WARMUP_S
              ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Per-depth rows, and glass-to-glass figures at ``decode_depth`` if given."""
    with bench_session() as s:
        s.start_tracker()
        chain = build_chain(s, layers, decode_depth)
        time.sleep(warmup)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        time.sleep(1.2)  # the probes print once a second
        rows = measure_chain(chain, t0, t1)
        g2g = glass_to_glass(chain[decode_depth - 1], decode_depth, layers[decode_depth - 1],
                             t0, t1) if decode_depth else None
        return rows, g2g


def glass_to_glass(leaf: Peer, depth: int, layer: int, t0: float, t1: float
                   ) -> dict[str, Any]:
    recv = probe_samples(leaf, t0, t1)
    dec = probe_samples(leaf, t0, t1, "dec")
    arrival = {row[0]: row[1] for row in recv}
    recv_ms = [(r[1] - r[2]) * 1000 for r in recv]
    dec_ms = [(r[1] - r[2]) * 1000 for r in dec]
    decode_ms = [(r[1] - arrival[r[0]]) * 1000 for r in dec if r[0] in arrival]
    return {
        "depth": depth,
        "layer": layer,
        "frames_received": len(recv),
        "frames_decoded": len(dec),
        "receive_p50_ms": pct(recv_ms, 50),
        "receive_p95_ms": pct(recv_ms, 95),
        "decoded_p50_ms": pct(dec_ms, 50),
        "decoded_p95_ms": pct(dec_ms, 95),
        "decode_step_p50_ms": pct(decode_ms, 50),
        "decode_step_p95_ms": pct(decode_ms, 95),
    }


def print_chain(name: str, rows: list[dict[str, Any]]) -> str:
    text = table(
        ["depth", "layer", "in", "frames", "p50 ms", "p95 ms", "node p50", "node p95",
         "hop p50", "hop p95", "loss %"],
        [[r["depth"], r["layer"], r["layer_in"], r["frames"], r["p50_ms"], r["p95_ms"],
          r["node_p50_ms"], r["node_p95_ms"], r["hop_p50_ms"], r["hop_p95_ms"], r["loss_pct"]]
         for r in rows],
        ["d", "d", "d", "d", ".2f", ".2f", ".2f", ".2f", ".2f", ".2f", ".2f"])
    print(f"\nlatency per depth, {name} ({SIZE} test pattern, {FPS:g} fps, loopback)")
    print(text)
    return text


def added_per_hop(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over relay hops (depth >= 2) of the per-hop p50 / p95, split into hops that
    forward untouched (same layer in as the hop above) and hops that transcode down."""
    out: dict[str, Any] = {}
    for kind in ("untouched", "transcode"):
        hops = [r for prev, r in itertools.pairwise(rows)
                if r["hop_p50_ms"] is not None
                and (r["layer_in"] == prev["layer_in"]) == (kind == "untouched")]
        out[kind] = {
            "hops": [r["depth"] for r in hops],
            "p50_ms": statistics.median(r["hop_p50_ms"] for r in hops) if hops else None,
            "p95_ms": statistics.median(r["hop_p95_ms"] for r in hops) if hops else None,
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short windows")
    parser.add_argument("--seconds", type=float, default=None, help="measuring window")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    seconds = args.seconds or (4.0 if args.quick else 12.0)
    info = machine()
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, **info, "chains": {}, "tables": {}}
    g2g: dict[str, Any] | None = None
    chains = QUICK_CHAINS if args.quick else CHAINS
    for name, layers in chains.items():
        decode_depth = 3 if args.quick else None
        rows, g2g = run_chain(layers, seconds, decode_depth,
                              2.0 if args.quick else CLOCK_WARMUP_S)
        result["chains"][name] = {"layers": layers, "rows": rows,
                                  "added_per_hop": added_per_hop(rows)}
        result["tables"][name] = print_chain(name, rows)
        for kind, hop in result["chains"][name]["added_per_hop"].items():
            if hop["hops"]:
                print(f"added per {kind} hop (median over depths {hop['hops']}): "
                      f"p50 {hop['p50_ms']:.2f} ms, p95 {hop['p95_ms']:.2f} ms")
    if g2g is None:
        _, g2g = run_chain([720, 720, 720], seconds, decode_depth=3)
    assert g2g is not None
    result["glass_to_glass"] = g2g
    text = table(["depth", "received", "decoded", "recv p50", "recv p95", "decoded p50",
                  "decoded p95", "decode p50", "decode p95"],
                 [[g2g["depth"], g2g["frames_received"], g2g["frames_decoded"],
                   g2g["receive_p50_ms"], g2g["receive_p95_ms"], g2g["decoded_p50_ms"],
                   g2g["decoded_p95_ms"], g2g["decode_step_p50_ms"],
                   g2g["decode_step_p95_ms"]]],
                 ["d", "d", "d", ".2f", ".2f", ".2f", ".2f", ".2f", ".2f"])
    result["tables"]["glass_to_glass"] = text
    print(f"\nglass to glass (capture to decoded picture), depth 3, 720p{FPS:g}, loopback")
    print(text)
    save("latency", result, args.out)
    return result


if __name__ == "__main__":
    main()
