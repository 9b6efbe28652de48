"""Shared fixtures. Qt runs offscreen in every test."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.pulse import PulseUnavailable, null_sink

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path_factory: pytest.TempPathFactory,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    # The app keeps its key under the user's config dir: tests must not touch the
    # real one (nor share a key between tests).
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


@pytest.fixture
def display() -> Iterator[str]:
    """A 640x360 Xvfb display of our own (ended by its pid afterwards).

    Xvfb picks a free display number itself (-displayfd), so parallel runs never race.
    """
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian: xvfb, in the Makefile's GUI packages)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                             "640x360x24", "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as numbers:  # one line, once the server accepts clients
            number = numbers.readline().strip()
        assert number.isdigit(), f"Xvfb did not start (exit {proc.poll()})"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def pulse_null_sink(tmp_path: Path) -> Iterator[str]:
    """A PulseAudio null sink for one test (tests/support/pulse.py); skips the test
    where pulseaudio cannot run."""
    try:
        with null_sink(tmp_path) as device:
            yield device
    except PulseUnavailable as exc:
        pytest.skip(str(exc))
