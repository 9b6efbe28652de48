"""The playout delay a playing station picks from the transit of the packets it gets.

Every change of the delay is heard (a pause when it grows, a skip when it shrinks), so
it must move seldom: up before a packet is late, with headroom, never for a packet
that still fits.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from peer.node.audio.config import AudioConfig
from peer.node.audio.format import FRAME_S
from peer.node.audio.opus import OpusEncoder
from peer.node.audio.station import (
    DELAY_HEADROOM_S,
    DELAY_UPDATE_PACKETS,
    JITTER_MARGIN_S,
    AudioStation,
)
from protocol import AudioFrame

OPUS = OpusEncoder().encode(np.zeros((960, 2), np.int16))


def _need(transit: float) -> float:
    # No output device here: it asks for a block one block ahead.
    return transit + FRAME_S + FRAME_S / 2 + JITTER_MARGIN_S


class _Station:
    def __init__(self) -> None:
        self.station = AudioStation(AudioConfig(), window_s=5.0, root_offset=lambda: 0.0,
                                    on_bad_packet=lambda reason: None,
                                    on_warning=lambda message: None)
        self.station.set_volume(1.0)  # a player: this station plays
        self.seq = 1  # not a re-aiming packet (those come every DELAY_UPDATE_PACKETS)
        self.wall = time.time  # the clock packets are stamped by (the station's too)

    def packet(self, transit: float, *, reaim: bool = False) -> float:
        """One packet that took ``transit`` to arrive (one the station re-aims the
        delay at, with ``reaim``); the delay after it."""
        if reaim:
            self.seq += -self.seq % DELAY_UPDATE_PACKETS
        self.station.received(AudioFrame(1, self.seq, self.wall() - transit, OPUS), [])
        self.seq += 1
        if self.seq % DELAY_UPDATE_PACKETS == 0 and not reaim:
            self.seq += 1
        assert self.station.player is not None
        return self.station.player.jitter.delay_s


def test_the_delay_rises_at_the_first_packet_that_needs_more_with_headroom() -> None:
    s = _Station()
    for _ in range(10):
        s.packet(0.05)
    settled = s.packet(0.05)
    assert settled == pytest.approx(_need(0.05) + DELAY_HEADROOM_S, abs=0.003)
    # A packet a little slower still fits: nothing moves (each move is heard).
    assert s.packet(0.06) == settled
    # One that would not fit raises it at once, before the next packet is late.
    assert s.packet(0.09) == pytest.approx(_need(0.09) + DELAY_HEADROOM_S, abs=0.003)


def test_the_delay_does_not_fall_while_a_slow_packet_is_remembered() -> None:
    s = _Station()
    s.packet(0.05)
    high = s.packet(0.2)
    for _ in range(3 * DELAY_UPDATE_PACKETS):  # re-aimed three times meanwhile
        assert s.packet(0.02) == high


def test_sound_waits_for_a_steady_picture_but_not_for_an_overloaded_one() -> None:
    steady, overloaded = _Station(), _Station()
    for i in range(60):
        steady.station.video_shown(0.25 + (i % 3) * 0.005, 0.25)
        # Frames queued and dropped on a thin link: late by a varying amount.
        overloaded.station.video_shown(0.12 + (i % 7) * 0.04, 0.25)
    for s in (steady, overloaded):
        for _ in range(6):
            s.packet(0.05)
        s.packet(0.05, reaim=True)
    assert steady.station.player is not None and overloaded.station.player is not None
    assert steady.station.player.jitter.delay_s == pytest.approx(
        0.255 + DELAY_HEADROOM_S, abs=0.006)
    assert overloaded.station.player.jitter.delay_s == pytest.approx(
        _need(0.05) + DELAY_HEADROOM_S, abs=0.003)


def test_the_delay_falls_only_a_minute_after_it_last_rose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from peer.node.audio import station as station_module

    clock = {"mono": 1000.0}
    # A frozen wall clock too: a transit measured across a descheduled moment of this
    # process (a loaded machine) must not pass for a slower packet.
    fake = types.SimpleNamespace(time=lambda: 5000.0, monotonic=lambda: clock["mono"])
    monkeypatch.setattr(station_module, "time", fake)
    s = _Station()
    s.wall = fake.time
    for _ in range(5):
        s.packet(0.05)
    high = s.packet(0.3)  # a spike raises it
    # Re-aimed again and again while the spike is remembered (750 packets) ...
    for _ in range(800):
        clock["mono"] += FRAME_S
        s.packet(0.05)
    # ... the spike is forgotten but the rise was under a minute ago: it holds.
    assert s.packet(0.05, reaim=True) == high
    clock["mono"] += station_module.DELAY_FALL_AFTER_S
    assert s.packet(0.05, reaim=True) == pytest.approx(_need(0.05) + DELAY_HEADROOM_S,
                                                       abs=0.003)
