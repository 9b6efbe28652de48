"""The tracker is no single point of failure (issue 14), with real processes on
127.0.0.1: ``kill -9`` and a restart of the tracker under a live stream, a streamer
frozen with SIGSTOP, and two trackers on one Redis losing either tracker and Redis.
Waits are on events; the sleeps here are the outages themselves (how long the
tracker is dead, how long the streamer is frozen)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from tests.support.procs import PYTHON, Peer, Session, session, wait_for
from tests.support.redis_server import REDIS_SERVER, redis_server

PATTERN = ("--test-pattern", "320x240", "--fps", "10")
STATS_INTERVAL_S = 1.0  # a headless peer's stats events


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_tracker_at(s: Session, port: int, *extra: str) -> subprocess.Popen[str]:
    """A tracker on a fixed port (a restart must come back where peers look)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "tracker", "--host", "127.0.0.1", "--port", str(port), "--no-mdns",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    s.procs.append(proc)  # ended by the session, by pid
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return proc


def _room_size(port: int, room: str = "lobby") -> int:
    """Peers registered in ``room``, from ``treecast-tracker --status``."""
    result = subprocess.run([PYTHON, "-m", "tracker", "--status", f"127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=10)
    for line in result.stdout.splitlines():
        if line.startswith(f"room {room}: "):
            return int(line.split(": ", 1)[1].split(" ", 1)[0])
    return 0


def _frames(peer: Peer) -> int:
    stats = peer.last("stats")
    return int(stats["frames"]) if stats else 0


def _stalls(peer: Peer, t0: float, t1: float) -> list[tuple[float, float]]:
    """Stats intervals (about 1 s each) between t0 and t1 in which no frame arrived."""
    samples = [e for e in peer.all("stats") if t0 <= e["t"] <= t1]
    return [(a["t"], b["t"]) for a, b in itertools.pairwise(samples)
            if b["frames"] <= a["frames"]]


def _own_start(peer: Peer) -> dict[str, Any] | None:
    ready = peer.last("ready")
    return next((e for e in peer.all("stream_started")
                 if ready is not None and e["streamer_id"] == ready["id"]), None)


def test_kill_9_and_restart_of_the_tracker_costs_no_broadcast() -> None:
    port = _free_port()
    tracker = f"127.0.0.1:{port}"
    with session() as s:
        first = _start_tracker_at(s, port)
        streamer = s.start_peer("streamer", *PATTERN, tracker=tracker)
        assert wait_for(lambda: _own_start(streamer), 30)
        epoch = _own_start(streamer)["epoch"]  # type: ignore[index]
        viewers = [s.start_peer(f"v{i}", "--watch", "--resolution", "360", tracker=tracker)
                   for i in range(8)]
        assert wait_for(lambda: all(_frames(v) > 10 for v in viewers), 90)
        assert wait_for(lambda: _room_size(port) == 9, 20)

        killed_at = time.time()
        first.kill()  # kill -9: no goodbye, no state written anywhere
        first.wait()
        late = s.start_peer("late", "--watch", "--resolution", "360", tracker=tracker)
        time.sleep(1.0)  # the outage
        _start_tracker_at(s, port)
        restarted_at = time.time()

        # Every peer registered again within 5 s (and the late one joins the room).
        assert wait_for(lambda: _room_size(port) == 10, 5.0), _room_size(port)
        # The viewer started during the outage joins within 2 s of the restart.
        assert wait_for(lambda: late.last("joined"), 2.0)
        assert late.last("joined")["t"] - restarted_at <= 2.0  # type: ignore[index]
        # The broadcast never stopped: same streamer, same epoch, frames all along.
        assert wait_for(lambda: all(len([e for e in v.all("stats") if e["t"] > restarted_at])
                                    >= 3 for v in viewers), 20)
        for viewer in viewers:
            assert _stalls(viewer, killed_at - 1, restarted_at + 3) == [], viewer.name
            assert not viewer.all("stream_ended"), viewer.name
        assert not streamer.all("stream_ended")
        assert len(streamer.all("stream_started")) == 1
        # A stream started now gets a higher epoch than any before the restart.
        other = s.start_peer("other", *PATTERN, "--room", "other", tracker=tracker)
        assert wait_for(lambda: _own_start(other), 30)
        assert _own_start(other)["epoch"] > epoch  # type: ignore[index]


def test_a_streamer_frozen_for_5_s_streams_again_within_2_s() -> None:
    with session() as s:
        s.start_tracker()
        streamer = s.start_peer("streamer", *PATTERN)
        assert wait_for(lambda: _own_start(streamer), 30)
        viewers = [s.start_peer(f"v{i}", "--watch", "--resolution", "360") for i in range(3)]
        assert wait_for(lambda: all(_frames(v) > 10 for v in viewers), 60)
        os.kill(streamer.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(5.0)  # the freeze
        finally:
            os.kill(streamer.proc.pid, signal.SIGCONT)
        resumed_at = time.time()
        counts = {v.name: _frames(v) for v in viewers}
        # Frames reach every viewer again within 2 s: the lease's grace kept the lock,
        # the streamer never stopped, the viewers re-attached. Frames are counted in
        # 1 s stats samples, so the first sample that shows new ones may come up to one
        # interval after they arrived.
        def receiving_again(viewer: Peer) -> float | None:
            return next((e["t"] - resumed_at for e in viewer.all("stats")
                         if e["t"] > resumed_at and e["frames"] > counts[viewer.name]),
                        None)

        assert wait_for(lambda: all(receiving_again(v) is not None for v in viewers), 10)
        assert all(receiving_again(v) <= 2.0 + STATS_INTERVAL_S  # type: ignore[operator]
                   for v in viewers), {v.name: receiving_again(v) for v in viewers}
        assert not streamer.all("stream_ended")
        assert len(streamer.all("stream_started")) == 1


class _LockWatch:
    """Polls every tracker's status in a thread: who holds the lock, with which epoch."""

    def __init__(self, ports: list[int]) -> None:
        import threading
        self.samples: list[tuple[float, int, str | None, int]] = []
        self._ports = ports
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        from tracker.status import StatusError, query_status
        while not self._stop.is_set():
            for port in self._ports:
                try:
                    status = asyncio.run(query_status("127.0.0.1", port, timeout=1.0))
                except StatusError:
                    continue  # that tracker is down right now
                for room in status.rooms:
                    if room.room == "lobby":
                        self.samples.append((time.time(), port, room.streamer_name,
                                             room.epoch))
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
@pytest.mark.parametrize("victim", ["streamer's tracker", "other tracker"])
def test_two_trackers_on_redis_survive_a_kill_9_and_a_redis_restart(victim: str) -> None:
    with redis_server() as redis, session() as s:
        ports = [_free_port(), _free_port()]
        procs = [_start_tracker_at(s, port, "--store", redis.url) for port in ports]
        a, b = (f"127.0.0.1:{port}" for port in ports)
        streamer = s.start_peer("streamer", *PATTERN, tracker=f"{a},{b}")
        assert wait_for(lambda: _own_start(streamer), 30)
        viewers = [s.start_peer(f"v{i}", "--watch", "--resolution", "360",
                                tracker=f"{a},{b}" if i < 2 else f"{b},{a}")
                   for i in range(4)]
        assert wait_for(lambda: all(_frames(v) > 10 for v in viewers), 90)
        # One room across both trackers: each lists all five.
        assert wait_for(lambda: _room_size(ports[0]) == _room_size(ports[1]) == 5, 20)
        watch = _LockWatch(ports)
        assert wait_for(lambda: {p for _, p, _, _ in watch.samples} == set(ports), 10)
        try:
            dead = 0 if victim == "streamer's tracker" else 1
            killed_at = time.time()
            procs[dead].kill()  # kill -9
            procs[dead].wait()
            alive = ports[1 - dead]
            # Its peers move to the other tracker.
            assert wait_for(lambda: _room_size(alive) == 5, 15), _room_size(alive)
            assert wait_for(lambda: all(len([e for e in v.all("stats")
                                             if e["t"] > killed_at + 4]) >= 1
                                        for v in viewers), 20)
            # Redis restarts (empty): nobody's broadcast ends.
            restarted_at = time.time()
            redis.restart()
            assert wait_for(lambda: _room_size(alive) == 5, 15)
            assert wait_for(lambda: all(len([e for e in v.all("stats")
                                             if e["t"] > restarted_at + 4]) >= 1
                                        for v in viewers), 20)
        finally:
            watch.stop()
        for viewer in viewers:
            assert _stalls(viewer, killed_at - 1, time.time()) == [], viewer.name
            assert not viewer.all("stream_ended"), viewer.name
        assert not streamer.all("stream_ended")
        # Never two holders, and epochs only rise, in every tracker's view.
        holders = {name for _, _, name, _ in watch.samples if name is not None}
        assert holders == {"streamer"}, holders
        for port in ports:
            epochs = [e for _, p, name, e in watch.samples if p == port and name]
            assert epochs == sorted(epochs) and len(set(epochs)) <= 1, epochs
        assert len({e for *_, e in watch.samples if e}) == 1  # one epoch all along
