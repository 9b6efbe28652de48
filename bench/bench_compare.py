"""Treecast side by side with what users would pick instead, on the same clip and machine.

Systems (``--systems`` picks some):

* ``treecast-h264`` / ``treecast-mjpeg``: the tree (tracker, streamer ``--stream CLIP
  --loop``, viewers with the default fan-out), every viewer a ``bench.probe`` peer.
  ``treecast-h264`` runs only when the peer has ``--codec`` (the H.264 media path).
* ``client-server``: the original course report's design (``bench.baselines.
  client_server``): server, streamer, viewers.
* ``webrtc-h264`` / ``webrtc-vp8``: aiortc, one sender, N receivers
  (``bench.baselines.webrtc``); capture time read from a barcode in the picture.

The clip is Treecast's test pattern written once to a 1280x720, 30 fps Motion-JPEG
file (``bench.baselines.clip``); every source reads and paces the same file. For each
N in 1, 4, 16, 64, every system runs in turn (interleaved, so a change in the shared
machine's load hits all of them), each in a fresh set of processes: N - 1 "crowd"
viewers and one measured viewer started last, which decodes every frame as a display
would. Crowd viewers of the baselines share processes (``CROWD_PER_PROCESS`` each: a
receiving viewer of those designs uploads nothing, so sharing changes no link); each
Treecast viewer is its own process, because it relays. The processes measured (source,
server or tracker, measured viewer) run at nice ``MEASURED_NICE`` in every system: the
crowd stands in for other people's machines and must not starve them. After a warm-up,
over a window:

* capture-to-received latency of every frame at every viewer (p50/p95 pooled, and the
  worst viewer's p95); capture-to-decoded at the measured viewer. Capture is the
  source's pacer releasing the frame; all processes share one clock.
* delivered: frames captured in the window that a viewer received by the end of the
  grace period, over frames captured, summed over viewers.
* source upload (and, for client-server, the server's): bytes written per second.
  Treecast counts its framed messages, client-server its JSON lines, aiortc the SRTP
  packets handed to ICE.
* CPU (% of one core, /proc) of the source, the server, and the measured viewer.
* per-viewer bitrate: what the measured viewer received per second.
* first picture: from launching the measured viewer's process to its first decoded
  picture (interpreter start and imports included, for every system alike).
* parents lost (Treecast): how often a viewer lost its parent in the window and
  re-joined elsewhere (heartbeat or video silence, or a parent shedding a child).

A cell starts measuring once every viewer has had a picture, the same test for every
system; whether they all keep receiving is what the window measures.

A system *holds* at N when delivered >= 99 % and received p95 <= 200 ms; it *breaks*
at the first N where it does not. Once a system collapses (delivered < 50 %, p95 over
1 s, or it cannot get going in time) larger N are not run for it. The source's frame
rate is reported too: a starved source skips frames (real time), and delivered counts
what it did produce.

``--capped`` repeats it in network namespaces (``tests/support/netns.py``): every process a
host of its own (a baseline's crowd of viewers shares one), every host's upload capped
with tc tbf at ``CAP_FACTOR`` times the Treecast MJPEG stream's bitrate, the server's
host included; Treecast runs with fan-out 2. N = 1, 4, 16.

Run: ``python -m bench.bench_compare [--quick] [--capped | --no-loopback]
[--systems S ...] [--n N ...]`` (``--systems treecast-h264 --n 64``: that cell alone).
Writes bench/results/compare.json; ``--plot`` redraws docs/bench-compare*.png from it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.baselines.clip import FPS, HEIGHT, WIDTH, make_clip
from bench.common import (
    RESULTS_DIR,
    BenchError,
    BenchSession,
    CpuMeter,
    bench_session,
    machine,
    pct,
    require,
    save,
    sigterm_as_exit,
    start_viewers,
    stream_alive,
    table,
)
from tests.support.procs import PYTHON, Peer, wait_for

COUNTS = [1, 4, 16, 64]
CAPPED_COUNTS = [1, 4, 16]
QUICK_COUNTS = [1, 4]
HOLD_DELIVERED = 0.99
HOLD_P95_MS = 200.0
# Delivered below COLLAPSED, or p95 above COLLAPSED_P95_MS (5x the hold limit): larger N
# are not run for that system.
COLLAPSED, COLLAPSED_P95_MS = 0.5, 1000.0
CROWD_PER_PROCESS = 16
WARMUP_S, WINDOW_S, GRACE_S = 5.0, 8.0, 2.0
QUICK_WARMUP_S, QUICK_WINDOW_S = 2.0, 4.0
START_TIMEOUT_S = 40.0  # per system, plus 1 s per viewer
PROCESS_LIMIT_S = 300.0  # every baseline process exits by itself after this
# The crowd stands in for other people's machines; on this one it must not starve the
# processes measured (source, server or tracker, measured viewer): they run at this
# niceness in every system. (Nicing the crowd instead left it starved behind other
# people's test runs on this shared machine: Treecast's crowd relays, so that hurt it.)
MEASURED_NICE = -5
CAP_FACTOR = 3.0
CAPPED_FANOUT = 2
RESOLUTION = 720
CLIP = Path(tempfile.gettempdir()) / "treecast-compare-clip-720p30.avi"
DOCS = Path(__file__).resolve().parent.parent / "docs"


def treecast_codecs() -> list[str]:
    """The codecs the peer can stream: ``--codec`` choices, or MJPEG only."""
    text = subprocess.run([PYTHON, "-m", "peer.node.cli", "--help"], capture_output=True,
                          text=True, timeout=60, check=False).stdout
    if "--codec" not in text:
        return ["mjpeg"]
    return [c for c in ("h264", "mjpeg") if c in text.split("--codec", 1)[1][:200]]


def all_systems() -> list[str]:
    return ([f"treecast-{c}" for c in treecast_codecs()]
            + ["client-server", "webrtc-h264", "webrtc-vp8"])


# --- where processes run ------------------------------------------------------------


class Place:
    """Where a cell's processes run: loopback, or a host per process in a Lan."""

    def __init__(self, lan: Any = None, cap_kbit: int | None = None) -> None:
        self.lan, self.cap_kbit = lan, cap_kbit
        self._next = 0

    def host(self) -> tuple[str, list[str] | None]:
        """(address to listen on, argv prefix) of a fresh host."""
        if self.lan is None:
            return "127.0.0.1", None
        if self._next >= len(self.lan.hosts):
            raise BenchError(f"the Lan has only {len(self.lan.hosts)} hosts")
        host = self.lan.hosts[self._next]
        self._next += 1
        return host.address, ["ip", "netns", "exec", host.netns]


