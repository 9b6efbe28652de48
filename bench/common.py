"""Shared pieces of the benchmarks: sessions with logs, CPU from /proc, windows, tables.

Every benchmark module has ``main(argv) -> dict`` (the JSON it wrote) and runs on its
own with ``python -m bench.<module> [--quick]``; ``bench.run_all`` runs them all.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.procs import Peer, Session

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- processes ----------------------------------------------------------------------


class BenchSession(Session):
    """A Session whose peers log stderr to files (a pipe nobody reads can fill up)."""

    def __init__(self, netns_prefix: Sequence[str] = ()) -> None:
        super().__init__(netns_prefix)
        self.log_dir = Path(tempfile.mkdtemp(prefix="treecast-bench-"))

    def start_peer(self, name: str, *args: str, **kwargs: Any) -> Peer:
        if "stderr" not in kwargs:
            with (self.log_dir / f"{name}.log").open("wb") as log:
                return super().start_peer(name, *args, stderr=log, **kwargs)
        return super().start_peer(name, *args, **kwargs)

    def stderr_tail(self, name: str, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]
        return ""

    def close(self) -> None:
        try:
            super().close()
        finally:
            shutil.rmtree(self.log_dir, ignore_errors=True)


@contextlib.contextmanager
def bench_session(netns_prefix: Sequence[str] = ()) -> Iterator[BenchSession]:
    """A BenchSession that ends every process it started, also on errors and Ctrl-C."""
    s = BenchSession(netns_prefix)
    try:
        yield s
    finally:
        s.close()


def sigterm_as_exit() -> None:
    """Make SIGTERM unwind like Ctrl-C, so every ``finally`` ends its processes."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, handler)


class BenchError(RuntimeError):
    """A benchmark could not set up what it measures (a peer did not start or join)."""


def require(ok: bool, what: str, s: BenchSession | None = None,
            peers: Iterable[Peer] = ()) -> None:
    if ok:
        return
    detail = ""
    if s is not None:
        for peer in peers:
            if peer.proc.poll() is not None or not peer.last("joined"):
                tail = s.stderr_tail(peer.name)
                detail += f"\n--- {peer.name} (exit {peer.proc.poll()}):\n{tail}"
                break
    raise BenchError(what + detail)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def start_streamer(s: BenchSession, size: str, fps: float, *extra: str,
                   name: str = "streamer", **kwargs: Any) -> Peer:
    peer = s.start_peer(name, "--test-pattern", size, "--fps", f"{fps:g}", *extra, **kwargs)
    require(wait_until(lambda: peer.last("stream_started"), 20), "streamer did not start", s,
            [peer])
    return peer


def streaming(peer: Peer) -> bool:
    """Joined and has reported receiving frames since."""
    joined = peer.last("joined")
    stats = peer.last("stats")
    return bool(joined and stats and stats["t"] > joined["t"] and stats.get("fps", 0) > 0)


# --- /proc --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 of stat(5)


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB / 1024
    except OSError:
        return None


class CpuMeter:
    """CPU use of processes between ``start()`` and ``stop()``, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._t0 = 0.0
        self._c0: dict[str, float | None] = {}
        self.percent: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._t0
        self.percent = {}
        for name, pid in self.pids.items():
            c0, c1 = self._c0.get(name), cpu_seconds(pid)
            if c0 is not None and c1 is not None and wall > 0:
                self.percent[name] = 100.0 * (c1 - c0) / wall
        return self.percent


def system_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --- windows over events ------------------------------------------------------------


def stats_between(peer: Peer, t0: float, t1: float) -> list[dict[str, Any]]:
    return [e for e in peer.all("stats") if t0 <= e["t"] <= t1]


def window_delta(peer: Peer, t0: float, t1: float) -> dict[str, Any] | None:
    """Counter deltas between the peer's first and last stats events inside [t0, t1]."""
    events = stats_between(peer, t0, t1)
    if len(events) < 2:
        return None
    a, b = events[0], events[-1]
    keys = ("frames", "lost", "dropped", "bytes_in", "bytes_out", "video_bytes_in",
            "video_bytes_out")
    delta = {k: b.get(k, 0) - a.get(k, 0) for k in keys}
    delta["t0"], delta["t1"], delta["seconds"] = a["t"], b["t"], b["t"] - a["t"]
    return delta


def counter_at(peer: Peer, key: str, t: float) -> float | None:
    """A stats counter linearly interpolated at time ``t`` (None outside the events)."""
    events = peer.all("stats")
    for a, b in itertools.pairwise(events):
        if a["t"] <= t <= b["t"]:
            if b["t"] == a["t"]:
                return float(b[key])
            return a[key] + (b[key] - a[key]) * (t - a["t"]) / (b["t"] - a["t"])
    return None


def delivery(viewer: Peer, streamer: Peer, t0: float, t1: float) -> dict[str, Any] | None:
    """What a viewer got of what the streamer produced in a steady window.

    * ``delivered``: frames received / frames produced over the viewer's own stats ticks
      inside [t0, t1], the streamer's count interpolated at those instants (exact to
      about one frame: the streamer paces at a constant rate).
    * ``delivered_seq``: received / (received + sequence gaps) over the same ticks
      (exact; blind to a viewer that receives nothing at all, which ``delivered`` sees).
    """
    d = window_delta(viewer, t0, t1)
    if d is None:
        return None
    p0 = counter_at(streamer, "frames", d["t0"])
    p1 = counter_at(streamer, "frames", d["t1"])
    produced = None if p0 is None or p1 is None else p1 - p0
    seen = d["frames"] + d["lost"]
    return {
        "received": d["frames"],
        "lost": d["lost"],
        "produced": produced,
        "delivered": min(1.0, d["frames"] / produced) if produced else None,
        "delivered_seq": d["frames"] / seen if seen else None,
        "seconds": d["seconds"],
    }


def median_of(events: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [e[key] for e in events if isinstance(e.get(key), int | float)]
    return statistics.median(values) if values else None


def pct(values: Sequence[float], p: float) -> float | None:
    """Percentile (linear interpolation, like the node's own stats); None if empty."""
    data = sorted(v for v in values if v is not None and math.isfinite(v))
    if not data:
        return None
    pos = (len(data) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def probe_samples(peer: Peer, t0: float, t1: float, kind: str = "recv") -> list[list[Any]]:
    """Per-frame samples from a ``bench.probe`` peer whose arrival lies in [t0, t1]."""
    out: list[list[Any]] = []
    for line in peer.all("probe"):
        out += [row for row in line.get(kind, []) if t0 <= row[1] <= t1]
    return out


# --- output -------------------------------------------------------------------------


def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
          specs: Sequence[str] | None = None) -> str:
    """A plain-text table (also valid Markdown)."""
    specs = specs or [".1f"] * len(columns)
    cells = [[fmt(v, sp) for v, sp in zip(row, specs, strict=True)] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
              for row in cells]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def save(name: str, result: dict[str, Any], out: Path | None = None) -> Path:
    path = out or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": name, **result}, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def run_cmd(argv: Sequence[str]) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10,
                          check=False).stdout
