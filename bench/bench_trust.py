"""What trust costs: TLS + signature checks vs plaintext, on one relayed 720p30 stream.

A chain streamer (1280x720 test pattern, 30 fps) -> relay (720) -> leaf (720), once
with TLS on every link (the default) and once with ``--no-tls`` everywhere. For each:
the relay's CPU in % of one core over a steady window (utime + stime from /proc), the
join time of the relay and of the leaf (``joined`` minus ``ready`` in their events:
tracker registration, dial, TLS handshake, proof, Hello, Accept), the latency p50 at
the relay (depth 1) and at the leaf (depth 2) and so the added latency of one hop.
The difference between the two runs is the cost of the trust layer.

Run: ``python -m bench.bench_trust [--quick] [--seconds S]``.
Writes bench/results/trust.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
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
    stats_between,
    streaming,
    table,
)
from tests.support.procs import wait_for

SIZE, FPS, LAYER = "1280x720", 30.0, 720
WARMUP_S = 3.0


def _join_ms(peer: Any) -> float | None:
    ready, joined = peer.last("ready"), peer.last("joined")
    if not ready or not joined:
        return None
    return (joined["t"] - ready["t"]) * 1000


def run(tls: bool, seconds: float, quick: bool) -> dict[str, Any]:
    plain = [] if tls else ["--no-tls"]
    with bench_session() as s:
        s.start_tracker(*plain)
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "1", *plain)
        relay = s.start_peer("relay", "--watch", "--resolution", str(LAYER),
                             "--max-children", "1", *plain)
        require(wait_for(lambda: streaming(relay), 30), "the relay gets no frames", s, [relay])
        leaf = s.start_peer("leaf", "--watch", "--resolution", str(LAYER),
                            "--max-children", "0", *plain)
        require(wait_for(lambda: streaming(leaf), 30), "the leaf gets no frames", s, [leaf])
        require((leaf.last("joined") or {}).get("parent") == "relay",
                "the leaf did not attach to the relay")
        time.sleep(1.5 if quick else WARMUP_S)
        meter = CpuMeter({"relay": relay.proc.pid, "streamer": streamer.proc.pid,
                          "leaf": leaf.proc.pid}).start()
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        cpu = meter.stop()
        time.sleep(1.1)
        relay_window = stats_between(relay, t0, t1)
        leaf_window = stats_between(leaf, t0, t1)
        relay_latency = median_of(relay_window, "latency_ms")
        leaf_latency = median_of(leaf_window, "latency_ms")
        return {
            "tls": tls,
            "relay_cpu_pct": cpu.get("relay"),
            "streamer_cpu_pct": cpu.get("streamer"),
            "leaf_cpu_pct": cpu.get("leaf"),
            "relay_fps": median_of(relay_window, "fps"),
            "relay_kbps_in": median_of(relay_window, "kbps_in"),
            "relay_join_ms": _join_ms(relay),
            "leaf_join_ms": _join_ms(leaf),
            "relay_latency_ms": relay_latency,
            "leaf_latency_ms": leaf_latency,
            "hop_ms": (None if relay_latency is None or leaf_latency is None
                       else leaf_latency - relay_latency),
            "leaf_loss_pct": median_of(leaf_window, "loss_pct"),
        }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    # Keys and tracker pins of these runs stay out of the user's config dir.
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="treecast-bench-trust-")
    runs = [run(tls, seconds, args.quick) for tls in (True, False)]
    rows = [[("TLS + checks" if r["tls"] else "plaintext"), r["relay_cpu_pct"],
             r["relay_fps"], r["relay_kbps_in"], r["relay_join_ms"], r["leaf_join_ms"],
             r["relay_latency_ms"], r["leaf_latency_ms"], r["hop_ms"], r["leaf_loss_pct"]]
            for r in runs]
    secure, plain = runs
    diff = {key: (None if secure[key] is None or plain[key] is None
                  else secure[key] - plain[key])
            for key in ("relay_cpu_pct", "relay_join_ms", "leaf_join_ms", "hop_ms")}
    rows.append(["cost (TLS - plain)", diff["relay_cpu_pct"], None, None,
                 diff["relay_join_ms"], diff["leaf_join_ms"], None, None, diff["hop_ms"],
                 None])
    text = table(["links", "relay CPU %", "fps", "kbit/s in", "relay join ms",
                  "leaf join ms", "latency d1 ms", "latency d2 ms", "hop ms", "leaf loss %"],
                 rows, ["s", ".1f", ".1f", ".0f", ".0f", ".0f", ".1f", ".1f", ".2f", ".2f"])
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, **machine(), "runs": runs, "cost": diff,
                              "table": text}
    print(f"\ntrust cost: streamer -> relay -> leaf, {SIZE} at {FPS:g} fps "
          f"(loopback, {seconds:g} s window per run)")
    print(text)
    save("trust", result, args.out)
    return result


if __name__ == "__main__":
    main()
