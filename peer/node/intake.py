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
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peer.node.display import Display
from peer.node.events import EpochSeen, FirstFrame, NodeEvent, Resumed
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
        monotonic: the clock outages are measured with.
    """

    def __init__(self, tree: TreeState, relay: Relay, display: Display, stats: StreamStats,
                 *, root_offset: Callable[[], float | None], emit: Callable[[NodeEvent], None],
                 refuse: Callable[[str], None],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._tree = tree
        self._relay = relay
        self._display = display
        self._stats = stats
        self._root_offset = root_offset
        self._emit = emit
        self._monotonic = monotonic
        self.guard = MediaGuard(tree, refuse)
        self.layer_in: int | None = None  # the layer arriving (max of our subtree's)
        self._epoch_seen = 0
        self._epoch_changes = 0  # streams seen: what the stats fence by, never going back
        self._last_seq = -1
        # When video stopped because the parent went: (monotonic time, last seq seen).
        self._lost_at: tuple[float, int] | None = None
        # Since the last join, while no picture could be shown yet (monotonic time).
        self._awaiting_first: float | None = None

    def parent_attached(self) -> None:
        """A new parent: the next showable frame is reported as the first."""
        self._awaiting_first = self._monotonic()

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
        if link_id != tree.parent:
            return  # only the parent sends video; anything else is ignored
        if not tree.is_live_epoch(frame.epoch):
            return  # fenced: a streamer that lost its lock
        if not self.guard.video(frame):
            return  # forged (the parent is being left) or a repeat
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