@contextlib.contextmanager
def placed(capped: bool, hosts: int, cap_kbit: int | None) -> Iterator[Place]:
    if not capped:
        yield Place()
        return
    from tests.support.netns import Lan, cap_upload

    with Lan(hosts) as lan:
        for host in lan.hosts:
            cap_upload(host, cap_kbit or 0)
        yield Place(lan, cap_kbit)


# --- one cell: one system at one N --------------------------------------------------


@dataclass
class Cell:
    """The processes of one system at one N, and what to read from them."""

    system: str
    n: int
    source: Peer | None = None
    server: Peer | None = None
    crowd: list[Peer] = field(default_factory=list)
    measured: Peer | None = None
    measured_started: float = 0.0
    treecast: bool = False
    # Viewers that had no picture yet when the window began (they count as receiving
    # nothing they did not receive: a tree that cannot take them in breaks, measured).
    no_picture: int = 0

    def viewers(self) -> list[tuple[Peer, int | None]]:
        """(process, viewer index inside it or None for a Treecast peer) per viewer."""
        out: list[tuple[Peer, int | None]] = []
        for peer in self.crowd:
            hosted = int(peer.name.rsplit("x", 1)[1]) if "x" in peer.name else 1
            out += [(peer, None if self.treecast else i) for i in range(hosted)]
        if self.measured is not None:
            out.append((self.measured, None if self.treecast else 0))
        return out


def started_at(pid: int) -> float:
    """When a process started (Unix time, to 1/CLK_TCK), from /proc: the launch of the
    process that ran, not of an earlier attempt that a retry replaced."""
    with open(f"/proc/{pid}/stat") as f:
        ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22 of stat(5)
    with open("/proc/uptime") as f:  # btime in /proc/stat is whole seconds; this is not
        uptime = float(f.read().split()[0])
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def rows_of(peer: Peer, index: int | None, kind: str) -> list[list[Any]]:
    out: list[list[Any]] = []
    for line in peer.all("probe"):
        if index is None or line.get("v") == index:
            out += line.get(kind, [])
    return out


def first_picture(cell: Cell) -> float | None:
    assert cell.measured is not None
    dec = rows_of(cell.measured, None if cell.treecast else 0, "dec")
    return min((r[1] for r in dec), default=None)


def raised(prefix: list[str] | None) -> list[str]:
    return [*(prefix or []), "nice", "-n", str(MEASURED_NICE)]


def crowd_sizes(n: int) -> list[int]:
    rest = n - 1
    return [min(CROWD_PER_PROCESS, rest - i) for i in range(0, rest, CROWD_PER_PROCESS)]


def had_picture(peer: Peer) -> bool:
    """A Treecast viewer has joined and shown a first picture (maybe since lost)."""
    return peer.last("first_frame") is not None


