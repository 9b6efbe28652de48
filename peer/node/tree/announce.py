"""Which stream announcements a peer believes (issue 13: epochs only inside a signed one).

An ``Accept`` or a ``StreamAnnounce`` from a neighbour carries the streamer's signed
``Announcement`` (protocol/stream_auth.py). It is believed when its signature verifies,
its streamer is the lock holder the directory reports, and, for an Accept, the epoch,
codec, size and rate the Accept states are the announced ones (the Accept's own fields
are unsigned). Anything else means the neighbour forged or altered it: the tree leaves
it (``ErrorCode.FORGED``) and avoids it for ``AVOID_FORGER_S``.
"""

from __future__ import annotations

from protocol import Accept
from protocol.stream_auth import Announcement, announcement_problem

__all__ = ["AVOID_FORGER_S", "accept_problem", "announcement_problem"]

# A neighbour that sent a forged announcement or forged media is not dialled again for
# this long (a lost parent: 5 s): it is hostile, not merely gone.
AVOID_FORGER_S = 60.0


def accept_problem(accept: Accept, streamer_id: str | None) -> str | None:
    """Why the stream an Accept describes may not be believed, or None."""
    problem = announcement_problem(accept.ann, streamer_id)
    if problem is not None:
        return problem
    ann = accept.ann
    assert isinstance(ann, Announcement)  # announcement_problem said it is there
    if (accept.epoch, accept.codec, accept.fps) != (ann.epoch, ann.codec, ann.fps) \
            or (accept.source_width, accept.source_height) != (ann.width, ann.height):
        return "an Accept that differs from the signed stream announcement"
    return None
