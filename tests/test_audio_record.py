"""The recording's audio track: Opus muxed as received, in sync with the H.264 picture,
and the sync measurement the benchmark relies on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from peer.node.audio.opus import OpusEncoder
from peer.node.audio.sync import measure
from peer.node.audio.tone import ToneSource, draw_flash, is_flash
from peer.node.codecs.h264 import H264Encoder
from peer.node.passthrough import H264Recorder

FPS = 30.0
T0 = 5000.0  # the root's clock at the first frame


def _record(path: Path, seconds: float, *, audio: bool = True, shift_s: float = 0.0,
            lose: frozenset[int] = frozenset()) -> H264Recorder:
    """Record the sync pattern as a node would receive it: frames and packets stamped on
    the root's clock; ``shift_s`` moves the sound, ``lose`` drops those packets."""
    video = H264Encoder(320, 180, FPS, 400_000)
    sound, tone = OpusEncoder(), ToneSource(FPS)
    recorder = H264Recorder(str(path), FPS, audio=audio)
    block = 0
    for index in range(round(seconds * FPS)):
        image = np.full((180, 320, 3), 70, np.uint8)
        if is_flash(index, FPS):
            draw_flash(image)
        data, keyframe = video.encode(image, keyframe=index == 0)
        recorder.write(data, keyframe=keyframe, width=320, height=180,
                       captured_at=T0 + index / FPS)
        while block * 0.02 < (index + 1) / FPS:
            packet = sound.encode(tone.read())
            if block not in lose:
                recorder.write_audio(packet, OpusEncoder.stamp(T0 + block * 0.02 + shift_s))
            block += 1
    recorder.close()
    return recorder


def test_recording_holds_both_tracks_in_sync(tmp_path: Path) -> None:
    path = tmp_path / "rec.mkv"
    recorder = _record(path, 4.0)
    assert recorder.audio_written >= 195
    report = measure(str(path)).steady(0.5)
    assert len(report.offsets) == 3
    assert max(abs(o) for o in report.offsets) < 0.002
    assert report.audio_gaps == []
    if shutil.which("ffprobe"):
        codecs = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                                 "stream=codec_name", "-of", "csv=p=0", str(path)],
                                capture_output=True, text=True, check=True).stdout.split()
        assert codecs == ["h264", "opus"]


def test_fragmented_mp4_carries_opus_too(tmp_path: Path) -> None:
    path = tmp_path / "rec.mp4"
    _record(path, 2.5)
    report = measure(str(path)).steady(0.5)
    assert len(report.offsets) == 2 and max(abs(o) for o in report.offsets) < 0.002


def test_the_measurement_sees_a_shifted_sound(tmp_path: Path) -> None:
    path = tmp_path / "late.mkv"
    _record(path, 3.5, shift_s=0.03)
    offsets = measure(str(path)).steady(0.5).offsets
    assert len(offsets) == 3
    assert all(abs(o - 0.03) < 0.002 for o in offsets), offsets


def test_lost_packets_show_as_gaps(tmp_path: Path) -> None:
    path = tmp_path / "gappy.mkv"
    _record(path, 3.0, lose=frozenset({70, 71, 72}))
    gaps = measure(str(path)).audio_gaps
    assert len(gaps) == 1
    at, length = gaps[0]
    assert at == pytest.approx(70 * 0.02 - 0.0025, abs=0.002)
    assert length == pytest.approx(0.06, abs=0.002)


def test_without_audio_there_is_no_sound_track(tmp_path: Path) -> None:
    path = tmp_path / "mute.mkv"
    recorder = _record(path, 1.5, audio=False)
    assert recorder.audio_written == 0
    report = measure(str(path))
    assert report.beeps == [] and report.audio_s == 0.0 and len(report.flashes) == 2