def start_treecast(s: BenchSession, cell: Cell, codec: str, place: Place) -> None:
    cell.treecast = True
    address, prefix = place.host()
    # Every peer of a loopback run comes from 127.0.0.1: lift the per-address caps.
    port = s.start_tracker(host=address, prefix=raised(prefix))
    tracker = f"{address}:{port}"
    fanout = ["--max-children", str(CAPPED_FANOUT)] if place.lan is not None else []
    codec_args = ["--codec", codec] if len(treecast_codecs()) > 1 else []
    address, prefix = place.host()
    cell.source = s.start_peer("source", "--stream", str(CLIP), "--loop", *codec_args,
                               *fanout, tracker=tracker, listen=f"{address}:0",
                               prefix=raised(prefix))
    require(wait_for(lambda: cell.source is not None and cell.source.last("stream_started"),
                       30), "treecast streamer did not start", s, [cell.source])
    common = ["--resolution", str(RESOLUTION), *fanout]
    if place.lan is None:
        # Started once each has had a picture, as a baseline's viewer is: whether they
        # all keep receiving is what the window measures (a viewer that lost its parent
        # counts as not delivered, not as a benchmark that could not start).
        cell.crowd = start_viewers(s, [f"v{i}" for i in range(cell.n - 1)], *common,
                                   streamer=cell.source, module="bench.probe",
                                   timeout=START_TIMEOUT_S + 3 * cell.n, ready=had_picture,
                                   partial=True)
    else:
        for i in range(cell.n - 1):  # a few at a time, like start_viewers
            require(wait_for(lambda: sum(not v.last("ready") for v in cell.crowd) < 4, 30),
                    "treecast viewers do not start", s, cell.crowd)
            address, prefix = place.host()
            cell.crowd.append(s.start_peer(f"v{i}", "--watch", *common, tracker=tracker,
                                           listen=f"{address}:0", prefix=prefix,
                                           module="bench.probe"))
    if place.lan is None:  # restarted, like the crowd, if the busy tracker timed it out
        cell.measured = start_viewers(s, ["measured"], "--probe-decode", *common,
                                      streamer=cell.source, module="bench.probe",
                                      timeout=START_TIMEOUT_S, nice=MEASURED_NICE,
                                      ready=had_picture, partial=True)[0]
    else:
        address, prefix = place.host()
        cell.measured = s.start_peer("measured", "--watch", "--probe-decode", *common,
                                     tracker=tracker, listen=f"{address}:0",
                                     prefix=raised(prefix), module="bench.probe")
    cell.measured_started = started_at(cell.measured.proc.pid)


def start_baseline(s: BenchSession, cell: Cell, place: Place) -> None:
    if cell.system == "client-server":
        module, hub_args, source_args = ("bench.baselines.client_server", ["--role", "server"],
                                         ["--role", "streamer", "--clip", str(CLIP)])
    else:
        codec = cell.system.split("-", 1)[1]
        module, hub_args, source_args = ("bench.baselines.webrtc",
                                         ["--role", "sender", "--clip", str(CLIP),
                                          "--codec", codec], [])
    duration = ["--duration", f"{PROCESS_LIMIT_S:g}"]
    address, prefix = place.host()
    hub = s.start_peer("hub", *hub_args, *duration, tracker="-", module=module,
                       listen=f"{address}:0", prefix=raised(prefix))
    require(wait_for(lambda: hub.last("ready"), 30), f"{cell.system}: no hub", s, [hub])
    target = f"{address}:{(hub.last('ready') or {})['port']}"
    if source_args:  # client-server: a streamer process feeds the server
        address, prefix = place.host()
        cell.server = hub
        cell.source = s.start_peer("source", *source_args, *duration, tracker=target,
                                   module=module, listen=f"{address}:0",
                                   prefix=raised(prefix))
    else:
        cell.source = hub
    role = ["--role", "viewer" if cell.system == "client-server" else "receiver"]
    for i, size in enumerate(crowd_sizes(cell.n)):
        address, prefix = place.host()
        cell.crowd.append(s.start_peer(f"crowd{i}x{size}", *role, "--viewers", str(size),
                                       *duration, tracker=target, module=module,
                                       listen=f"{address}:0", prefix=prefix))
    address, prefix = place.host()
    decode = ["--decode"] if cell.system == "client-server" else []
    cell.measured = s.start_peer("measured", *role, "--viewers", "1", *decode, *duration,
                                 tracker=target, module=module, listen=f"{address}:0",
                                 prefix=raised(prefix))
    cell.measured_started = started_at(cell.measured.proc.pid)


def everyone_receives(cell: Cell) -> bool:
    if cell.treecast and cell.source is not None:
        stream_alive(cell.source)
    for peer, index in cell.viewers():
        if peer.proc.poll() is not None:
            raise BenchError(f"{cell.system}: viewer {peer.name} exited ({peer.proc.poll()})")
        if not rows_of(peer, index, "recv"):
            return False
    return first_picture(cell) is not None


