"""What the GUI asks the node to do, and how a refusal is classified, as types.

Views and the bridge used to pass actions around as bare strings ("start_streaming");
a typo there failed silently. ``Action`` and ``FailureKind`` are ``StrEnum``s so a log
line or a test still reads naturally, but every comparison names a real member.
"""

from __future__ import annotations

import enum

from peer.node.errors import LockDeniedError, MediaError, NodeError, TrackerUnreachableError


class Action(enum.StrEnum):
    """A request the GUI submits to the node (one per bridge slot)."""

    START = "start"
    STOP = "stop"
    SET_RESOLUTION = "set_resolution"
    SEND_CHAT = "send_chat"
    START_STREAMING = "start_streaming"
    STOP_STREAMING = "stop_streaming"
    SET_RECORDING = "set_recording"
    SET_PAUSED = "set_paused"
    SEEK = "seek"
    SET_VOLUME = "set_volume"
    SET_MUTED = "set_muted"


class FailureKind(enum.StrEnum):
    """Why an action failed, as far as the wording and the next step care."""

    TRACKER = "tracker"  # the tracker could not be reached
    LOCK = "lock"  # someone else streams in the room
    MEDIA = "media"  # a source or recording file is unusable
    INVALID = "invalid"  # a value out of range (the node checked it)
    NODE = "node"  # the node refused for another stated reason
    CLOSED = "closed"  # the session is closing; nothing to show
    ERROR = "error"  # a bug: the message carries the exception's type


def failure_kind(exc: BaseException) -> FailureKind:
    """Classify an action's exception for the views' wording and next step."""
    if isinstance(exc, TrackerUnreachableError):
        return FailureKind.TRACKER
    if isinstance(exc, LockDeniedError):
        return FailureKind.LOCK
    if isinstance(exc, MediaError):
        return FailureKind.MEDIA
    if isinstance(exc, ValueError):
        return FailureKind.INVALID
    if isinstance(exc, NodeError):
        return FailureKind.NODE
    return FailureKind.ERROR
