"""One tracker process under a room of thousands of real connections with heartbeats.

    python -m bench.bench_tracker_load [--peers 1000,5000,10000] [--workers 4]
        [--heartbeat 1.0] [--window 30] [--quick]

For each room size N: a fresh ``treecast-tracker`` process; ``--workers`` load
processes open N TCP connections to it (127.0.0.1) between them, register every one
in one room (ramping at ``--rate`` registrations per second), answer the tracker's
connect-back checks (each worker listens on one port that all its peers register
with), and send every peer's Heartbeat once per ``--heartbeat`` seconds at spread
phases, with tree positions (a fan-out-4 tree; ``--churn`` of the peers per second
change their free slots, so the room keeps changing). Peer 0 holds the streamer lock.

Measured over ``--window`` seconds once every peer is registered: the tracker
process's CPU (utime + stime from /proc, as % of one core), its RSS, the messages
and bytes it received and sent per second (counted by the load processes, which only
parse frame headers), and the round trip of a Ping on one registered connection
(p50/p99: how responsive the tracker stays). Prints a table, writes
bench/results/tracker_load.json.

The load processes share the machine with the tracker; on a 2-core machine they take
most of the other core. What is measured is the tracker's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import CLK_TCK, PAGE_KB, machine, save, table
from protocol import limits
from protocol.framing import encode
from protocol.messages import Heartbeat, MessageType, Ping, Register, StreamClaim

ROOM = "load"
_HEADER = struct.Struct("!2sBBII")
FANOUT = 4


# --- the load: one worker process ---------------------------------------------------


def _position(index: int, variant: int) -> Heartbeat:
    """Peer ``index`` in a complete fan-out-4 tree; ``variant`` flips its free slots."""
    depth, first, width = 0, 0, 1
    while index >= first + width:
        first += width
        width *= FANOUT
        depth += 1
    parent = None if index == 0 else f"p{(index - 1) // FANOUT}"
    return Heartbeat(depth=depth, free_slots=(index + variant) % 3, parent_id=parent,
                     layer=None if index == 0 else 720)


class _Conn(asyncio.Protocol):
    """One fake peer's tracker connection: counts frames by kind, parses headers only."""

    def __init__(self, worker: _Worker, index: int) -> None:
        self.worker = worker
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.registered = False
        self.variant = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.worker.register_bytes(self.index))

    def data_received(self, data: bytes) -> None:
        w = self.worker
        w.bytes_in += len(data)
        buf = self.buffer
        buf += data
        while len(buf) >= _HEADER.size:
            _, _, kind, meta_len, payload_len = _HEADER.unpack_from(buf)
            end = _HEADER.size + meta_len + payload_len
            if len(buf) < end:
                break
            del buf[:end]
            w.msgs_in += 1
            if kind == MessageType.PEER_LIST and not self.registered:
                self.registered = True
                w.registered += 1
                if self.index == 0:
                    self.transport.write(encode(StreamClaim()))  # type: ignore[union-attr]
            elif kind == MessageType.PONG and w.ping_sent is not None:
                w.rtts.append(time.monotonic() - w.ping_sent)
                w.ping_sent = None
            elif kind == MessageType.BYE:
                w.byes += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.lost += 1
        self.transport = None


class _Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.indexes = range(args.first, args.first + args.count)
        self.conns: list[_Conn] = []
        self.registered = self.lost = self.byes = 0
        self.msgs_in = self.bytes_in = self.msgs_out = self.bytes_out = 0
        self.rtts: list[float] = []
        self.ping_sent: float | None = None
        self.listen_port = 0
        self.beats: dict[tuple[int, int], bytes] = {}

    def register_bytes(self, index: int) -> bytes:
        return encode(Register(f"p{index}", f"Peer {index}", ROOM, "127.0.0.1",
                               self.listen_port))

    def beat(self, conn: _Conn) -> bytes:
        key = (conn.index, conn.variant)
        data = self.beats.get(key)
        if data is None:
            data = self.beats[key] = encode(_position(conn.index, conn.variant))
        return data

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # The connect-back target of all our peers: accept and close, like a peer would.
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0,
                                            backlog=1024)
        self.listen_port = server.sockets[0].getsockname()[1]
        report = loop.create_task(self._report())
        # Registered peers beat while the others still connect (a ramp may take
        # longer than the tracker's idle timeout).
        beat = loop.create_task(self._beat_forever())
        gap = 1.0 / self.args.rate
        next_at = time.monotonic()
        for index in self.indexes:
            conn = _Conn(self, index)
            await loop.create_connection(lambda c=conn: c, self.args.host, self.args.port)
            self.conns.append(conn)
            next_at += gap
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(report, beat)

    async def _beat_forever(self) -> None:
        """Every peer beats once per period, at a phase of its own (like real peers)."""
        tick = 0.01
        slots = max(1, round(self.args.heartbeat / tick))
        rng = random.Random(self.args.first)
        n = 0
        next_at = time.monotonic()
        while True:
            for conn in self.conns[n % slots::slots]:
                if conn.transport is None or not conn.registered:
                    continue
                if rng.random() < self.args.churn * self.args.heartbeat:
                    conn.variant ^= 1  # a peer whose free slots changed
                data = self.beat(conn)
                conn.transport.write(data)
                self.msgs_out += 1
                self.bytes_out += len(data)
            if n % 10 == 0 and self.args.first == 0 and self.conns and self.ping_sent is None:
                first = self.conns[0]
                if first.transport is not None and first.registered:
                    self.ping_sent = time.monotonic()
                    first.transport.write(encode(Ping(self.ping_sent)))
            n += 1
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            rtts, self.rtts = self.rtts, []
            line = {"registered": self.registered, "lost": self.lost, "byes": self.byes,
                    "msgs_in": self.msgs_in, "bytes_in": self.bytes_in,
                    "msgs_out": self.msgs_out, "bytes_out": self.bytes_out, "rtts": rtts,
                    "t": time.monotonic()}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()


