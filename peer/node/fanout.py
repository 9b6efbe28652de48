"""How many children we take, and when one must go: the uplink meter applied (sans-IO).

Every tick the node reports what its children's queues show (bytes sent so far, how
many are backed up). The ``UplinkMeter`` turns that into a capacity; from it:

- ``fanout(now)``: ``--max-children`` while the uplink is unmeasured and calm (fewer
  if a keyframe burst sampled its rate); while unmeasured but a child backed up a
  moment ago, no more than we have; once measured, as many children as fit at each
  child's layer cap (what an H.264 child bursts to at a keyframe), or at what each
  child gets now if that is more (MJPEG);
- a change of fanout is told to the tree state (it reports our free slots);
- ``fits(layer)``: whether a joiner at ``layer`` fits next to the children we have
  (the tree state asks before it accepts one: a free slot counts a child at our
  children's layers, and a joiner at a higher layer needs more);
- when the measured uplink cannot feed the children we have and is overloaded (more
  than a keyframe backs them up), the newest moves to a sibling
  (``TreeState.shed_child``), at most one per ``SHED_INTERVAL_S``;
- ``settled(now)``: nothing to watch closely. Every queue was empty at the last
  tick, none overflowed within ``FULL_HOLD_S``, no child joined within
  ``NEW_CHILD_S`` (its join keyframe is the burst that samples the uplink) and the
  uplink is calm. The node then looks less often (node.py, ``CALM_TICK_S``): a
  backlog, an overflow or a burst shows in a queue, and the first tick that sees
  one brings the fast pace back before any hold above has begun.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Mapping, Sequence

from peer.node.codecs.rates import layer_bitrate
from peer.node.tree.actions import Action
from peer.node.tree.state import TreeState
from peer.node.uplink import FULL_HOLD_S, HEADROOM, UplinkMeter
from protocol import limits

log = logging.getLogger(__name__)

# A child's queue this long means our uplink (or its path) is behind: half the video
# queue. Two frames is only a keyframe going out (a new child, a switch).
UPLINK_BACKLOG_FRAMES = 4
# Every child with this many frames queued: a keyframe going out to all of them, and
# meanwhile the uplink sends all it can (``UplinkMeter.burst_bps``).
BURST_BACKLOG_FRAMES = 2
# At most one child is sent elsewhere per this long (the uplink needs a moment to
# show the effect).
SHED_INTERVAL_S = 3.0
# A child this new is sent on when a keyframe burst shows that the uplink cannot
# carry it (its own join keyframe does, within a second): it has barely started and has
# no subtree yet. Later, only an overloaded uplink sends a child away.
NEW_CHILD_S = 3.0
# Bitrate assumed for a child before any stream says its size.
DEFAULT_LAYER = 720

# The node's tick (``next_tick_s``). How often children's send queues are looked at
# (automatic layers, the uplink, our child slots, connection reversal) while anything
# moves: a backlog must show within a few ticks for a child to move down a layer well
# inside 2 s, and a keyframe burst (0.2-0.3 s) must span two ticks to sample the uplink.
AUTO_TICK_S = 0.1
# While ``settled`` and no automatic layer holds a backlog or probes, this often: what
# starts a hold shows in a queue, and the first tick that sees it goes back to
# AUTO_TICK_S (the holds are 0.3 s and longer; a backlog is seen at most this much
# later). A probe up due sooner brings the tick forward.
CALM_TICK_S = 0.5
# A settled leaf (attached, dialable, no children) has none of that to watch: its tick,
# and the wake-up each one costs, comes once a second (a first child waits <= 1 s).
IDLE_TICK_S = 1.0


class FanoutControl:
    """Child slots that follow the measured uplink.

    Args:
        tree: our tree state (children, stream, fanout offered).
        max_children: the configured upper bound (``--max-children``).
    """

    def __init__(self, tree: TreeState, max_children: int) -> None:
        self._tree = tree
        self._max_children = max_children
        self.uplink = UplinkMeter(max_children)
        self._shed_at = -SHED_INTERVAL_S
        self._overflows: dict[Hashable, int] = {}  # each child's queue overflows so far
        # When a child's queue last overflowed, while that was within FULL_HOLD_S.
        self._overflowed_at: dict[Hashable, float] = {}
        self._joined_at: dict[Hashable, float] = {}  # when each child was first seen
        self._kids: Sequence[Hashable] = []  # the children at the last tick, in order
        self._last_join_at = -NEW_CHILD_S
        self._queues_empty = True  # at the last tick

    def tick(self, now: float, video_bytes_out: int, queued_frames: Sequence[int],
             overflows: Mapping[Hashable, int] | None = None) -> list[Action]:
        """What our children's queues show now: total video bytes sent to the current
        children, each one's queued frames and (by child) how many frames its full
        queue has pushed out so far."""
        tree = self._tree
        kids = tree.children
        if kids != self._kids:  # a join or a departure: bookkeeping only then
            self._children_changed(now, kids)
        children = len(queued_frames)
        overflowing = 0
        if overflows is not None:
            seen = self._overflows
            for key, count in overflows.items():
                if count > seen.get(key, count):
                    self._overflowed_at[key] = now
                seen[key] = count
            if len(seen) > len(overflows):  # children gone
                for key in [k for k in seen if k not in overflows]:
                    seen.pop(key)
                    self._overflowed_at.pop(key, None)
            if self._overflowed_at:
                for key, at in list(self._overflowed_at.items()):
                    if now - at > FULL_HOLD_S:
                        del self._overflowed_at[key]
                overflowing = len(self._overflowed_at)
        self._queues_empty = not any(queued_frames)
        self.uplink.observe(now, video_bytes_out,
                            sum(1 for q in queued_frames if q >= UPLINK_BACKLOG_FRAMES),
                            children, overflowing,
                            sum(1 for q in queued_frames if q >= BURST_BACKLOG_FRAMES))
        actions: list[Action] = []
        fanout = self.fanout(now)
        if fanout != tree.fanout and tree.fanout != 0:
            actions += tree.set_reachable(True, fanout, now)
        # A child is shed only when the uplink is overloaded (queues overflowing, or
        # behind for longer than a keyframe): a keyframe burst to children the uplink
        # carries on average is absorbed by their queues, and a shed costs the shed
        # subtree a gap and a re-join. Offering slots (``fanout``) is stricter.
        if (now - self._shed_at >= SHED_INTERVAL_S
                and ((self.uplink.overloaded(now)
                      and self.uplink.over(children, self._per_child_bps()))
                     or self._newest_does_not_fit(now))):
            self._shed_at = now
            log.info("uplink full (%.0f kbit/s): a child moves to a sibling",
                     (self.uplink.capacity_bps or 0) / 1000)
            actions += tree.shed_child(now)
        return actions

    def settled(self, now: float) -> bool:
        """Nothing to watch closely (see the module docstring): the node may look at
        the queues less often until the next tick says otherwise."""
        return (self._queues_empty and not self._overflowed_at
                and now - self._last_join_at >= NEW_CHILD_S and self.uplink.calm(now))

    def next_tick_s(self, now: float, look_at: float = math.inf, *,
                    seeking: bool = False) -> float:
        """How long until the node's next tick (after one at ``now``).

        Args:
            now: the tick that just ran.
            look_at: when the automatic layers need looking at again
                (``Relay.observe``).
            seeking: not attached, or nobody can dial us (joining, reversal offers).
        """
        if seeking:
            return AUTO_TICK_S
        if not self._kids:
            return IDLE_TICK_S
        if not self.settled(now):
            return AUTO_TICK_S
        return min(CALM_TICK_S, max(AUTO_TICK_S, look_at - now))

    def _children_changed(self, now: float, kids: Sequence[Hashable]) -> None:
        for kid in kids:
            if kid not in self._joined_at:
                self._joined_at[kid] = now
                self._last_join_at = now
        for gone in [k for k in self._joined_at if k not in kids]:
            self._joined_at.pop(gone)
        self._kids = kids

    def _newest_does_not_fit(self, now: float) -> bool:
        """A keyframe burst says our uplink cannot carry the child that joined last
        (taken before the burst showed it, e.g. two joiners at once)."""
        kids = self._kids
        if (len(kids) < 2 or self.uplink.burst_bps is None
                or self.uplink.capacity_bps is not None
                or now - self._joined_at[kids[-1]] > NEW_CHILD_S):
            return False
        return len(kids) > self.uplink.slots(self._slot_bps())

    def fits(self, layer: int) -> bool:
        """Whether a child joining at ``layer`` fits next to the children we have:
        each counted at its layer's cap (or at the rate each gets now, if more: MJPEG),
        in ``HEADROOM`` of what the uplink carries (measured, or a keyframe burst's
        sample). True while neither is known (the slots offered decide), for our
        first child, and for one that watches nothing (``NO_VIDEO``)."""
        tree = self._tree
        capacity = self.uplink.capacity_bps
        if capacity is None:
            capacity = self.uplink.burst_bps
        kids = tree.children
        if capacity is None or not kids or layer == limits.NO_VIDEO:
            return True
        fps = tree.stream.fps
        each = self._per_child_bps()
        load = sum(max(each, float(layer_bitrate(tree.child_layer(c), fps))) for c in kids)
        joiner = max(each, float(layer_bitrate(tree.clamp(layer), fps)))
        return load + joiner <= capacity * HEADROOM

    def fanout(self, now: float) -> int:
        """Children we take: ``--max-children``, fewer when the measured uplink cannot
        feed them; while it is unmeasured, none more while a child backs up."""
        if self.uplink.capacity_bps is None:
            if self.uplink.calm(now):
                # (bounded by a keyframe burst's sample of the uplink, if one came)
                return self.uplink.slots(self._slot_bps())
            # A child backed up a moment ago: take no more until the uplink is calm.
            return min(self._max_children, len(self._tree.children))
        return self.uplink.slots(self._slot_bps())

    def _per_child_bps(self) -> float:
        """What each child gets now (averaged), or the top layer's cap before any."""
        children = len(self._tree.children)
        rate = self.uplink.rate_bps()
        if children and rate > 0:
            return rate / children
        return self._top_cap_bps()

    def _slot_bps(self) -> float:
        """What a child slot must be able to carry: at least its layer's bitrate cap
        (an H.264 child averages a little under it but bursts up to it for half a
        second at every keyframe: three 720p children on 8 Mbit/s leave a keyframe
        0.14 of the uplink to drain in and back every queue up together, two leave
        0.4), or what each child gets now if that is more (MJPEG has no cap)."""
        tree = self._tree
        children = tree.children
        fps = tree.stream.fps
        if not children:
            return max(self._per_child_bps(), self._top_cap_bps())
        caps = sum(layer_bitrate(tree.child_layer(c), fps) for c in children) / len(children)
        return max(self._per_child_bps(), float(caps))

    def _top_cap_bps(self) -> float:
        stream = self._tree.stream
        top = self._tree.clamp(max(limits.LAYERS)) if stream.height else DEFAULT_LAYER
        return float(layer_bitrate(top, stream.fps))
