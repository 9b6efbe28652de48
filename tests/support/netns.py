"""Multi-host test harness: N hosts as network namespaces on one private bridge.

Layout of one ``Lan`` (``tag`` is unique per process and Lan, e.g. ``tc4242n0``)::

    netns <tag>br:  br0 (bridge, multicast snooping off)
                     |-- h0 ==veth== eth0 in netns <tag>h0  10.231.X.1/24
                     |-- h1 ==veth== eth0 in netns <tag>h1  10.231.X.2/24
                     ...

The bridge lives in its own namespace, so nothing is created, addressed or routed in the
root namespace: the hosts can reach each other and nothing else. Each host has ``lo``
up and one ``eth0`` with the multicast flag, which is all mDNS needs (zeroconf sets the
outgoing multicast interface itself, so no multicast route is required). Snooping is
off because nobody runs an IGMP querier on this bridge; with it on, a bridge may stop
flooding groups it has not seen reports for.

Usage in a test (the ``lan_hosts`` fixture is in tests/test_lan_hosts.py)::

    @pytest.mark.netns
    def test_something(lan_hosts):
        a, b = lan_hosts(2)
        proc = python(a, "-c", "print('hi')", stdout=subprocess.PIPE)

and outside pytest (benchmarks)::

    with Lan(4) as lan:
        cap_upload(lan.hosts[0], 2000)
        ...

Everything started through ``run_in`` / ``python`` / ``start_peer`` is killed (by pid,
then any process left in our namespaces) and every namespace is deleted on close, also
when the test fails; an ``atexit`` hook covers an interrupted run, and namespaces left by
a run that was SIGKILLed are deleted the next time a Lan is made.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# 10.231.0.0/16 is private (RFC 1918) and, being inside our own namespaces only, cannot
# clash with anything on the machine.
SUBNET = "10.231"
IP_TIMEOUT_S = 10.0
# Grace period for SIGTERM before SIGKILL at cleanup (lets peers send mDNS goodbyes).
TERM_GRACE_S = 3.0

_counter = itertools.count()
_STALE_NAME = re.compile(r"tc(\d+)n\d+(?:br|h\d+|r\d+)")  # r: natlab routers
_unavailable: str | None = None
_logs: dict[int, Path] = {}  # pid -> stderr log of processes started by python()
_checked = False


class NetnsError(RuntimeError):
    """An ``ip`` / ``tc`` command failed; the message carries its stderr."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=IP_TIMEOUT_S,
                          check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def netns_unavailable() -> str | None:
    """Why multi-host tests cannot run here, or None if they can (checked once)."""
    global _unavailable, _checked
    if _checked:
        return _unavailable
    _checked = True
    if not sys.platform.startswith("linux"):
        _unavailable = "network namespaces need Linux"
    elif os.geteuid() != 0:
        _unavailable = "network namespaces need root (run the netns tests as root)"
    elif shutil.which("ip") is None:
        _unavailable = "`ip` (iproute2) is not installed"
    else:
        probe = f"tc{os.getpid()}probe"
        try:
            _run(["ip", "netns", "add", probe])
            _run(["ip", "-n", probe, "link", "add", "b0", "type", "bridge"])
        except (NetnsError, OSError, subprocess.TimeoutExpired) as exc:
            _unavailable = f"`ip netns` does not work here: {exc}"
        finally:
            _run(["ip", "netns", "del", probe], check=False)
    return _unavailable


