"""Sound end to end: tracker and peer processes on loopback, playing into a null sink."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peer.node.audio.clip import write_sync_clip
from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow



def _audio(peer: Peer) -> dict:
    return (peer.last("stats") or {}).get("audio") or {}


def test_sound_crosses_a_relay_and_comes_back_after_the_relay_is_killed(
        pulse_null_sink: str) -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "15",
                            "--max-children", "1")
        assert wait_for(lambda: root.last("stream_started"), 30), root.proc.stderr
        relay = s.start_peer("relay", "--watch", "--max-children", "1")
        assert wait_for(lambda: relay.last("joined"), 30)
        leaf = s.start_peer("leaf", "--watch", "--resolution", "360",
                            "--audio-out", pulse_null_sink)
        assert wait_for(lambda: (leaf.last("joined") or {}).get("depth") == 2, 30), \
            leaf.events
        assert wait_for(lambda: _audio(leaf).get("kbps", 0) > 10
                        and _audio(leaf).get("delay_ms") is not None, 30), _audio(leaf)
        for peer in (root, relay, leaf):
            assert _audio(peer)["sound"] and _audio(peer)["loss_pct"] == 0.0, \
                (peer.name, _audio(peer))
        assert _audio(relay)["delay_ms"] is None  # a relay that does not play: no buffer
        s.kill("relay")
        assert wait_for(lambda: leaf.last("sound_resumed"), 30), leaf.events[-5:]
        resumed = leaf.last("sound_resumed")
        assert resumed is not None and resumed["gap_ms"] > 0
        assert wait_for(lambda: (leaf.last("stats") or {}).get("depth") == 1, 30)
        assert wait_for(lambda: _audio(leaf).get("sound"), 10)


def test_a_file_whose_sound_cannot_be_decoded_streams_its_picture_with_a_warning(
        tmp_path: Path) -> None:
    import os
    from fractions import Fraction

    import av
    import numpy as np

    path = tmp_path / "bad-sound.mkv"
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=15)
        video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
        sound = out.add_stream("libopus", rate=48000)
        sound.layout = "stereo"
        for index in range(30):
            frame = av.VideoFrame.from_ndarray(np.zeros((120, 160, 3), np.uint8),
                                               format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, 15)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for n in range(50):
            packet = av.Packet(bytes([0xFF, 0]) + os.urandom(40))
            packet.stream, packet.pts, packet.dts = sound, n * 960, n * 960
            packet.time_base = Fraction(1, 48000)
            out.mux(packet)
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--stream", str(path), "--loop")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        warning = root.last("error")
        assert warning is not None and not warning.get("fatal")
        assert "decodes to nothing; streaming the picture without sound" in warning["message"]
        viewer = s.start_peer("viewer", "--watch")
        assert wait_for(lambda: (viewer.last("stats") or {}).get("frames", 0) > 10, 30)
        assert not _audio(viewer).get("sound")


def test_a_file_without_sound_streams_as_before(tmp_path: Path) -> None:
    path = tmp_path / "silent.mp4"
    write_sync_clip(str(path), 2.0, audio_codec=None)
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--stream", str(path), "--loop")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        viewer = s.start_peer("viewer", "--watch")
        assert wait_for(lambda: (viewer.last("stats") or {}).get("frames", 0) > 10, 30)
        assert root.all("error") == []
        assert not _audio(viewer).get("sound")


def _peer_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peer.node.cli", "--name", "x",
                           "--tracker", "127.0.0.1:9", *args],
                          capture_output=True, text=True, timeout=60)


def test_a_missing_audio_track_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "one-track.mp4"
    write_sync_clip(str(path), 1.0)
    result = _peer_cli("--stream", str(path), "--audio-track", "3")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith(f"--audio-track 3: {path} has audio tracks 0-0")


def test_mic_without_camera_is_a_usage_error() -> None:
    result = _peer_cli("--test-pattern", "--mic")
    assert result.returncode == 2
    assert "--mic streams a microphone with --camera" in result.stderr


def test_a_viewer_records_the_sound_beside_the_picture_in_sync(tmp_path: Path) -> None:
    import os
    import signal

    from peer.node.audio.sync import measure

    clip, record = tmp_path / "clip.mkv", tmp_path / "leaf.mkv"
    write_sync_clip(str(clip), 12.0, width=320, height=180)
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--stream", str(clip), "--max-children", "1")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        relay = s.start_peer("relay", "--watch", "--max-children", "1")
        assert wait_for(lambda: relay.last("joined"), 30)
        leaf = s.start_peer("leaf", "--watch", "--record", str(record))
        assert wait_for(lambda: (leaf.last("joined") or {}).get("depth") == 2, 30)
        assert wait_for(lambda: (leaf.last("stats") or {}).get("frames", 0) > 4 * 30, 60)
        os.kill(leaf.proc.pid, signal.SIGTERM)  # finishes the file
        leaf.proc.wait(30)
    report = measure(str(record)).steady(1.0)
    assert len(report.offsets) >= 2, report
    # Both tracks are stamped from the streamer's capture clock: in sync in the file
    # whatever the network did (bound: the detectability threshold for sound early).
    assert max(abs(o) for o in report.offsets) < 0.045, report.offsets
    assert report.audio_gaps == [], report.audio_gaps


def test_a_named_output_device_that_does_not_exist_is_exit_2() -> None:
    result = _peer_cli("--watch", "--audio-out", "no-such-device")
    assert result.returncode == 2, result.stderr
    assert "cannot open audio output 'no-such-device'" in result.stderr
