"""Recording an H.264 stream end to end: real tracker, streamer and viewer processes.

The viewer records what it receives (``--record``): the file is H.264 as received
(ffprobe says h264), lasts as long as the recording ran, and a viewer killed with
SIGKILL leaves a file that still plays.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.procs import session, wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")]


def probe(path: Path) -> dict[str, object]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,nb_read_frames:format=duration", "-of", "json",
         str(path)], capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(result.stdout)
    return {**data["streams"][0], "duration": data["format"].get("duration")}


def plays(path: Path) -> bool:
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
                             "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    errors = [line for line in result.stderr.splitlines() if "non monotonically" not in line]
    return result.returncode == 0 and not errors


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_viewer_records_h264_as_received(tmp_path: Path, stop: str) -> None:
    path = tmp_path / "seen.mkv"
    with session() as s:
        s.start_tracker()
        streamer = s.start_peer("streamer", "--test-pattern", "640x360", "--fps", "30",
                                "--no-audio")
        assert wait_for(lambda: streamer.last("stream_started"), 30)
        viewer = s.start_peer("viewer", "--watch", "--resolution", "360", "--no-audio",
                              "--record", str(path))
        assert wait_for(lambda: viewer.last("first_frame"), 30), viewer.events[-5:]
        started = (viewer.last("first_frame") or {})["t"]
        # Record until the viewer has received 4 s of frames past its first picture.
        assert wait_for(lambda: (viewer.last("stats") or {}).get("frames", 0) >= 150, 30)
        stopped = time.time()
        s.kill("viewer", signal.SIGTERM if stop == "sigterm" else signal.SIGKILL)
        viewer.proc.wait(20)
    info = probe(path)
    assert info["codec_name"] == "h264"
    assert plays(path)
    recorded = stopped - started
    if stop == "sigterm":
        # Finished cleanly: the container says how long it is.
        assert abs(float(str(info["duration"])) - recorded) <= 0.02 * recorded + 0.1, \
            (info, recorded)
    else:
        # Killed: at most the last cluster (0.5 s) is missing.
        frames = int(str(info["nb_read_frames"]))
        assert frames >= (recorded - 0.6) * 30 * 0.9, (frames, recorded)
