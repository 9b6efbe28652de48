"""Shared pieces of the benchmarks: sessions with logs, CPU from /proc, windows, tables.

Every benchmark module has ``main(argv) -> dict`` (the JSON it wrote) and runs on its
own with ``python -m bench.<module> [--quick]``; ``bench.run_all`` runs them all.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from peer.node.errors import ExitCode
from peer.trust.tls import client_context, make_proof, remote_public_key
from protocol import FrameDecoder, Ping, Pong, ProtocolError, Register, encode
from protocol.identity import Identity
from tests.support.procs import PYTHON, Peer, Session, wait_for

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


# --- processes ----------------------------------------------------------------------


# Event kinds the benchmarks never read. ``tree`` lines list the whole room and come on
# every change (20 KB per line per peer at 128 peers): they are skipped unparsed.
SKIPPED_PREFIXES = tuple(f'{{"event":"{kind}"'.encode() for kind in ("tree", "chat"))
POLL_S = 0.05


class BenchSession(Session):
    """A Session whose peers write their events to files, read back by one thread.

    With ``--events -`` a peer writes its event lines into a pipe from its event loop:
    when the reader falls behind (a hundred peers saturating two cores starve this
    process too) the pipe fills and the peer blocks, heartbeats and all. A file never
    blocks the writer, so what we measure is the peers, not our reading. Stderr goes
    to a log file per peer as well.
    """

    def __init__(self, netns_prefix: Sequence[str] = ()) -> None:
        super().__init__(netns_prefix)
        self.log_dir = Path(tempfile.mkdtemp(prefix="treecast-bench-"))
        self._files: dict[str, tuple[Peer, Any]] = {}
        self._files_lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_files, name="bench-events",
                                        daemon=True)
        self._reader.start()

    def start_peer(self, name: str, *args: str, tracker: str | None = None,
                   stdin: bool = False, module: str = "peer.node.cli",
                   listen: str = "127.0.0.1:0", prefix: Sequence[str] | None = None,
                   stderr: Any = None) -> Peer:
        tracker = tracker or f"127.0.0.1:{self.tracker_port}"
        events = self.log_dir / f"{name}.{len(self.procs)}.events"
        events.touch()
        argv = [*self._argv_prefix(prefix), PYTHON, "-m", module, "--name", name,
                "--tracker", tracker, "--listen", listen, "--events", str(events), *args]
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                    stderr=log if stderr is None else stderr,
                                    stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.procs.append(proc)
        peer = Peer(name, proc)  # type: ignore[arg-type]
        self.peers[name] = peer
        with self._files_lock:
            self._files[f"{name}.{len(self.procs)}"] = (peer, events.open("rb"))
        return peer

    def _read_files(self) -> None:
        partial: dict[str, bytes] = {}
        while not self._stop.is_set():
            with self._files_lock:
                files = list(self._files.items())
            for key, (peer, handle) in files:
                data = handle.read()
                if not data:
                    continue
                *lines, partial[key] = (partial.get(key, b"") + data).split(b"\n")
                parsed = []
                for line in lines:
                    if not line or line.startswith(SKIPPED_PREFIXES):
                        continue
                    with contextlib.suppress(ValueError):
                        parsed.append(json.loads(line))
                if parsed:
                    with peer.lock:
                        peer.events.extend(parsed)
            self._stop.wait(POLL_S)

    def stderr_tail(self, name: str, chars: int = 1500) -> str:
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-chars:]
        return ""

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._stop.set()
            self._reader.join(2.0)
            with self._files_lock:
                for _, handle in self._files.values():
                    handle.close()
                self._files.clear()
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
                with peer.lock:
                    kinds = [e.get("event") for e in peer.events[-8:]]
                detail += (f"\n--- {peer.name} (exit {peer.proc.poll()}, last events {kinds}):"
                           f"\n{tail}")
                break
    raise BenchError(what + detail)


def start_streamer(s: BenchSession, size: str, fps: float, *extra: str,
                   name: str = "streamer", **kwargs: Any) -> Peer:
    peer = s.start_peer(name, "--test-pattern", size, "--fps", f"{fps:g}", *extra, **kwargs)
    require(wait_for(lambda: peer.last("stream_started"), 20), "streamer did not start", s,
            [peer])
    return peer


def streaming(peer: Peer) -> bool:
    """Joined and has reported receiving frames since."""
    joined = peer.last("joined")
    stats = peer.last("stats")
    return bool(joined and stats and stats["t"] > joined["t"] and stats.get("fps", 0) > 0)


# --- /proc --------------------------------------------------------------------------


def user_sys(pid: int) -> tuple[float, float] | None:
    """utime and stime of a process, in seconds (None when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # fields 14, 15 of stat(5)


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (None when it is gone)."""
    times = user_sys(pid)
    return None if times is None else times[0] + times[1]


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


STALLED = 0.9  # received / produced below this in a window: the viewer stalled


def delivery(viewer: Peer, streamer: Peer, t0: float, t1: float) -> dict[str, Any] | None:
    """What a viewer got of what the streamer produced in a steady window.

    * ``delivered_seq``: frames received / frames produced, over the viewer's own first
      and last stats tick inside [t0, t1]. Exact: ``frames + lost`` grows by one per
      sequence number the streamer produced (a frame arrives or leaves a gap), so this
      is received / (received + gaps). Blind only to a viewer that receives nothing
      at all, which ``delivered`` sees.
    * ``delivered``: received over the streamer's produced count interpolated at the
      same instants (exact to about one frame).
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
    if isinstance(value, float) and spec.endswith("d"):
        value = round(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
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


class TrackerPinger:
    """Pings the tracker over its own connection every 0.2 s: its responsiveness.

    The tracker answers a Ping from any connection; a slow answer means its event loop
    was busy (or starved), and the streamer's lease renewals wait just the same. Over
    TLS (the tracker's default) the connection opens as a peer's does: the handshake,
    then a LinkProof of a key of its own (the tracker closes a TLS link whose first
    message is anything else: before this the pinger spoke plain TCP to a TLS tracker
    and measured nothing). It registers in a room of its own (``room``), without a
    listen address, since the tracker closes a connection that has not registered
    within seconds. ``error`` says why pinging stopped early, if it did.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", *, tls: bool = True,
                 room: str = "bench-tracker-ping") -> None:
        self.rtts: list[tuple[float, float]] = []  # (sent at, round trip ms)
        self.error: str | None = None
        self._stop = threading.Event()
        identity = Identity.generate()
        sock = socket.create_connection((host, port), timeout=30)
        if tls:
            sock = client_context().wrap_socket(sock, server_hostname=None)
            sock.sendall(encode(make_proof(identity, remote_public_key(sock))))
        sock.sendall(encode(Register(peer_id=identity.peer_id, name="tracker-pinger",
                                     room=room, host=None, port=None)))
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="tracker-ping", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        decoder = FrameDecoder()
        try:
            while not self._stop.is_set():
                sent = time.time()
                self._sock.sendall(encode(Ping(t0=sent)))
                while not isinstance(decoder.next_message(), Pong):
                    data = self._sock.recv(65536)
                    if not data:
                        raise ConnectionError("the tracker closed the connection")
                    decoder.receive_data(data)
                self.rtts.append((sent, (time.time() - sent) * 1000))
                self._stop.wait(0.2)
        except (OSError, ProtocolError) as exc:
            if not self._stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"

    def max_between(self, t0: float, t1: float) -> float | None:
        return max((ms for sent, ms in self.rtts if t0 <= sent <= t1), default=None)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(2.0)


def stream_alive(streamer: Peer) -> None:
    """Raise BenchError if the streamer has ended its stream (e.g. lost its lock)."""
    ended = streamer.last("stream_ended")
    if ended is not None:
        detail = f" ({ended['detail']})" if ended.get("detail") else ""
        raise BenchError(f"the streamer ended the stream: {ended.get('reason')}{detail}")


def procs_running() -> int:
    """Runnable tasks on the machine now (the run queue, this reader included)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("procs_running "):
                return int(line.split()[1])
    return 0


class LaunchPacer:
    """When the next viewer may start, for benchmarks whose viewers stand for users on
    machines of their own.

    One 2-core machine running a room's viewers would, left alone, start them as fast
    as it can: dozens of interpreters importing at once (~0.3 s of CPU each) starve the
    viewers already streaming, an artefact of the harness a real room never sees. So a
    new viewer starts at most every ``1 / rate`` seconds, and while the machine's run
    queue (``procs_running``, averaged over the last second) is above ``run_queue``,
    up to ``max_wait_s`` later than that. The run queue is sampled by ``wait``.

    Args:
        rate: most launches per second.
        run_queue: the average run queue above which a launch waits (None: no check).
        max_wait_s: the longest a launch waits for the run queue to fall; a machine
            that stays busy (a room at its steady-state limit) still gets its viewers.
        clock: monotonic seconds; runnable: the run queue now, the caller not
            counted (tests inject both).
    """

    def __init__(self, rate: float, run_queue: float | None = None,
                 max_wait_s: float = 3.0, *, clock: Callable[[], float] = time.monotonic,
                 runnable: Callable[[], int] = lambda: procs_running() - 1) -> None:
        self.gap_s = 1.0 / rate
        self.run_queue = run_queue
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._runnable = runnable
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._last_launch = -math.inf
        self.waited_s = 0.0  # total time launches waited for the run queue

    def _sample(self) -> float:
        now = self._clock()
        self._samples.append((now, self._runnable()))
        while self._samples and self._samples[0][0] < now - 1.0:
            self._samples.popleft()
        return statistics.mean(n for _, n in self._samples)

    def ready(self) -> bool:
        """Whether a viewer may start now (call it every ~20 ms while waiting)."""
        now = self._clock()
        load = self._sample()
        due = self._last_launch + self.gap_s
        if now < due:
            return False
        busy = self.run_queue is not None and load > self.run_queue
        return not busy or now >= due + self.max_wait_s

    def launched(self) -> None:
        now = self._clock()
        if self._last_launch > -math.inf:
            self.waited_s += max(0.0, now - (self._last_launch + self.gap_s))
        self._last_launch = now


def start_viewers(s: BenchSession, names: Sequence[str], *args: str, in_flight: int = 4,
                  timeout: float = 90.0, streamer: Peer | None = None, nice: int = 0,
                  ready: Callable[[Peer], bool] | None = None, partial: bool = False,
                  pacer: LaunchPacer | None = None, joining: int | None = None,
                  **kwargs: Any) -> list[Peer]:
    """Start viewers (``--watch`` + ``args``) and wait until every one receives frames
    (``ready``, when given, instead: e.g. "has had a picture", for a benchmark that
    measures what happens after). With ``partial``, when ``timeout`` runs out they are
    returned as they are (all still running) instead of failing: for a benchmark that
    counts a viewer that never got going as one that received nothing.

    At most ``in_flight`` are starting at once (started, not yet registered with the
    tracker): on two cores, dozens of interpreters importing OpenCV at once starve the
    tracker past the node's 3 s registration timeout (and the streamer's lease renewals
    with it). A viewer that gives up on the tracker anyway (``ExitCode.NO_TRACKER``) is
    started again, up to twice. With ``streamer``, fails at once if the stream ends.
    ``nice`` runs the viewers at that niceness (see bench_scale); ``pacer``
    bounds the launch rate (see ``LaunchPacer``), and ``timeout`` then counts from
    the last launch; ``joining`` bounds the viewers launched and not yet receiving
    frames (on machines of their own, one viewer's slow join never slows another's).
    """
    if nice:
        kwargs["prefix"] = [*s._argv_prefix(kwargs.get("prefix")), "nice", "-n", str(nice)]
    deadline = time.monotonic() + timeout
    viewers: list[Peer] = []
    retries: dict[str, int] = {}

    def starting() -> int:
        return sum(1 for v in viewers if v.proc.poll() is None and not v.last("ready"))

    def restart_failed() -> None:
        for i, v in enumerate(viewers):
            if v.proc.poll() == ExitCode.NO_TRACKER and retries.get(v.name, 0) < 2:
                retries[v.name] = retries.get(v.name, 0) + 1
                viewers[i] = s.start_peer(v.name, "--watch", *args, **kwargs)

    started = ready or streaming

    def still_joining() -> int:
        return sum(1 for v in viewers if v.proc.poll() is None and not started(v))

    for name in names:
        while (starting() >= in_flight or (pacer is not None and not pacer.ready())
               or (joining is not None and still_joining() >= joining)) \
                and time.monotonic() < deadline:
            restart_failed()
            if streamer is not None:
                stream_alive(streamer)
            time.sleep(0.02)
        if joining is not None and time.monotonic() >= deadline:
            break  # the ones joining did not get going in time: fail below, now
        viewers.append(s.start_peer(name, "--watch", *args, **kwargs))
        if pacer is not None:
            pacer.launched()
            deadline = time.monotonic() + timeout

    def all_streaming() -> bool:
        restart_failed()
        if streamer is not None:
            stream_alive(streamer)
        return all(started(v) for v in viewers)

    if partial:
        wait_for(all_streaming, max(1.0, deadline - time.monotonic()), 0.25)
        return viewers
    require(len(viewers) == len(names) and wait_for(
                all_streaming, max(1.0, deadline - time.monotonic()), 0.25),
            f"not all of {len(viewers)} viewers receive frames within {timeout:g} s "
            f"({len(names) - len(viewers)} more not started): "
            f"{[v.name for v in viewers if not started(v)][:10]}", s,
            [v for v in viewers if not started(v)])
    if retries:
        print(f"  (restarted after tracker timeouts: {sorted(retries)})", flush=True)
    return viewers


def viewer_summary(viewers: Sequence[Peer], streamer: Peer, t0: float,
                   t1: float, latency_from: float | None = None) -> dict[str, Any]:
    """Delivery and latency of a crowd of viewers over a steady window.

    Call it a stats tick (> 1 s) after ``t1``, so the streamer has reported on both
    sides of every viewer tick inside the window. Latency comes from the stats events
    at or after ``latency_from`` (when given and there are some): each covers the 5 s
    before it, so that keeps a join wave before the window out of the figures.
    """
    per = [delivery(v, streamer, t0, t1) for v in viewers]
    got = [d for d in per if d is not None]
    delivered_seq = [d["delivered_seq"] for d in got if d["delivered_seq"] is not None]
    # Time-based ratio is exact only to about a frame: it serves to spot a viewer that
    # stalled (receives nothing, so it has no sequence gaps either).
    stalled = [v.name for v, d in zip(viewers, per, strict=True)
               if d is None or (d["delivered"] is not None and d["delivered"] < STALLED)]
    windows = [stats_between(v, t0, t1) for v in viewers]
    late = [[e for e in w if latency_from is None or e["t"] >= latency_from] or w
            for w in windows]
    p50 = [m for w in late if (m := median_of(w, "latency_ms")) is not None]
    p95 = [m for w in late if (m := median_of(w, "latency_p95_ms")) is not None]
    loss = [e["loss_pct"] for w in windows for e in w]
    depths = [e.get("depth") for w in windows for e in w if e.get("depth") is not None]
    received = sum(d["received"] for d in got)
    both = [d for d in got if d["produced"]]
    produced = sum(d["produced"] for d in both)
    lost = sum(d["lost"] for d in got)
    return {
        "viewers": len(viewers),
        "measured": len(got),
        "delivered": received / (received + lost) if received + lost else None,
        "delivered_min": min(delivered_seq, default=None),
        "received_per_produced": (sum(d["received"] for d in both) / produced
                                  if produced else None),
        "stalled": stalled,
        "lost_frames": lost,
        "loss_pct_max": max(loss, default=None),
        "latency_p50_ms_median": statistics.median(p50) if p50 else None,
        "latency_p95_ms_median": statistics.median(p95) if p95 else None,
        "latency_p95_ms_max": max(p95, default=None),
        "depth_max": max(depths, default=None),
    }


def upload_kbps(peer: Peer, t0: float, t1: float) -> float | None:
    """What a peer sent (all links, framing included) over its ticks inside [t0, t1],
    from its byte totals: exact, unlike ``kbps_out``, a 5 s sliding window that lags
    behind a change (new children)."""
    d = window_delta(peer, t0, t1)
    if d is None or d["seconds"] <= 0:
        return None
    return d["bytes_out"] * 8 / 1000 / d["seconds"]
