"""Measures lip sync in a recording of the sync pattern (a flash and a beep together).

For every flash of the picture (a frame much brighter than the ones around it) the
nearest beep onset of the sound is found; the offset is ``beep - flash`` (positive:
sound after picture). Gaps in the sound track are read from the packets' timestamps.
Used by the A/V sync benchmark and its tests; runs on any file FFmpeg reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import av
import numpy as np

# A beep is this loud (fraction of full scale) at its onset, after this much quiet.
ONSET_LEVEL: Final = 0.1
QUIET_BEFORE_S: Final = 0.3
# A flash and a beep further apart than this are not a pair.
MAX_PAIR_S: Final = 0.5


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What a recording says about sync.

    Attributes:
        flashes: times of the flash frames, seconds from the file's start.
        beeps: times of the beep onsets.
        offsets: ``beep - flash`` for each flash that has a beep within MAX_PAIR_S.
        audio_gaps: (time, seconds) of every hole between consecutive audio packets.
        audio_s: span of the sound track (first packet to the end of the last).
    """

    flashes: list[float]
    beeps: list[float]
    offsets: list[float]
    audio_gaps: list[tuple[float, float]]
    audio_s: float

    def steady(self, after_s: float) -> SyncReport:
        """The same report restricted to what happens after ``after_s``."""
        pairs = [(f, o) for f, o in zip(self.paired_flashes(), self.offsets, strict=True)
                 if f >= after_s]
        return SyncReport([f for f in self.flashes if f >= after_s],
                          [b for b in self.beeps if b >= after_s], [o for _, o in pairs],
                          [g for g in self.audio_gaps if g[0] >= after_s], self.audio_s)

    def paired_flashes(self) -> list[float]:
        """The flashes that have a beep near them (one per entry of ``offsets``)."""
        return [f for f in self.flashes if _nearest(self.beeps, f) is not None]


def _nearest(times: list[float], t: float) -> float | None:
    best = min(times, key=lambda x: abs(x - t), default=None)
    return best if best is not None and abs(best - t) <= MAX_PAIR_S else None


def flash_times(path: str) -> list[float]:
    """Times of the frames that are far brighter than the file's typical frame."""
    times, levels = [], []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            if frame.time is None:
                continue
            gray = frame.to_ndarray(format="gray")
            times.append(float(frame.time))
            levels.append(float(gray.mean()))
    if not levels:
        return []
    typical, brightest = float(np.median(levels)), max(levels)
    if brightest - typical < 40:  # no flash in this file at all
        return []
    threshold = (typical + brightest) / 2
    return [t for i, (t, level) in enumerate(zip(times, levels, strict=True))
            if level > threshold and (i == 0 or levels[i - 1] <= threshold)]


def beep_times(path: str) -> list[float]:
    """Onsets of loud sound after at least QUIET_BEFORE_S of quiet."""
    onsets: list[float] = []
    last_loud = -1e9
    with av.open(path) as container:
        if not container.streams.audio:
            return []
        for frame in container.decode(audio=0):
            if frame.time is None:
                continue
            samples = frame.to_ndarray()
            if samples.dtype.kind == "i":
                samples = samples / 32768.0
            if samples.ndim == 2 and samples.shape[0] <= 8:  # planar (channels, n)
                level = np.abs(samples).max(axis=0)
            else:  # packed (1, n * channels)
                level = np.abs(samples.reshape(-1, frame.layout.nb_channels)).max(axis=1)
            rate = frame.sample_rate
            for index in np.flatnonzero(level > ONSET_LEVEL):
                t = float(frame.time) + index / rate
                if t - last_loud > QUIET_BEFORE_S:
                    onsets.append(float(t))
                last_loud = t
    return onsets


def audio_packet_gaps(path: str) -> tuple[list[tuple[float, float]], float]:
    """Holes between consecutive audio packets (by timestamps), and the track's span."""
    gaps: list[tuple[float, float]] = []
    with av.open(path) as container:
        if not container.streams.audio:
            return [], 0.0
        stream = container.streams.audio[0]
        first: float | None = None
        end: float | None = None
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            duration = float((packet.duration or 0) * packet.time_base) or 0.02
            if first is None:
                first = start
            if end is not None and start - end > 0.001:
                gaps.append((end, start - end))
            end = max(end or start, start + duration)
    return gaps, 0.0 if first is None or end is None else end - first


def measure(path: str) -> SyncReport:
    """Flashes, beeps, their offsets and the sound's gaps in ``path``."""
    flashes, beeps = flash_times(path), beep_times(path)
    offsets = []
    for flash in flashes:
        beep = _nearest(beeps, flash)
        if beep is not None:
            offsets.append(beep - flash)
    gaps, span = audio_packet_gaps(path)
    return SyncReport(flashes, beeps, offsets, gaps, span)