def run_cell(system: str, n: int, place: Place, warmup: float, window: float
             ) -> dict[str, Any]:
    cell = Cell(system, n)
    load = os.getloadavg()[0]
    with bench_session() as s:
        if system.startswith("treecast-"):
            start_treecast(s, cell, system.split("-", 1)[1], place)
        else:
            start_baseline(s, cell, place)
        # (Treecast's starter has waited for its viewers already, on loopback.)
        allowance = 10.0 if cell.treecast and place.lan is None else START_TIMEOUT_S + n
        if not wait_for(lambda: everyone_receives(cell), allowance, 0.25):
            # Measured anyway: a viewer that never got going is one that gets nothing.
            cell.no_picture = sum(1 for p, i in cell.viewers() if not rows_of(p, i, "recv"))
            require(cell.no_picture < n, f"{system} N={n}: no viewer got a picture in time",
                    s, [p for p, _ in cell.viewers()][-1:])
            print(f"  {system} N={n}: {cell.no_picture} viewers without a picture after "
                  "the start allowance; measured as they are", flush=True)
        time.sleep(warmup)
        assert cell.source is not None and cell.measured is not None
        pids = {"source": cell.source.proc.pid, "viewer": cell.measured.proc.pid}
        if cell.server is not None:
            pids["server"] = cell.server.proc.pid
        pids.update({f"crowd:{p.name}": p.proc.pid for p in cell.crowd})
        meter = CpuMeter(pids).start()
        t0 = time.time()
        time.sleep(window)
        t1 = time.time()
        cpu = meter.stop()
        time.sleep(GRACE_S + 1.2)  # late frames, and every process's next report
        if cell.treecast:
            stream_alive(cell.source)
        return measure(cell, t0, t1, cpu, load)


# --- figures ------------------------------------------------------------------------


def produced_in(cell: Cell, t0: float, t1: float) -> set[int]:
    """Sequence numbers of the frames the source captured in [t0, t1]."""
    assert cell.source is not None
    if not cell.treecast:
        return {seq for line in cell.source.all("produced") for seq, captured in line["frames"]
                if t0 <= captured <= t1}
    # The Treecast streamer numbers every frame it sends; no per-frame report, so the
    # range spanned by what any viewer got of that window (a frame nobody got at either
    # end of the window would be missed: at most a frame of 240).
    seqs = [r[0] for peer, _ in cell.viewers() for r in rows_of(peer, None, "recv")
            if t0 <= r[2] <= t1]
    return set(range(min(seqs), max(seqs) + 1)) if seqs else set()


def rate_kbit(peer: Peer | None, key: str, t0: float, t1: float) -> float | None:
    """A running byte total's rate over the reports inside [t0, t1] (± one report)."""
    if peer is None:
        return None
    events = [e for e in peer.all("stats") if key in e]
    inside = [e for e in events if t0 - 1.0 <= e["t"] <= t1 + 1.0]
    if len(inside) < 2 or inside[-1]["t"] <= inside[0]["t"]:
        return None
    a, b = inside[0], inside[-1]
    return (b[key] - a[key]) * 8 / 1000 / (b["t"] - a["t"])


def viewer_layer(peer: Peer, t0: float, t1: float) -> int | None:
    """The layer most often arriving at a Treecast viewer over the window."""
    layers = [e.get("layer_in") for e in peer.all("stats") if t0 <= e["t"] <= t1]
    layers = [x for x in layers if x]
    return statistics.mode(layers) if layers else None


def counted(peer: Peer, key: str, t0: float, t1: float) -> float:
    """How much a running total grew over the reports inside [t0, t1] (0 if absent)."""
    events = [e for e in peer.all("stats") if t0 - 1.0 <= e["t"] <= t1 + 1.0]
    if len(events) < 2:
        return 0.0
    return float(events[-1].get(key, 0) - events[0].get(key, 0))


