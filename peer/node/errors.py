"""Errors the node raises to whoever drives it. Every message is a plain sentence a
user can read: the CLI prints it on one line and the GUI shows it in the window."""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node's user-facing errors."""


class TrackerUnreachableError(NodeError):
    """The tracker did not answer (refused, timed out, closed)."""


class LockDeniedError(NodeError):
    """Someone else holds the room's streamer lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"{holder} is already streaming in this room")
        self.holder = holder


class MediaError(NodeError):
    """A source or recording cannot be opened, read or written."""


class LinkBrokenError(NodeError):
    """A neighbour or the network broke a link (EOF, reset, timeout, bad bytes)."""


class ClosedError(NodeError):
    """We closed this ourselves; nothing is wrong."""
