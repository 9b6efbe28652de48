"""Streaming from home through NATs, in the NAT lab (tests/support/natlab.py).

The issue-15 scene: a streamer behind a NAT without UPnP; 9 viewers, each behind its
own NAT router (3 with UPnP and ``--upnp``, 3 port-preserving without, 3 symmetric);
the tracker and one ``--relay`` peer on public addresses. The viewers start together
once the relay receives. Reported per viewer: how its link was made, ready -> joined
-> first frame, frames and losses over a measuring window; per NAT type the join to
first frame; and whether NATed peers relay (the tree is not all leaves).

How a link was made is read from both ends' ``reachability``: a child and a parent
that nobody can dial met by a TCP hole punch the tracker coordinated (nothing else can
link them); a parent nobody can dial was reached by reversal (it dialled its child);
otherwise the child dialled a parent that is ``direct`` (public) or ``mapped`` (UPnP).
Routers drop unasked-for connection attempts silently, as home routers do.

Run (root, needs ip netns, iptables, miniupnpd): ``python -m bench.bench_nat
[--window 20] [--size 640x360] [--fps 15] [--relay-children 4]``. Writes bench/results/nat.json.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import uuid
from typing import Any

from bench.common import machine, save, table
from tests.support import netns
from tests.support.natlab import Kind, NatLab, natlab_unavailable

VIEWER_KINDS = (Kind.UPNP,) * 3 + (Kind.CONE,) * 3 + (Kind.SYMMETRIC,) * 3
TIMEOUT_S = 90.0
# Reachability words of a peer others can dial (reachability.py).
_DIALABLE = ("direct", "mapped")


def _first(events: netns.JsonLines, kind: str) -> dict[str, Any] | None:
    return next((e for e in events.lines if e.get("event") == kind), None)


def _first_frames(events: netns.JsonLines) -> dict[str, Any] | None:
    """A relay shows nothing (no first_frame): its first stats with frames instead."""
    return next((e for e in events.lines if e.get("event") == "stats" and e.get("frames")),
                None)


def _stats_at(events: netns.JsonLines, t: float) -> dict[str, Any] | None:
    return next((e for e in reversed(events.lines)
                 if e.get("event") == "stats" and e["t"] <= t), None)


def run(window_s: float, size: str, fps: float, relay_children: int) -> dict[str, Any]:
    kinds = (Kind.PUBLIC, Kind.PUBLIC, Kind.CONE, *VIEWER_KINDS)
    with NatLab(kinds, drop_unsolicited=True) as lab:
        tracker_host, relay_host, streamer_host, *viewer_hosts = lab.hosts
        _, _, port = netns.start_tracker(tracker_host, "--no-mdns")
        common = ("--room", f"nat-{uuid.uuid4().hex[:8]}", "--tracker",
                  f"{tracker_host.address}:{port}")
        peers: dict[str, tuple[Any, netns.JsonLines, Kind]] = {}
        s_proc, s_events = netns.start_peer(streamer_host, "--name", "S", *common,
                                            "--test-pattern", size, "--fps", str(fps))
        peers["S"] = (streamer_host, s_events, Kind.CONE)
        s_events.next(lambda e: e.get("event") == "ready", timeout=TIMEOUT_S)
        r_proc, r_events = netns.start_peer(relay_host, "--name", "R", *common, "--relay",
                                            "--max-children", str(relay_children))
        peers["R"] = (relay_host, r_events, Kind.PUBLIC)
        r_events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) > 0,
                      timeout=TIMEOUT_S)
        starts: dict[str, float] = {}
        for i, (host, kind) in enumerate(zip(viewer_hosts, VIEWER_KINDS, strict=True)):
            name = f"{kind.value}{i % 3 + 1}"
            extra = ("--upnp",) if kind is Kind.UPNP else ()
            starts[name] = time.time()
            _, events = netns.start_peer(host, "--name", name, *common, "--watch", *extra)
            peers[name] = (host, events, kind)
        viewers = [n for n in peers if n not in ("S", "R")]
        # Read every peer while waiting (a peer whose event pipe fills up stalls).
        deadline = time.time() + TIMEOUT_S
        waiting = set(viewers)
        while waiting and time.time() < deadline:
            for _, events, _ in peers.values():
                events.read_for(0.05)
            waiting = {n for n in waiting if _first(peers[n][1], "first_frame") is None}
        for name in sorted(waiting):
            print(f"{name}: no picture within {TIMEOUT_S:g} s")
            for who, proc in (("S", s_proc), ("R", r_proc)):
                print(f"{who} (exit code {proc.poll()}): {netns.stderr_tail(proc, 3000)}")
        # Let the joins settle, then measure a window.
        settle_until = time.time() + 3.0
        while time.time() < settle_until:
            for _, events, _ in peers.values():
                events.read_for(0.05)
        t0 = time.time()
        while time.time() < t0 + window_s + 1.5:
            for _, events, _ in peers.values():
                events.read_for(0.05)
        t1 = t0 + window_s
        reach = {n: (_stats_at(ev, t1) or {}).get("reachability") for n, (_, ev, _) in
                 peers.items()}
        rows: list[dict[str, Any]] = []
        for name in ["R", *viewers]:
            _, events, kind = peers[name]
            ready = _first(events, "ready")
            joined = _first(events, "joined") or {"t": math.nan, "parent": None}
            first = (_first(events, "first_frame") or _first_frames(events)
                     or {"t": math.nan})
            a, b = _stats_at(events, t0), _stats_at(events, t1)
            parents = {e["parent"] for e in events.lines if e.get("event") == "joined"}
            parent = (b or {}).get("parent") or joined["parent"]
            frames = (b["frames"] - a["frames"]) if a and b else 0
            lost = (b["lost"] - a["lost"]) if a and b else 0
            parent_reach = reach.get(parent)
            if parent_reach not in _DIALABLE and reach[name] not in _DIALABLE:
                how = "hole punch (both behind NAT)"
            elif parent_reach not in _DIALABLE:
                how = "reversal (parent dialled)"
            else:
                how = f"dialled ({parent_reach} parent)"
            rows.append({
                "peer": name, "nat": kind.value, "reachability": reach[name],
                "parent": parent, "link": how, "parents_seen": len(parents),
                "children": (b or {}).get("children", 0),
                "ready_to_joined_ms": round((joined["t"] - ready["t"]) * 1000, 1),
                "ready_to_first_frame_ms": round((first["t"] - ready["t"]) * 1000, 1),
                "start_to_first_frame_s": (round(first["t"] - starts[name], 2)
                                           if name in starts else None),
                "frames": frames, "lost": lost,
                "loss_pct": round(100 * lost / max(1, frames + lost), 3),
            })
    by_kind: dict[str, list[float]] = {}
    for row in rows:
        if row["peer"] != "R" and not math.isnan(row["ready_to_first_frame_ms"]):
            by_kind.setdefault(row["nat"], []).append(row["ready_to_first_frame_ms"])
    return {
        "machine": machine(), "size": size, "fps": fps, "window_s": window_s,
        "relay_children": relay_children,
        "peers": rows,
        "join_to_first_frame_ms_by_nat": {k: {"median": statistics.median(v), "max": max(v)}
                                          for k, v in by_kind.items()},
        "nated_relays": sum(1 for r in rows if r["peer"] != "R" and r["children"] > 0),
        "links_by_kind": {how: sum(1 for r in rows if r["link"] == how)
                          for how in sorted({r["link"] for r in rows})},
        "max_loss_pct": max(r["loss_pct"] for r in rows),
        "viewers_without_picture": sum(1 for r in rows
                                       if math.isnan(r["ready_to_first_frame_ms"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--relay-children", type=int, default=4,
                        help="the relay peer's fan-out (small, so NATed peers relay too)")
    args = parser.parse_args()
    why = natlab_unavailable((Kind.PUBLIC, Kind.CONE, Kind.SYMMETRIC, Kind.UPNP))
    if why is not None:
        raise SystemExit(f"cannot run: {why}")
    result = run(args.window, args.size, args.fps, args.relay_children)
    cols = ["peer", "nat", "reachability", "parent", "link", "children",
            "ready_to_joined_ms", "ready_to_first_frame_ms", "start_to_first_frame_s",
            "frames", "lost", "loss_pct"]
    specs = ["s", "s", "s", "s", "s", "d", ".0f", ".0f", ".2f", "d", "d", ".2f"]
    print(table(cols, [[r[c] for c in cols] for r in result["peers"]], specs))
    print(table(["nat", "median join->first frame ms", "max ms"],
                [[k, v["median"], v["max"]]
                 for k, v in result["join_to_first_frame_ms_by_nat"].items()],
                ["s", ".0f", ".0f"]))
    print("links: " + ", ".join(f"{k}: {v}" for k, v in result["links_by_kind"].items()))
    print(f"viewers without a picture: {result['viewers_without_picture']}; "
          f"NATed viewers relaying: {result['nated_relays']}; "
          f"max loss {result['max_loss_pct']:.2f} %")
    save("nat", result)


if __name__ == "__main__":
    main()
