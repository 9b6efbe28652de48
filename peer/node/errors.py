"""Errors the node raises to whoever drives it. Every message is a plain sentence a
user can read: the CLI prints it on one line and the GUI shows it in the window."""

from __future__ import annotations

from enum import IntEnum


class NodeError(Exception):
    """Base of the node's user-facing errors."""


class TrackerUnreachableError(NodeError):
    """The tracker did not answer (refused, timed out, closed)."""


class LockDeniedError(NodeError):
    """The room's streamer lock is not ours: someone else holds it (``holder``), or
    the tracker cannot grant it right now (``message`` says why; ``holder`` is "")."""

    def __init__(self, holder: str, message: str | None = None) -> None:
        super().__init__(message or f"{holder} is already streaming in this room")
        self.holder = holder


class MediaError(NodeError):
    """A source or recording cannot be opened, read or written."""


class ExitCode(IntEnum):
    """Exit status of the headless peer (``treecast-peer``, ``bench.probe``); scripts
    and benchmarks tell a refused lock or a missing tracker from a crash by it."""

    OK = 0
    FAILURE = 1  # unexpected failure
    BAD_INPUT = 2  # arguments, video file, camera (argparse also exits with 2)
    LOCK_DENIED = 3  # someone else streams in the room
    NO_TRACKER = 4  # the tracker did not answer


def exit_code(exc: NodeError) -> ExitCode:
    """The exit status for a node that failed to start with ``exc``."""
    if isinstance(exc, LockDeniedError):
        return ExitCode.LOCK_DENIED
    if isinstance(exc, TrackerUnreachableError):
        return ExitCode.NO_TRACKER
    if isinstance(exc, MediaError):
        return ExitCode.BAD_INPUT
    return ExitCode.FAILURE
