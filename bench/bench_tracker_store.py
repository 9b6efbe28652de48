"""Tracker throughput with its state in memory vs in Redis, side by side.

    python -m bench.bench_tracker_store [--peers 2000] [--beats 10] [--quick]

For each store (memory; ``--store redis://`` on a redis-server this benchmark starts
on a free port), a fresh tracker process and one load process on 127.0.0.1:

* **registrations**: ``--peers`` connections are opened, then every one sends its
  Register at once; done when every PeerList reply is in.
* **heartbeats**: every peer sends ``--beats`` Heartbeats that each move it (its free
  slots change, so with Redis each one is a peer record write and a publish), then a
  Ping; done when every Pong is in (a connection's messages are handled in order).

Reported per phase: operations per second of wall time, the tracker process's CPU
seconds, and operations per CPU-second of the tracker ("on one core": what one fully
busy core would sustain), plus redis-server's CPU for the Redis store. Prints a table,
writes bench/results/tracker_store.json. The machine is shared: figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import subprocess
import sys
import time
from typing import Any

from bench.common import CLK_TCK, machine, save, table
from protocol.framing import encode
from protocol.messages import Heartbeat, MessageType, Ping, Register
from tests.support.redis_server import REDIS_SERVER, RedisServer

_HEADER = struct.Struct("!2sBBII")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class _Conn(asyncio.Protocol):
    def __init__(self, counts: dict[int, int], done: asyncio.Event, target: list[int]) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.counts = counts
        self.done = done
        self.target = target  # [kind, how many in all] the current phase waits for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while len(buf) >= _HEADER.size:
            _, _, kind, meta_len, payload_len = _HEADER.unpack_from(buf)
            end = _HEADER.size + meta_len + payload_len
            if len(buf) < end:
                break
            del buf[:end]
            self.counts[kind] = self.counts.get(kind, 0) + 1
            if kind == self.target[0] and self.counts[kind] >= self.target[1]:
                self.done.set()


async def _load(port: int, peers: int, beats: int, tracker_pid: int,
                redis_pid: int | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    counts: dict[int, int] = {}
    done = asyncio.Event()
    target = [MessageType.PEER_LIST, peers]
    conns: list[_Conn] = []
    for _ in range(peers):
        conn = _Conn(counts, done, target)
        await loop.create_connection(lambda c=conn: c, "127.0.0.1", port)
        conns.append(conn)
    results: dict[str, Any] = {}

    async def phase(name: str, send: Any, kind: int, expected: int, ops: int) -> None:
        done.clear()
        target[:] = [kind, counts.get(kind, 0) + expected]
        c0 = _cpu(tracker_pid)
        r0 = _cpu(redis_pid) if redis_pid else 0.0
        t0 = time.perf_counter()
        for i, conn in enumerate(conns):
            assert conn.transport is not None
            conn.transport.write(send(i))
        async with asyncio.timeout(300):
            await done.wait()
        wall = time.perf_counter() - t0
        cpu = _cpu(tracker_pid) - c0
        results[name] = {"ops": ops, "wall_s": round(wall, 3),
                         "ops_per_s": round(ops / wall), "tracker_cpu_s": round(cpu, 3),
                         "ops_per_cpu_s": round(ops / cpu) if cpu > 0 else None,
                         "redis_cpu_s": round(_cpu(redis_pid) - r0, 3) if redis_pid else None}

    await phase("registrations", lambda i: encode(Register(f"p{i}", f"P{i}", "bench", None,
                                                           None)),
                MessageType.PEER_LIST, peers, peers)

    def beat(i: int) -> bytes:
        return b"".join(encode(Heartbeat(depth=1 + i % 5, free_slots=(i + k) % 4,
                                         parent_id="p0", layer=720)) for k in range(beats)
                        ) + encode(Ping(0.0))

    await phase("heartbeats", beat, MessageType.PONG, peers, peers * beats)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    return results


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    redis: RedisServer | None = None
    extra: list[str] = []
    if store == "redis":
        redis = RedisServer()
        redis.start()
        extra = ["--store", redis.url]
    tracker = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-mdns",
         "--log-level", "WARNING", "--max-connections", str(args.peers + 100),
         "--max-connections-per-address", str(args.peers + 100),
         "--max-peers-per-room", str(args.peers + 10), "--no-tls", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert tracker.stdout is not None
        port = int(tracker.stdout.readline().rsplit(":", 1)[1])
        redis_pid = redis.proc.pid if redis is not None and redis.proc else None
        return asyncio.run(_load(port, args.peers, args.beats, tracker.pid, redis_pid))
    finally:
        tracker.terminate()
        try:
            tracker.wait(10)
        except subprocess.TimeoutExpired:
            tracker.kill()
            tracker.wait()
        if redis is not None:
            redis.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=2000)
    parser.add_argument("--beats", type=int, default=10, help="heartbeats per peer")
    parser.add_argument("--quick", action="store_true", help="500 peers, 5 beats")
    args = parser.parse_args(argv)
    if args.quick:
        args.peers, args.beats = 500, 5
    stores = ["memory"] + (["redis"] if REDIS_SERVER else [])
    if not REDIS_SERVER:
        print("redis-server is not installed: memory only")
    results = {store: run_store(store, args) for store in stores}
    rows = []
    for phase in ("registrations", "heartbeats"):
        for store in stores:
            r = results[store][phase]
            rows.append([phase, store, r["ops"], r["ops_per_s"], r["tracker_cpu_s"],
                         r["ops_per_cpu_s"], r["redis_cpu_s"]])
    print(table(["phase", "store", "ops", "ops/s (wall)", "tracker CPU s",
                 "ops per tracker CPU-s", "redis CPU s"], rows,
                ["s", "s", "d", "d", ".2f", "d", ".2f"]))
    result = {"config": {"peers": args.peers, "beats": args.beats},
              "machine": machine(), "results": results}
    save("tracker_store", result)
    return result


if __name__ == "__main__":
    main()
