"""Playout moves its delay by time stretching, not by silence: the stretcher itself,
and the player driven by a virtual device clock (no device, no sleeps)."""

from __future__ import annotations

import numpy as np
import pytest

from peer.node.audio.format import FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Pcm
from peer.node.audio.jitter import MAX_STRETCH_S, AudioPacket
from peer.node.audio.opus import OpusEncoder
from peer.node.audio.output import AudioPlayer
from peer.node.audio.stretch import DEADBAND_S, MAX_STEP_S, Stretcher, speed_for, step_for

T0 = 1000.0
DELAY = 0.15


def _sine(start: int, samples: int, hz: float = 440.0) -> Pcm:
    t = (start + np.arange(samples)) / SAMPLE_RATE
    mono = np.rint(12000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)
    return np.stack([mono, mono], axis=1)


def test_at_normal_speed_samples_pass_through_exactly() -> None:
    s = Stretcher()
    s.append(_sine(0, FRAME_SAMPLES))
    assert s.needed(1.0) == FRAME_SAMPLES
    assert np.array_equal(s.take(1.0), _sine(0, FRAME_SAMPLES))
    assert s.available == 0


def test_a_slower_block_reads_less_of_the_stream_without_a_click() -> None:
    """At 0.95, 20 ms heard consume 19 ms of the stream (the delay grows 1 ms), and
    the waveform stays continuous across blocks (no jump a hole or a splice makes)."""
    speed = speed_for(MAX_STEP_S)
    assert speed == pytest.approx(0.95)
    s = Stretcher()
    s.append(_sine(0, 4 * FRAME_SAMPLES))
    out = np.concatenate([s.take(speed) for _ in range(3)]).astype(np.int32)
    assert s.pending_s() == pytest.approx(4 * FRAME_S - 3 * 0.95 * FRAME_S, abs=1e-4)
    # A 440 Hz sine at 12000 moves at most ~700 per sample; a splice would jump more.
    assert np.abs(np.diff(out[:, 0])).max() < 800
    # Played slower: the pitch drops by the same 5 %.
    crossings = np.count_nonzero(np.diff(np.signbit(out[:, 0])))
    assert crossings / 2 / (len(out) / SAMPLE_RATE) == pytest.approx(440 * 0.95, rel=0.02)


def test_the_step_is_bounded_and_small_gaps_are_left_alone() -> None:
    assert step_for(DEADBAND_S / 2) == 0.0
    assert step_for(0.5) == MAX_STEP_S and step_for(-0.5) == -MAX_STEP_S
    assert step_for(0.0015 + DEADBAND_S) == pytest.approx(MAX_STEP_S)


class _Device:
    """A virtual output device: pulls one block every 20 ms of virtual time, hearing
    it ``lead`` later; packets of a continuous tone arrive ``transit`` after capture."""

    def __init__(self, player: AudioPlayer, transit: float = 0.03) -> None:
        self.player = player
        self.transit = transit
        self.encoder = OpusEncoder()
        self.sent = 0
        self.now = T0
        self.blocks: list[Pcm] = []

    def run(self, seconds: float, *, stall_s: float = 0.0, drift: float = 0.0) -> None:
        """Play ``seconds``, after a stall of the device of ``stall_s`` (packets keep
        arriving, the device asks for nothing, then its clock has jumped ahead). A
        ``drift`` > 0: the device's crystal runs that much fast (it asks for blocks
        that much more often than every 20 ms of our clock)."""
        end = self.now + stall_s
        while self.now < end:
            self._arrive()
            self.now += FRAME_S
        for _ in range(round(seconds / FRAME_S)):
            self._arrive()
            self.blocks.append(self.player.pull(self.now + 0.02))
            self.now += FRAME_S * (1 - drift)

    def _arrive(self) -> None:
        while T0 + self.sent * FRAME_S + self.transit <= self.now:
            pcm = _sine(self.sent * FRAME_SAMPLES, FRAME_SAMPLES)
            self.player.push(AudioPacket(1, self.sent, T0 + self.sent * FRAME_S,
                                         self.encoder.encode(pcm)), now=self.now)
            self.sent += 1

    def silent_blocks(self, after: int = 0) -> int:
        """Blocks with a silent 5 ms stretch in them (a pause, a gap, concealment)."""
        silent = 0
        for block in self.blocks[after:]:
            quiet = np.abs(block[:, 0].astype(np.int32)) < 200
            run = np.convolve(quiet, np.ones(240), "valid").max()
            silent += int(run >= 240)
        return silent


def _started(delay: float = DELAY) -> _Device:
    device = _Device(AudioPlayer(delay))
    device.run(1.0)
    assert device.player.jitter.counters.played > 40
    return device


