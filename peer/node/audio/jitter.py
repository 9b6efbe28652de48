"""Sans-IO jitter buffer and playout clock for received audio.

Theory of operation
-------------------
Every packet carries the capture time of its first sample on the streamer's clock.
Packet ``p`` is due to be *heard* at ``p.captured_at + delay`` on that clock, where
``delay`` is the playout delay: long enough to absorb the path's jitter, and set to
match the picture's delay so that sound and picture leave the peer together.

The output device asks for one 20 ms block at a time and says when the block will
be heard (``play_at``, on the streamer's clock: the device's own DAC time converted
by the caller). ``next_block`` answers with what to play:

- PLAY the next packet in sequence;
- CONCEAL a block whose packet is missing at its due time (lost, or still late):
  silence is played and the cursor moves on, so one lost packet costs 20 ms, never
  a growing delay;
- WAIT (silence) while the next packet is not due yet: at the start, while a
  missing packet may still arrive in time for the delay, and when the delay rose
  (or the device clock stepped back) by more than can be stretched.

Once playing, the delay a packet is actually heard at (``playing_delay_s``) need not
equal the target ``delay_s``: the player (``output.AudioPlayer``) moves it towards the
target by playing slightly slower or faster (``stretch.py``), so a change of the target
is not heard as a hole or a jump. Only a gap beyond ``MAX_STRETCH_S`` (a device stall,
a much larger delay) is closed at once: a pause when the target is far above, a skip
to what is due now when it is far below.

Packets whose time has passed are dropped on arrival, so after a stall (a parent
switch) playout resumes at the packet that is due *now*, together with the picture,
instead of replaying the backlog late. Nothing here reads a clock: callers pass
``now`` and ``play_at``. The buffer holds at most ``capacity`` packets (a hostile or
runaway parent cannot make it grow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from peer.node.audio.format import FRAME_S

# Smallest and largest playout delays the buffer accepts. Below 20 ms the device's own
# period already eats the margin. A second is late for a conversation, but on a link
# slower than the video a keyframe can hold the sound back that long, and late sound
# beats holes (the delay only grows that far when transit needs it).
MIN_DELAY_S: Final = 0.02
MAX_DELAY_S: Final = 1.0
DEFAULT_DELAY_S: Final = 0.06
# Two seconds of 20 ms packets: more than MAX_DELAY_S of jitter, so only a runaway
# sender fills it.
CAPACITY_PACKETS: Final = 100
# A packet this far in the future (beyond the delay) has a bogus capture time.
MAX_EARLY_S: Final = 2.0
# The largest gap between the delay heard and its target that is closed by stretching
# (3 s at stretch.MAX_STEP_S); beyond it a pause (target above) or a skip (below).
MAX_STRETCH_S: Final = 0.15


@dataclass(frozen=True, slots=True)
class AudioPacket:
    """One received packet, its capture time already on the streamer's clock."""

    epoch: int
    seq: int
    captured_at: float
    payload: bytes = field(repr=False)


class Playout(Enum):
    PLAY = "play"
    CONCEAL = "conceal"
    WAIT = "wait"


@dataclass(frozen=True, slots=True)
class Block:
    """What to put in the next 20 ms: a packet to decode, or silence (and why)."""

    kind: Playout
    packet: AudioPacket | None = None


@dataclass(slots=True)
class JitterCounters:
    played: int = 0
    concealed: int = 0  # blocks played as silence because their packet was missing
    late: int = 0  # packets that arrived after their time (dropped)
    skipped: int = 0  # packets held but never played: the clock passed them (a stall)
    overflow: int = 0  # packets pushed out by a full buffer
    bogus: int = 0  # packets with an impossible capture time
    # Blocks of silence after playing began, other than concealment: a missing packet
    # may still come in time, the delay rose by more than can be stretched, the stream
    # stalled.
    paused: int = 0
    # Blocks played slower (the delay rising) or faster (falling) instead.
    stretched: int = 0
    compressed: int = 0


