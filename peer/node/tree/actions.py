"""What ``TreeState`` asks its driver to do, and what it reports.

Every call into a ``TreeState`` returns a list of these, in order. Actions
(``Send``, ``Close``, ``Dial``, ``PingDue``, ``Report``) are things to do on the
network or towards the directory; events (past tense: ``ParentAttached`` ...) say what
changed in the tree so the driver can update its relay, chat and user-facing events.

Links are named by integer ids (``LinkId``) that the driver and the state share: the
state picks the id of a link it dials (``Dial.link``), the driver gets one for an
inbound connection from ``TreeState.inbound``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import Accept, Bye, Candidate, Message

LinkId = int
"""A link to a neighbour, as the state and its driver name it."""


@dataclass(frozen=True, slots=True)
class Send:
    """Queue ``message`` on ``link`` (a control message: never dropped)."""

    link: LinkId
    message: Message


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``link``, flushing ``bye`` first when given. The state has already
    forgotten the link; reporting its closure back (``link_closed``) is harmless."""

    link: LinkId
    reason: str
    bye: Bye | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    """Open a connection to ``candidate`` and call ``connected(link)`` or
    ``link_closed(link)`` when it succeeds or fails."""

    link: LinkId
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class PingDue:
    """Send a heartbeat on ``link``. The driver builds the Ping: its clock fields are
    wall-clock times for the NTP-style offset, which the state never reads."""

    link: LinkId


@dataclass(frozen=True, slots=True)
class Report:
    """Where we sit in the tree, for the directory (tracker heartbeat or LAN TXT).
    Emitted whenever one of the fields changes."""

    depth: int | None
    free_slots: int
    parent_id: str | None
    layer: int | None
    streaming: bool


# --- events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeerIdentified:
    """A neighbour's Hello arrived: the link now has a peer id and a display name."""

    link: LinkId
    peer_id: str
    name: str


@dataclass(frozen=True, slots=True)
class ParentAttached:
    """We joined: ``link`` is our parent; ``accept`` carries the path, epoch and the
    stream's size and rate. ``handed_over``: a move whose new parent's media already
    continues the stream we had (``TreeState.take_over``): nothing restarts."""

    link: LinkId
    peer_id: str
    name: str
    depth: int
    accept: Accept
    handed_over: bool = False


@dataclass(frozen=True, slots=True)
class ParentDetached:
    """Our parent link went. ``stream_over`` when the parent said the stream ended
    (then we wait for the next stream instead of repairing)."""

    link: LinkId
    peer_id: str
    name: str
    reason: str
    stream_over: bool


@dataclass(frozen=True, slots=True)
class ChildAttached:
    """We accepted a child on ``link``; it needs ``layer`` for its subtree."""

    link: LinkId
    peer_id: str
    name: str
    layer: int
    auto: bool = False  # it takes less than ``layer`` when its path cannot carry it


@dataclass(frozen=True, slots=True)
class ChildLayerChanged:
    """A child's subtree now needs ``layer`` (its LayerDemand); ``auto``: or less."""

    link: LinkId
    layer: int
    auto: bool = False


@dataclass(frozen=True, slots=True)
class ChildDetached:
    """The child on ``link`` is gone."""

    link: LinkId
    reason: str


Action = (Send | Close | Dial | PingDue | Report | PeerIdentified | ParentAttached
          | ParentDetached | ChildAttached | ChildLayerChanged | ChildDetached)
"""Anything a ``TreeState`` call returns."""

TreeEvent = (PeerIdentified | ParentAttached | ParentDetached | ChildAttached
             | ChildLayerChanged | ChildDetached)
"""What changed in the tree (the part of ``Action`` that is news, not a task)."""
