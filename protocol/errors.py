"""The protocol's error hierarchy.

``RemoteProtocolError`` means the other side sent something we cannot accept: the
connection that carried it is closed with a Bye carrying the reason, nothing else.
``LocalProtocolError`` means our own code misused the API (a bug on this side).
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Why a link was refused or closed; sent in Error and Bye messages."""

    MALFORMED = 1
    TOO_LARGE = 2
    BAD_VERSION = 3
    RATE_LIMITED = 4
    ROOM_FULL = 5
    TOO_MANY_CONNECTIONS = 6
    UNEXPECTED = 7
    TIMEOUT = 8
    LOOP = 9
    # 10 was FULL, never sent: a full peer answers with a Redirect, not an error.
    STALE_EPOCH = 11
    STREAM_ENDED = 12  # not an error: the streamer stopped; a Bye passed down the tree
    FORGED = 13  # media or a stream announcement that does not verify (stream_auth.py)


class ProtocolError(Exception):
    """Base of every protocol error; ``code`` says which kind for the wire."""

    code: ErrorCode = ErrorCode.MALFORMED

    def __init__(self, reason: str, code: ErrorCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class LocalProtocolError(ProtocolError):
    """We tried to encode something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The remote side sent bytes that break the protocol."""


class FieldError(RemoteProtocolError):
    """A metadata field is missing or has a bad type, range or length.

    Attributes:
        field: the field's path, e.g. ``"name"`` or ``"peers[3].port"``.
        why: what is wrong with it.
    """

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"field {field!r}: {why}", ErrorCode.MALFORMED)
        self.field = field
        self.why = why


class FrameTooLargeError(RemoteProtocolError):
    """A declared length exceeds its limit; raised before anything is buffered."""

    code = ErrorCode.TOO_LARGE

    def __init__(self, what: str, size: int, limit: int) -> None:
        super().__init__(f"{what} of {size} bytes exceeds the limit of {limit} bytes")
        self.what = what
        self.size = size
        self.limit = limit
