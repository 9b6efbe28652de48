"""Node events as the ``--events`` lines: typed fields read as words."""

from __future__ import annotations

import json

from peer.node.events import StreamEnded, StreamEndReason


def test_a_stream_end_reason_is_typed_and_reads_as_its_words() -> None:
    ended = StreamEnded(streamer="alice", reason=StreamEndReason.SOURCE_FAILED,
                        detail="cannot read video from x.mp4", t=12.5)
    line = json.loads(json.dumps(ended.to_json()))
    assert line == {"event": "stream_ended", "t": 12.5, "streamer": "alice",
                    "reason": "the source failed", "detail": "cannot read video from x.mp4"}
    # Every reason has distinct words: a reader of the line can tell them apart.
    assert len({reason.value for reason in StreamEndReason}) == len(StreamEndReason)
    assert StreamEndReason(line["reason"]) is StreamEndReason.SOURCE_FAILED
