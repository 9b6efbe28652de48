"""How much video a link may have in flight: keeps the bottleneck queue short.

Theory of operation
-------------------
A link slower than the video (a capped uplink) fills every queue on the way: ours,
the kernel's, and the bottleneck's (a router, a ``tc`` shaper). TCP keeps the last one
full, so every byte written later, sound included, waits behind it: hundreds of ms,
and on a shaper that drops, whole retransmission timeouts. Only what we write decides
how full it gets, so before each video frame the writer asks ``allow_video``:

    in flight (the kernel's send queue, unacked + unsent) <= rate x (base rtt + margin)

``rate`` is what the link delivered recently (acknowledged bytes per second, measured
from the send queue's drain), ``base rtt`` the smallest round trip the link's pings
saw (no queueing in it). At that budget a link carries everything it can (its
bandwidth-delay product fits) while the queue in front of the bottleneck holds at most
``margin`` of data. A frame that may not go yet waits in the link's drop-oldest video
queue, where a newer frame replaces it; sound and control never wait for the gate.

Sound written now waits behind everything in flight plus the video piece written next,
so both are kept to a few tens of ms of the link's rate: ``margin`` is 40 ms, the floor
two TCP segments, and while the link is the bottleneck (the gate held video in the last
second) ``part_bytes`` cuts video messages into pieces of 20 ms of the link's rate. On
a fast link the gate never holds and messages keep the protocol's large pieces.
Nothing here reads a clock or a socket: callers pass ``now`` and the queue size.
"""

from __future__ import annotations

from typing import Final

from protocol import limits

# Queueing allowed at the bottleneck, which is what sound written now waits behind:
# above the writer's poll and a sound server's period, far below the 200 ms a shaper or
# a router holds before it drops. (At 60 ms plus an 8 KiB floor and whole 3-4 KB
# frames on top, sound at a 290 kbit/s bottleneck arrived 290 ms late at the median
# and 620 ms at worst: bench_av_sync's overload.)
MARGIN_S: Final = 0.04
# Below this much in flight video always goes, whatever the rate estimate says (it
# starts at zero and would otherwise never grow): two full TCP segments, so a slow
# link is never idle between polls; 120 ms at 200 kbit/s, 24 ms at 1 Mbit/s.
MIN_BUDGET_BYTES: Final = 3 * 1024
# While the link is the bottleneck a video piece takes at most this long to cross it
# (sound queued meanwhile waits for the piece being written) ...
PART_S: Final = 0.02
# ... but is at least one TCP segment with the framing and TLS around it (smaller
# pieces only add overhead: the segment is the unit the link delivers anyway).
MIN_PART_BYTES: Final = 1200
# The link counts as the bottleneck this long after the gate last held video.
CONGESTED_S: Final = 1.0
# The delivery rate is measured over windows of at least this length.
RATE_WINDOW_S: Final = 0.1
# Weight of the newest window in the rate (the rest is the history).
RATE_GAIN: Final = 0.3


class BacklogGate:
    """Decides whether a video frame may be written now."""

    def __init__(self) -> None:
        self.rate_bps = 0.0  # bytes per second delivered
        self._window: tuple[float, int] | None = None  # (start, acked at start)
        self.held = 0  # times a frame had to wait
        self._now = 0.0  # the latest ``update``
        self._held_at: float | None = None  # when the gate last held video

    def update(self, now: float, written: int, in_flight: int) -> None:
        """Account for the link: ``written`` bytes handed to the kernel in total,
        ``in_flight`` of them not yet acknowledged (the kernel's send queue)."""
        self._now = now
        acked = max(0, written - in_flight)
        if self._window is None:
            self._window = (now, acked)
            return
        start, acked0 = self._window
        if now - start < RATE_WINDOW_S:
            return
        rate = (acked - acked0) / (now - start)
        # A link that was idle says nothing about its capacity: only windows that had
        # something in flight count.
        if in_flight > 0 or rate > self.rate_bps:
            self.rate_bps = rate if self.rate_bps == 0 else \
                (1 - RATE_GAIN) * self.rate_bps + RATE_GAIN * rate
        self._window = (now, acked)

    def budget(self, base_rtt: float | None) -> float:
        """Bytes that may be in flight before video waits."""
        if base_rtt is None:
            return float("inf")  # no measurement yet: do not hold anything back
        return max(MIN_BUDGET_BYTES, self.rate_bps * (base_rtt + MARGIN_S))

    def allow_video(self, in_flight: int, base_rtt: float | None) -> bool:
        ok = in_flight <= self.budget(base_rtt)
        if not ok:
            self.held += 1
            self._held_at = self._now
        return ok

    @property
    def congested(self) -> bool:
        """Whether the link is the bottleneck: the gate held video within the last
        ``CONGESTED_S`` (as of the latest ``update``)."""
        return self._held_at is not None and self._now - self._held_at < CONGESTED_S

    def part_bytes(self, total: int) -> int:
        """The piece size for a video message of ``total`` bytes (split only when
        larger): ``PART_S`` of the link's rate while it is the bottleneck, else the
        protocol's largest; never more pieces than a receiver accepts."""
        if not self.congested or self.rate_bps <= 0:
            return limits.FRAME_PART_BYTES
        piece = max(MIN_PART_BYTES, int(self.rate_bps * PART_S),
                    -(-total // limits.MAX_FRAME_PARTS))
        return min(piece, limits.FRAME_PART_BYTES)
