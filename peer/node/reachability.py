"""How other peers can reach this one, in the words ``ready`` and ``stats`` report.

The tracker's connect-back check is the judge: a listener it could dial is reachable.
Whether that took a port mapping on the home router (portmap.py) is ours to know.
A peer nobody can dial that is fed by a ``--relay`` peer (its parent registered as one)
is ``via-relay``: the relay fallback is what serves it. One whose parent link (or a
child link, for a parent) was made by a TCP hole punch (punching.py) is ``punched``.
"""

from __future__ import annotations

from enum import StrEnum


class Reachability(StrEnum):
    """How children can dial us (the value is the word events carry)."""

    CHECKING = "checking"  # registered, the tracker has not dialled back yet
    DIRECT = "direct"  # our listener is reachable as it is (public host, or open port)
    MAPPED = "mapped"  # reachable through a port mapping we asked our router for
    OUTBOUND_ONLY = "outbound-only"  # nobody can dial us: we can only be a leaf
    VIA_RELAY = "via-relay"  # nobody can dial us, and a --relay peer is our parent
    PUNCHED = "punched"  # nobody can dial us; a hole punch made our parent or a child link


def classify(reachable: bool | None, mapped: bool,
             parent_is_relay: bool = False, *, punched: bool = False) -> Reachability:
    """The word for a tracker verdict (None: not checked yet), our mapping state,
    whether our parent is a ``--relay`` peer and whether a hole punch made one of our
    tree links (the parent's link wins: a relay-fed peer with a punched child is
    ``via-relay``)."""
    if reachable is None:
        return Reachability.CHECKING
    if not reachable:
        if parent_is_relay:
            return Reachability.VIA_RELAY
        return Reachability.PUNCHED if punched else Reachability.OUTBOUND_ONLY
    return Reachability.MAPPED if mapped else Reachability.DIRECT
