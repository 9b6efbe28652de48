"""The sans-IO jitter buffer / playout clock: time comes in as arguments."""

from __future__ import annotations

import itertools

import pytest

from peer.node.audio.format import FRAME_S
from peer.node.audio.jitter import (
    CAPACITY_PACKETS,
    MAX_DELAY_S,
    MAX_STRETCH_S,
    MIN_DELAY_S,
    AudioPacket,
    JitterBuffer,
    Playout,
)

T0 = 1000.0
DELAY = 0.06


def _packet(seq: int, epoch: int = 1, shift: float = 0.0) -> AudioPacket:
    return AudioPacket(epoch, seq, T0 + seq * FRAME_S + shift, bytes([seq % 256]))


def _slot(seq: int) -> float:
    """When packet ``seq`` is due to be heard."""
    return T0 + seq * FRAME_S + DELAY


def test_waits_until_the_first_packet_is_due_then_plays_in_order() -> None:
    jb = JitterBuffer(DELAY)
    for seq in range(3):
        assert jb.push(_packet(seq), now=T0 + seq * FRAME_S + 0.005)
    assert jb.next_block(_slot(0) - FRAME_S).kind is Playout.WAIT
    got = [jb.next_block(_slot(seq)) for seq in range(3)]
    assert [b.kind for b in got] == [Playout.PLAY] * 3
    assert [b.packet.seq for b in got if b.packet] == [0, 1, 2]
    assert jb.counters.played == 3 and jb.counters.concealed == 0


def test_reordered_packets_play_in_sequence() -> None:
    jb = JitterBuffer(DELAY)
    for seq in (1, 0, 3, 2):
        jb.push(_packet(seq), now=T0 + 0.05)
    assert [jb.next_block(_slot(s)).packet.seq for s in range(4)] == [0, 1, 2, 3]  # type: ignore[union-attr]


def test_a_lost_packet_costs_one_block_of_silence() -> None:
    jb = JitterBuffer(DELAY)
    for seq in (0, 1, 3, 4):
        jb.push(_packet(seq), now=T0)
    kinds = [jb.next_block(_slot(s)).kind for s in range(5)]
    assert kinds == [Playout.PLAY, Playout.PLAY, Playout.CONCEAL, Playout.PLAY, Playout.PLAY]
    assert jb.counters.concealed == 1


def test_a_packet_arriving_after_its_slot_is_dropped_as_late() -> None:
    jb = JitterBuffer(DELAY)
    jb.push(_packet(0), now=T0)
    jb.next_block(_slot(0))
    assert jb.next_block(_slot(1)).kind is Playout.CONCEAL
    assert not jb.push(_packet(1), now=_slot(1) + FRAME_S)
    assert jb.counters.late == 1


def test_after_a_stall_playout_resumes_with_what_is_due_now() -> None:
    """A parent switch: 1 s without packets, then the stream continues from now."""
    jb = JitterBuffer(DELAY)
    jb.push(_packet(0), now=T0)
    assert jb.next_block(_slot(0)).kind is Playout.PLAY
    # The device keeps pulling through the gap: silence, never a growing delay.
    for seq in range(1, 50):
        assert jb.next_block(_slot(seq)).kind is Playout.CONCEAL
    # The new parent's first packets arrive (the old backlog, if any, is long due).
    for seq in range(40, 55):
        jb.push(_packet(seq), now=_slot(50) - DELAY + 0.01)
    got = jb.next_block(_slot(50))
    assert got.kind is Playout.PLAY and got.packet is not None and got.packet.seq == 50


def test_a_backlog_older_than_its_slot_is_skipped_not_played_late() -> None:
    jb = JitterBuffer(DELAY)
    for seq in range(10):
        jb.push(_packet(seq), now=T0)
    # The device only starts pulling at packet 7's slot: 0..6 are over.
    got = jb.next_block(_slot(7))
    assert got.packet is not None and got.packet.seq == 7
    assert jb.counters.skipped == 7


def test_a_new_epoch_starts_over() -> None:
    jb = JitterBuffer(DELAY)
    for seq in range(100, 103):
        jb.push(_packet(seq), now=T0)
    jb.next_block(_slot(100))
    # A new stream's numbers start at 0 again.
    assert jb.push(_packet(0, epoch=2, shift=102 * FRAME_S), now=T0 + 2.1)
    assert len(jb) == 1


def test_the_delay_shifts_when_packets_are_heard() -> None:
    jb = JitterBuffer(0.2)
    jb.push(_packet(0), now=T0)
    assert jb.next_block(T0 + 0.1).kind is Playout.WAIT
    assert jb.next_block(T0 + 0.2).kind is Playout.PLAY


def test_delay_is_clamped() -> None:
    assert JitterBuffer(0.0).delay_s == MIN_DELAY_S
    jb = JitterBuffer()
    jb.delay_s = 99.0
    assert jb.delay_s == MAX_DELAY_S


def test_hostile_sender_cannot_grow_the_buffer() -> None:
    jb = JitterBuffer(DELAY)
    for seq in range(CAPACITY_PACKETS * 4):
        # Plausible times (all "now"), numbers running away: only the cap holds it.
        jb.push(AudioPacket(1, seq, T0, b"x"), now=T0)
    assert len(jb) == CAPACITY_PACKETS
    assert jb.counters.overflow == CAPACITY_PACKETS * 3


def test_packets_from_the_far_future_are_refused() -> None:
    jb = JitterBuffer(DELAY)
    assert not jb.push(AudioPacket(1, 0, T0 + 3600.0, b"x"), now=T0)
    assert jb.counters.bogus == 1 and len(jb) == 0


