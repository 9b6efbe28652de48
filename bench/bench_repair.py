"""Repair: how long video stops below a relay that dies or leaves, and what is lost.

A streamer (640x360 test pattern, 30 fps: frame-level resolution of 33 ms) and 12
viewers with a fan-out of 2, so the tree is 3-4 deep and most viewers relay. The
viewers are ``bench.probe`` peers (the real node plus per-frame arrival times). Then,
one at a time, a relay with children is ended, and a fresh viewer joins in its place:

* ``kill``: ``kill -9``. Its sockets close with it, so the children see EOF at once.
* ``leave``: SIGTERM. A graceful leave: the relay's Bye tells its children where to go
  (its parent first).
* ``freeze``: SIGSTOP (a hung or unplugged peer: nothing is closed; the children have to
  notice the silence, ~1 s without a heartbeat), then kill -9 once repaired.

For each event, at every descendant of the victim (children and deeper):

* ``outage``: from the kill to the frame that ends the longest pause in its arrivals
  after the kill (the first frame over the repaired path), from the probe's arrivals;
  ``stall``: that pause as the viewer sees it (one frame period when the repair beats
  the next frame); ``lost``: frames skipped across it;
* at the children, which re-attach: the ``resumed`` event's own figures: ``gap_ms``
  (from noticing the loss to the first frame) and ``lost`` (frames skipped by seq),
  and kill-to-``resumed``. Grandchildren keep their parent and emit no ``resumed``;
  their outage is the same stall seen one hop further down.

Run: ``python -m bench.bench_repair [--quick] [--kills N] [--leaves N] [--freezes N]``.
Writes bench/results/repair.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BenchSession,
    bench_session,
    machine,
    pct,
    probe_samples,
    save,
    sigterm_as_exit,
    start_streamer,
    start_viewers,
    stream_alive,
    streaming,
    table,
)
from tests.support.procs import Peer, wait_for

SIZE, FPS, LAYER = "640x360", 30.0, 360
VIEWERS, FANOUT = 12, 2
RESUME_TIMEOUT_S = 6.0
IN_FLIGHT_S = 0.05  # frames the victim had sent may still arrive this long after it ends


def parents(viewers: list[Peer]) -> dict[str, str]:
    """Viewer name -> parent name, from each live viewer's latest ``joined``."""
    out = {}
    for v in viewers:
        joined = v.last("joined")
        if joined is not None and v.proc.poll() is None:
            out[v.name] = joined["parent"]
    return out


def subtree(root: str, parent_of: dict[str, str]) -> list[tuple[str, int]]:
    """Descendants of ``root`` with their distance below it (1 = child)."""
    children: dict[str, list[str]] = {}
    for child, parent in parent_of.items():
        children.setdefault(parent, []).append(child)
    out, frontier, level = [], [root], 1
    while frontier:
        nxt = []
        for name in frontier:
            for child in children.get(name, []):
                out.append((child, level))
                nxt.append(child)
        frontier, level = nxt, level + 1
    return out


def outage(peer: Peer, t_kill: float, t_end: float) -> dict[str, Any] | None:
    """The pause in a probe peer's arrivals that the kill caused.

    The last frame over the old path arrives before ``t_kill + IN_FLIGHT_S`` (the
    victim stops sending at once); the pause is the longest gap between consecutive
    arrivals that starts by then and ends after ``t_kill``. ``outage_ms``: kill to the
    frame that ends it (the first over the repaired path); ``stall_ms``: the pause as the
    viewer sees it (one frame period, 33 ms, when the repair beat the next frame);
    ``lost``: frames skipped across it. ``t_end`` bounds the search (the next event).
    """
    rows = sorted(probe_samples(peer, t_kill - 1.0, t_end), key=lambda r: r[1])
    best = None
    for prev, row in itertools.pairwise(rows):
        if row[1] <= t_kill or prev[1] > t_kill + IN_FLIGHT_S or row[0] <= prev[0]:
            continue
        if best is None or row[1] - prev[1] > best[1][1] - best[0][1]:
            best = (prev, row)
    if best is None:
        return None
    prev, row = best
    return {"outage_ms": max(0.0, row[1] - t_kill) * 1000,
            "stall_ms": (row[1] - prev[1]) * 1000, "lost": row[0] - prev[0] - 1}


