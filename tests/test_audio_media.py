"""Audio sources, Opus, the capture pacer and the output device (on a null sink)."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from peer.node.audio.capture import AudioCapture, EncodedAudio
from peer.node.audio.clip import write_sync_clip
from peer.node.audio.format import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE
from peer.node.audio.jitter import AudioPacket
from peer.node.audio.opus import ENCODER_DELAY_S, AudioDecodeError, OpusDecoder, OpusEncoder
from peer.node.audio.output import AudioPlayer, DeviceOutput
from peer.node.audio.source import FileAudioSource, NoAudioError
from peer.node.audio.tone import ToneSource, beep_start_sample, is_flash
from peer.node.errors import MediaError


def _onsets(pcm: np.ndarray, threshold: int = 3000) -> list[int]:
    loud = np.flatnonzero(np.abs(pcm[:, 0].astype(np.int32)) > threshold)
    if not len(loud):
        return []
    return [int(loud[0])] + [int(b) for a, b in itertools.pairwise(loud)
                             if b - a > SAMPLE_RATE // 4]


def _read_all(source: FileAudioSource) -> np.ndarray:
    blocks = []
    while (block := source.read()) is not None:
        blocks.append(block)
    return np.concatenate(blocks)


# --- the tone ---------------------------------------------------------------------


@pytest.mark.parametrize("fps", [30.0, 25.0, 29.97, 60.0])
def test_beeps_start_on_the_flash_frames(fps: float) -> None:
    tone = ToneSource(fps)
    pcm = np.concatenate([tone.read() for _ in range(int(3.5 / FRAME_S))])
    flashes = [i for i in range(int(3.5 * fps)) if is_flash(i, fps)]
    assert len(flashes) == 4
    for k, (onset, frame) in enumerate(zip(_onsets(pcm, 100), flashes, strict=True)):
        # Found within the 1 ms fade-in of where the beep starts...
        assert 0 <= onset - beep_start_sample(k, fps) <= 48
        # ...which is the flash frame's time, to the sample.
        assert abs(beep_start_sample(k, fps) - frame / fps * SAMPLE_RATE) <= 0.5


# --- Opus -------------------------------------------------------------------------


def test_opus_keeps_the_beep_where_the_stamp_says() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    tone = ToneSource(30.0)
    out = []
    for _ in range(60):
        packet = encoder.encode(tone.read())
        assert 0 < len(packet) <= 1275
        out.append(decoder.decode(packet))
    pcm = np.concatenate(out)
    # Block n is stamped n * 20 ms - ENCODER_DELAY_S: the decoded beep (at sample 0
    # of the tone) must appear ENCODER_DELAY_S into the decoded stream.
    onset = _onsets(pcm)[0]
    assert abs(onset / SAMPLE_RATE - ENCODER_DELAY_S) < 0.0015


def test_garbage_does_not_decode_and_the_decoder_recovers() -> None:
    encoder, decoder = OpusEncoder(), OpusDecoder()
    with pytest.raises(AudioDecodeError, match="empty Opus packet"):
        decoder.decode(b"")
    with pytest.raises(AudioDecodeError, match="undecodable Opus packet"):
        decoder.decode(bytes([0xFF, 0xFF]))
    assert decoder.decode(encoder.encode(np.zeros((FRAME_SAMPLES, 2), np.int16))).shape == \
        (FRAME_SAMPLES, 2)


def test_encoder_refuses_a_wrong_block() -> None:
    with pytest.raises(ValueError, match="expected a"):
        OpusEncoder().encode(np.zeros((100, 2), np.int16))


# --- file sources -----------------------------------------------------------------


@pytest.mark.parametrize(("codec", "ext"), [
    ("aac", "mp4"), ("libmp3lame", "mkv"), ("libopus", "mkv"), ("ac3", "mkv")])
def test_file_audio_is_decoded_and_aligned_with_the_picture(tmp_path: Path, codec: str,
                                                            ext: str) -> None:
    path = str(tmp_path / f"clip.{ext}")
    write_sync_clip(path, 3.0, audio_codec=codec)
    source = FileAudioSource(path)
    pcm = _read_all(source)
    assert abs(len(pcm) / SAMPLE_RATE - 3.0) < 0.05
    onsets = _onsets(pcm)
    assert len(onsets) == 3
    for k, onset in enumerate(onsets):  # each beep at its flash: k seconds in
        assert abs(onset / SAMPLE_RATE - k) < 0.002, (codec, onsets)
    source.rewind()
    assert _onsets(_read_all(source)) == onsets
    source.close()


def test_a_file_without_sound_is_not_an_error_to_the_user(tmp_path: Path) -> None:
    path = str(tmp_path / "silent.mp4")
    write_sync_clip(path, 1.0, audio_codec=None)
    with pytest.raises(NoAudioError, match="has no audio track"):
        FileAudioSource(path)
    with pytest.raises(MediaError, match=r"--audio-track 0: .* has no audio tracks") as info:
        FileAudioSource(path, track=0)
    assert not isinstance(info.value, NoAudioError)


def test_a_missing_track_number_is_a_usage_error(tmp_path: Path) -> None:
    path = str(tmp_path / "clip.mp4")
    write_sync_clip(path, 1.0)
    with pytest.raises(MediaError, match=r"--audio-track 2: .* has audio tracks 0-0"):
        FileAudioSource(path, track=2)


def test_second_audio_track_is_chosen_by_number(tmp_path: Path) -> None:
    path = str(tmp_path / "two.mkv")
    with av.open(path, "w") as out:
        streams = []
        for _ in range(2):
            stream = out.add_stream("libopus", rate=SAMPLE_RATE)
            stream.layout, stream.format = "stereo", "s16"
            streams.append(stream)
        for n in range(50):
            for index, stream in enumerate(streams):
                level = 1000 if index == 0 else 20000  # Opus drops DC: a 440 Hz tone
                t = (n * FRAME_SAMPLES + np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
                wave = (level * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
                block = av.AudioFrame.from_ndarray(
                    np.repeat(wave, 2).reshape(1, -1), format="s16", layout="stereo")
                block.sample_rate, block.pts = SAMPLE_RATE, n * FRAME_SAMPLES
                block.time_base = Fraction(1, SAMPLE_RATE)
                out.mux(stream.encode(block))
        for stream in streams:
            out.mux(stream.encode(None))
    quiet = np.abs(_read_all(FileAudioSource(path, track=0))[2000:]).mean()
    loud = np.abs(_read_all(FileAudioSource(path, track=1))[2000:]).mean()
    assert quiet < 3000 < loud


def test_an_undecodable_track_says_so(tmp_path: Path) -> None:
    """An Opus track of garbage packets (no valid header): FFmpeg decodes nothing."""
    path = str(tmp_path / "bad.mkv")
    with av.open(path, "w") as out:
        stream = out.add_stream("libopus", rate=SAMPLE_RATE)
        stream.layout = "stereo"
        for n in range(50):
            packet = av.Packet(bytes([0xFF, 0]) + os.urandom(50))
            packet.stream, packet.pts, packet.dts = stream, n * 960, n * 960
            packet.time_base = Fraction(1, SAMPLE_RATE)
            out.mux(packet)
    with pytest.raises(AudioDecodeError, match=r"audio track of .* decodes to nothing"):
        FileAudioSource(path)


# --- the capture pacer ------------------------------------------------------------


async def test_capture_stamps_blocks_on_the_anchor_schedule() -> None:
    loop = asyncio.get_running_loop()
    got: list[EncodedAudio] = []
    ended: list[MediaError | None] = []
    enough = asyncio.Event()

    def on_packet(packet: EncodedAudio) -> None:
        got.append(packet)
        if len(got) >= 10:
            enough.set()

    anchor = time.time()
    capture = AudioCapture(ToneSource(30.0), on_packet=on_packet, on_end=ended.append,
                           anchor=anchor)
    capture.start(loop)
    try:
        await asyncio.wait_for(enough.wait(), 10.0)
    finally:
        capture.stop()
    assert [p.seq for p in got[:10]] == list(range(10))
    for p in got[:10]:
        assert p.captured_at == pytest.approx(anchor + p.seq * FRAME_S - ENCODER_DELAY_S)
    assert ended == []  # stopped on purpose: no end report


async def test_capture_reports_the_end_of_a_file(tmp_path: Path) -> None:
    path = str(tmp_path / "short.mp4")
    write_sync_clip(path, 0.2)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[MediaError | None] = loop.create_future()
    got: list[EncodedAudio] = []
    capture = AudioCapture(FileAudioSource(path), on_packet=got.append,
                           on_end=ended.set_result, anchor=time.time() - 0.5)
    capture.start(loop)
    assert await asyncio.wait_for(ended, 10.0) is None
    capture.stop()
    assert len(got) == 10 or len(got) == 11  # 0.2 s (AAC pads the last frame)


# --- playback ---------------------------------------------------------------------


def test_player_decodes_in_order_with_volume_and_mute() -> None:
    encoder = OpusEncoder()
    player = AudioPlayer(0.05)
    tone = ToneSource(30.0)
    for seq in range(10):
        player.push(AudioPacket(1, seq, 100.0 + seq * FRAME_S, encoder.encode(tone.read())),
                    now=100.0)
    loud = player.pull(100.05)
    assert player.playing and np.abs(loud).max() > 10000
    player.volume = 0.5
    half = player.pull(100.07)
    assert 0 < np.abs(half).max() <= 16500
    player.muted = True
    assert not player.pull(100.09).any()


def test_player_reports_a_packet_that_does_not_decode() -> None:
    errors: list[AudioDecodeError] = []
    player = AudioPlayer(0.05, on_bad_packet=errors.append)
    player.push(AudioPacket(1, 0, 100.0, bytes([0xFF, 0xFF])), now=100.0)
    assert not player.pull(100.05).any()
    assert len(errors) == 1


async def test_device_output_plays_into_a_null_sink(pulse_null_sink: str) -> None:
    encoder = OpusEncoder()
    player = AudioPlayer(0.1)
    tone = ToneSource(30.0)
    output = DeviceOutput(player, root_offset=lambda: 0.0, device=pulse_null_sink)
    start, seq = time.time(), 0
    try:
        for _ in range(1000):
            if player.jitter.counters.played >= 10:
                break
            # A live sender: every packet captured by now arrives now.
            while start + seq * FRAME_S <= time.time():
                player.push(AudioPacket(1, seq, start + seq * FRAME_S,
                                        encoder.encode(tone.read())), now=time.time())
                seq += 1
            await asyncio.sleep(0.01)  # waiting on the device's pulls, not timing them
        assert player.jitter.counters.played >= 10
        assert output.blocks >= 10
    finally:
        output.close()


def test_a_missing_output_device_is_a_clear_error() -> None:
    with pytest.raises(MediaError, match="cannot open audio output 'no-such-device'"):
        DeviceOutput(AudioPlayer(0.1), root_offset=lambda: 0.0, device="no-such-device")


class _SeekableTone(ToneSource):
    def __init__(self) -> None:
        super().__init__(30.0)
        self.seeks: list[float] = []

    def seek(self, position_s: float) -> None:
        self.seeks.append(position_s)
        super().seek(position_s)


async def test_capture_follows_the_pictures_time_line_and_its_pauses() -> None:
    loop = asyncio.get_running_loop()
    got: list[EncodedAudio] = []
    source = _SeekableTone()
    anchor = time.time()
    capture = AudioCapture(source, on_packet=got.append, on_end=lambda e: None,
                           anchor=anchor)
    capture.start(loop)

    async def playing_until(count: int) -> None:
        async with asyncio.timeout(10):
            while len(got) < count:
                capture.video_moved()  # the picture keeps moving
                await asyncio.sleep(0.01)  # waiting for packets, not timing them

    try:
        await playing_until(5)
        # The picture jumped 10 s ahead in the file (a seek): the sound follows, from the
        # position due now, stamped on the same wall-clock line.
        capture.realign(anchor - 10.0)
        before = len(got)
        await playing_until(before + 5)
        assert source.seeks and 10.0 <= source.seeks[-1] < 10.0 + 2.0
        resumed = got[before + 1]
        assert resumed.captured_at == pytest.approx(
            anchor - 10.0 + source.seeks[-1] + FRAME_S - ENCODER_DELAY_S, abs=0.03)
        # The picture stops (paused): so does the sound, within the pause detection.
        paused_at = len(got)
        await asyncio.sleep(0.6)  # a paused picture is the absence of frames
        assert len(got) - paused_at <= 0.3 / FRAME_S + 2
    finally:
        capture.stop()


async def test_the_microphone_hears_what_the_null_sink_plays(pulse_null_sink: str) -> None:
    """A "microphone" on the sink's monitor: blocks of the right shape, stamped with
    when they were heard, carrying the tone the output plays."""
    from peer.node.audio.source import MicSource

    encoder = OpusEncoder()
    player = AudioPlayer(0.1)
    tone = ToneSource(1.0)  # one beep a second
    output = DeviceOutput(player, root_offset=lambda: 0.0, device=pulse_null_sink)
    mic = MicSource(pulse_null_sink)
    start, seq = time.time(), 0
    heard = []
    try:
        for _ in range(150):  # 3 s of 20 ms blocks
            while start + seq * FRAME_S <= time.time() + 0.1:
                player.push(AudioPacket(1, seq, start + seq * FRAME_S,
                                        encoder.encode(tone.read())), now=time.time())
                seq += 1
            block = await asyncio.get_running_loop().run_in_executor(None, mic.read)
            assert block.shape == (FRAME_SAMPLES, 2)
            assert abs(mic.captured_at - time.time()) < 1.0
            heard.append(block)
    finally:
        mic.close()
        output.close()
    pcm = np.concatenate(heard)
    assert np.abs(pcm.astype(np.int32)).max() > 3000  # the beep went round


def test_a_camera_streams_the_microphone_only_when_asked(pulse_null_sink: str) -> None:
    from peer.node.audio.config import AudioConfig
    from peer.node.audio.source import MicSource
    from peer.node.audio.station import AudioStation
    from peer.node.config import CameraSource

    def station(config: AudioConfig) -> AudioStation:
        return AudioStation(config, window_s=5.0, root_offset=lambda: 0.0,
                            on_bad_packet=lambda why: None, on_warning=lambda text: None)

    assert station(AudioConfig()).open_source(CameraSource(0)) is None
    mic = station(AudioConfig(mic=True, mic_device=pulse_null_sink)).open_source(
        CameraSource(0))
    try:
        assert isinstance(mic, MicSource)
    finally:
        assert mic is not None
        mic.close()
    with pytest.raises(MediaError, match="cannot open microphone 'no-such-mic'"):
        station(AudioConfig(mic=True, mic_device="no-such-mic")).open_source(CameraSource(0))


def test_a_sound_server_started_after_portaudio_is_still_found(tmp_path: Path) -> None:
    # PortAudio lists devices once; a process that touched audio before the sound server
    # came up (the app, or an earlier test) must still find the server's device.
    from tests.support.pulse import PulseUnavailable, null_sink

    sd = pytest.importorskip("sounddevice")
    sd._terminate()
    sd._initialize()  # a device list taken while no server runs
    try:
        with null_sink(tmp_path) as device:
            output = DeviceOutput(AudioPlayer(0.1), root_offset=lambda: 0.0, device=device)
            try:
                assert output.latency_s > 0
            finally:
                output.close()
    except PulseUnavailable as exc:
        pytest.skip(str(exc))
