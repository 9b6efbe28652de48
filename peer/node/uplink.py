"""How many children this peer's uplink can feed, measured (sans-IO).

Theory of operation
-------------------
A constant fan-out ("3 children") is right for a LAN and wrong for a home uplink of
5 Mbit/s, which cannot carry three 720p children even with H.264. So a peer measures
what its uplink actually carries and offers only the child slots that fit.

The uplink is *full* when several children's queues stay backed up together for
``FULL_HOLD_S`` (one child backing up is that child's path, which automatic quality
handles; all of them is ours). While it is full it sends all it can, so what it sent
from the moment the backlog began is its capacity (the latest such sample wins). The
capacity also grows whenever more than that is carried without congestion. Until the
uplink has once been full, its capacity is unknown and ``--max-children`` alone
decides.

A backlog cannot always last that long: a queue that overflows drops a frame of an
H.264 chain, is cleared and waits for the next keyframe, empty. So several children
overflowing their queues within ``FULL_HOLD_S`` is a full uplink too (a queue of 8
frames overflows only after a quarter of a second behind); the capacity is then what
was sent over the last ``FULL_HOLD_S``, if that is not less than the window's average
(a peer whose CPU stalled also overflows its queues, but sent less meanwhile: that says
nothing about its uplink).

Why the hold: every keyframe (a new child anywhere below the producer asks for one,
and it goes to every child of the layer) is 10-20 frames' worth of bytes at once, so
all children back up together for a moment even on an uplink with room to spare.
Counting that moment as "full" took the average send rate, i.e. the load, for the
capacity: the peer then believed it could not feed the children it had, shed one (a
gap of 10-15 frames and a re-join, which asks for yet another keyframe), and did so
again at the next keyframe (docs/PERFORMANCE.md, section 15, capped hosts).

``slots(per_child_bps)`` is then how many children of that rate fit in
``HEADROOM`` of the capacity (at least one: a peer that was accepted as a relay keeps
feeding someone), never more than ``max_children``. While the capacity is unknown the
node offers no new slot until ``CALM_S`` has passed with no child backing up, and a
keyframe burst bounds the slots: while every child has a few frames queued the uplink
sends all it can, and that rate (``burst_bps``) stands in for the capacity when slots
are offered. It is never a reason to shed: a parent learns from its second 720p
child's join keyframe that a third does not fit, before it takes one (a third child
taken and shed later costs that child's subtree a gap and a re-join). When the
measured uplink cannot feed the children it has and it is ``overloaded`` (queues
overflowing together, or backed up together for ``OVERLOAD_HOLD_S``: more than a
keyframe, which the relay's byte-bounded H.264 queues absorb), the newest is sent to
one of its siblings (``TreeState.shed_child``).
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
# How long they must stay backed up together: a keyframe burst on an uplink that
# carries the average drains well within this (two 720p children on 8 Mbit/s: 0.2 s);
# a backlog that outlasts it is an uplink sent more than it carries.
FULL_HOLD_S: Final = 0.5
# A full-uplink sample this old no longer bounds the capacity (conditions change).
# Long: forgetting re-offers up to ``max_children`` slots, which peers moving up the
# tree fill at once, and if the uplink did not change, the newest is shed again (a
# re-join, a keyframe for the whole layer). A home uplink rarely grows within minutes.
FORGET_S: Final = 300.0
# A backlog held together this long is more than a keyframe (x264's VBV bounds a burst
# to half a second at the layer's cap; the relay's byte-bounded queue holds two such):
# the children are sent more than the uplink carries, and one should go elsewhere.
OVERLOAD_HOLD_S: Final = 1.5
# A backlog held together this long gives a sample of the uplink's rate (a keyframe
# to two 720p children on 8 Mbit/s: 0.2-0.3 s): used only to offer no slot the uplink
# could not carry at the layers' caps, never to shed (two ticks apart: noisy).
BURST_MIN_S: Final = 0.1
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
        # Since when the children have been backed up together, the bytes sent then and
        # how many children there were (the byte count is over the current children).
        self._full_since: tuple[float, int, int] | None = None
        self._overloaded_at = -1e18  # last time queues overflowed or stayed behind long
        # What the uplink sent while a keyframe backed the children up together (shorter
        # than FULL_HOLD_S): it bounds the slots offered while the capacity is unknown.
        self.burst_bps: float | None = None
        self._burst_at = -1e18
        self._burst_since: tuple[float, int, int] | None = None  # as ``_full_since``

    def rate_bps(self) -> float:
        """Send rate over the window, bits per second (0 until two samples)."""
        if len(self._sent) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self._sent[0], self._sent[-1]
        return (b1 - b0) * 8 / (t1 - t0) if t1 > t0 else 0.0

    def observe(self, now: float, bytes_sent_total: int, backed_up: int, children: int,
                overflowing: int = 0, bursting: int | None = None) -> None:
        """Feed one sample (a few times a second).

        Args:
            now: monotonic time in seconds.
            bytes_sent_total: bytes sent to all children so far (a running count).
            backed_up: children whose send queue is backing up right now.
            children: children in total.
            overflowing: children whose full queue dropped a frame within the last
                ``FULL_HOLD_S``.
            bursting: children with a few frames queued (a keyframe going out);
                None: as ``backed_up``.
        """
        if backed_up:
            self._backed_up_at = now
        self._sample_burst(now, bytes_sent_total, backed_up if bursting is None else bursting,
                           children)
        self._sent.append((now, bytes_sent_total))
        while len(self._sent) > 2 and now - self._sent[0][0] > WINDOW_S:
            self._sent.popleft()
        together = max(2, FULL_SHARE * children)
        if children >= 2 and overflowing >= together:
            # Overflowing queues have stood behind for a quarter of a second or more:
            # the uplink was busy most of the window, so its average is what it carries.
            # (A stalled CPU also overflows queues; taken for a full uplink it costs a
            # child slot, which is the safe way to be wrong.)
            rate = self.rate_bps()
            if rate > 0:
                self.capacity_bps = rate
                self._full_at = now
                self._backed_up_at = now
                self._overloaded_at = now
                return
        full = children >= 2 and backed_up >= together
        if (not full or self._full_since is None or self._full_since[2] != children
                or bytes_sent_total < self._full_since[1]):
            self._full_since = (now, bytes_sent_total, children) if full else None
        else:
            start, sent_then, _ = self._full_since
            held = now - start
            if held >= FULL_HOLD_S:
                # Backed up all along, longer than a keyframe takes on an uplink that
                # carries the children: it sent all it could since then, and that is
                # its capacity (the latest sample wins: the uplink may have slowed).
                self.capacity_bps = (bytes_sent_total - sent_then) * 8 / held
                self._full_at = now
                if held >= OVERLOAD_HOLD_S:
                    self._overloaded_at = now
                return
        span = self._sent[-1][0] - self._sent[0][0]
        if span < WINDOW_S / 2:
            return  # too short to measure a rate
        rate = self.rate_bps()
        if not full and self.capacity_bps is not None:
            if rate > self.capacity_bps:
                self.capacity_bps = rate  # carried more without backing up
            if self._full_at is not None and now - self._full_at > FORGET_S:
                self.capacity_bps, self._full_at = None, None
        if self.burst_bps is not None and now - self._burst_at > FORGET_S:
            self.burst_bps = None

    def _sample_burst(self, now: float, sent: int, bursting: int, children: int) -> None:
        """While every child has frames queued (a keyframe to all of them), the uplink
        sends all it can: over ``BURST_MIN_S`` or more that is a sample of its rate.
        Only one at least the window's average counts: a stalled CPU also leaves
        frames queued, but sends less meanwhile."""
        if children < 2 or bursting < children:
            self._burst_since = None
            return
        if self._burst_since is None or self._burst_since[2] != children \
                or sent < self._burst_since[1]:
            self._burst_since = (now, sent, children)
            return
        start, sent_then, _ = self._burst_since
        held = now - start
        if held >= BURST_MIN_S:
            rate = (sent - sent_then) * 8 / held
            if rate >= self.rate_bps():
                # The highest sample: a burst that began between two ticks reads low,
                # and too low a figure would cost slots (and newcomers) for nothing.
                self.burst_bps = max(rate, self.burst_bps or 0.0)
                self._burst_at = now

    def calm(self, now: float, seconds: float = CALM_S) -> bool:
        """No child backed up for ``seconds``: the uplink carries what it has."""
        return now - self._backed_up_at >= seconds

    def overloaded(self, now: float) -> bool:
        """Queues overflowed together, or stayed behind together for
        ``OVERLOAD_HOLD_S``, within the last ``FULL_HOLD_S``: more than a keyframe."""
        return now - self._overloaded_at <= FULL_HOLD_S

    def over(self, children: int, per_child_bps: float) -> bool:
        """The measured uplink cannot feed ``children`` (one should go elsewhere)."""
        return self.capacity_bps is not None and children > self.slots(per_child_bps)

    def slots(self, per_child_bps: float) -> int:
        """How many children at ``per_child_bps`` this uplink can feed.

        Returns:
            ``max_children`` while the capacity is unknown (and no keyframe burst
            sampled it); otherwise the children that fit in ``HEADROOM`` of it,
            between 1 and ``max_children``.
        """
        capacity = self.capacity_bps if self.capacity_bps is not None else self.burst_bps
        if capacity is None or per_child_bps <= 0 or self.max_children == 0:
            return self.max_children
        fit = int(capacity * HEADROOM // per_child_bps)
        return max(1, min(self.max_children, fit))