def test_duplicates_are_ignored() -> None:
    jb = JitterBuffer(DELAY)
    assert jb.push(_packet(0), now=T0)
    assert not jb.push(_packet(0), now=T0)
    assert len(jb) == 1


@pytest.mark.parametrize("jitter_ms", [0, 10, 30])
def test_jitter_below_the_delay_loses_nothing(jitter_ms: int) -> None:
    """Packets arriving up to ``jitter_ms`` late (and out of order) all play."""
    jb = JitterBuffer(DELAY)
    arrivals = sorted((T0 + s * FRAME_S + ((s * 7) % 4) / 3 * jitter_ms / 1000, s)
                      for s in range(200))
    kinds = []
    pending = list(arrivals)
    for seq in range(200):
        play_at = _slot(seq)
        device_asks = play_at - 0.02  # the device pulls one block ahead
        while pending and pending[0][0] <= device_asks:
            arrived, s = pending.pop(0)
            jb.push(_packet(s), now=arrived)
        kinds.append(jb.next_block(play_at).kind)
    assert kinds == [Playout.PLAY] * 200


def test_the_device_clock_counts_blocks_through_jittery_reports() -> None:
    from peer.node.audio.output import DeviceClock

    clock = DeviceClock()
    jitter = [0.0, 0.03, -0.02, 0.025, -0.03, 0.01] * 5
    heard = [clock.tick(T0 + n * FRAME_S + j) for n, j in enumerate(jitter)]
    steps = [b - a for a, b in itertools.pairwise(heard)]
    # One block per call, nudged only slightly by the reports: no skip, no wait.
    assert all(abs(step - FRAME_S) < 0.002 for step in steps), steps
    # A real jump (the process stalled 300 ms): followed at once.
    n = len(jitter)
    assert clock.tick(T0 + n * FRAME_S + 0.3) == pytest.approx(T0 + n * FRAME_S + 0.3)


def test_silence_after_playing_began_is_counted_but_not_the_wait_before() -> None:
    jb = JitterBuffer(DELAY)
    for seq in range(4):
        jb.push(_packet(seq), now=T0)
    assert jb.next_block(_slot(0) - FRAME_S).kind is Playout.WAIT  # not started yet
    assert jb.next_block(_slot(0)).kind is Playout.PLAY
    # The delay rose by more than can be stretched: silence until the packet is due
    # at the new delay (one pause all the way, not a pause and seconds of stretching).
    rise = 10 * FRAME_S  # over MAX_STRETCH_S
    jb.delay_s = DELAY + rise
    kinds = [jb.next_block(_slot(1) + n * FRAME_S).kind for n in range(12)]
    waits = round(rise / FRAME_S)
    assert kinds[:waits] == [Playout.WAIT] * waits and kinds[waits] is Playout.PLAY
    assert jb.playing_delay_s == pytest.approx(DELAY + rise)
    assert rise > MAX_STRETCH_S
    assert (jb.counters.paused, jb.counters.concealed) == (waits, 0)


def test_a_rise_of_the_delay_that_can_be_stretched_plays_on() -> None:
    """The player stretches towards the new delay; the buffer keeps handing out the
    next packet and reports the delay it is heard at."""
    jb = JitterBuffer(DELAY)
    for seq in range(4):
        jb.push(_packet(seq), now=T0)
    jb.next_block(_slot(0))
    jb.delay_s = DELAY + 0.1
    got = jb.next_block(_slot(1))
    assert got.kind is Playout.PLAY and got.packet is not None and got.packet.seq == 1
    assert jb.playing_delay_s == pytest.approx(DELAY)
    assert jb.cursor_capture == pytest.approx(T0 + 2 * FRAME_S)
    assert jb.counters.paused == 0


def test_a_missing_packet_is_waited_for_while_it_can_still_come_in_time() -> None:
    """While the delay heard is below the target (still stretching up), a packet not
    here yet may still make the target: a pause, not concealment."""
    jb = JitterBuffer(DELAY)
    jb.push(_packet(0), now=T0)
    jb.next_block(_slot(0))
    jb.delay_s = DELAY + 0.05
    assert jb.next_block(_slot(1)).kind is Playout.WAIT
    jb.push(_packet(1), now=_slot(1))
    assert jb.next_block(_slot(2)).kind is Playout.PLAY
    assert (jb.counters.paused, jb.counters.concealed, jb.counters.late) == (1, 0, 0)


def test_a_fall_of_the_delay_keeps_the_packets_it_would_have_skipped() -> None:
    jb = JitterBuffer(DELAY + 0.1)
    for seq in range(10):
        jb.push(_packet(seq), now=T0)
    jb.next_block(T0 + DELAY + 0.1)
    jb.delay_s = DELAY  # packets 1..4 are past their new slots, but not skipped
    got = [jb.next_block(T0 + DELAY + 0.1 + n * FRAME_S) for n in range(1, 5)]
    assert [b.packet.seq for b in got if b.packet] == [1, 2, 3, 4]
    assert jb.counters.skipped == 0
    # A late packet is judged by the delay heard, not by the lower target.
    jb.push(_packet(12), now=T0 + 12 * FRAME_S + DELAY + 0.05)
    assert jb.counters.late == 0


def test_a_device_far_behind_skips_to_what_is_due_now() -> None:
    """The device stalled (its clock jumped ahead by more than can be caught up by
    playing faster): skip what is past, as before, and count it."""
    jb = JitterBuffer(DELAY)
    for seq in range(60):
        jb.push(_packet(seq), now=T0)
    jb.next_block(_slot(0))
    got = jb.next_block(_slot(1) + 0.5)
    assert got.packet is not None and got.packet.seq == 26
    assert jb.counters.skipped == 25 and jb.counters.paused == 0
