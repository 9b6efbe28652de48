"""Recording H.264 as received: container, duration, kill -9 and a full disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from peer.node.errors import MediaError
from peer.node.passthrough import H264Recorder

ROOT = Path(__file__).resolve().parent.parent
FPS = 30.0

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe (ffmpeg)")

# Encodes a moving picture and records it; shared by the in-process and subprocess tests.
WRITER = textwrap.dedent("""
    import cv2, numpy as np
    from peer.node.codecs.h264 import H264Encoder
    from peer.node.passthrough import H264Recorder

    def frames(count, width=320, height=180, keyframe_every=0):
        encoder = H264Encoder(width, height, 30.0, 400_000)
        rng = np.random.default_rng(3)
        for i in range(count):
            image = np.full((height, width, 3), 90, np.uint8)
            cv2.rectangle(image, (i * 3 % 280, 40), (i * 3 % 280 + 40, 80), (0, 0, 255), -1)
            image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
            force = bool(keyframe_every) and i % keyframe_every == 0
            yield (*encoder.encode(image, keyframe=force), i / 30.0)
""")


def run_writer(body: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    code = WRITER + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          **kwargs)  # type: ignore[call-overload]


def probe(path: Path) -> dict[str, object]:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60)
    data = json.loads(result.stdout)
    return {**data["streams"][0], "duration": data["format"].get("duration")}


def decodes_cleanly(path: Path, *, truncated: bool = False) -> bool:
    """ffmpeg decodes every frame without an error (the null muxer's timestamp notes
    aside); a file cut by a full disk may also end inside its last cluster."""
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60)
    allowed = ["non monotonically"] + (["File ended prematurely"] if truncated else [])
    errors = [line for line in result.stderr.splitlines()
              if not any(text in line for text in allowed)]
    return result.returncode == 0 and not errors


def write_in_process(path: Path, count: int, **kwargs: int) -> H264Recorder:
    namespace: dict[str, object] = {}
    exec(WRITER, namespace)  # the same frame generator the subprocess tests use
    recorder = H264Recorder(str(path), FPS)
    for data, keyframe, t in namespace["frames"](count, **kwargs):  # type: ignore[operator]
        recorder.write(data, keyframe=keyframe, width=320, height=180, captured_at=100.0 + t)
    recorder.close()
    return recorder


@pytest.mark.parametrize("name", ["rec.mkv", "rec.mp4"])
def test_recording_is_h264_with_the_recorded_duration(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    recorder = write_in_process(path, 90)
    info = probe(path)
    assert info["codec_name"] == "h264"
    assert (info["width"], info["height"]) == (320, 180)
    assert int(str(info["nb_read_frames"])) == 90 == recorder.frames_written
    assert abs(float(str(info["duration"])) - 3.0) <= 3.0 * 0.02
    assert decodes_cleanly(path)


def test_recording_starts_at_a_keyframe(tmp_path: Path) -> None:
    namespace: dict[str, object] = {}
    exec(WRITER, namespace)
    units = list(namespace["frames"](40, keyframe_every=20))  # type: ignore[operator]
    path = tmp_path / "late.mkv"
    with H264Recorder(str(path), FPS) as recorder:
        for data, keyframe, t in units[5:]:  # joined mid-GOP: frames 5-19 cannot decode
            recorder.write(data, keyframe=keyframe, width=320, height=180, captured_at=t)
    assert recorder.skipped == 15 and recorder.frames_written == 20
    assert int(str(probe(path)["nb_read_frames"])) == 20
    assert decodes_cleanly(path)


def test_unsupported_extension_is_refused() -> None:
    with pytest.raises(MediaError, match=r"only to \.mkv or \.mp4"):
        H264Recorder("/tmp/x.avi", FPS)


@pytest.mark.parametrize("name", ["killed.mkv", "killed.mp4"])
def test_killed_recording_still_plays(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    result = run_writer(f"""
        import os, signal
        recorder = H264Recorder({str(path)!r}, 30.0)
        for data, key, t in frames(90):
            recorder.write(data, keyframe=key, width=320, height=180, captured_at=t)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert result.returncode == -signal.SIGKILL, result.stderr
    info = probe(path)
    assert info["codec_name"] == "h264"
    # At most one cluster/fragment (CLUSTER_MS = 0.5 s = 15 frames) was still in memory.
    assert int(str(info["nb_read_frames"])) >= 90 - 16
    assert decodes_cleanly(path)


def test_full_disk_stops_with_a_clear_error_and_keeps_a_playable_file(tmp_path: Path) -> None:
    path = tmp_path / "full.mkv"
    limit = 120_000  # bytes: about 1.5 s of this video, then the "disk" is full
    result = run_writer(f"""
        import json, resource, signal
        from peer.node.errors import MediaError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
        recorder = H264Recorder({str(path)!r}, 30.0)
        outcome = {{"error": None}}
        for data, key, t in frames(600):
            try:
                recorder.write(data, keyframe=key, width=320, height=180, captured_at=t)
            except MediaError as exc:
                outcome = {{"error": str(exc), "written": recorder.frames_written}}
                break
        try:
            recorder.write(data, keyframe=key, width=320, height=180, captured_at=99.0)
        except MediaError as exc:
            outcome["after"] = str(exc)
        print(json.dumps(outcome))
    """)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["error"] is not None, "the size limit was never hit"
    assert outcome["error"].startswith(f"disk full while recording to {path}; recording stopped")
    assert "already closed" in outcome["after"]
    assert path.stat().st_size <= limit
    info = probe(path)
    assert info["codec_name"] == "h264"
    assert int(str(info["nb_read_frames"])) >= 15
    assert decodes_cleanly(path, truncated=True)
