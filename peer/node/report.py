"""The once-a-second ``Stats`` event: stream statistics, every link's counters, and
where we are in the tree (``position_of``).

Links come and go; their counters are summed with those of links already closed so
the byte totals only grow. Bytes sent reach the sliding window as the difference
since the last report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from peer.node.audio.stats import AudioStats
from peer.node.events import Stats
from peer.node.link import LinkCounters
from peer.node.stats import StreamStats
from peer.node.tree.state import TreeState
from protocol import limits


@dataclass(frozen=True, slots=True)
class Position:
    """What the stats say about where we are and what we show."""

    width: int
    height: int
    depth: int | None
    parent: str | None
    children: int
    layer: int
    layer_in: int | None
    wanted: int | str = 0
    codec: str | None = None
    keyframes: int = 0
    reachability: str = "checking"


def position_of(tree: TreeState, *, streaming: bool, layer_in: int | None, keyframes: int,
                reachability: str) -> Position:
    """Where we are and what we show, for the stats.

    Args:
        tree: our tree state.
        streaming: we are the streamer (we show our source at its top layer).
        layer_in: the layer arriving from our parent (None before any frame).
        keyframes: keyframes we produced (streamer) or received.
        reachability: how others can dial us.
    """
    if streaming:
        shown = tree.clamp(max(limits.LAYERS))
    else:
        wanted = tree.clamp(tree.layer)
        shown = min(wanted, layer_in) if layer_in is not None else wanted
        if tree.auto and layer_in is not None:
            shown = layer_in  # on auto we show whatever the path carries
    width, height = tree.view_size()
    return Position(width=width, height=height, depth=tree.depth, parent=tree.parent_name,
                    children=len(tree.children), layer=shown, layer_in=layer_in,
                    wanted="auto" if tree.auto else tree.layer,
                    codec=tree.stream.codec if tree.stream.height else None,
                    keyframes=keyframes, reachability=reachability)


class StatsReporter:
    """Builds ``Stats`` events from a ``StreamStats`` and the links' counters."""

    def __init__(self, stats: StreamStats) -> None:
        self._stats = stats
        self._closed = LinkCounters()  # totals of links gone
        self._bytes_out_seen = 0

    def link_closed(self, counters: LinkCounters) -> None:
        """Keep a closed link's counters in the totals."""
        _add(self._closed, counters)

    def build(self, now: float, open_links: Iterable[LinkCounters], pos: Position,
              audio: AudioStats | None, *, paused: bool = False, forged: int = 0) -> Stats:
        """The Stats event at ``now`` (wall clock), given the open links' counters
        (``paused``: the room's stream is paused; ``forged``: media refused as forged)."""
        totals = LinkCounters()
        _add(totals, self._closed)
        for counters in open_links:
            _add(totals, counters)
        self._stats.bytes_sent(now, max(0, totals.bytes_out - self._bytes_out_seen))
        self._bytes_out_seen = totals.bytes_out
        snap = self._stats.snapshot(now)
        return Stats(
            fps=round(snap.fps, 2), kbps_in=round(snap.kbps_in, 1),
            kbps_out=round(snap.kbps_out, 1),
            latency_ms=_round(snap.latency_p50_ms), latency_p95_ms=_round(snap.latency_p95_ms),
            loss_pct=round(snap.loss_pct, 3), frames=snap.frames,
            dropped=totals.frames_dropped, lost=snap.lost, width=pos.width, height=pos.height,
            depth=pos.depth, parent=pos.parent, children=pos.children, layer=pos.layer,
            layer_in=pos.layer_in, wanted=pos.wanted, codec=pos.codec,
            keyframes=pos.keyframes, bytes_in=totals.bytes_in, bytes_out=totals.bytes_out,
            video_bytes_in=totals.video_bytes_in, video_bytes_out=totals.video_bytes_out,
            audio=audio, reachability=pos.reachability, paused=paused, forged=forged)


def _add(into: LinkCounters, counters: LinkCounters) -> None:
    for name in LinkCounters.__slots__:
        setattr(into, name, getattr(into, name) + getattr(counters, name))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
