"""Telling a viewer that nobody can serve it, instead of letting it wait forever.

A peer nobody can dial (``outbound-only``: behind a NAT without port mapping) can only
join peers it can dial itself: reachable peers in the tree with a free slot (the
room's candidates). Parents nobody can dial cannot reach it either (reversal needs the
child to be dialable). When it stays out of the tree with a streamer live, no
candidate listed and the tracker's verdict "unreachable" for ``STRANDED_AFTER_S``, it
will not be served until the room changes: ``StrandedWatch`` says so once, with why
and what would help. It keeps trying meanwhile (a relay peer may turn up).

Sans-IO: the node feeds it what it knows, with ``now``.
"""

from __future__ import annotations

STRANDED_AFTER_S = 5.0
"""Long enough for the tracker's connect-back verdict and a first join round."""

STRANDED_MESSAGE = (
    "no peer in the room can take this viewer: your network accepts no incoming "
    "connections (behind a NAT without port mapping) and every peer with a free slot "
    "is unreachable too. Enable UPnP on your router (--upnp), or ask the room to run a "
    "relay peer on a public host (treecast-peer --relay)")


class StrandedWatch:
    """Decides when to tell an unservable viewer why (once per stranded spell)."""

    def __init__(self) -> None:
        self._since: float | None = None
        self._told = False

    def update(self, now: float, *, waiting: bool, reachable: bool,
               candidates: int) -> str | None:
        """The message to show now, or None.

        Args:
            waiting: out of the tree while the room has a streamer that is not us.
            reachable: the tracker's verdict on our listener.
            candidates: how many peers the room lists that we could join.
        """
        if not waiting or reachable or candidates > 0:
            self._since = None
            self._told = False
            return None
        if self._since is None:
            self._since = now
        if self._told or now - self._since < STRANDED_AFTER_S:
            return None
        self._told = True
        return STRANDED_MESSAGE
