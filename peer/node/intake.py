"""Video arriving from the parent: fencing, events, statistics, then the relay.

``VideoIntake.frame`` is the receive half of the frame path: a frame from anyone but
our parent is ignored, one of a fenced epoch is dropped (``TreeState.frame_epoch``),
one that does not verify against the streamer's signed announcement is dropped and
its sender left (``MediaGuard``, media_auth.py; the same guard checks sound);
a new epoch is reported (``EpochSeen``), the first frame after a repair reports the
outage (``Resumed``: gap and frames lost), the frame is counted (rate, loss from
sequence gaps, latency from capture on the root's clock), and ``Relay.forward`` sends
it on and decodes it (in order, once) when this peer shows, records or transcodes;
decoded pictures come back through ``picture``. The first frame after a join that
could be shown is reported (``FirstFrame``: how long the picture took).

During a move the new parent's frames come in too (``TreeState.incoming``): they are
checked like the parent's (against the new parent's path) and held by a ``Splice``
(handover.py) until they continue what the old parent gave us; then the new parent
takes over (``take_over``: the tree state switches) and they are passed on, so a
move loses no frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peer.node.display import Display
from peer.node.events import EpochSeen, FirstFrame, NodeEvent, Resumed
from peer.node.handover import Mark, Splice
from peer.node.media_auth import MediaGuard
from peer.node.picture import Image
from peer.node.relay import Relay
from peer.node.stats import StreamStats
from peer.node.tree.state import TreeState
from protocol import VideoFrame, limits


class VideoIntake:
    """Receives the parent's frames.

    Args:
        tree: our tree state (who the parent is, which epochs are live).
        relay: sends frames on to our children.
        display: shows and records.
        stats: the stream statistics.
        root_offset: root clock minus ours, None while unknown.
        emit: reports events.
        refuse: leave our parent for this reason (it sent forged media).
        take_over: a move's new parent continues our stream: switch to it (the node
            applies ``TreeState.take_over``).
        refuse_incoming: give up a move's new parent for this reason (forged media).
        monotonic: the clock outages are measured with.
    """

    def __init__(self, tree: TreeState, relay: Relay, display: Display, stats: StreamStats,
                 *, root_offset: Callable[[], float | None], emit: Callable[[NodeEvent], None],
                 refuse: Callable[[str], None],
                 take_over: Callable[[], None] = lambda: None,
                 refuse_incoming: Callable[[str], None] = lambda why: None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._tree = tree
        self._relay = relay
        self._display = display
        self._stats = stats
        self._root_offset = root_offset
        self._emit = emit
        self._monotonic = monotonic
        self._take_over = take_over
        self._refuse_incoming = refuse_incoming
        self.guard = MediaGuard(tree, refuse)
        # A move's new parent (its link id) and its frames held until they continue ours.
        self.splice = Splice()
        self._splice_link: int | None = None
        # The last frame passed on (its ``Mark`` is made only while a move needs it).
        self._last: VideoFrame | None = None
        self.layer_in: int | None = None  # the layer arriving (max of our subtree's)
        self._epoch_seen = 0
        self._epoch_changes = 0  # streams seen: what the stats fence by, never going back
        self._last_seq = -1
        # When video stopped because the parent went: (monotonic time, last seq seen).
        self._lost_at: tuple[float, int] | None = None
        # Since the last join, while no picture could be shown yet (monotonic time).
        self._awaiting_first: float | None = None

    def parent_attached(self) -> None:
        """A new parent: the next showable frame is reported as the first. A move's
        new parent that took over because the old one was lost passes on what it
        held, from its keyframe."""
        self._awaiting_first = self._monotonic()
        if self._splice_link is not None and self._splice_link == self._tree.parent:
            self._splice_link = None
            for held in self.splice.release():
                if self._admit(held):
                    self._pass(held)

    def parent_lost(self, *, stream_over: bool) -> None:
        """Video stops: from now on an outage runs until the next frame."""
        if stream_over:
            self._lost_at = None
            self._last_seq = -1
        else:
            self._lost_at = (self._monotonic(), self._last_seq)

    def frame(self, link_id: int, frame: VideoFrame) -> None:
        """A frame arrived on ``link_id``."""
        tree = self._tree
        incoming = tree.incoming
        if incoming != self._splice_link:
            self._splice_link = incoming  # a move began or ended: start afresh
            self.splice.reset()
        if link_id == tree.parent:
            if self._admit(frame):
                self._pass(frame)
                if incoming is not None:
                    self._switch(self.splice.after_old(self._mark()))
        elif link_id == incoming and incoming is not None:
            # A move's new parent: checked as the parent's frames are, then held.
            if not tree.is_live_epoch(frame.epoch):
                return
            problem = self.guard.video_problem(frame, tree.incoming_path)
            if problem is not None:
                self._refuse_incoming(problem)
                return
            self._switch(self.splice.from_new(frame, self._mark()))
        # anything else: only the parent (and a move's new parent) sends video

    def _mark(self) -> Mark | None:
        return None if self._last is None else Mark.of(self._last)

    def _switch(self, frames: list[VideoFrame] | None) -> None:
        """The new parent's ``frames`` (perhaps none yet) continue ours: it takes over,
        then they pass. None: not yet."""
        if frames is None:
            return
        self._take_over()
        self._splice_link = None
        if self._tree.incoming is not None:
            return  # the tree did not switch (nothing to pass from a link not ours)
        for held in frames:
            if self._admit(held):
                self._pass(held)

    def _admit(self, frame: VideoFrame) -> bool:
        """Whether a frame of the parent's is the live stream's, authentic and new."""
        if not self._tree.is_live_epoch(frame.epoch):
            return False  # fenced: a streamer that lost its lock
        return self.guard.video(frame)  # False: forged (the parent is left) or a repeat

    def _pass(self, frame: VideoFrame) -> None:
        """Count a frame of ours, send it on and show it."""
        tree = self._tree
        self._last = frame
        tree.frame_epoch(frame.epoch)  # the announced epoch: verified above
        tree.video_arrived(self._monotonic())  # the parent is not silent (issue 13)
        if frame.epoch != self._epoch_seen:
            self._epoch_seen = frame.epoch
            self._epoch_changes += 1
            self._emit(EpochSeen(epoch=frame.epoch, seq=frame.seq))
        self.layer_in = frame.layer
        if self._lost_at is not None:
            since, last = self._lost_at
            self._lost_at = None
            lost = max(0, frame.seq - last - 1) if last >= 0 else 0
            self._emit(Resumed(parent=tree.parent_name or "?",
                               gap_ms=round((self._monotonic() - since) * 1000.0, 1),
                               lost=lost))
        self._last_seq = frame.seq
        now = time.time()
        offset = self._root_offset()
        latency = None if offset is None else now + offset - frame.captured_at
        # The stats fence off older epochs by number; on a LAN the current stream may
        # have the lower one, so they get a count of streams seen, which only grows.
        self._stats.frame_received(now, len(frame.data), frame.seq, self._epoch_changes,
                                   latency)
        # A relay that watches nothing itself (NO_VIDEO: its children asked for this)
        # decodes only what its children need, never a picture nobody looks at.
        picture = self._display.wants_pictures and tree.layer != limits.NO_VIDEO
        decodable = self._relay.forward(frame, picture=picture,
                                        recording=self._display.recording)
        if decodable and not picture and self._awaiting_first is not None:
            self._first_frame(frame)

    def picture(self, frame: VideoFrame, image: Image | None) -> None:
        """The receive pipeline decoded ``frame`` for the screen."""
        if self._awaiting_first is not None:
            self._first_frame(frame)
        self._display.received(frame, image)

    def _first_frame(self, frame: VideoFrame) -> None:
        assert self._awaiting_first is not None
        wait_ms = (self._monotonic() - self._awaiting_first) * 1000.0
        self._awaiting_first = None
        self._emit(FirstFrame(wait_ms=round(wait_ms, 1), layer=frame.layer, codec=frame.codec))
