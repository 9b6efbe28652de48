"""A headless peer (treecast-peer) for the app's real-process tests, its JSON events
read as they come, ended by its pid when the test ends."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from peer.gui.screenshots import ROOT, subprocess_env
from tests.support.procs import end_process


@contextlib.contextmanager
def live_peer(*cli_args: str, stdin: bool = False
              ) -> Iterator[tuple[subprocess.Popen[str], list[dict[str, Any]]]]:
    """``python -m peer.node.cli *cli_args --events -``; yields (process, events)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "peer.node.cli", *cli_args, "--events", "-"],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env=subprocess_env(), cwd=ROOT,
    )
    events: list[dict[str, Any]] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends at EOF when the process exits
            if line.startswith("{"):
                events.append(json.loads(line))

    reader = threading.Thread(target=read, name="test-peer-events")
    reader.start()
    try:
        yield proc, events
    finally:
        end_process(proc)
        reader.join(10)
