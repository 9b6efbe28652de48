"""Automatic quality for one child: the parent picks its layer from the child's backlog.

Theory of operation
-------------------
A child that chose ``auto`` tells its parent the highest layer it wants; the parent
delivers the highest layer the path to that child carries. The signal is the one the
parent already has: the child's send queue. A link that carries its layer keeps the
queue (nearly) empty; a link that cannot lets it grow and then drops the oldest
frames. So, checked on every ``observe`` (a few times a second):

* **down**: a dropped frame, or a backlog of ``BACKLOG_FRAMES`` that lasts
  ``BACKLOG_HOLD_S``, moves the child one layer down, at most once per
  ``SETTLE_S`` (a switch needs that long to show its effect). From 720p a 1.5 Mbit/s
  path settles on 360p in two steps, well inside 2 s each.
* **up**: after ``probe_s`` without any congestion the parent tries one layer up.
  A probe that congests within ``PROBE_WINDOW_S`` goes back down and doubles the wait
  before the next probe (up to ``MAX_PROBE_S``); one that holds resets the wait.
  A probe reverts at the first backlog, without waiting ``BACKLOG_HOLD_S``.
  Probes revert on backlog, before the queue has to drop, so they cost latency for a
  moment, not frames.

``next_look`` says when the child needs looking at again: at once (the caller's fast
pace) while a backlog is held or a probe may still fail, at the next probe when one
is due, otherwise not until its queue shows a backlog (the caller watches that).

Sans-IO: time comes in as ``now``; the caller applies the layer it returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

# Frames waiting in the child's queue that mean "the path is full" (the queue holds
# three; at two, the next burst drops).
BACKLOG_FRAMES: Final = 2
# A backlog shorter than this is a burst (a keyframe), not a path that is too thin.
BACKLOG_HOLD_S: Final = 0.3
# Least time between two switches: a switch takes a keyframe and a queue's worth of
# frames to show its effect.
SETTLE_S: Final = 0.6
# Time without congestion before the first probe up, and the longest backoff. A
# failed probe costs a keyframe burst and a few frames, so probes are rare; the
# longest wait still brings a viewer back one layer within 10 s of a path freeing up.
FIRST_PROBE_S: Final = 4.0
MAX_PROBE_S: Final = 8.0
# A probe that congests within this long has failed.
PROBE_WINDOW_S: Final = 2.0


class AutoLayer:
    """Chooses the layer for one ``auto`` child.

    Args:
        layers: the layers the source offers, ascending.
        ceiling: the highest layer the child asked for.
        now: monotonic time in seconds.

    Attributes:
        layer: the layer to deliver now.
        switches: how many times it changed.
    """

    def __init__(self, layers: Sequence[int], ceiling: int, now: float) -> None:
        self._layers = sorted(layers)
        self.ceiling = ceiling
        self.layer = self._top()
        self._changed_at = -SETTLE_S  # the first congestion may move it at once
        self._calm_since = now
        self._backlog_since: float | None = None
        self._dropped = 0
        self._probe_s = FIRST_PROBE_S
        self._probing_since: float | None = None
        self.switches = 0
        self._started = now

    def _top(self) -> int:
        fitting = [layer for layer in self._layers if layer <= self.ceiling]
        return fitting[-1] if fitting else self._layers[0]

    def set_ceiling(self, ceiling: int, now: float) -> int:
        """The child now wants at most ``ceiling``; returns the layer to deliver."""
        self.ceiling = ceiling
        if self.layer > self._top():
            self._move(self._top(), now)
        return self.layer

    def observe(self, now: float, queued: int, dropped_total: int) -> int:
        """Feed the child's queue state; returns the layer to deliver from now on.

        Args:
            now: monotonic time in seconds.
            queued: frames waiting in the child's send queue.
            dropped_total: frames its queue dropped so far (a running count).
        """
        dropped = dropped_total > self._dropped
        self._dropped = dropped_total
        if queued >= BACKLOG_FRAMES:
            if self._backlog_since is None:
                self._backlog_since = now
        else:
            self._backlog_since = None
        probing = self._probing_since is not None and now - self._probing_since < PROBE_WINDOW_S
        hold = 0.0 if probing else BACKLOG_HOLD_S
        congested = dropped or (
            self._backlog_since is not None and now - self._backlog_since >= hold)
        if congested:
            self._calm_since = now
            if probing:
                # Revert a failed probe at once (before its queue drops frames).
                self._probe_s = min(MAX_PROBE_S, self._probe_s * 2)
                self._probing_since = None
                self._move(self._step(-1), now)
            elif now - self._changed_at >= SETTLE_S:
                self._move(self._step(-1), now)
            return self.layer
        if self._probing_since is not None and not probing:
            self._probing_since = None  # the probe held
            self._probe_s = FIRST_PROBE_S
        if (self.layer < self._top() and now - self._calm_since >= self._probe_s
                and now - max(self._changed_at, self._started) >= self._probe_s):
            self._move(self._step(+1), now)
            self._probing_since = now
        return self.layer

    def next_look(self, now: float) -> float:
        """When ``observe`` must run again for nothing to come late: ``now`` while a
        backlog is held, a probe is in its window or a switch is taking effect
        (``SETTLE_S``: each moves on what the next look sees); the time of the next
        probe up when one is possible; infinity when neither (only a backlog or a
        drop moves the layer then)."""
        if (self._backlog_since is not None or self._probing_since is not None
                or now - self._changed_at < SETTLE_S):
            return now
        if self.layer < self._top():
            return max(self._calm_since, self._changed_at, self._started) + self._probe_s
        return math.inf

    def _step(self, direction: int) -> int:
        index = self._layers.index(self.layer) if self.layer in self._layers else 0
        index = max(0, min(len(self._layers) - 1, index + direction))
        return min(self._layers[index], self._top())

    def _move(self, layer: int, now: float) -> None:
        if layer != self.layer:
            self.layer = layer
            self.switches += 1
        self._changed_at = now
        self._backlog_since = None
