"""A private PulseAudio daemon with a null sink, for audio tests on machines without
a sound card. The test starts it and ends it by its pid; clients find it through
PULSE_SERVER (the ALSA "pulse" plugin, which PortAudio uses, reads it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SINK = "treecast_null"


@pytest.fixture
def pulse_null_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Start ``pulseaudio`` with one null sink; yields the PortAudio device name."""
    daemon = shutil.which("pulseaudio")
    if daemon is None:
        pytest.skip("pulseaudio is not installed (apt-get install pulseaudio)")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    socket = runtime / "native"
    env = dict(os.environ, PULSE_RUNTIME_PATH=str(runtime), XDG_RUNTIME_DIR=str(runtime),
               HOME=str(tmp_path))
    proc = subprocess.Popen(
        [daemon, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
         "-L", f"module-null-sink sink_name={SINK}",
         "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10.0
        while not socket.exists():
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.skip(f"pulseaudio did not start: {err[-300:]}")
            if time.monotonic() > deadline:
                pytest.fail("pulseaudio did not create its socket within 10 s")
            time.sleep(0.02)  # polling for the socket file, not timing anything
        monkeypatch.setenv("PULSE_SERVER", f"unix:{socket}")
        monkeypatch.setenv("PULSE_SINK", SINK)
        yield "pulse"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
