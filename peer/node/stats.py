"""Sliding-window stream statistics of one peer: rate, throughput, latency, loss.

Theory of operation
-------------------
Every event is recorded with the ``now`` the caller passes in and kept in a deque
only while it is inside the window (``window_s``), so memory is bounded by the event
rate times the window. Counts that arrive within ``BUCKET_S`` of each other share one
deque entry, which keeps the per-child send accounting of a busy relay cheap.

Loss comes from sequence gaps. The streamer numbers captured frames with one counter
for all layers (a frame has the same ``seq`` in every layer), so a layer change never
opens a gap. Per stream epoch we keep the highest ``seq`` received and the *holes*
below it: ranges of seqs counted lost, each stamped with the time it was counted.

* ``seq`` above the highest: new; the seqs in between become a hole (counted lost).
* ``seq`` inside a hole: a late frame; it is "un-lost" (the hole shrinks) and counts
  as received, exactly once.
* ``seq`` at or below the highest and not in a hole: a duplicate, ignored.
* a jump of more than ``max_gap_frames`` forward (or backward, beyond what we track)
  is a restart of the counter, not loss: we re-anchor without counting anything.
  Without this cap one bogus or restarted seq would report millions of lost frames.
* a higher epoch is a new streamer: start fresh, no loss counted across epochs. A
  lower epoch is stale (the tracker's fencing token moved on); such frames are
  ignored for frame and loss counts (their bytes still count: they crossed the link).

Windowed loss is ``lost / (lost + received)`` over the holes counted and the frames
received inside the window; un-losing a frame corrects both the window and the total.
Holes are kept while they are in the window or within ``max_gap_frames`` of the
highest seq (late frames further back than that count as a restart anyway).

Sans-IO: no clock is read here; every method takes ``now``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = [
    "BUCKET_S",
    "MAX_GAP_FRAMES",
    "MIN_SPAN_S",
    "StatsSnapshot",
    "StreamStats",
    "percentile",
]

# Byte counts within 50 ms of each other are merged: far finer than the seconds-long
# window needs, and it caps a relay's entries at 20 per second however many children
# it sends to.
BUCKET_S = 0.05
# A forward gap longer than this is a counter restart, not loss: 10 s at 60 fps, the
# fastest rate we pace. A real outage longer than that ends with a re-attach anyway.
MAX_GAP_FRAMES = 600
# Rates divide by the time covered, not the full window, so a stream that started 2 s
# ago does not read as 40 % of its real rate; but never by less than 1 s, so the first
# two frames 10 ms apart do not read as 100 fps.
MIN_SPAN_S = 1.0


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Statistics at one instant: rates over the window, counters since the start.

    Attributes:
        fps: frames per second received (or produced, on the streamer).
        kbps_in: kilobits per second in: from the parent, or the encoder on the
            streamer, plus control traffic.
        kbps_out: kilobits per second sent to children, plus control traffic.
        latency_p50_ms: median capture-to-receive latency, None without samples.
        latency_p95_ms: 95th percentile of the same, None without samples.
        loss_pct: lost / (lost + received) frames in the window, in percent.
        frames: frames received (or produced) in total, duplicates excluded.
        dropped: frames dropped toward children in total.
        lost: frames missing by sequence gaps in total (late arrivals deducted).
        bytes_in: bytes in, in total.
        bytes_out: bytes out, in total.
    """

    fps: float
    kbps_in: float
    kbps_out: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    loss_pct: float
    frames: int
    dropped: int
    lost: int
    bytes_in: int
    bytes_out: int