def measure(cell: Cell, t0: float, t1: float, cpu: dict[str, float], load: float
            ) -> dict[str, Any]:
    produced = produced_in(cell, t0, t1)
    if not produced:
        raise BenchError(f"{cell.system} N={cell.n}: the source produced no frames in the "
                         "window")
    deadline = t1 + GRACE_S
    received_ms: list[float] = []
    per_viewer: list[dict[str, Any]] = []
    got_total = 0
    for peer, index in cell.viewers():
        got: dict[int, float] = {}
        for seq, arrival, captured, *_ in rows_of(peer, index, "recv"):
            if seq in produced and arrival <= deadline and seq not in got:
                got[seq] = (arrival - captured) * 1000
        got_total += len(got)
        lat = list(got.values())
        received_ms += lat
        per_viewer.append({"viewer": peer.name if index is None else f"{peer.name}/{index}",
                           "delivered": len(got) / len(produced) if produced else None,
                           "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)})
    assert cell.measured is not None
    dec = rows_of(cell.measured, None if cell.treecast else 0, "dec")
    decoded_ms = [(done - captured) * 1000 for seq, done, captured in dec
                  if seq in produced and done <= deadline]
    first = first_picture(cell)
    expected = len(produced) * cell.n
    delivered = got_total / expected if expected else None
    p95 = pct(received_ms, 95)
    server_kbit = rate_kbit(cell.server, "bytes_out", t0, t1)
    source_kbit = rate_kbit(cell.source, "bytes_out", t0, t1)
    viewer_kbit = rate_kbit(cell.measured, "bytes_in", t0, t1)
    holds = (delivered is not None and delivered >= HOLD_DELIVERED
             and p95 is not None and p95 <= HOLD_P95_MS)
    return {
        "system": cell.system, "n": cell.n, "window_s": t1 - t0, "produced": len(produced),
        "source_fps": len(produced) / (t1 - t0),
        "viewer_layer": viewer_layer(cell.measured, t0, t1) if cell.treecast else RESOLUTION,
        "loadavg_1m_at_start": round(load, 2),
        "delivered": delivered,
        "delivered_min": min((v["delivered"] for v in per_viewer
                              if v["delivered"] is not None), default=None),
        "received_p50_ms": pct(received_ms, 50), "received_p95_ms": p95,
        "received_p95_ms_worst": max((v["p95_ms"] for v in per_viewer
                                      if v["p95_ms"] is not None), default=None),
        "decoded_p50_ms": pct(decoded_ms, 50), "decoded_p95_ms": pct(decoded_ms, 95),
        "decoded_fraction": (len({r[0] for r in dec if r[0] in produced}) / len(produced)
                             if produced else None),
        # WebRTC: decoded pictures whose barcode fails its check (a frame decoded against
        # a reference that was lost): the viewer saw a corrupt picture; not delivered.
        "corrupt_decoded": counted(cell.measured, "unreadable", t0, t1),
        # Treecast: viewers that lost their parent in the window (and re-joined): on an
        # overloaded machine, heartbeats and uplink checks fail and the tree churns.
        "no_picture_at_start": cell.no_picture,
        "parents_lost": (sum(1 for p in [*cell.crowd, cell.measured]
                             for e in p.all("parent_lost") if t0 <= e["t"] <= t1)
                         if cell.treecast else None),
        "source_kbit": source_kbit, "server_kbit": server_kbit,
        "busiest_upload_kbit": max((k for k in (source_kbit, server_kbit) if k is not None),
                                   default=None),
        "viewer_kbit": viewer_kbit,
        "source_cpu_pct": cpu.get("source"), "server_cpu_pct": cpu.get("server"),
        "viewer_cpu_pct": cpu.get("viewer"),
        # Every viewer process together: on this one machine they all share its cores
        # (a Treecast viewer relays; a baseline's viewer only receives).
        "all_viewers_cpu_pct": sum(v for k, v in cpu.items()
                                   if k == "viewer" or k.startswith("crowd:")),
        "first_picture_s": None if first is None else first - cell.measured_started,
        "holds": holds,
        "per_viewer": per_viewer,
    }


def failed_row(system: str, n: int, reason: str) -> dict[str, Any]:
    return {"system": system, "n": n, "holds": False, "failed": reason, "delivered": None}


# --- the run ------------------------------------------------------------------------


def ramp(systems: Sequence[str], counts: Sequence[int], warmup: float, window: float,
         capped: bool, cap_kbit: int | None) -> list[dict[str, Any]]:
    """Every system at every N, interleaved: N outer, systems inner."""
    rows: list[dict[str, Any]] = []
    collapsed: dict[str, int] = {}
    for n in counts:
        for system in systems:
            if system in collapsed:
                reason = f"not run: collapsed at N={collapsed[system]}"
                rows.append({**failed_row(system, n, reason), "skipped": True})
                continue
            hosts = n + 4
            started = time.monotonic()
            try:
                with placed(capped, hosts, cap_kbit) as place:
                    row = run_cell(system, n, place, warmup, window)
            except BenchError as exc:
                row = failed_row(system, n, str(exc).splitlines()[0])
                print(f"  {system} N={n}: failed: {exc}", flush=True)
            row["capped"] = capped
            row["cell_s"] = round(time.monotonic() - started, 1)
            rows.append(row)
            if (row.get("failed") or (row["delivered"] or 0) < COLLAPSED
                    or (row.get("received_p95_ms") or 0) > COLLAPSED_P95_MS):
                collapsed[system] = n
            print(f"{'capped ' if capped else ''}{system} N={n}: {summary(row)}", flush=True)
    return rows


def summary(row: dict[str, Any]) -> str:
    if row.get("failed"):
        return str(row["failed"])

    def num(key: str, scale: float = 1.0) -> float:
        value = row.get(key)
        return math.nan if value is None else value * scale

    return (f"delivered {num('delivered', 100):.1f} %, received p50/p95 "
            f"{num('received_p50_ms'):.0f}/{num('received_p95_ms'):.0f} ms, decoded p50 "
            f"{num('decoded_p50_ms'):.0f} ms, busiest upload "
            f"{num('busiest_upload_kbit', 1e-3):.1f} Mbit/s ({row['cell_s']} s)")


def breaks(rows: Sequence[dict[str, Any]], systems: Sequence[str]) -> dict[str, Any]:
    """Per system: the largest N it held and the first N where it broke (None: never)."""
    out = {}
    for system in systems:
        mine = sorted((r for r in rows if r["system"] == system and not r.get("skipped")),
                      key=lambda r: r["n"])
        broke = next((r["n"] for r in mine if not r["holds"]), None)
        held = [r["n"] for r in mine if r["holds"] and (broke is None or r["n"] < broke)]
        # Held again above the break (a load spike broke a smaller N): said, not hidden.
        again = [r["n"] for r in mine if r["holds"] and broke is not None and r["n"] > broke]
        out[system] = {"holds_up_to": max(held, default=None), "breaks_at": broke,
                       "holds_again_at": again}
    return out


def render(rows: Sequence[dict[str, Any]]) -> str:
    """Two tables: what viewers get, and what it costs."""
    def pc(x: float | None) -> float | None:
        return None if x is None else 100 * x

    def mbit(x: float | None) -> float | None:
        return None if x is None else x / 1000

    def verdict(r: dict[str, Any]) -> str:
        if r.get("failed"):
            return str(r["failed"])[:44]
        late = r.get("no_picture_at_start")
        return ("yes" if r["holds"] else "no") + (f" ({late} had no picture)" if late else "")

    quality = table(
        ["system", "N", "load", "source fps", "delivered %", "worst viewer %", "recv p50 ms",
         "recv p95 ms", "worst p95 ms", "decoded p50 ms", "decoded p95 ms", "parents lost",
         "holds"],
        [[r["system"], r["n"], r.get("loadavg_1m_at_start"), r.get("source_fps"),
          pc(r.get("delivered")),
          pc(r.get("delivered_min")), r.get("received_p50_ms"), r.get("received_p95_ms"),
          r.get("received_p95_ms_worst"), r.get("decoded_p50_ms"), r.get("decoded_p95_ms"),
          r.get("parents_lost"), verdict(r)] for r in rows],
        ["", "d", ".0f", ".1f", ".1f", ".1f", ".0f", ".0f", ".0f", ".0f", ".0f", "d", ""])
    cost = table(
        ["system", "N", "source Mbit/s", "server Mbit/s", "per viewer Mbit/s", "layer",
         "source CPU %", "server CPU %", "viewer CPU %", "all viewers CPU %",
         "first picture s"],
        [[r["system"], r["n"], mbit(r.get("source_kbit")), mbit(r.get("server_kbit")),
          mbit(r.get("viewer_kbit")), r.get("viewer_layer"), r.get("source_cpu_pct"),
          r.get("server_cpu_pct"), r.get("viewer_cpu_pct"), r.get("all_viewers_cpu_pct"),
          r.get("first_picture_s")] for r in rows if not r.get("failed")],
        ["", "d", ".2f", ".1f", ".2f", "d", ".0f", ".0f", ".0f", ".0f", ".1f"])
    return quality + "\n\n" + cost


def mjpeg_stream_kbit() -> float:
    """Treecast's MJPEG stream of the clip on the wire: what the cap is a multiple of."""
    import cv2

    from protocol import VideoFrame, encode

    capture = cv2.VideoCapture(str(CLIP), cv2.CAP_FFMPEG)
    sizes = []
    try:
        for seq in range(30):
            ok, image = capture.read()
            if not ok:
                break
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
            sizes.append(len(encode(VideoFrame(1, seq, time.time(), WIDTH, HEIGHT, RESOLUTION,
                                               jpeg.tobytes()))))
    finally:
        capture.release()
    return statistics.mean(sizes) * 8 * FPS / 1000


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 1, 4; short windows")
    parser.add_argument("--systems", nargs="+", default=None)
    parser.add_argument("--n", type=int, nargs="+", default=None)
    parser.add_argument("--capped", action="store_true", help="also on capped hosts")
    parser.add_argument("--no-loopback", action="store_true", help="capped hosts only")
    parser.add_argument("--plot", action="store_true", help="only redraw the plots")
    parser.add_argument("--markdown", action="store_true",
                        help="only print the doc tables and headline figures of --out "
                        "(refreshing its headlines from its rows)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.plot:
        return plot(args.out or RESULTS_DIR / "compare.json")
    if args.markdown:
        path = args.out or RESULTS_DIR / "compare.json"
        done = json.loads(path.read_text())
        if done.get("headlines") != headlines(done):  # derived from the rows: refresh
            done["headlines"] = headlines(done)
            path.write_text(json.dumps(done, indent=2) + "\n")
        print(markdown(done))
        return done
    sigterm_as_exit()
    systems = args.systems or all_systems()
    warmup, window = (QUICK_WARMUP_S, QUICK_WINDOW_S) if args.quick else (WARMUP_S, WINDOW_S)
    make_clip(CLIP)
    started = time.monotonic()
    result: dict[str, Any] = {
        "quick": args.quick, "source": f"{WIDTH}x{HEIGHT}", "fps": FPS, "clip": "test pattern, "
        "MJPEG AVI", "warmup_s": warmup, "window_s": window, "grace_s": GRACE_S,
        "hold": {"delivered_min": HOLD_DELIVERED, "p95_ms_max": HOLD_P95_MS},
        "systems": systems, **machine(), "command": "python -m bench.bench_compare "
        + " ".join(argv if argv is not None else __import__("sys").argv[1:]),
    }
    if not args.no_loopback:
        counts = args.n or (QUICK_COUNTS if args.quick else COUNTS)
        result["rows"] = ramp(systems, counts, warmup, window, False, None)
        result["breaks"] = breaks(result["rows"], systems)
        result["table"] = render(result["rows"])
        print(f"\nloopback, {WIDTH}x{HEIGHT} {FPS:g} fps clip\n{result['table']}")
        print(f"breaks: {result['breaks']}")
    if args.capped or args.no_loopback:
        from tests.support.netns import netns_unavailable

        reason = netns_unavailable()
        if reason is not None:
            result["capped"] = {"skipped": reason}
        else:
            kbit = mjpeg_stream_kbit()
            cap = round(CAP_FACTOR * kbit)
            counts = [n for n in (args.n or (QUICK_COUNTS if args.quick else CAPPED_COUNTS))
                      if n <= max(CAPPED_COUNTS)]
            rows = ramp(systems, counts, warmup, window, True, cap)
            result["capped"] = {"stream_kbit": kbit, "cap_kbit": cap, "cap_factor": CAP_FACTOR,
                                "fanout": CAPPED_FANOUT, "rows": rows,
                                "breaks": breaks(rows, systems), "table": render(rows)}
            print(f"\ncapped hosts: every upload {cap} kbit/s ({CAP_FACTOR:g} x the "
                  f"{kbit:.0f} kbit/s Treecast MJPEG stream)\n{result['capped']['table']}")
            print(f"breaks: {result['capped']['breaks']}")
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["headlines"] = headlines(result)
    result["minutes"] = round((time.monotonic() - started) / 60, 1)
    save("compare", result, args.out)
    return result


# --- what the docs quote ------------------------------------------------------------


def row(rows: Sequence[dict[str, Any]], system: str, n: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["system"] == system and r["n"] == n
                 and not r.get("failed")), None)


def share(x: float | None, y: float | None) -> float | None:
    return x / y if x and y else None


def headlines(result: dict[str, Any]) -> dict[str, Any]:
    """The README's ratios, computed from the rows (so the two cannot disagree)."""
    rows = result.get("rows", [])
    tree = next((s for s in result["systems"] if s.startswith("treecast-")), None)
    out: dict[str, Any] = {"treecast": tree}
    # Upload at the largest N both were measured at (64: the question), held or
    # not: a starved source sends fewer frames, hence fewer bits, so its frame rate and
    # the upload in streams (upload / what one viewer receives) go with it.
    both = [n for n in sorted({r["n"] for r in rows}, reverse=True)
            if tree and row(rows, tree, n) and row(rows, "client-server", n)]
    if tree and both:
        n = both[0]
        a, b = row(rows, tree, n), row(rows, "client-server", n)
        assert a is not None and b is not None
        out["upload"] = {"n": n, "treecast_source_mbit": a["source_kbit"] / 1000,
                         "client_server_server_mbit": b["server_kbit"] / 1000,
                         "ratio": b["server_kbit"] / a["source_kbit"],
                         "treecast_streams": share(a["source_kbit"], a.get("viewer_kbit")),
                         "client_server_streams": share(b["server_kbit"], b.get("viewer_kbit")),
                         "treecast_source_fps": a.get("source_fps"),
                         "client_server_source_fps": b.get("source_fps"),
                         "treecast_holds": a["holds"], "client_server_holds": b["holds"]}
    one = {s: row(rows, s, 1) for s in result["systems"]}
    if tree and one.get(tree):
        glass = {"treecast_decoded_p50_ms": one[tree]["decoded_p50_ms"],  # type: ignore[index]
                 "treecast_decoded_p95_ms": one[tree]["decoded_p95_ms"]}  # type: ignore[index]
        for s in ("webrtc-h264", "webrtc-vp8", "client-server"):
            if one.get(s):
                key = s.replace("-", "_")
                glass[f"{key}_decoded_p50_ms"] = one[s]["decoded_p50_ms"]  # type: ignore[index]
                glass[f"{key}_decoded_p95_ms"] = one[s]["decoded_p95_ms"]  # type: ignore[index]
        out["glass_to_glass_n1"] = glass
    out["breaks"] = result.get("breaks")
    if isinstance(result.get("capped"), dict):
        out["capped_breaks"] = result["capped"].get("breaks")
    return out


README_SYSTEMS = ("client-server", "webrtc-vp8", "webrtc-h264")


def readme_figures(h: dict[str, Any]) -> list[str]:
    """The bold figures of README's "How it compares", in order, from ``headlines``
    (tests/test_bench_compare_readme.py checks the README against the committed JSON)."""
    up, glass = h["upload"], h["glass_to_glass_n1"]
    out = [f"{up['n']} viewers", f"{up['treecast_source_mbit']:.1f} Mbit/s",
           f"{up['client_server_server_mbit']:.0f} Mbit/s", f"{up['ratio']:.0f}x",
           f"{glass['treecast_decoded_p50_ms']:.0f} ms",
           f"{glass['webrtc_vp8_decoded_p50_ms']:.0f} ms",
           f"{glass['webrtc_h264_decoded_p50_ms']:.0f} ms"]

    def verdict(b: dict[str, Any]) -> str:
        if b["breaks_at"] is None:
            return f"holds up to N = {b['holds_up_to']}"
        return f"breaks at N = {b['breaks_at']}"

    for key in ("breaks", "capped_breaks"):
        breaks_ = h.get(key) or {}
        out += [verdict(breaks_[s]) for s in (h["treecast"], *README_SYSTEMS) if s in breaks_]
    return out


def breaks_line(breaks_: dict[str, Any], where: str, counts: Sequence[int]) -> str:
    """One sentence per system: the largest N it held, the first N where it broke."""
    parts = []
    for system, b in breaks_.items():
        if b["breaks_at"] is None:
            parts.append(f"**{system}** holds at every N run (up to {max(counts)})")
        elif b["holds_up_to"] is None:
            parts.append(f"**{system}** holds at no N, breaks at **N = {b['breaks_at']}**")
        else:
            parts.append(f"**{system}** holds up to {b['holds_up_to']}, breaks at "
                         f"**N = {b['breaks_at']}**")
        if b.get("holds_again_at"):
            parts[-1] += f" (held again at {', '.join(map(str, b['holds_again_at']))})"
    return f"Where each breaks ({where}): " + "; ".join(parts) + "."


def markdown(result: dict[str, Any]) -> str:
    """The tables for docs/PERFORMANCE.md."""
    rows = result.get("rows", [])
    parts = [f"loopback ({result['command']}):", "", render(rows), "",
             breaks_line(result.get("breaks") or {}, "loopback",
                         sorted({r["n"] for r in rows}) or COUNTS), ""]
    if isinstance(result.get("capped"), dict) and result["capped"].get("rows"):
        c = result["capped"]
        parts += [f"capped hosts, every upload {c['cap_kbit'] / 1000:.1f} Mbit/s:", "",
                  render(c["rows"]), "",
                  breaks_line(c["breaks"], "capped", sorted({r["n"] for r in c["rows"]})), ""]
    parts.append(json.dumps(result.get("headlines"), indent=1))
    try:
        parts.append("README's bold figures, in order: "
                     + "; ".join(readme_figures(result["headlines"])))
    except KeyError as missing:  # a run of some systems only: no README figures
        parts.append(f"(no README figures: this run has no {missing})")
    return "\n".join(parts)


# --- plots --------------------------------------------------------------------------


def plot(path: Path) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result: dict[str, Any] = json.loads(path.read_text())
    panels = [("received_p95_ms", "capture to received p95 (ms)", True),
              ("decoded_p50_ms", "capture to decoded p50 (ms)", True),
              ("busiest_upload_kbit", "busiest host's upload (Mbit/s)", True),
              ("delivered", "delivered (%)", False)]
    outputs = [("rows", DOCS / "bench-compare.png", "loopback")]
    if isinstance(result.get("capped"), dict) and result["capped"].get("rows"):
        outputs.append(("capped", DOCS / "bench-compare-capped.png", "capped hosts"))
    for key, out, title in outputs:
        rows = result[key] if key == "rows" else result["capped"]["rows"]
        fig, axes = plt.subplots(1, len(panels), figsize=(18, 4.2))
        for ax, (field_name, label, log) in zip(axes, panels, strict=True):
            for system in result["systems"]:
                points = [(r["n"], r.get(field_name)) for r in rows
                          if r["system"] == system and r.get(field_name) is not None]
                if not points:
                    continue
                xs, ys = zip(*points, strict=True)
                if field_name == "delivered":
                    ys = tuple(100 * y for y in ys)
                if field_name == "busiest_upload_kbit":
                    ys = tuple(y / 1000 for y in ys)
                ax.plot(xs, ys, marker="o", label=system)
            ax.set_xscale("log", base=2)
            ax.set_xticks(COUNTS, [str(n) for n in COUNTS])
            if log:
                ax.set_yscale("log")
            if field_name == "received_p95_ms":
                ax.axhline(HOLD_P95_MS, color="grey", linestyle="--", linewidth=1)
            if field_name == "delivered":
                ax.axhline(100 * HOLD_DELIVERED, color="grey", linestyle="--", linewidth=1)
            ax.set_xlabel("viewers N")
            ax.set_title(label, fontsize=10)
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Treecast vs client-server vs WebRTC (aiortc), {title}, "
                     f"{result['source']} {result['fps']:g} fps")
        fig.tight_layout()
        fig.savefig(out, dpi=90)
        plt.close(fig)
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
