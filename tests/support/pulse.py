"""A private PulseAudio daemon with a null sink, for audio tests and benchmarks on
machines without a sound card. Whoever starts it ends it by its pid; clients find it
through PULSE_SERVER (the ALSA "pulse" plugin, which PortAudio uses, reads it; child
processes inherit it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SINK = "treecast_null"
DEVICE = "pulse"  # the PortAudio (ALSA) device that leads to the daemon


class PulseUnavailable(RuntimeError):
    """pulseaudio is missing or would not start here."""


@contextlib.contextmanager
def null_sink(directory: Path | None = None) -> Iterator[str]:
    """Run ``pulseaudio`` with one null sink; sets PULSE_SERVER/PULSE_SINK/PULSE_SOURCE
    (the sink's monitor, an input that hears what is played) in this
    process (restored after) and yields the PortAudio device name to play to.

    Raises:
        PulseUnavailable: with the reason.
    """
    daemon = shutil.which("pulseaudio")
    if daemon is None:
        raise PulseUnavailable("pulseaudio is not installed (apt-get install pulseaudio)")
    made = directory is None
    root = Path(tempfile.mkdtemp(prefix="treecast-pulse-")) if directory is None else directory
    runtime = root / "pulse"
    runtime.mkdir(exist_ok=True)
    socket = runtime / "native"
    env = dict(os.environ, PULSE_RUNTIME_PATH=str(runtime), XDG_RUNTIME_DIR=str(runtime),
               HOME=str(root))
    proc = subprocess.Popen(
        [daemon, "-n", "--daemonize=no", "--exit-idle-time=-1", "--disable-shm=yes",
         "-L", f"module-null-sink sink_name={SINK}",
         "-L", f"module-native-protocol-unix auth-anonymous=1 socket={socket}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE")}
    try:
        deadline = time.monotonic() + 10.0
        while not socket.exists():
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise PulseUnavailable(f"pulseaudio did not start: {err[-300:]}")
            if time.monotonic() > deadline:
                raise PulseUnavailable("pulseaudio did not create its socket within 10 s")
            time.sleep(0.02)  # polling for the socket file, not timing anything
        os.environ["PULSE_SERVER"] = f"unix:{socket}"
        os.environ["PULSE_SINK"] = SINK
        # What the sink plays is what a "microphone" on this server hears.
        os.environ["PULSE_SOURCE"] = f"{SINK}.monitor"
        yield DEVICE
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        if made:
            shutil.rmtree(root, ignore_errors=True)