class JitterBuffer:
    """Orders packets by sequence number and releases each at its playout time.

    Args:
        delay_s: playout delay (clamped to [MIN_DELAY_S, MAX_DELAY_S]).
        capacity: most packets held.
    """

    def __init__(self, delay_s: float = DEFAULT_DELAY_S,
                 capacity: int = CAPACITY_PACKETS) -> None:
        self._delay = _clamp(delay_s)
        self._capacity = capacity
        self._packets: dict[int, AudioPacket] = {}
        self._epoch: int | None = None
        self._next_seq: int | None = None  # the cursor: next packet to play
        # The last packet played: where a missing packet's due time is counted from.
        self._ref: tuple[int, float] | None = None
        self._started = False  # a block of this stream was played
        # The delay the last packet was heard at (None before the first): the player
        # moves it towards _delay by stretching.
        self._playing: float | None = None
        self._pausing = False  # waiting out a rise too large to stretch
        self.counters = JitterCounters()

    @property
    def delay_s(self) -> float:
        return self._delay

    @delay_s.setter
    def delay_s(self, value: float) -> None:
        self._delay = _clamp(value)

    @property
    def playing_delay_s(self) -> float:
        """The delay sound is heard at now (the target until a packet played)."""
        return self._delay if self._playing is None else self._playing

    @property
    def cursor_capture(self) -> float | None:
        """Capture time of the next packet to play, None before the stream started
        or after a skip (then nothing is being stretched)."""
        if self._next_seq is None or self._ref is None:
            return None
        ref_seq, ref_at = self._ref
        return ref_at + (self._next_seq - ref_seq) * FRAME_S

    def __len__(self) -> int:
        return len(self._packets)

    def reset(self) -> None:
        """Forget everything (a new stream)."""
        self._packets.clear()
        self._next_seq = None
        self._ref = None
        self._started = False
        self._playing = None
        self._pausing = False

    def push(self, packet: AudioPacket, now: float) -> bool:
        """Take a packet that arrived at ``now`` (streamer's clock).

        Returns:
            False when the packet was not kept (late, duplicate, bogus).
        """
        if packet.epoch != self._epoch:
            self.reset()  # a new stream: its numbers start over
            self._epoch = packet.epoch
        due = packet.captured_at + max(self._delay, self.playing_delay_s)
        if due > now + self._delay + MAX_EARLY_S:
            self.counters.bogus += 1
            return False
        if self._next_seq is not None and packet.seq < self._next_seq:
            self.counters.late += 1  # its slot was already played or concealed
            return False
        if packet.seq in self._packets:
            return False
        if due + FRAME_S / 2 < now:
            self.counters.late += 1
            return False
        self._packets[packet.seq] = packet
        if len(self._packets) > self._capacity:
            del self._packets[min(self._packets)]
            self.counters.overflow += 1
        return True

    def next_block(self, play_at: float) -> Block:
        """What to play in the 20 ms heard from ``play_at`` (streamer's clock)."""
        block = self._next_block(play_at)
        if block.kind is Playout.WAIT and self._started:
            self.counters.paused += 1
        return block

    def _next_block(self, play_at: float) -> Block:
        half = FRAME_S / 2
        cursor = self.cursor_capture
        if cursor is not None and play_at - cursor - self._delay > MAX_STRETCH_S:
            # Far behind (the device stalled, the delay fell a lot): more than playing
            # faster can catch up: skip to what is due now.
            self._drop_passed(play_at - half)
            self._ref = None
        if self._next_seq is None or self._ref is None:
            self._drop_passed(play_at - half)
            if not self._packets:
                return Block(Playout.WAIT)
            first = self._packets[min(self._packets)]
            if first.captured_at + self._delay > play_at + half:
                return Block(Playout.WAIT)
            return self._play(first, play_at)
        packet = self._packets.get(self._next_seq)
        if packet is not None:
            early = packet.captured_at + self._delay - play_at
            if early > MAX_STRETCH_S or (self._pausing and early > half):
                # Far ahead (the delay rose a lot, the clock stepped back): one pause
                # all the way to the delay, rather than a pause and seconds stretched.
                self._pausing = True
                return Block(Playout.WAIT)
            self._pausing = False
            return self._play(packet, play_at)
        ref_seq, ref_at = self._ref
        expected = ref_at + (self._next_seq - ref_seq) * FRAME_S + self._delay
        if expected > play_at + half:
            return Block(Playout.WAIT)  # it may still come in time for the delay
        # Its time has come and it is not here: play silence in its place, move on.
        self._next_seq += 1
        self.counters.concealed += 1
        if self._packets and min(self._packets) < self._next_seq:
            self._drop_before(self._next_seq)
        return Block(Playout.CONCEAL)

    def _play(self, packet: AudioPacket, play_at: float) -> Block:
        self._drop_before(packet.seq)
        self._playing = play_at - packet.captured_at
        del self._packets[packet.seq]
        self._next_seq = packet.seq + 1
        self._ref = (packet.seq, packet.captured_at)
        self._started = True
        self.counters.played += 1
        return Block(Playout.PLAY, packet)

    def _drop_passed(self, limit: float) -> None:
        """Drop packets whose whole slot is before ``limit``; the cursor follows."""
        passed = [s for s, p in self._packets.items() if p.captured_at + self._delay < limit]
        for seq in passed:
            del self._packets[seq]
            self.counters.skipped += 1
        if passed and self._next_seq is not None and self._next_seq <= max(passed):
            # Skip straight past what is gone (a stall): resume with what is due now.
            self._next_seq = max(passed) + 1
            self._ref = None
            if self._packets:
                self._next_seq = min(self._packets)

    def _drop_before(self, seq: int) -> None:
        for old in [s for s in self._packets if s < seq]:
            del self._packets[old]
            self.counters.skipped += 1


def _clamp(delay_s: float) -> float:
    return min(MAX_DELAY_S, max(MIN_DELAY_S, delay_s))
