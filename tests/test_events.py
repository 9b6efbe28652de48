"""Node events as the ``--events`` lines: typed fields read as words."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Any

from peer.node.audio.stats import AudioStats
from peer.node.events import (
    NodeEvent,
    Stats,
    StreamEnded,
    StreamEndReason,
    TreeChanged,
    TreePeer,
)
from protocol.records import TreeLevel


def test_a_stream_end_reason_is_typed_and_reads_as_its_words() -> None:
    ended = StreamEnded(streamer="alice", reason=StreamEndReason.SOURCE_FAILED,
                        detail="cannot read video from x.mp4", t=12.5)
    line = json.loads(json.dumps(ended.to_json()))
    assert line == {"event": "stream_ended", "t": 12.5, "streamer": "alice",
                    "reason": "the source failed", "detail": "cannot read video from x.mp4"}
    # Every reason has distinct words: a reader of the line can tell them apart.
    assert len({reason.value for reason in StreamEndReason}) == len(StreamEndReason)
    assert StreamEndReason(line["reason"]) is StreamEndReason.SOURCE_FAILED


def _reference_json(event: NodeEvent) -> dict[str, Any]:
    """The line as ``dataclasses.asdict`` makes it (what ``to_json`` replaced)."""
    data: dict[str, Any] = {"event": event.KIND}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)  # type: ignore[arg-type]
        elif isinstance(value, tuple):
            value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                     for v in value]
        elif isinstance(value, Enum):
            value = value.value
        data[f.name] = value
    return data


def test_a_stats_and_a_tree_line_are_what_asdict_makes_of_them() -> None:
    audio = AudioStats(**{f.name: i for i, f in enumerate(dataclasses.fields(AudioStats))})
    stats = Stats(fps=9.5, kbps_in=300.25, kbps_out=0.0, latency_ms=None,
                  latency_p95_ms=20.5, loss_pct=0.1, frames=100, dropped=1, lost=2,
                  width=640, height=360, depth=2, parent="v1", children=0, layer=360,
                  layer_in=360, wanted="auto", codec="h264", audio=audio, t=1.5)
    tree = TreeChanged(peers=tuple(TreePeer(f"id{i}", f"n{i}", "p", 2, 360, "viewer", True,
                                            relay=i % 2 == 0) for i in range(3)),
                       self_id="id0", room_size=300, levels=(TreeLevel(1, 2, 3),
                                                             TreeLevel(None, 4, 0)), t=2.0)
    ended = StreamEnded(streamer=None, reason=StreamEndReason.FINISHED, t=3.0)
    for event in (stats, tree, ended, Stats(**{**_fields(stats), "audio": None})):
        line = json.dumps(event.to_json(), separators=(",", ":"))
        assert line == json.dumps(_reference_json(event), separators=(",", ":"))
    assert json.loads(json.dumps(stats.to_json()))["audio"]["kbps"] == audio.kbps


def _fields(event: NodeEvent) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
