"""Join to first decoded picture, and the picture back after a parent is killed (H.264).

With an inter-frame codec a new viewer cannot show anything until a keyframe reaches
it, and keyframes are rare (one every 10 s as a backstop): the first picture comes
from a keyframe made on request (KeyframeRequest, throttled per layer at whoever
produces the layer). This measures how long that takes, from the viewer's ``joined``
(its parent accepted it) to its ``first_frame`` (the first picture it can decode),
on loopback with a 1280x720 test pattern at 30 fps:

* late joins: three viewers keep the tree busy (so some joiners land under a relay and
  their request has to travel up); then ``--joins`` viewers join one after the other,
  each while the stream runs mid-GOP, and leave once they have their picture. Each
  joiner decodes (``--probe-decode``), so its ``first_frame`` is a decoded picture.
* parent kill: a chain streamer -> relay -> viewer (fan-out 1 each); the relay is
  killed (SIGKILL) and the viewer re-joins the streamer; "picture back" is from the
  kill to the viewer's next ``first_frame``. Repeated ``--kills`` times with a fresh
  relay and viewer.

Targets (issue 11): first picture <= 500 ms p95 over 20 late joins; after a parent is
killed the picture is back within 1 s.

Run: ``python -m bench.bench_join [--quick] [--codec h264|mjpeg]``.
Writes bench/results/join.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from bench.common import (
    bench_session,
    machine,
    pct,
    require,
    save,
    sigterm_as_exit,
    start_streamer,
    streaming,
    table,
)
from tests.support.procs import Peer, wait_for

SIZE, FPS = "1280x720", 30.0


def first_frame_after(peer: Peer, t: float) -> dict[str, Any] | None:
    return next((e for e in peer.all("first_frame") if e["t"] >= t), None)


def late_joins(joins: int, codec: str) -> list[dict[str, Any]]:
    rows = []
    with bench_session() as s:
        s.start_tracker()
        start_streamer(s, SIZE, FPS, "--max-children", "2", "--codec", codec)
        background = [s.start_peer(f"bg{i}", "--watch", "--max-children", "2")
                      for i in range(3)]
        require(wait_for(lambda: all(streaming(p) for p in background), 30),
                "background viewers do not stream", s, background)
        for i in range(joins):
            peer = s.start_peer(f"join{i}", "--watch", "--probe-decode", "--max-children", "0",
                                module="bench.probe")
            ok = wait_for(lambda p=peer: p.last("first_frame"), 20, 0.05)
            require(ok, f"join{i} got no picture", s, [peer])
            joined, first = peer.last("joined") or {}, peer.last("first_frame") or {}
            rows.append({"join": i, "depth": joined.get("depth"),
                         "wait_ms": first.get("wait_ms"), "layer": first.get("layer")})
            print(f"join {i}: depth {joined.get('depth')}, first picture after "
                  f"{first.get('wait_ms')} ms", flush=True)
            s.kill(peer.name)
            time.sleep(0.3)  # the streamer's next keyframe is then not already pending
    return rows


def parent_kills(kills: int, codec: str) -> list[dict[str, Any]]:
    rows = []
    with bench_session() as s:
        s.start_tracker()
        start_streamer(s, SIZE, FPS, "--max-children", "1", "--codec", codec)
        for i in range(kills):
            relay = s.start_peer(f"relay{i}", "--watch", "--max-children", "1")
            require(wait_for(lambda r=relay: streaming(r), 30), f"relay{i} does not stream",
                    s, [relay])
            viewer = s.start_peer(f"viewer{i}", "--watch", "--probe-decode",
                                  "--max-children", "0", module="bench.probe")
            require(wait_for(lambda v=viewer, r=relay: (v.last("joined") or {}).get(
                "parent") == r.name and v.last("first_frame"), 30, 0.05),
                f"viewer{i} not under relay{i}", s, [viewer])
            time.sleep(1.0)
            killed_at = time.time()
            s.kill(relay.name)
            ok = wait_for(lambda v=viewer, k=killed_at: first_frame_after(v, k), 20, 0.05)
            require(ok, f"no picture after killing relay{i}", s, [viewer])
            first = first_frame_after(viewer, killed_at) or {}
            lost = next((e for e in viewer.all("parent_lost") if e["t"] >= killed_at), {})
            rows.append({"kill": i, "back_ms": (first["t"] - killed_at) * 1000,
                         "noticed_ms": (lost.get("t", killed_at) - killed_at) * 1000,
                         "wait_after_join_ms": first.get("wait_ms")})
            print(f"kill {i}: picture back after {rows[-1]['back_ms']:.0f} ms", flush=True)
            s.kill(viewer.name)  # frees the streamer's one slot for the next relay
            time.sleep(0.5)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--joins", type=int, default=None)
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--codec", default="h264", choices=("h264", "mjpeg"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    joins = args.joins or (5 if args.quick else 20)
    kills = args.kills or (2 if args.quick else 5)
    join_rows = late_joins(joins, args.codec)
    kill_rows = parent_kills(kills, args.codec)
    waits = [r["wait_ms"] for r in join_rows if r["wait_ms"] is not None]
    backs = [r["back_ms"] for r in kill_rows]
    result: dict[str, Any] = {
        "quick": args.quick, "codec": args.codec, "source": SIZE, "fps": FPS,
        "joins": join_rows, "kills": kill_rows,
        "join_p50_ms": pct(waits, 50), "join_p95_ms": pct(waits, 95),
        "join_max_ms": max(waits, default=None),
        "back_p50_ms": pct(backs, 50), "back_max_ms": max(backs, default=None),
        **machine(),
    }
    text = table(["measure", "n", "p50 ms", "p95 ms", "max ms", "target"], [
        ["join -> first picture", len(waits), result["join_p50_ms"], result["join_p95_ms"],
         result["join_max_ms"], "p95 <= 500"],
        ["parent killed -> picture back", len(backs), result["back_p50_ms"],
         pct(backs, 95), result["back_max_ms"], "<= 1000"],
    ], ["", "d", ".0f", ".0f", ".0f", ""])
    result["table"] = text
    print(f"\njoin and repair, {args.codec}, {SIZE} at {FPS:g} fps, loopback")
    print(text)
    save("join", result, args.out)
    return result


if __name__ == "__main__":
    main()
