"""Clock offset between two linked peers, NTP style, and end-to-end frame latency.

Theory of operation
-------------------
Each link runs Ping/Pong probes. A probe yields four timestamps:

* ``t0``: we send the Ping (our clock),
* ``t1``: the remote receives it (remote clock),
* ``t2``: the remote sends the Pong (remote clock),
* ``t3``: we receive the Pong (our clock).

With one-way delays ``d_up`` and ``d_down`` and ``theta`` = remote clock minus ours::

    t1 = t0 + d_up + theta          t3 = t2 + d_down - theta

so ``offset = ((t1 - t0) + (t2 - t3)) / 2 = theta + (d_up - d_down) / 2`` and
``rtt = (t3 - t0) - (t2 - t1) = d_up + d_down``. The offset is exact when the two
directions take equally long; its error is at most ``rtt / 2``. Queueing (a video
frame ahead of the Pong in a TCP send buffer) adds delay to one direction only, and
it always *raises* the rtt, so among recent samples the one with the smallest rtt has
the smallest possible asymmetry: ``ClockEstimator`` reports that sample's offset
(the min-RTT filter NTP and PTP implementations use).

Offsets along the tree
----------------------
Video frames carry ``captured_at`` on the *root's* clock. Each peer keeps
``root_offset`` = root clock minus my clock:

* the root (streamer) has ``root_offset = 0``;
* every other peer has ``root_offset = parent_root_offset + offset_to_parent``, where
  ``parent_root_offset`` is what the parent reports in its Pong (``Pong.root_offset``)
  and ``offset_to_parent`` (parent clock minus mine) comes from this link's
  ``ClockEstimator`` (see ``chain_root_offset``).

Errors add up along the path (each hop contributes at most half its rtt), which stays
small next to the frame latency we measure. The latency of a frame is then
``(my_now + root_offset) - frame.captured_at`` (see ``frame_latency_s``): "now" moved
onto the root's clock, minus when the root captured it.

Everything here is sans-IO: timestamps are passed in, nothing reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = [
    "DEFAULT_WINDOW",
    "NEGATIVE_RTT_TOLERANCE_S",
    "ClockEstimator",
    "ClockSample",
    "chain_root_offset",
    "frame_latency_s",
]

# 16 probes span 16 s at the default keepalive (a child pings its parent once a second
# while video flows; every 0.25 s while the parent is quiet, then 4 s): long enough
# that one of them usually crossed an idle link, short enough to follow clock drift
# (ppm-level drift moves the offset by microseconds over that span).
DEFAULT_WINDOW = 16
# The remote's processing time (t2 - t1) is measured on its clock, the whole round
# trip on ours; float rounding and clock granularity can make a loopback rtt come out
# a hair below zero. Anything more negative than this means a timestamp is wrong
# (a clock stepped mid-probe, or the remote lies), and the sample is useless.
NEGATIVE_RTT_TOLERANCE_S = 1e-3


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One probe's result.

    Attributes:
        offset: remote clock minus local clock, in seconds.
        rtt: round-trip network time, remote processing excluded, in seconds.
    """

    offset: float
    rtt: float


class ClockEstimator:
    """Min-RTT-filtered clock offset to one neighbour.

    Args:
        window: how many recent samples to keep; the best of them is reported.

    Raises:
        ValueError: if ``window`` is below 1.
    """

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self._samples: deque[ClockSample] = deque(maxlen=window)
        self._best: ClockSample | None = None

    def add_sample(self, t0: float, t1: float, t2: float, t3: float) -> bool:
        """Add one Ping/Pong exchange.

        Args:
            t0: when we sent the Ping (our clock).
            t1: when the remote received it (remote clock).
            t2: when the remote sent the Pong (remote clock).
            t3: when we received the Pong (our clock).

        Returns:
            True if the sample was kept, False if it was rejected (a non-finite
            timestamp, or an rtt below ``-NEGATIVE_RTT_TOLERANCE_S``).
        """
        if not all(math.isfinite(t) for t in (t0, t1, t2, t3)):
            return False
        rtt = (t3 - t0) - (t2 - t1)
        if rtt < -NEGATIVE_RTT_TOLERANCE_S:
            return False
        # Within the tolerance a negative rtt is rounding noise: call it zero so that
        # callers can rely on rtt >= 0.
        sample = ClockSample(offset=((t1 - t0) + (t2 - t3)) / 2, rtt=max(rtt, 0.0))
        self._samples.append(sample)
        self._best = self._pick_best()
        return True

    def _pick_best(self) -> ClockSample:
        best = self._samples[0]
        for sample in self._samples:
            # "<=" prefers the newest of equally good samples: it has the least drift.
            if sample.rtt <= best.rtt:
                best = sample
        return best

    @property
    def offset(self) -> float | None:
        """Remote clock minus local clock (seconds), or None before any sample."""
        return None if self._best is None else self._best.offset

    @property
    def rtt(self) -> float | None:
        """Smallest round-trip time in the window (seconds), or None before any sample."""
        return None if self._best is None else self._best.rtt

    @property
    def samples(self) -> int:
        """How many samples the window holds now."""
        return len(self._samples)

    def reset(self) -> None:
        """Forget every sample (e.g. the neighbour's clock was restarted)."""
        self._samples.clear()
        self._best = None


def chain_root_offset(parent_root_offset: float, offset_to_parent: float) -> float:
    """My ``root_offset`` (root clock minus mine) from my parent's and our link's.

    Args:
        parent_root_offset: root clock minus the parent's clock, as the parent reports.
        offset_to_parent: parent clock minus my clock (``ClockEstimator.offset``).

    Returns:
        Root clock minus my clock, in seconds.
    """
    # (root - parent) + (parent - me) = root - me
    return parent_root_offset + offset_to_parent


def frame_latency_s(captured_at: float, now: float, root_offset: float) -> float:
    """End-to-end latency of a frame, from capture at the root to ``now`` here.

    Args:
        captured_at: the frame's capture time, on the root's clock.
        now: the local time the frame is observed (received or shown).
        root_offset: root clock minus my clock.

    Returns:
        Seconds between capture and ``now``. It can come out slightly negative when
        the true latency is below the offset estimation error.
    """
    return (now + root_offset) - captured_at