def _worker_main(args: argparse.Namespace) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_Worker(args).run())
    return 0


# --- the driver ----------------------------------------------------------------------


class _Load:
    """The worker processes of one run and their latest counters (one reader thread
    per worker, so a worker never blocks on a full pipe)."""

    def __init__(self, procs: list[subprocess.Popen[str]]) -> None:
        self.procs = procs
        self.latest: list[dict[str, Any]] = [{} for _ in procs]
        self.rtts: list[float] = []
        self._lock = threading.Lock()
        for i, proc in enumerate(procs):
            threading.Thread(target=self._pump, args=(i, proc), daemon=True).start()

    def _pump(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                item = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.rtts += item.pop("rtts")
                self.latest[i] = item

    def total(self, key: str) -> int:
        with self._lock:
            return sum(int(item.get(key, 0)) for item in self.latest)

    def take_rtts(self) -> list[float]:
        with self._lock:
            rtts, self.rtts = self.rtts, []
        return rtts


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_KB / 1024


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 2)


def run_one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    # The tracker's warnings, for a failed run (not a result: kept out of bench/results).
    log = open(Path(tempfile.gettempdir()) / f"treecast_tracker_load_{n}.log",  # noqa: SIM115
               "w")
    tracker = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-mdns",
         "--max-connections", str(n + 100), "--max-connections-per-address", str(n + 100),
         "--max-peers-per-room", str(n + 10),
         # The load speaks plain TCP: this measures the tracker, not TLS (see the doc).
         "--no-tls",
         "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    procs: list[subprocess.Popen[str]] = []
    try:
        assert tracker.stdout is not None
        line = tracker.stdout.readline()
        port = int(line.rsplit(":", 1)[1])
        share = -(-n // args.workers)
        for w in range(args.workers):
            first, count = w * share, max(0, min(share, n - w * share))
            if count == 0:
                continue
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bench.bench_tracker_load", "--worker",
                 "--host", "127.0.0.1", "--port", str(port), "--first", str(first),
                 "--count", str(count), "--rate", str(args.rate / args.workers),
                 "--heartbeat", str(args.heartbeat), "--churn", str(args.churn)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        load = _Load(procs)
        t_start = time.monotonic()
        cpu_start = _cpu(tracker.pid)
        deadline = t_start + n / args.rate * 6 + 120
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if load.total("registered") >= n:
                break
        registered_after = time.monotonic() - t_start
        ramp_cpu = _cpu(tracker.pid) - cpu_start
        if load.total("registered") < n:
            raise RuntimeError(f"only {load.total('registered')} of {n} registered")
        time.sleep(args.settle)  # the first refresh round after the ramp
        load.take_rtts()
        c0, t0 = _cpu(tracker.pid), time.monotonic()
        before = {k: load.total(k) for k in ("msgs_in", "bytes_in", "msgs_out", "bytes_out")}
        time.sleep(args.window + 0.6)  # (+ one report interval of the workers)
        rtts = load.take_rtts()
        c1, t1 = _cpu(tracker.pid), time.monotonic()
        span = t1 - t0
        after = {k: load.total(k) for k in before}
        rate = {k: (after[k] - before[k]) / span for k in before}
        return {
            "peers": n,
            "registered_s": round(registered_after, 1),
            "ramp_cpu_pct": round(100 * ramp_cpu / registered_after, 1),
            "cpu_pct": round(100 * (c1 - c0) / span, 1),
            "rss_mb": round(_rss_mb(tracker.pid), 1),
            # What the tracker received (our sends) and sent (our receipts).
            "msgs_in_per_s": round(rate["msgs_out"]),
            "msgs_out_per_s": round(rate["msgs_in"]),
            "bytes_out_per_peer_s": round(rate["bytes_in"] / n, 1),
            "ping_p50_ms": _ms(_pct(rtts, 50)),
            "ping_p99_ms": _ms(_pct(rtts, 99)),
            "lost": load.total("lost"), "byes": load.total("byes"),
        }
    finally:
        for proc in [*procs, tracker]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*procs, tracker]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", default="1000,5000,10000")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--heartbeat", type=float, default=1.0)
    parser.add_argument("--churn", type=float, default=0.02,
                        help="fraction of peers per second whose position changes")
    parser.add_argument("--rate", type=float, default=1000.0, help="registrations per s")
    parser.add_argument("--window", type=float, default=30.0,
                        help="measured seconds (at least settled_refresh_s, 20 s)")
    parser.add_argument("--settle", type=float, default=6.0)
    parser.add_argument("--quick", action="store_true", help="1,000 peers, a 5 s window")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.exit(_worker_main(args))
    if args.quick:
        args.peers, args.window = "1000", 5.0
    sizes = [int(x) for x in args.peers.split(",")]
    assert all(0 < n <= limits.MAX_TRACKER_ROOM_PEERS for n in sizes)
    rows = []
    for n in sizes:
        result = run_one(n, args)
        rows.append(result)
        print(f"{n} peers: {result}", flush=True)
    columns = ["peers", "cpu_pct", "rss_mb", "msgs_in_per_s", "msgs_out_per_s",
               "bytes_out_per_peer_s", "ping_p50_ms", "ping_p99_ms", "registered_s",
               "ramp_cpu_pct", "lost"]
    print(table(columns, [[r[c] for c in columns] for r in rows]))
    result = {"config": {k: getattr(args, k) for k in
                         ("peers", "workers", "heartbeat", "churn", "rate", "window")},
              "machine": machine(), "rows": rows}
    save("tracker_load", result)
    return result


if __name__ == "__main__":
    main()
