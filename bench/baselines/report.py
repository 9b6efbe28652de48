"""What a baseline process reports: the same JSON lines ``bench.probe`` writes.

A baseline process takes the command line ``BenchSession.start_peer`` builds for a
Treecast peer (``--name --tracker HOST:PORT --listen HOST:PORT --events PATH``, then its
own options), with ``--tracker`` naming its rendezvous (the client-server server, the
WebRTC sender's signalling port). Once a second it appends to ``--events``:

* ``{"event": "probe", "v": i, "recv": [[seq, arrival, captured_at, null], ...],
  "dec": [[seq, decoded_at, captured_at], ...]}`` per viewer ``i`` it hosts (a process
  may host several: ``--viewers K``);
* ``{"event": "produced", "frames": [[seq, captured_at], ...]}`` from a source;
* ``{"event": "stats", "bytes_in": ..., "bytes_out": ..., ...}``: running totals.

plus ``{"event": "ready", ...}`` once it listens or has connected.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import defaultdict
from typing import Any, TextIO

FLUSH_S = 1.0


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--name", required=True)
    parser.add_argument("--tracker", metavar="HOST:PORT", help="the rendezvous to dial")
    parser.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:0")
    parser.add_argument("--events", metavar="PATH", required=True)
    parser.add_argument("--duration", type=float, default=600.0,
                        help="exit after this many seconds whatever happens")
    return parser


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


class Reporter:
    """Thread-safe collector of frame rows and counters, flushed once a second."""

    def __init__(self, path: str) -> None:
        self._out: TextIO = open(path, "a")  # noqa: SIM115 (closed by close())
        self._lock = threading.Lock()
        self._recv: dict[int, list[list[Any]]] = defaultdict(list)
        self._dec: dict[int, list[list[Any]]] = defaultdict(list)
        self._produced: list[list[Any]] = []
        self.counters: dict[str, float] = defaultdict(float)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reporter", daemon=True)
        self._thread.start()

    def event(self, kind: str, **fields: Any) -> None:
        self._write({"event": kind, "t": time.time(), **fields})

    def received(self, viewer: int, seq: int, arrival: float, captured_at: float) -> None:
        with self._lock:
            self._recv[viewer].append([seq, arrival, captured_at, None])

    def decoded(self, viewer: int, seq: int, done: float, captured_at: float) -> None:
        with self._lock:
            self._dec[viewer].append([seq, done, captured_at])

    def produced(self, seq: int, captured_at: float) -> None:
        with self._lock:
            self._produced.append([seq, captured_at])

    def count(self, key: str, amount: float) -> None:
        with self._lock:
            self.counters[key] += amount

    def set(self, key: str, value: float) -> None:
        with self._lock:
            self.counters[key] = value

    def _write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            if not self._out.closed:
                self._out.write(text)
                self._out.flush()

    def flush(self) -> None:
        with self._lock:
            recv, self._recv = self._recv, defaultdict(list)
            dec, self._dec = self._dec, defaultdict(list)
            produced, self._produced = self._produced, []
            counters = dict(self.counters)
        now = time.time()
        for viewer in sorted(set(recv) | set(dec)):
            self._write({"event": "probe", "t": now, "v": viewer, "recv": recv.get(viewer, []),
                         "dec": dec.get(viewer, [])})
        if produced:
            self._write({"event": "produced", "t": now, "frames": produced})
        self._write({"event": "stats", "t": now, **counters})

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_S):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.flush()
        with self._lock:
            self._out.close()
