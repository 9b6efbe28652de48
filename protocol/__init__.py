"""Treecast wire protocol: sans-IO message types, framing and limits.

Nothing in this package touches sockets, asyncio, threads, clocks, Qt or OpenCV; the
peer and the tracker feed it bytes and get typed messages back (and the reverse).
"""

from protocol.errors import (
    ErrorCode,
    FieldError,
    FrameTooLargeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
)
from protocol.framing import FrameDecoder, encode
from protocol.messages import *  # noqa: F403
from protocol.messages import __all__ as _message_names

__all__ = [
    "ErrorCode",
    "FieldError",
    "FrameDecoder",
    "FrameTooLargeError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "encode",
    *_message_names,
]