def run(s: BenchSession, counts: dict[str, int], rng: random.Random,
        viewers_n: int = VIEWERS) -> list[dict[str, Any]]:
    streamer = start_streamer(s, SIZE, FPS, "--max-children", str(FANOUT))
    serial = 0

    def new_viewers(n: int) -> list[Peer]:
        nonlocal serial
        names = [f"v{serial + i}" for i in range(n)]
        serial += n
        return start_viewers(s, names, "--resolution", str(LAYER), "--max-children",
                             str(FANOUT), module="bench.probe", streamer=streamer)

    viewers = new_viewers(viewers_n)
    plan = [kind for kind, n in counts.items() for _ in range(n)]
    rng.shuffle(plan)
    events: list[dict[str, Any]] = []
    for kind in plan:
        stream_alive(streamer)
        live = [v for v in viewers if v.proc.poll() is None]
        wait_for(lambda live=live: all(streaming(v) for v in live), 10.0)
        time.sleep(0.5)  # stats settle; the next probe flush is on its way anyway
        parent_of = parents(live)
        relays = [v for v in live if any(p == v.name for p in parent_of.values())
                  and streaming(v)]
        if not relays:
            raise RuntimeError("no relay with children to end")
        victim = rng.choice(relays)
        below = subtree(victim.name, parent_of)
        by_name = {v.name: v for v in live}
        t_kill = time.time()
        os.kill(victim.proc.pid, {"kill": signal.SIGKILL, "leave": signal.SIGTERM,
                                  "freeze": signal.SIGSTOP}[kind])
        children = [by_name[name] for name, level in below if level == 1]

        def resumed(peer: Peer, t: float = t_kill) -> dict[str, Any] | None:
            return next((e for e in peer.all("resumed") if e["t"] >= t), None)

        wait_for(lambda children=children: all(resumed(c) for c in children),
                   RESUME_TIMEOUT_S)
        if kind == "freeze":
            os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(5)
        events.append({"kind": kind, "victim": victim.name, "t_kill": t_kill,
                       "below": below,
                       "resumed": {c.name: resumed(c) for c in children}})
        viewers += new_viewers(1)
    time.sleep(1.5)  # the probes' last lines
    rows = []
    by_name = {v.name: v for v in viewers}
    ends = [ev["t_kill"] for ev in events[1:]] + [time.time()]
    for ev, t_end in zip(events, ends, strict=True):
        for name, level in ev["below"]:
            got = outage(by_name[name], ev["t_kill"], min(t_end, ev["t_kill"] + 10.0))
            res = ev["resumed"].get(name)
            rows.append({
                "kind": ev["kind"], "victim": ev["victim"], "peer": name, "level": level,
                "outage_ms": got["outage_ms"] if got else None,
                "stall_ms": got["stall_ms"] if got else None,
                "lost": got["lost"] if got else None,
                "resumed_after_ms": (res["t"] - ev["t_kill"]) * 1000 if res else None,
                "gap_ms": res["gap_ms"] if res else None,
                "resumed_lost": res["lost"] if res else None,
            })
    return rows


def summarize(rows: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    mine = [r for r in rows if r["kind"] == kind]
    children = [r for r in mine if r["level"] == 1]

    def dist(values: list[Any]) -> dict[str, float | None]:
        vals = [v for v in values if v is not None]
        return {"p50": pct(vals, 50), "p95": pct(vals, 95),
                "max": max(vals, default=None), "n": len(vals)}

    return {
        "kind": kind,
        "events": len({r["victim"] for r in mine}),
        "descendants": len(mine),
        "children": len(children),
        "unresolved": sum(1 for r in mine if r["outage_ms"] is None),
        "outage_ms": dist([r["outage_ms"] for r in mine]),
        "outage_children_ms": dist([r["outage_ms"] for r in children]),
        "outage_deeper_ms": dist([r["outage_ms"] for r in mine if r["level"] > 1]),
        "stall_ms": dist([r["stall_ms"] for r in mine]),
        "lost": dist([r["lost"] for r in mine]),
        "resumed_after_ms": dist([r["resumed_after_ms"] for r in children]),
        "gap_ms": dist([r["gap_ms"] for r in children]),
        "resumed_lost": dist([r["resumed_lost"] for r in children]),
        "no_resumed_event": sum(1 for r in children if r["gap_ms"] is None),
    }


KEYS = ("p50", "p95", "max")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--leaves", type=int, default=None)
    parser.add_argument("--freezes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    counts = {
        "kill": args.kills if args.kills is not None else (2 if args.quick else 20),
        "leave": args.leaves if args.leaves is not None else (1 if args.quick else 6),
        "freeze": args.freezes if args.freezes is not None else (1 if args.quick else 3),
    }
    with bench_session() as s:
        s.start_tracker()
        rows = run(s, counts, random.Random(args.seed), 8 if args.quick else VIEWERS)
    summaries = [summarize(rows, kind) for kind in counts if counts[kind]]
    text = table(
        ["event", "n", "peers hit", "outage p50", "p95", "max", "stall p50", "p95", "max",
         "lost p50", "p95", "max", "kill→resumed p50", "p95", "max", "gap_ms p50", "p95",
         "max"],
        [[x["kind"], x["events"], x["descendants"], *(x["outage_ms"][k] for k in KEYS),
          *(x["stall_ms"][k] for k in KEYS), *(x["lost"][k] for k in KEYS),
          *(x["resumed_after_ms"][k] for k in KEYS), *(x["gap_ms"][k] for k in KEYS)]
         for x in summaries],
        ["", "d", "d", *[".0f"] * 15])
    print(f"\nrepair: {VIEWERS} viewers, fan-out {FANOUT}, {SIZE} at {FPS:g} fps, loopback "
          "(ms; outage/stall/lost at every descendant; resumed figures at the children)")
    print(text)
    for x in summaries:
        if x["unresolved"] or x["no_resumed_event"]:
            print(f"  {x['kind']}: {x['unresolved']} descendants without a measured outage, "
                  f"{x['no_resumed_event']} children without a resumed event")
    result = {"quick": args.quick, "source": SIZE, "fps": FPS, "viewers": VIEWERS,
              "fanout": FANOUT, **machine(), "summaries": summaries, "rows": rows,
              "table": text}
    save("repair", result, args.out)
    return result


if __name__ == "__main__":
    main()
