"""``peer.node.cli`` under cProfile, switched on and off by signals (bench.viewer_cost).

SIGUSR1 starts profiling the event loop's thread, SIGUSR2 stops it and writes the
statistics to ``<tmp>/treecast-profile-<pid>.prof``. Between the two the peer runs as
usual: only a steady window is profiled, not the imports and the join.
"""

from __future__ import annotations

import cProfile
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from peer.node import cli


def profile_path(pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"treecast-profile-{pid}.prof"


def main() -> int:
    profiler = cProfile.Profile()

    def start(signum: int, frame: FrameType | None) -> None:
        profiler.enable()

    def stop(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        profiler.dump_stats(str(profile_path(os.getpid())))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