def _reap_stale_namespaces() -> None:
    """Delete namespaces of earlier harness runs whose process is gone (e.g. SIGKILLed).

    Only names in our exact format whose creating pid no longer exists: a live run's
    namespaces are never touched.
    """
    listing = _run(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = _STALE_NAME.fullmatch(name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            _run(["ip", "netns", "del", name], check=False)
        except PermissionError:
            pass  # alive (someone else's process)


@dataclass(eq=False)
class Host:
    """One host of a Lan: a network namespace with ``lo`` and ``eth0``.

    Attributes:
        netns: the namespace name (for ``ip netns exec``).
        index: position in the Lan (0-based).
        address: its IPv4 address on the Lan.
        iface: its interface on the Lan (where ``cap_upload`` shapes).
        lan: the Lan it belongs to.
    """

    netns: str
    index: int
    address: str
    lan: Lan
    iface: str = "eth0"

    def __str__(self) -> str:
        return f"{self.netns}({self.address})"


class Lan:
    """N hosts on a private bridge; a context manager that always cleans up.

    Args:
        n: number of hosts (1-250).

    Attributes:
        hosts: the hosts, ``hosts[i].address`` = 10.231.X.(i+1).
        tag: the prefix of every namespace name of this Lan.
        log_dir: where ``python()`` writes each process's stderr (removed at close).

    Raises:
        NetnsError: if a namespace or link cannot be made (everything made so far is
            removed again first).
    """

    def __init__(self, n: int) -> None:
        if not 1 <= n <= 250:
            raise ValueError("a Lan has 1-250 hosts")
        number = next(_counter)
        if number == 0:
            _reap_stale_namespaces()
        self.tag = f"tc{os.getpid()}n{number}"
        self.hosts: list[Host] = []
        self.bridge_netns = f"{self.tag}br"
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"treecast-{self.tag}-"))
        self._procs: list[subprocess.Popen[Any]] = []
        self._namespaces: list[str] = []
        self._closed = False
        atexit.register(self.close)
        try:
            self._build(n, subnet=f"{SUBNET}.{number % 250 + 1}")
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)

    def _build(self, n: int, subnet: str) -> None:
        br = self.bridge_netns
        self._add_netns(br)
        _run(["ip", "-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"])
        _run(["ip", "-n", br, "link", "set", "br0", "up"])
        for i in range(n):
            host = Host(netns=f"{self.tag}h{i}", index=i, address=f"{subnet}.{i + 1}", lan=self)
            self._add_netns(host.netns)
            # Create the pair inside the bridge's namespace with the far end placed in
            # the host's: no interface ever appears in the root namespace.
            _run(["ip", "-n", br, "link", "add", f"h{i}", "type", "veth",
                  "peer", "name", host.iface, "netns", host.netns])
            _run(["ip", "-n", br, "link", "set", f"h{i}", "master", "br0", "up"])
            _run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
            _run(["ip", "-n", host.netns, "addr", "add", f"{host.address}/24",
                  "dev", host.iface])
            _run(["ip", "-n", host.netns, "link", "set", host.iface, "multicast", "on", "up"])
            self.hosts.append(host)

    def __enter__(self) -> Lan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run_in(self, host: Host, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside ``host``'s namespace; it is killed at close."""
        if self._closed:
            raise NetnsError("this Lan is closed")
        popen_kwargs.setdefault("cwd", REPO_ROOT)
        # Its own process group, so cleanup can signal it and its children by id.
        popen_kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", host.netns, *argv], **popen_kwargs)
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Kill every process started here, then delete every namespace. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        running = [p for p in self._procs if p.poll() is None]
        for proc in running:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        for proc in self._procs:
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        for name in self._namespaces:
            # Anything still inside one of our namespaces was started by us (a child
            # that left its process group): kill it by pid so the namespace can go.
            pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for name in reversed(self._namespaces):
            _run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(self.log_dir, ignore_errors=True)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_in(host: Host, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` in ``host``'s namespace (``ip netns exec``); killed at cleanup.

    Args:
        host: where to run it.
        argv: the command.
        **popen_kwargs: passed to ``subprocess.Popen`` (cwd defaults to the repo root).

    Returns:
        The process (its pid is the command's: ``ip netns exec`` execs it).
    """
    return host.lan.run_in(host, argv, **popen_kwargs)


def python(host: Host, *args: str, **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Run the venv's Python (unbuffered) in ``host``; killed at cleanup.

    Unless ``stderr`` is given, it goes to a log file that ``stderr_tail`` reads for
    failure messages (a pipe nobody reads could fill up and block the child).
    """
    log_file = None
    if "stderr" not in popen_kwargs:
        path = host.lan.log_dir / f"{host.netns}-{len(host.lan._procs)}.log"
        log_file = popen_kwargs["stderr"] = path.open("wb")
    try:
        proc = run_in(host, [sys.executable, "-u", *args], **popen_kwargs)
    finally:
        if log_file is not None:
            log_file.close()  # the child has its own copy
    if log_file is not None:
        _logs[proc.pid] = Path(log_file.name)
    return proc


def stderr_tail(proc: subprocess.Popen[Any], chars: int = 2000) -> str:
    """The end of a ``python()`` process's stderr log (for assertion messages)."""
    path = _logs.get(proc.pid)
    if path is None:
        return ""
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


def cap_upload(host: Host, kbit: int, *, burst_bytes: int | None = None,
               latency_ms: int = 200) -> None:
    """Limit what ``host`` can send onto the Lan (its upload) with a token bucket.

    Args:
        host: the host to shape (its ``eth0`` egress).
        kbit: rate in kbit/s.
        burst_bytes: bucket size; default 20 ms worth, at least a few full frames.
        latency_ms: how long a packet may wait in the queue before it is dropped.
    """
    burst = burst_bytes or max(kbit * 1000 // 8 // 50, 4 * 1514)
    _run(["ip", "netns", "exec", host.netns, "tc", "qdisc", "replace", "dev", host.iface,
          "root", "tbf", "rate", f"{kbit}kbit", "burst", str(burst),
          "latency", f"{latency_ms}ms"])


def uncap_upload(host: Host) -> None:
    """Lift ``cap_upload`` (the default queueing discipline comes back)."""
    _run(["ip", "netns", "exec", host.netns, "tc", "qdisc", "del", "dev", host.iface, "root"],
         check=False)


def partition(host: Host) -> None:
    """Cut ``host`` off the Lan: its port leaves the bridge (``heal`` plugs it back).

    The host's own ``eth0`` stays up with its address (no carrier change for the
    processes in it to react to): packets it sends simply reach nobody, as when a
    switch port or a Wi-Fi client is isolated.
    """
    _run(["ip", "-n", host.lan.bridge_netns, "link", "set", f"h{host.index}", "nomaster"])


def heal(host: Host) -> None:
    """Undo ``partition``: the host's port joins the bridge again."""
    _run(["ip", "-n", host.lan.bridge_netns, "link", "set", f"h{host.index}",
          "master", "br0"])


class JsonLines:
    """Reads JSON lines from a process's stdout (``stdout=subprocess.PIPE``) with deadlines.

    Lines that are not JSON objects are kept in ``other`` and otherwise ignored.
    """

    def __init__(self, proc: subprocess.Popen[Any]) -> None:
        assert proc.stdout is not None, "start the process with stdout=subprocess.PIPE"
        self.proc = proc
        self._fd = proc.stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buffer = b""
        self._cursor = 0
        self.lines: list[dict[str, Any]] = []
        self.other: list[str] = []
        self.eof = False

    def _pump(self, timeout: float) -> None:
        if self.eof:
            time.sleep(min(timeout, 0.05))
            return
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            if not selector.select(max(0.0, timeout)):
                return
        try:
            chunk = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.eof = True
        self._buffer += chunk
        *complete, self._buffer = self._buffer.split(b"\n")
        for raw in complete:
            text = raw.decode(errors="replace")
            try:
                value = json.loads(text)
            except ValueError:
                value = None
            if isinstance(value, dict):
                self.lines.append(value)
            elif text.strip():
                self.other.append(text)

    def next(self, predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
             timeout: float = 30.0) -> dict[str, Any]:
        """The next line (after those already returned) that satisfies ``predicate``.

        Raises:
            TimeoutError: none arrived in time or the process ended; the message shows
                the last lines and stderr to explain why.
        """
        start = self._cursor
        index, line = self._first(lambda: list(enumerate(self.lines))[start:],
                                  lambda item: predicate(item[1]), timeout, "line")
        self._cursor = index + 1
        return line

    def find(self, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 30.0) -> dict[str, Any]:
        """The first line ever read that satisfies ``predicate``, waiting for it if need be.

        Unlike ``next`` this neither uses nor moves the cursor: for conditions whose
        order relative to other lines is not known.

        Raises:
            TimeoutError: none arrived in time or the process ended.
        """
        return self._first(lambda: self.lines, predicate, timeout, "line")

    def _first(self, seen: Callable[[], list[Any]], predicate: Callable[[Any], bool],
               timeout: float, what: str) -> Any:
        """The first item of ``seen()`` (which grows as we read) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            items = seen()
            for item in items[checked:]:
                if predicate(item):
                    return item
            checked = len(items)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.eof and self.proc.poll() is not None):
                raise TimeoutError(
                    f"no matching {what} within {timeout} s (exit code {self.proc.poll()}); "
                    f"last lines: {self.lines[-3:]}; other output: {self.other[-3:]}; "
                    f"stderr: {stderr_tail(self.proc)}")
            self._pump(min(remaining, 0.2))

    def read_for(self, seconds: float) -> None:
        """Read whatever the process prints for ``seconds`` (into ``lines``)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self._pump(min(remaining, 0.2))

    def next_text(self, predicate: Callable[[str], bool], timeout: float = 30.0) -> str:
        """The first non-JSON line (e.g. a banner) that satisfies ``predicate``.

        Raises:
            TimeoutError: none arrived in time or the process ended.
        """
        text: str = self._first(lambda: self.other, predicate, timeout, "text line")
        return text


# --- Treecast processes ---------------------------------------------------------------


def first_of(readers: Sequence[JsonLines], predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
    """The first of several processes to print a line satisfying ``predicate``.

    Returns:
        (index of the reader, the line); lines are searched from the start as in
        ``JsonLines.find``.

    Raises:
        TimeoutError: no reader had one in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        for index, reader in enumerate(readers):
            with contextlib.suppress(TimeoutError):
                return index, reader.find(predicate, timeout=0.05)
        if time.monotonic() > deadline:
            raise TimeoutError(f"no matching line from any of {len(readers)} processes "
                               f"within {timeout} s")


def start_peer(host: Host, *cli_args: str, **popen_kwargs: Any) -> tuple[subprocess.Popen[Any],
                                                                        JsonLines]:
    """Run a headless peer (``treecast-peer``) in ``host``, reading its JSON events.

    Args:
        host: where to run it.
        *cli_args: its arguments, e.g. ``"--name", "a", "--lan", "--test-pattern"``;
            ``--events -`` is added.
        **popen_kwargs: passed on to ``subprocess.Popen``.

    Returns:
        The process and a reader of its event lines (``events.next(lambda e: ...)``).
    """
    popen_kwargs.setdefault("stdout", subprocess.PIPE)
    proc = python(host, "-m", "peer.node.cli", *cli_args, "--events", "-", **popen_kwargs)
    return proc, JsonLines(proc)


def start_tracker(host: Host, *cli_args: str) -> tuple[subprocess.Popen[Any], JsonLines, int]:
    """Run ``python -m tracker --port 0`` in ``host`` and wait for its port.

    Args:
        host: where to run it.
        *cli_args: more arguments (without ``--no-mdns`` it advertises itself by mDNS;
            ``tracker_advertised`` waits for that).

    Returns:
        The process, a reader of its stdout, and the port it listens on.
    """
    proc = python(host, "-m", "tracker", "--port", "0", *cli_args, stdout=subprocess.PIPE)
    lines = JsonLines(proc)
    banner = lines.next_text(lambda t: "listening on" in t, timeout=60)
    return proc, lines, int(banner.rsplit(":", 1)[1])


def wait_for_log(proc: subprocess.Popen[Any], text: str, timeout: float = 30.0) -> None:
    """Wait until ``text`` appears in a ``python()`` process's stderr log.

    Raises:
        TimeoutError: it did not appear in time or the process ended first.
    """
    deadline = time.monotonic() + timeout
    while text not in (log := stderr_tail(proc, 100_000)):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise TimeoutError(f"{text!r} not logged within {timeout} s (exit code "
                               f"{proc.poll()}); stderr: {log[-2000:]}")
        time.sleep(0.1)


def run_cli(host: Host, *cli_args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run ``treecast-peer`` in ``host`` to completion (e.g. ``--list``).

    Returns:
        (exit code, stdout, the end of stderr).

    Raises:
        subprocess.TimeoutExpired: it did not finish in time (it is killed at cleanup).
    """
    proc = python(host, "-m", "peer.node.cli", *cli_args, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace"), stderr_tail(proc)
