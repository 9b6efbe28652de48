"""How other peers can reach this one, in the words ``ready`` and ``stats`` report.

The tracker's connect-back check is the judge: a listener it could dial is reachable.
Whether that took a port mapping on the home router (portmap.py) is ours to know.
"""

from __future__ import annotations

from enum import StrEnum


class Reachability(StrEnum):
    """How children can dial us (the value is the word events carry)."""

    CHECKING = "checking"  # registered, the tracker has not dialled back yet
    DIRECT = "direct"  # our listener is reachable as it is (public host, or open port)
    MAPPED = "mapped"  # reachable through a port mapping we asked our router for
    OUTBOUND_ONLY = "outbound-only"  # nobody can dial us: we can only be a leaf


def classify(reachable: bool | None, mapped: bool) -> Reachability:
    """The word for a tracker verdict (None: not checked yet) and our mapping state."""
    if reachable is None:
        return Reachability.CHECKING
    if not reachable:
        return Reachability.OUTBOUND_ONLY
    return Reachability.MAPPED if mapped else Reachability.DIRECT
