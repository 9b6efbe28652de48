"""The test pattern's sync marks: a white flash and a beep once a second, together.

The flash is drawn on every frame whose index is a multiple of ``flash_period(fps)``
(one second's worth of frames, rounded); the beep starts on the sample where that
frame starts. A viewer or a recording can then measure lip sync by finding each
flash (frame brightness) and each beep (audio onset).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from peer.node.audio.format import CHANNELS, FRAME_SAMPLES, SAMPLE_RATE, Pcm
from peer.node.codec import Image

BEEP_HZ: Final = 1000.0
# Long enough to hear and to find in a recording, short enough to stay a "tick".
BEEP_S: Final = 0.08
# Half of full scale: loud enough to find, with headroom against clipping in Opus.
BEEP_AMPLITUDE: Final = 0.5
# A 1 ms fade in and out keeps the beep from clicking; the onset stays sharp.
_RAMP_SAMPLES: Final = 48


def flash_period(fps: float) -> int:
    """Frames between flashes: one second's worth, at least one."""
    return max(1, round(fps))


def is_flash(index: int, fps: float) -> bool:
    """Whether frame ``index`` of a stream at ``fps`` carries the flash."""
    return index % flash_period(fps) == 0


def draw_flash(image: Image) -> None:
    """Turn the frame white (in place): unmistakable in any layer and any codec."""
    image[...] = 255


def beep_start_sample(k: int, fps: float) -> int:
    """The sample where the ``k``-th beep starts: the start of the ``k``-th flash frame."""
    return round(k * flash_period(fps) / fps * SAMPLE_RATE)


class ToneSource:
    """An endless audio track of silence with a beep at every flash of the pattern.

    Args:
        fps: the pattern's frame rate (sets where flashes, hence beeps, fall).
    """

    paced = True

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._sample = 0  # the next block starts here
        n = round(BEEP_S * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        envelope = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / _RAMP_SAMPLES)
        wave = BEEP_AMPLITUDE * 32767 * envelope * np.sin(2 * math.pi * BEEP_HZ * t)
        self._beep = wave.astype(np.int16)

    def read(self) -> Pcm:
        """The next 20 ms block (never ends)."""
        start, end = self._sample, self._sample + FRAME_SAMPLES
        self._sample = end
        block = np.zeros(FRAME_SAMPLES, np.int16)
        period = flash_period(self.fps) / self.fps * SAMPLE_RATE
        # Every beep that overlaps [start, end): at most two at any sane rate.
        k = max(0, math.floor((start - len(self._beep)) / period))
        while (begin := beep_start_sample(k, self.fps)) < end:
            lo, hi = max(start, begin), min(end, begin + len(self._beep))
            if lo < hi:
                block[lo - start: hi - start] = self._beep[lo - begin: hi - begin]
            k += 1
        return np.repeat(block[:, None], CHANNELS, axis=1)

    def rewind(self) -> None:
        """Start again at the first beep (with the pattern's frame counter)."""
        self._sample = 0

    def seek(self, position_s: float) -> None:
        """Go on from ``position_s`` seconds into the pattern."""
        self._sample = max(0, round(position_s * SAMPLE_RATE))

    def close(self) -> None:
        """Nothing to release."""
