"""``make demo``: a whole local session, headless, with a live table.

A tracker, a streamer on the test pattern and eight viewers at mixed resolutions with
a fan-out of two (so the tree is at least three deep), all as separate processes on
loopback. Prints one row per peer every second for ~20 s, then a summary, and ends
every process it started.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.support.procs import Peer, session, wait_for

VIEWERS = [("ana", 720), ("ben", 480), ("cai", 360), ("dee", 720), ("eli", 360),
           ("fay", 480), ("gus", 1080), ("hal", 360)]


def _row(peer: Peer) -> str:
    stats = peer.last("stats") or {}
    def fmt(key: str, spec: str) -> str:
        value = stats.get(key)
        return format(value, spec) if isinstance(value, int | float) else "-"
    depth = stats.get("depth")
    res = f"{stats.get('width', 0)}x{stats.get('height', 0)}" if stats else "-"
    return (f"{peer.name:<8} {str(depth) if depth is not None else '-':>5} "
            f"{stats.get('parent') or '-'!s:<8} {res:>10} {fmt('fps', '.1f'):>6} "
            f"{fmt('latency_ms', '.1f'):>8} {fmt('latency_p95_ms', '.1f'):>8} "
            f"{fmt('loss_pct', '.2f'):>7} {fmt('kbps_out', '.0f'):>9} "
            f"{stats.get('children', '-')!s:>4}")


HEADER = (f"{'peer':<8} {'depth':>5} {'parent':<8} {'res':>10} {'fps':>6} {'p50 ms':>8} "
          f"{'p95 ms':>8} {'loss %':>7} {'kbit/s out':>9} {'kids':>4}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=len(VIEWERS))
    args = parser.parse_args(argv)
    with session() as s:
        port = s.start_tracker()
        print(f"tracker on 127.0.0.1:{port}")
        streamer = s.start_peer("streamer", "--test-pattern", "1280x720", "--fps", "25",
                                "--max-children", "2")
        if not wait_for(lambda: streamer.last("stream_started"), 15):
            print("streamer did not start:", streamer.proc.stderr.read() if
                  streamer.proc.poll() is not None and streamer.proc.stderr else "timeout")
            return 1
        viewers = []
        for name, res in VIEWERS[: args.viewers]:
            viewers.append(s.start_peer(name, "--watch", "--resolution", str(res),
                                        "--max-children", "2"))
            time.sleep(0.3)  # arrive one after another, as people do
        peers = [streamer, *viewers]
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            time.sleep(1.0)
            print(f"\n{HEADER}")
            for peer in peers:
                print(_row(peer))
            sys.stdout.flush()
        print("\nsummary")
        depths = [(v.last("stats") or {}).get("depth") for v in viewers]
        joined = sum(1 for v in viewers if v.last("joined"))
        lat = [x for v in viewers if (x := (v.last("stats") or {}).get("latency_ms"))]
        loss = [(v.last("stats") or {}).get("loss_pct", 0.0) for v in viewers]
        print(f"  viewers joined: {joined}/{len(viewers)}")
        print(f"  tree depth: {max((d for d in depths if d is not None), default=0)}")
        if lat:
            print(f"  latency p50 across viewers: {sorted(lat)[len(lat) // 2]:.1f} ms "
                  f"(max {max(lat):.1f} ms)")
        print(f"  loss: max {max(loss, default=0.0):.2f} %")
        st = streamer.last("stats") or {}
        print(f"  streamer: {st.get('children', 0)} children, "
              f"{st.get('kbps_out', 0):.0f} kbit/s out")
    print("all processes ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
