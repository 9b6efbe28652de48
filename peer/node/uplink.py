"""How many children this peer's uplink can feed, measured (sans-IO).

Theory of operation
-------------------
A constant fan-out ("3 children") is right for a LAN and wrong for a home uplink of
5 Mbit/s, which cannot carry three 720p children even with H.264. So a peer measures
what its uplink actually carries and offers only the child slots that fit.

The measure is the send rate (all children together) over a short window, sampled
when the uplink is *full*: several children's queues back up at once (one child
backing up is that child's path, which automatic quality handles; all of them is
ours). The capacity is the highest such full-uplink rate recently seen, and grows
whenever more than that is carried without congestion. Until the uplink has once been
full, its capacity is unknown and ``--max-children`` alone decides.

``slots(per_child_bps)`` is then how many children of that rate fit in
``HEADROOM`` of the capacity (at least one: a peer that was accepted as a relay keeps
feeding someone), never more than ``max_children``. While the capacity is unknown the
node offers no new slot until ``CALM_S`` has passed with no child backing up; when the
measured uplink cannot feed the children it has, the newest is sent to one of its
siblings (``TreeState.shed_child``).
"""

from __future__ import annotations

from collections import deque
from typing import Final

# Rate window: long enough to average a keyframe burst, short enough to follow change.
WINDOW_S: Final = 2.0
# Fraction of the measured capacity that children may fill: the rest absorbs
# keyframes, control traffic and the other streams of the machine.
HEADROOM: Final = 0.85
# Share of children backing up at once that means "our uplink", not "their paths".
FULL_SHARE: Final = 0.5
# A full-uplink sample this old no longer bounds the capacity (conditions change).
FORGET_S: Final = 30.0
# Until the capacity is known, no more children are offered until this long has
# passed without any child backing up.
CALM_S: Final = 2.0


class UplinkMeter:
    """Capacity of this peer's uplink, from what it sends and when it backs up.

    Args:
        max_children: the configured upper bound on children.
    """

    def __init__(self, max_children: int) -> None:
        self.max_children = max_children
        self._sent: deque[tuple[float, int]] = deque()  # (time, total bytes sent)
        self.capacity_bps: float | None = None
        self._full_at: float | None = None
        self._backed_up_at = -1e18  # last time any child backed up

    def rate_bps(self) -> float:
        """Send rate over the window, bits per second (0 until two samples)."""
        if len(self._sent) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._sent[0], self._sent[-1]
        return (b1 - b0) * 8 / (t1 - t0) if t1 > t0 else 0.0

    def observe(self, now: float, bytes_sent_total: int, backed_up: int, children: int) -> None:
        """Feed one sample (a few times a second).

        Args:
            now: monotonic time in seconds.
            bytes_sent_total: bytes sent to all children so far (a running count).
            backed_up: children whose send queue is backing up right now.
            children: children in total.
        """
        if backed_up:
            self._backed_up_at = now
        self._sent.append((now, bytes_sent_total))
        while len(self._sent) > 2 and now - self._sent[0][0] > WINDOW_S:
            self._sent.popleft()
        span = self._sent[-1][0] - self._sent[0][0]
        if span < WINDOW_S / 2:
            return  # too short to measure a rate
        rate = self.rate_bps()
        full = children >= 2 and backed_up >= max(2, FULL_SHARE * children)
        if full:
            # What a full uplink carried is its capacity (the latest sample wins: the
            # uplink may have become slower).
            self.capacity_bps = rate
            self._full_at = now
        elif self.capacity_bps is not None:
            if rate > self.capacity_bps:
                self.capacity_bps = rate  # carried more without backing up
            if self._full_at is not None and now - self._full_at > FORGET_S:
                self.capacity_bps, self._full_at = None, None

    def calm(self, now: float, seconds: float = CALM_S) -> bool:
        """No child backed up for ``seconds``: the uplink carries what it has."""
        return now - self._backed_up_at >= seconds

    def over(self, children: int, per_child_bps: float) -> bool:
        """The measured uplink cannot feed ``children`` (one should go elsewhere)."""
        return self.capacity_bps is not None and children > self.slots(per_child_bps)

    def slots(self, per_child_bps: float) -> int:
        """How many children at ``per_child_bps`` this uplink can feed.

        Returns:
            ``max_children`` while the capacity is unknown; otherwise the children
            that fit in ``HEADROOM`` of it, between 1 and ``max_children``.
        """
        if self.capacity_bps is None or per_child_bps <= 0 or self.max_children == 0:
            return self.max_children
        fit = int(self.capacity_bps * HEADROOM // per_child_bps)
        return max(1, min(self.max_children, fit))
