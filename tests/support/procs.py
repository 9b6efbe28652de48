"""Start and watch Treecast processes (tracker, headless peers) for demos and benchmarks.

Every process started here is tracked by pid and ended by ``Session.close()``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

PYTHON = sys.executable


@dataclass
class Peer:
    """A running ``treecast-peer`` and the events it printed."""

    name: str
    proc: subprocess.Popen[str]
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def last(self, kind: str) -> dict[str, Any] | None:
        with self.lock:
            for event in reversed(self.events):
                if event.get("event") == kind:
                    return event
        return None

    def all(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("event") == kind]


class Session:
    """A tracker plus peers as child processes of this one."""

    def __init__(self, netns_prefix: Sequence[str] = ()) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.peers: dict[str, Peer] = {}
        self.tracker_port: int | None = None
        self._prefix = list(netns_prefix)

    def start_tracker(self, *extra: str, host: str = "127.0.0.1",
                      prefix: Sequence[str] | None = None) -> int:
        """Start a tracker (``prefix``, e.g. ``ip netns exec NS``, replaces the session's)."""
        proc = subprocess.Popen(
            # Every benchmark peer connects from one host: lift the per-address cap.
            [*self._argv_prefix(prefix), PYTHON, "-m", "tracker", "--host", host, "--port", "0",
             "--no-mdns", "--max-connections-per-address", "1024", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"tracker did not start: {line!r}")
        self.tracker_port = int(line.rsplit(":", 1)[1])
        return self.tracker_port

    def start_peer(self, name: str, *args: str, tracker: str | None = None,
                   stdin: bool = False, module: str = "peer.node.cli",
                   listen: str = "127.0.0.1:0", prefix: Sequence[str] | None = None,
                   stderr: Any = subprocess.PIPE) -> Peer:
        """Start a headless peer and collect its events.

        ``module`` may name another entry point with the same command line (e.g.
        ``bench.probe``); ``prefix`` replaces the session's (e.g. ``ip netns exec NS``);
        ``stderr`` is where its stderr goes (a pipe nobody reads can fill up: benchmarks
        pass a file).
        """
        tracker = tracker or f"127.0.0.1:{self.tracker_port}"
        argv = [*self._argv_prefix(prefix), PYTHON, "-m", module, "--name", name,
                "--tracker", tracker, "--listen", listen, "--events", "-", *args]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr,
                                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                text=True, bufsize=1)
        self.procs.append(proc)
        peer = Peer(name, proc)
        self.peers[name] = peer
        threading.Thread(target=self._pump, args=(peer,), daemon=True).start()
        return peer

    def _argv_prefix(self, prefix: Sequence[str] | None) -> list[str]:
        return list(self._prefix if prefix is None else prefix)

    @staticmethod
    def _pump(peer: Peer) -> None:
        assert peer.proc.stdout is not None
        for line in peer.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with peer.lock:
                peer.events.append(event)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        os.kill(self.peers[name].proc.pid, sig)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            end_process(proc, grace=deadline - time.monotonic(), signalled=True)
        self.procs.clear()


def end_process(proc: subprocess.Popen[Any], *, grace: float = 10.0, kill: bool = False,
                signalled: bool = False) -> None:
    """End ``proc`` by its pid: SIGTERM (SIGKILL with ``kill``: no goodbye), then
    SIGKILL if it has not exited within ``grace`` seconds; reaps it either way.
    ``signalled``: the caller has already sent the first signal (to many at once)."""
    if proc.poll() is not None:
        return
    if not signalled:
        if kill:
            proc.kill()
        else:
            proc.terminate()
    try:
        proc.wait(max(0.1, grace))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def session(netns_prefix: Sequence[str] = ()) -> Iterator[Session]:
    s = Session(netns_prefix)
    try:
        yield s
    finally:
        s.close()


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` every ``interval`` seconds until it is true or ``timeout``
    seconds have passed; returns whether it became true (tests assert on it, benchmarks
    ``require`` it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


__all__ = ["Peer", "Session", "session", "wait_for"]


def start_bare_chain(s: Session) -> tuple[Peer, Peer, Peer]:
    """A tracker, a streaming root (320x180 at 10 fps, one child) and two headless
    viewers as the scale benchmark runs them (tests/support/bare_peer.py), joined in a
    chain: root -> relay -> leaf. Returns (root, relay, leaf) once the leaf is at
    depth 2."""
    s.start_tracker()
    root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                        "--max-children", "1")
    assert wait_for(lambda: root.last("stream_started"), 30), root.events
    relay = s.start_peer("relay", "--watch", "--max-children", "1",
                         module="tests.support.bare_peer")
    assert wait_for(lambda: (relay.last("joined") or {}).get("depth") == 1, 30), \
        relay.events[-5:]
    leaf = s.start_peer("leaf", "--watch", "--max-children", "0",
                        module="tests.support.bare_peer")
    assert wait_for(lambda: (leaf.last("joined") or {}).get("depth") == 2, 30), \
        leaf.events[-5:]
    return root, relay, leaf
