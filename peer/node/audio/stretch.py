"""Time stretching for playout: the delay moves by playing a little slower or faster.

Theory of operation
-------------------
The output device takes 20 ms blocks at its own pace. When the playout delay must
grow (a slower packet was seen) the old way was to play a block of silence, and when
it must shrink, to skip a packet: both are heard as a hole or a jump. WebRTC's NetEQ
instead plays the next blocks slightly stretched ("preemptive expand") or compressed
("accelerate") until the new delay is reached. Here a block of output is made from
``FRAME_SAMPLES * speed`` input samples by linear interpolation: at a speed of 0.95
every 20 ms heard consumes 19 ms of the stream, so the delay grows by 1 ms per block
(50 ms in a second). That is a resampling: the pitch moves by the same few per cent
(under a semitone) while it lasts, which is far less noticeable than a hole; at speed 1
the samples pass through untouched.

``Stretcher`` is sans-IO: it holds the decoded samples not yet heard (at most a block
and a packet) and a fractional read position, and knows nothing of clocks or packets.
``step_for`` turns "the delay is this far from its target" into the speed of the next
block, bounded by ``MAX_STEP_S`` per block, so the cost is one ``np.interp`` per channel
per block (tens of microseconds) and never more.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from peer.node.audio.format import CHANNELS, FRAME_S, FRAME_SAMPLES, SAMPLE_RATE, Pcm

# The most the delay moves per 20 ms block heard: 1 ms, a speed of 0.95 or 1.05 (the
# pitch moves by under a semitone while it lasts; 50 ms of delay take a second).
MAX_STEP_S: Final = 0.001
# Closer than this to its target, the delay is left alone: the device clock's own
# jitter moves it by fractions of a millisecond, and a pass-through block is exact.
DEADBAND_S: Final = 0.002

Samples = npt.NDArray[np.float32]


def step_for(gap_s: float) -> float:
    """How much the next block should add to the delay (negative: take away), given
    that the delay is ``gap_s`` below its target (negative: above it)."""
    if abs(gap_s) <= DEADBAND_S:
        return 0.0
    return max(-MAX_STEP_S, min(MAX_STEP_S, gap_s))


def speed_for(step_s: float) -> float:
    """Input consumed per output sample for a block that adds ``step_s`` to the delay."""
    return 1.0 - step_s / FRAME_S


class Stretcher:
    """Decoded samples waiting to be heard, read out at a chosen speed.

    ``needed(speed)`` says how many input samples the next output block takes;
    the caller ``append``s decoded packets until ``available`` reaches it, then
    ``take``s the block. When no more input comes in time (a pause), ``drain``
    hands out what is left, unstretched.
    """

    def __init__(self, block: int = FRAME_SAMPLES) -> None:
        self._block = block
        self._buf: Samples = np.zeros((0, CHANNELS), np.float32)
        self._phase = 0.0  # fractional read position into _buf, in [0, 1)

    @property
    def available(self) -> int:
        return len(self._buf)

    def pending_s(self) -> float:
        """Stream time held here, not yet heard (before the next packet's first sample)."""
        return (len(self._buf) - self._phase) / SAMPLE_RATE

    def needed(self, speed: float) -> int:
        """Input samples the next block at ``speed`` reads (interpolation included)."""
        if speed == 1.0 and self._phase == 0.0:
            return self._block
        last = self._phase + (self._block - 1) * speed
        return int(np.floor(last)) + 2

    def append(self, pcm: Pcm) -> None:
        self._buf = np.concatenate([self._buf, pcm.astype(np.float32)])

    def take(self, speed: float) -> Pcm:
        """One output block at ``speed``; needs ``available >= needed(speed)``."""
        if speed == 1.0:
            # Back to normal speed: snap to a whole sample (under 21 us) so that the
            # samples pass through exactly instead of interpolated.
            whole = round(self._phase)
            self._buf, self._phase = self._buf[whole:], 0.0
            out = self._buf[:self._block]
            self._buf = self._buf[self._block:]
            return _pcm(out)
        positions = self._phase + np.arange(self._block, dtype=np.float64) * speed
        index = np.arange(len(self._buf), dtype=np.float64)
        out = np.empty((self._block, CHANNELS), np.float32)
        for channel in range(CHANNELS):
            out[:, channel] = np.interp(positions, index, self._buf[:, channel])
        consumed = self._phase + self._block * speed
        whole = int(np.floor(consumed))
        self._buf, self._phase = self._buf[whole:], consumed - whole
        return _pcm(out)

    def drain(self) -> Pcm:
        """What is left (at most a block), then silence: the block of a pause."""
        out = np.zeros((self._block, CHANNELS), np.float32)
        held = self._buf[round(self._phase):][:self._block]
        out[:len(held)] = held
        self.clear()
        return _pcm(out)

    def clear(self) -> None:
        self._buf = np.zeros((0, CHANNELS), np.float32)
        self._phase = 0.0


def _pcm(samples: Samples) -> Pcm:
    return np.clip(np.rint(samples), -32768, 32767).astype(np.int16)
