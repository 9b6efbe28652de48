"""A real ``redis-server`` (Debian package redis-server) for tests and benchmarks:
on a free loopback port, no persistence, started and ended by pid.

    with redis_server() as server:      # skips/raises when redis-server is missing
        url = server.url                  # redis://127.0.0.1:PORT/0
        server.restart()                  # kill and start again on the same port (empty)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.procs import end_process

REDIS_SERVER = shutil.which("redis-server")
_START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process (see module docs)."""

    def __init__(self, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install "
                               "redis-server; `make test` installs it)")
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)  # polling for the server to come up
        raise RuntimeError("redis-server did not answer within "
                           f"{_START_TIMEOUT_S:g} s on port {self.port}")

    def stop(self, *, kill: bool = False) -> None:
        """End the server by its pid (SIGKILL with ``kill``: no goodbye)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        end_process(proc, kill=kill)

    def restart(self) -> None:
        """Kill it and start an empty one on the same port (what a Redis restart
        without persistence looks like to its clients)."""
        self.stop(kill=True)
        self.start()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
