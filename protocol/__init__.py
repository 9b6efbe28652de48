"""Treecast wire protocol: sans-IO message types, framing and limits.

Modules: ``fields`` (field readers and text checks), ``records`` (values nested in
messages), ``messages`` (one dataclass per message kind and the kind registry),
``framing`` (bytes <-> messages), ``h264`` and ``opus`` (payload structure checks),
``identity`` (peer keys), ``lan`` (mDNS TXT records), ``limits``, ``errors``,
``ratelimit``.

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
from protocol.records import Candidate, PathEntry, PeerInfo, RoomStatus, TreeLevel

__all__ = [
    "Candidate",
    "ErrorCode",
    "FieldError",
    "FrameDecoder",
    "FrameTooLargeError",
    "LocalProtocolError",
    "PathEntry",
    "PeerInfo",
    "ProtocolError",
    "RemoteProtocolError",
    "RoomStatus",
    "TreeLevel",
    "encode",
    *_message_names,
]