@pytest.mark.parametrize("change", [0.06, -0.06, 0.14])
def test_the_delay_moves_by_stretching_without_a_silent_block(change: float) -> None:
    device = _started()
    counters = device.player.jitter.counters
    before = len(device.blocks)
    moved_before = counters.stretched + counters.compressed  # settling at the start
    device.player.set_delay(DELAY + change)
    device.run(4.0)
    assert device.player.jitter.playing_delay_s == pytest.approx(DELAY + change,
                                                                   abs=DEADBAND_S + 0.001)
    assert (counters.paused, counters.concealed, counters.skipped, counters.late) == \
        (0, 0, 0, 0)
    moved = counters.stretched + counters.compressed - moved_before
    assert moved == pytest.approx(abs(change) / MAX_STEP_S, abs=3)
    assert device.silent_blocks(after=before) == 0


def test_a_rise_too_large_to_stretch_is_one_counted_pause() -> None:
    device = _started()
    counters = device.player.jitter.counters
    before = len(device.blocks)
    rise = MAX_STRETCH_S + 0.1
    device.player.set_delay(DELAY + rise)
    device.run(2.0)
    assert device.silent_blocks(after=before) == pytest.approx(rise / FRAME_S, abs=1)
    assert device.player.jitter.playing_delay_s == pytest.approx(DELAY + rise, abs=0.011)
    assert counters.paused == pytest.approx(rise / FRAME_S, abs=1)
    assert counters.stretched <= 10 and counters.concealed == 0


def test_a_stalled_device_far_behind_skips_and_a_short_stall_catches_up() -> None:
    """The device stalled 60 ms (its clock jumped ahead): played faster until back at
    the delay, nothing skipped. It stalled a second: too far to catch up, skipped."""
    device = _started()
    counters = device.player.jitter.counters
    moved_before = counters.compressed
    device.run(3.0, stall_s=0.06)
    assert device.player.jitter.playing_delay_s == pytest.approx(DELAY, abs=0.004)
    assert counters.compressed - moved_before == pytest.approx(60, abs=3)
    assert (counters.skipped, counters.paused, counters.concealed) == (0, 0, 0)
    device.run(1.0, stall_s=1.0)
    assert counters.skipped == pytest.approx(50, abs=2) and counters.paused == 0
    assert device.player.jitter.playing_delay_s == pytest.approx(DELAY, abs=0.011)


def test_a_spike_that_raises_the_delay_is_not_heard_as_silence() -> None:
    """What the overloaded link did: a few packets 60 ms slower than the rest, which
    raise the delay; the next ones are in time for the delay heard, so the rise is
    stretched in. (Before, each such rise was a pause.)"""
    device = _started()
    counters = device.player.jitter.counters
    before = len(device.blocks)
    device.transit = 0.11  # a burst of slow packets: still inside the delay
    device.player.set_delay(DELAY + 0.08)  # what the station does on seeing it
    device.run(0.3)
    device.transit = 0.03
    device.run(3.0)
    assert (counters.paused, counters.concealed, counters.late) == (0, 0, 0)
    assert device.silent_blocks(after=before) == 0


@pytest.mark.parametrize("drift", [0.001, -0.001])
def test_a_device_clock_that_drifts_is_followed_without_silence(drift: float) -> None:
    """A sound card 0.1 % fast or slow moves the delay heard by 1 ms a second; without
    stretching, a packet fell half a block off its slot every ~10 s (a pause or a
    skip). Now small corrections keep the delay at its target."""
    device = _started()
    counters = device.player.jitter.counters
    before = len(device.blocks)
    device.run(30.0, drift=drift)
    assert device.player.jitter.playing_delay_s == pytest.approx(DELAY, abs=DEADBAND_S
                                                                   + 0.001)
    assert (counters.paused, counters.skipped, counters.concealed) == (0, 0, 0)
    assert (counters.stretched if drift > 0 else counters.compressed) >= 20
    assert device.silent_blocks(after=before) == 0


def test_the_devices_own_trouble_is_counted_apart() -> None:
    from peer.node.audio.output import STALL_S, DeviceClock, DeviceWatch

    watch = DeviceWatch()
    at = 50.0
    for n in range(10):
        at += FRAME_S if n != 5 else STALL_S + 0.05  # one stall of the callback
        watch.call(at, underflow=n == 6)  # PortAudio flags the block after it
    assert (watch.underruns, watch.stalls) == (1, 1)
    assert watch.longest_gap_s == pytest.approx(STALL_S + 0.05)
    clock = DeviceClock()
    clock.tick(T0)
    clock.tick(T0 + FRAME_S + 0.3)  # heard 300 ms later than counted: lost time
    clock.tick(T0 + 2 * FRAME_S + 0.1)  # and back
    assert (clock.jumps_ahead, clock.jumps_back) == (1, 1)