def percentile(sorted_values: list[float], pct: float) -> float:
    """Linear-interpolated percentile of an ascending, non-empty list.

    Args:
        sorted_values: the samples, sorted ascending.
        pct: the percentile, 0 to 100.

    Returns:
        The value below which ``pct`` percent of the samples lie (interpolating
        between neighbours, like ``statistics.quantiles(method="inclusive")``).

    Raises:
        ValueError: if the list is empty or ``pct`` is outside 0..100.
    """
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0.0 <= pct <= 100.0:
        raise ValueError(f"percentile {pct} outside 0..100")
    pos = (len(sorted_values) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


@dataclass(slots=True)
class _Hole:
    """Seqs ``lo..hi`` (inclusive) counted lost at time ``t`` in generation ``gen``."""

    t: float
    gen: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo + 1


class _Counter:
    """Amounts over time (bytes, frames), summed over a sliding window."""

    __slots__ = ("_entries", "total")

    def __init__(self) -> None:
        self._entries: deque[list[float]] = deque()  # [time, amount]
        self.total = 0

    def add(self, now: float, amount: int) -> None:
        self.total += amount
        if self._entries and now - self._entries[-1][0] < BUCKET_S:
            self._entries[-1][1] += amount
        else:
            self._entries.append([now, float(amount)])

    def prune(self, cutoff: float) -> None:
        while self._entries and self._entries[0][0] <= cutoff:
            self._entries.popleft()

    def in_window(self) -> float:
        return sum(amount for _, amount in self._entries)


class StreamStats:
    """Per-peer stream statistics over a sliding window.

    Args:
        window_s: length of the sliding window, in seconds.
        max_gap_frames: the largest sequence gap counted as loss; a bigger jump is
            taken as a restart of the streamer's counter.

    Raises:
        ValueError: if ``window_s`` is not positive or ``max_gap_frames`` below 1.
    """

    def __init__(self, window_s: float = 5.0, max_gap_frames: int = MAX_GAP_FRAMES) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if max_gap_frames < 1:
            raise ValueError(f"max_gap_frames must be at least 1, got {max_gap_frames}")
        self._window_s = window_s
        self._max_gap = max_gap_frames
        self._first_event: float | None = None
        self._frames = _Counter()
        self._bytes_in = _Counter()
        self._bytes_out = _Counter()
        self._latency: deque[tuple[float, float]] = deque()  # (time, seconds)
        self._dropped = 0
        # Sequence tracking (see the module docstring).
        self._epoch: int | None = None
        self._highest: int | None = None
        self._gen = 0  # bumped on every re-anchor; holes of older gens can't be un-lost
        self._holes: deque[_Hole] = deque()
        self._lost = 0
        self._last_produced: int | None = None

    # --- recording ----------------------------------------------------------------

    def frame_received(
        self, now: float, nbytes: int, seq: int, epoch: int, latency_s: float | None
    ) -> bool:
        """Record a video frame received from the parent.

        Args:
            now: local time of arrival.
            nbytes: bytes the frame took on the link.
            seq: the frame's sequence number.
            epoch: the frame's stream epoch.
            latency_s: capture-to-receive latency, None if the clock offset is not
                known yet.

        Returns:
            True if the frame is new (counted), False for a duplicate or a frame of
            an older epoch.
        """
        self._touch(now)
        self._bytes_in.add(now, nbytes)
        new = self._track(now, seq, epoch)
        if new:
            self._frames.add(now, 1)
            # A duplicate's latency says nothing new (and would double-weight it).
            if latency_s is not None and math.isfinite(latency_s):
                self._latency.append((now, latency_s))
        self._prune(now)
        return new

    def frame_produced(self, now: float, nbytes: int, seq: int) -> None:
        """Record a frame the streamer captured and encoded.

        Call it once per encoded layer: the bytes of every layer count toward
        ``kbps_in`` (the stream entering the tree here), while the frame counts once
        per ``seq``, since every layer of one capture shares its seq.

        Args:
            now: local time the frame was produced.
            nbytes: encoded size of this layer.
            seq: the frame's sequence number.
        """
        self._touch(now)
        self._bytes_in.add(now, nbytes)
        if seq != self._last_produced:
            self._last_produced = seq
            self._frames.add(now, 1)
        self._prune(now)

    def bytes_sent(self, now: float, nbytes: int) -> None:
        """Record video bytes sent to a child.

        Args:
            now: local time of sending.
            nbytes: bytes written to the link.
        """
        self._touch(now)
        self._bytes_out.add(now, nbytes)
        self._prune(now)

    def control_bytes(self, now: float, nbytes_in: int, nbytes_out: int) -> None:
        """Record control traffic (pings, chat, demands); it counts in the kbps rates.

        Args:
            now: local time.
            nbytes_in: control bytes received.
            nbytes_out: control bytes sent.
        """
        self._touch(now)
        if nbytes_in:
            self._bytes_in.add(now, nbytes_in)
        if nbytes_out:
            self._bytes_out.add(now, nbytes_out)
        self._prune(now)

    def frame_dropped(self, now: float, count: int = 1) -> None:
        """Record frames dropped toward a child (its send queue was full).

        Args:
            now: local time.
            count: how many frames were dropped.
        """
        self._touch(now)
        self._dropped += count

    def reset_sequence(self) -> None:
        """Restart sequence tracking: the next frame is a fresh anchor.

        No loss is counted between the last frame before this call and the first one
        after it; totals and the window are kept. The epoch is kept too, so frames
        of an older epoch stay ignored.

        The node does not need this on a re-attach within one epoch: the outage gap
        is then counted once, as loss (capped at ``max_gap_frames``), and frames the
        new parent repeats are recognised as duplicates. Nor on an epoch change,
        which frames reveal. Call it when continuity is meaningless, e.g. when the
        viewer stopped watching for a while and resumes.
        """
        self._highest = None

    # --- sequence tracking -------------------------------------------------------------

    def _track(self, now: float, seq: int, epoch: int) -> bool:
        if self._epoch is not None and epoch < self._epoch:
            return False  # a stale streamer's frame
        if self._epoch is None or epoch > self._epoch or self._highest is None:
            self._anchor(seq, epoch)
            return True
        highest = self._highest
        if seq > highest:
            gap = seq - highest - 1
            if gap > self._max_gap:
                self._anchor(seq, epoch)
                return True
            if gap:
                self._holes.append(_Hole(now, self._gen, highest + 1, seq - 1))
                self._lost += gap
            self._highest = seq
            return True
        if seq < highest - self._max_gap:
            # Further back than any late frame we track: the counter restarted.
            self._anchor(seq, epoch)
            return True
        return self._unlose(seq)

    def _anchor(self, seq: int, epoch: int) -> None:
        self._epoch = epoch
        self._highest = seq
        # Old holes stay in the deque for the windowed loss rate, but a new gen
        # means a seq of the new anchor can never match them.
        self._gen += 1

    def _unlose(self, seq: int) -> bool:
        """Fill ``seq`` if it is in a hole of the current gen; False if a duplicate."""
        # Late frames are usually recent: search from the newest hole.
        for i in range(len(self._holes) - 1, -1, -1):
            hole = self._holes[i]
            if hole.gen != self._gen:
                return False  # older gens sit before every current one
            if seq > hole.hi:
                return False  # holes are ordered by seq: it fell between two
            if seq < hole.lo:
                continue
            if hole.lo == hole.hi:
                del self._holes[i]
            elif seq == hole.lo:
                hole.lo += 1
            elif seq == hole.hi:
                hole.hi -= 1
            else:
                self._holes.insert(i + 1, _Hole(hole.t, hole.gen, seq + 1, hole.hi))
                hole.hi = seq - 1
            self._lost -= 1
            return True
        return False

    # --- window upkeep ----------------------------------------------------------------

    def _touch(self, now: float) -> None:
        if self._first_event is None:
            self._first_event = now

    def _prune(self, now: float) -> None:
        cutoff = now - self._window_s
        self._frames.prune(cutoff)
        self._bytes_in.prune(cutoff)
        self._bytes_out.prune(cutoff)
        while self._latency and self._latency[0][0] <= cutoff:
            self._latency.popleft()
        floor = None if self._highest is None else self._highest - self._max_gap
        while self._holes:
            hole = self._holes[0]
            if hole.t > cutoff:
                break
            # Outside the window, but a late frame may still fill it: keep it while
            # it is within reach of the current anchor.
            if hole.gen == self._gen and floor is not None and hole.hi >= floor:
                break
            self._holes.popleft()

    # --- reading -----------------------------------------------------------------------

    def snapshot(self, now: float) -> StatsSnapshot:
        """Statistics as of ``now``.

        Args:
            now: local time.

        Returns:
            The rates over the window ending at ``now`` and the totals so far.
        """
        self._prune(now)
        cutoff = now - self._window_s
        elapsed = 0.0 if self._first_event is None else now - self._first_event
        span = min(self._window_s, max(elapsed, MIN_SPAN_S))
        frames_w = self._frames.in_window()
        lost_w = sum(h.size for h in self._holes if h.t > cutoff)
        seen_w = frames_w + lost_w
        latencies = sorted(lat for _, lat in self._latency)
        p50 = p95 = None
        if latencies:
            p50 = percentile(latencies, 50.0) * 1000.0
            p95 = percentile(latencies, 95.0) * 1000.0
        return StatsSnapshot(
            fps=frames_w / span,
            kbps_in=self._bytes_in.in_window() * 8 / 1000 / span,
            kbps_out=self._bytes_out.in_window() * 8 / 1000 / span,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            loss_pct=100.0 * lost_w / seen_w if seen_w else 0.0,
            frames=self._frames.total,
            dropped=self._dropped,
            lost=self._lost,
            bytes_in=self._bytes_in.total,
            bytes_out=self._bytes_out.total,
        )
