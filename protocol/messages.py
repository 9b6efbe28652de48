"""One frozen dataclass per wire message, with strict decoding of its metadata.

Each message has a ``KIND`` (its wire code), ``to_meta()`` giving a JSON-able dict and a
``from_meta(meta, payload)`` classmethod that validates every field: type, range and
length. Unknown fields are ignored (newer peers may add some); unknown kinds decode to
``Unknown`` so a receiver can skip them on purpose.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeVar

from protocol import limits
from protocol.errors import FieldError, LocalProtocolError

__all__ = [
    "Accept",
    "Bye",
    "Candidate",
    "Chat",
    "ChatHave",
    "Error",
    "Heartbeat",
    "Hello",
    "JoinRequest",
    "LayerDemand",
    "Message",
    "MessageType",
    "PathEntry",
    "PathUpdate",
    "PeerInfo",
    "PeerList",
    "Ping",
    "Pong",
    "Redirect",
    "Register",
    "RoomQuery",
    "StreamClaim",
    "StreamDenied",
    "StreamGranted",
    "StreamRelease",
    "StreamerChanged",
    "Unknown",
    "VideoFrame",
    "message_class",
]


class MessageType(IntEnum):
    """Wire codes. Peer-to-peer kinds below 32, tracker kinds from 32."""

    HELLO = 1
    JOIN_REQUEST = 2
    ACCEPT = 3
    REDIRECT = 4
    VIDEO_FRAME = 5
    LAYER_DEMAND = 6
    CHAT = 7
    CHAT_HAVE = 8
    PING = 9
    PONG = 10
    BYE = 11
    ERROR = 12
    PATH_UPDATE = 13
    REGISTER = 32
    PEER_LIST = 33
    HEARTBEAT = 34
    STREAM_CLAIM = 35
    STREAM_GRANTED = 36
    STREAM_DENIED = 37
    STREAM_RELEASE = 38
    STREAMER_CHANGED = 39
    ROOM_QUERY = 40


Meta = dict[str, object]
T = TypeVar("T")


# --- field readers: each raises RemoteProtocolError naming the field ----------------


def _bad(key: str, why: str) -> FieldError:
    return FieldError(key, why)


# C0 and C1 control characters: in a name or id they break one-line displays and logs.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# JSON can spell a lone surrogate ("\ud800") but UTF-8 cannot: accepting one would make
# us fail later, when we re-encode the value (a tracker relaying a peer's name).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _get(meta: Meta, key: str) -> object:
    if key not in meta:
        raise _bad(key, "missing")
    return meta[key]


def _int(meta: Meta, key: str, lo: int = 0, hi: int = 2**53) -> int:
    value = _get(meta, key)
    # bool is an int subclass in Python but never a valid integer on our wire
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(key, "expected an integer")
    if not lo <= value <= hi:
        raise _bad(key, f"{value} outside [{lo}, {hi}]")
    return value


def _float(meta: Meta, key: str) -> float:
    value = _get(meta, key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _bad(key, "expected a number")
    result = float(value)
    if not math.isfinite(result):
        raise _bad(key, "not finite")
    return result


def _opt_float(meta: Meta, key: str) -> float | None:
    return None if meta.get(key) is None else _float(meta, key)


def _str(meta: Meta, key: str, max_chars: int, *, allow_empty: bool = True,
         text: bool = False) -> str:
    """A string field; ``text`` (chat, reasons) may hold newlines and tabs, names not."""
    value = _get(meta, key)
    if not isinstance(value, str):
        raise _bad(key, "expected a string")
    if len(value) > max_chars:
        raise _bad(key, f"{len(value)} characters, limit is {max_chars}")
    if not allow_empty and not value:
        raise _bad(key, "empty")
    _check_chars(key, value, text=text)
    return value


def _check_chars(key: str, value: str, *, text: bool = False) -> None:
    if _SURROGATE.search(value):
        raise _bad(key, "lone surrogate (not valid Unicode text)")
    if not text and _CONTROL.search(value):
        raise _bad(key, "control character")


def _opt_str(meta: Meta, key: str, max_chars: int) -> str | None:
    if meta.get(key) is None:
        return None
    return _str(meta, key, max_chars)


def _bool(meta: Meta, key: str) -> bool:
    value = _get(meta, key)
    if not isinstance(value, bool):
        raise _bad(key, "expected a boolean")
    return value


def _list(meta: Meta, key: str, max_items: int) -> list[object]:
    value = _get(meta, key)
    if not isinstance(value, list):
        raise _bad(key, "expected a list")
    if len(value) > max_items:
        raise _bad(key, f"{len(value)} items, limit is {max_items}")
    return value


def _dict_items(meta: Meta, key: str, max_items: int) -> list[Meta]:
    items = _list(meta, key, max_items)
    for item in items:
        if not isinstance(item, dict):
            raise _bad(key, "expected a list of objects")
    return items  # type: ignore[return-value]


def _nested(meta: Meta, key: str, max_items: int, parse: Callable[[Meta], T]) -> tuple[T, ...]:
    """Parse a list of objects; an error names the item, e.g. ``peers[3].port``."""
    result = []
    for index, item in enumerate(_dict_items(meta, key, max_items)):
        try:
            result.append(parse(item))
        except FieldError as exc:
            raise _bad(f"{key}[{index}].{exc.field}", exc.why) from exc
    return tuple(result)


def _check_len(what: str, value: str, max_chars: int) -> None:
    """Encode-side check: we never send what the other side would reject."""
    if len(value) > max_chars:
        raise LocalProtocolError(f"{what} has {len(value)} characters, limit is {max_chars}")


# --- shared value types ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathEntry:
    """One peer on a path to the root: its id, display name and, when it accepts
    children, where it listens (so an orphan can dial its grandparent directly)."""

    id: str
    name: str
    host: str | None = None
    port: int | None = None

    def to_meta(self) -> Meta:
        return {"id": self.id, "name": self.name, "host": self.host, "port": self.port}

    @classmethod
    def from_meta(cls, meta: Meta) -> PathEntry:
        return cls(
            id=_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=_str(meta, "name", limits.MAX_NAME_CHARS),
            host=_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=None if meta.get("port") is None else _int(meta, "port", 1, 65535),
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A peer one may try to join: where it listens and how deep/full it is."""

    id: str
    name: str
    host: str
    port: int
    depth: int = 0
    free_slots: int = 0

    def to_meta(self) -> Meta:
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "depth": self.depth,
            "free": self.free_slots,
        }

    @classmethod
    def from_meta(cls, meta: Meta) -> Candidate:
        return cls(
            id=_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=_str(meta, "name", limits.MAX_NAME_CHARS),
            host=_str(meta, "host", limits.MAX_HOST_CHARS, allow_empty=False),
            port=_int(meta, "port", 1, 65535),
            depth=_int(meta, "depth", 0, limits.MAX_PATH_LEN),
            free_slots=_int(meta, "free", 0, 1024),
        )


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A peer as the tracker lists it."""

    id: str
    name: str
    host: str | None
    port: int | None
    depth: int | None
    free_slots: int
    reachable: bool
    role: str = "viewer"
    parent_id: str | None = None
    layer: int | None = None

    def to_meta(self) -> Meta:
        return {
            "id": self.id,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "depth": self.depth,
            "free": self.free_slots,
            "reachable": self.reachable,
            "role": self.role,
            "parent": self.parent_id,
            "layer": self.layer,
        }

    @classmethod
    def from_meta(cls, meta: Meta) -> PeerInfo:
        port = None if meta.get("port") is None else _int(meta, "port", 1, 65535)
        depth = None if meta.get("depth") is None else _int(meta, "depth", 0, limits.MAX_PATH_LEN)
        return cls(
            id=_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=_str(meta, "name", limits.MAX_NAME_CHARS),
            host=_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=port,
            depth=depth,
            free_slots=_int(meta, "free", 0, 1024),
            reachable=_bool(meta, "reachable"),
            role=_str(meta, "role", 16),
            parent_id=_opt_str(meta, "parent", limits.MAX_ID_CHARS),
            layer=None if meta.get("layer") is None else _layer(meta),
        )

    def candidate(self) -> Candidate | None:
        """This peer as a join candidate, if it can accept children at all."""
        if self.host is None or self.port is None or not self.reachable or self.depth is None:
            return None
        return Candidate(self.id, self.name, self.host, self.port, self.depth, self.free_slots)


# --- messages -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Base:
    KIND: ClassVar[MessageType]

    def to_meta(self) -> Meta:
        return {}

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Hello(_Base):
    """First message on every peer link, both ways: who I am, what I speak."""

    KIND: ClassVar[MessageType] = MessageType.HELLO
    peer_id: str
    name: str
    room: str
    versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS

    def to_meta(self) -> Meta:
        _check_len("name", self.name, limits.MAX_NAME_CHARS)
        return {"id": self.peer_id, "name": self.name, "room": self.room,
                "versions": list(self.versions)}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Hello:
        versions = _list(meta, "versions", 16)
        if not versions or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in versions):
            raise _bad("versions", "expected a non-empty list of integers")
        return cls(
            peer_id=_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=_str(meta, "name", limits.MAX_NAME_CHARS),
            room=_str(meta, "room", limits.MAX_ROOM_CHARS),
            versions=tuple(versions),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class JoinRequest(_Base):
    """Ask to become a child; ``layer`` is the height this subtree needs."""

    KIND: ClassVar[MessageType] = MessageType.JOIN_REQUEST
    layer: int
    listen_host: str | None = None
    listen_port: int | None = None

    def to_meta(self) -> Meta:
        return {"layer": self.layer, "host": self.listen_host, "port": self.listen_port}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> JoinRequest:
        return cls(
            layer=_layer(meta),
            listen_host=_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            listen_port=None if meta.get("port") is None else _int(meta, "port", 1, 65535),
        )


def _layer(meta: Meta) -> int:
    layer = _int(meta, "layer", 0, limits.MAX_DIMENSION_PX)
    if layer not in limits.LAYERS:
        raise _bad("layer", f"{layer} is not one of {limits.LAYERS}")
    return layer


@dataclass(frozen=True, slots=True)
class Accept(_Base):
    """You are my child. ``path`` runs from the root to me (the new parent)."""

    KIND: ClassVar[MessageType] = MessageType.ACCEPT
    path: tuple[PathEntry, ...]
    epoch: int
    source_width: int = 0
    source_height: int = 0
    fps: float = 30.0

    def to_meta(self) -> Meta:
        return {"path": [p.to_meta() for p in self.path], "epoch": self.epoch,
                "sw": self.source_width, "sh": self.source_height, "fps": self.fps}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Accept:
        path = _nested(meta, "path", limits.MAX_PATH_LEN, PathEntry.from_meta)
        if not path:
            raise _bad("path", "empty")
        return cls(path=path, epoch=_int(meta, "epoch"),
                   source_width=_int(meta, "sw", 0, limits.MAX_DIMENSION_PX),
                   source_height=_int(meta, "sh", 0, limits.MAX_DIMENSION_PX),
                   fps=_fps(meta))


def _fps(meta: Meta) -> float:
    # Older peers may omit it; 30 is what most sources run at.
    if meta.get("fps") is None:
        return 30.0
    fps = _float(meta, "fps")
    if not 0.0 < fps <= 1000.0:
        raise _bad("fps", f"{fps} outside (0, 1000]")
    return fps


@dataclass(frozen=True, slots=True)
class PathUpdate(_Base):
    """My path to the root changed (I re-attached); ``path`` ends with me."""

    KIND: ClassVar[MessageType] = MessageType.PATH_UPDATE
    path: tuple[PathEntry, ...]

    def to_meta(self) -> Meta:
        return {"path": [p.to_meta() for p in self.path]}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PathUpdate:
        path = _nested(meta, "path", limits.MAX_PATH_LEN, PathEntry.from_meta)
        if not path:
            raise _bad("path", "empty")
        return cls(path=path)


@dataclass(frozen=True, slots=True)
class Redirect(_Base):
    """I cannot take you; try these instead (usually my children)."""

    KIND: ClassVar[MessageType] = MessageType.REDIRECT
    candidates: tuple[Candidate, ...]
    reason: str = "full"

    def to_meta(self) -> Meta:
        return {"candidates": [c.to_meta() for c in self.candidates], "reason": self.reason}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Redirect:
        return cls(candidates=_nested(meta, "candidates", limits.MAX_CANDIDATES,
                                      Candidate.from_meta),
                   reason=_str(meta, "reason", limits.MAX_REASON_CHARS, text=True))


@dataclass(frozen=True, slots=True)
class VideoFrame(_Base):
    """One JPEG frame of one layer. ``captured_at`` is on the root's clock (seconds)."""

    KIND: ClassVar[MessageType] = MessageType.VIDEO_FRAME
    epoch: int
    seq: int
    captured_at: float
    width: int
    height: int
    layer: int
    jpeg: bytes = field(repr=False)

    def to_meta(self) -> Meta:
        return {"e": self.epoch, "s": self.seq, "c": self.captured_at,
                "w": self.width, "h": self.height, "layer": self.layer}

    def payload(self) -> bytes:
        return self.jpeg

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> VideoFrame:
        if not payload:
            raise _bad("payload", "video frame without JPEG data")
        return cls(
            epoch=_int(meta, "e"),
            seq=_int(meta, "s"),
            captured_at=_float(meta, "c"),
            width=_int(meta, "w", 1, limits.MAX_DIMENSION_PX),
            height=_int(meta, "h", 1, limits.MAX_DIMENSION_PX),
            layer=_layer(meta),
            jpeg=payload,
        )


@dataclass(frozen=True, slots=True)
class LayerDemand(_Base):
    """The largest layer my subtree needs from you (max of mine and my children's)."""

    KIND: ClassVar[MessageType] = MessageType.LAYER_DEMAND
    layer: int

    def to_meta(self) -> Meta:
        return {"layer": self.layer}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> LayerDemand:
        return cls(layer=_layer(meta))


@dataclass(frozen=True, slots=True)
class Chat(_Base):
    """A chat line; ``msg_id`` is ``origin_id:counter`` and unique in the room."""

    KIND: ClassVar[MessageType] = MessageType.CHAT
    msg_id: str
    origin_id: str
    origin_name: str
    sent_at: float
    text: str

    def to_meta(self) -> Meta:
        _check_len("chat text", self.text, limits.MAX_CHAT_CHARS)
        return {"id": self.msg_id, "oid": self.origin_id, "from": self.origin_name,
                "t": self.sent_at, "text": self.text}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Chat:
        return cls(
            msg_id=_str(meta, "id", 2 * limits.MAX_ID_CHARS, allow_empty=False),
            origin_id=_str(meta, "oid", limits.MAX_ID_CHARS, allow_empty=False),
            origin_name=_str(meta, "from", limits.MAX_NAME_CHARS),
            sent_at=_float(meta, "t"),
            text=_str(meta, "text", limits.MAX_CHAT_CHARS, text=True),
        )


@dataclass(frozen=True, slots=True)
class ChatHave(_Base):
    """Backfill offer: the chat ids I hold. The other side sends what I lack."""

    KIND: ClassVar[MessageType] = MessageType.CHAT_HAVE
    msg_ids: tuple[str, ...]

    def to_meta(self) -> Meta:
        return {"ids": list(self.msg_ids)}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> ChatHave:
        ids = _list(meta, "ids", limits.MAX_CHAT_IDS)
        if not all(isinstance(i, str) and 0 < len(i) <= 2 * limits.MAX_ID_CHARS for i in ids):
            raise _bad("ids", "expected a list of chat ids")
        for i in ids:
            _check_chars("ids", i)  # type: ignore[arg-type]
        return cls(msg_ids=tuple(ids))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Ping(_Base):
    """Clock probe: ``t0`` is the sender's clock when sent."""

    KIND: ClassVar[MessageType] = MessageType.PING
    t0: float

    def to_meta(self) -> Meta:
        return {"t0": self.t0}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Ping:
        return cls(t0=_float(meta, "t0"))


@dataclass(frozen=True, slots=True)
class Pong(_Base):
    """Clock answer (NTP style): echo ``t0``, my receive ``t1`` and send ``t2`` times,
    and ``root_offset``: root clock minus my clock, as I estimate it."""

    KIND: ClassVar[MessageType] = MessageType.PONG
    t0: float
    t1: float
    t2: float
    root_offset: float | None = None

    def to_meta(self) -> Meta:
        return {"t0": self.t0, "t1": self.t1, "t2": self.t2, "ro": self.root_offset}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Pong:
        ro = None if meta.get("ro") is None else _float(meta, "ro")
        return cls(t0=_float(meta, "t0"), t1=_float(meta, "t1"), t2=_float(meta, "t2"),
                   root_offset=ro)


@dataclass(frozen=True, slots=True)
class Bye(_Base):
    """I am closing this link, and why. ``candidates`` tell children where to go."""

    KIND: ClassVar[MessageType] = MessageType.BYE
    reason: str
    candidates: tuple[Candidate, ...] = ()
    code: int = 0

    def to_meta(self) -> Meta:
        return {"reason": self.reason[: limits.MAX_REASON_CHARS],
                "candidates": [c.to_meta() for c in self.candidates], "code": self.code}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Bye:
        return cls(reason=_str(meta, "reason", limits.MAX_REASON_CHARS, text=True),
                   candidates=_nested(meta, "candidates", limits.MAX_CANDIDATES,
                                      Candidate.from_meta),
                   code=_int(meta, "code", 0, 255))


@dataclass(frozen=True, slots=True)
class Error(_Base):
    """A refusal that does not necessarily close the link (e.g. rate limited chat)."""

    KIND: ClassVar[MessageType] = MessageType.ERROR
    code: int
    reason: str

    def to_meta(self) -> Meta:
        return {"code": self.code, "reason": self.reason[: limits.MAX_REASON_CHARS]}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Error:
        return cls(code=_int(meta, "code", 0, 255),
                   reason=_str(meta, "reason", limits.MAX_REASON_CHARS, text=True))


# --- tracker messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register(_Base):
    """Join a room at the tracker. ``host``/``port`` is where I accept children."""

    KIND: ClassVar[MessageType] = MessageType.REGISTER
    peer_id: str
    name: str
    room: str
    host: str | None
    port: int | None
    versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS

    def to_meta(self) -> Meta:
        _check_len("name", self.name, limits.MAX_NAME_CHARS)
        _check_len("room", self.room, limits.MAX_ROOM_CHARS)
        return {"id": self.peer_id, "name": self.name, "room": self.room,
                "host": self.host, "port": self.port, "versions": list(self.versions)}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Register:
        versions = _list(meta, "versions", 16)
        if not versions or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in versions):
            raise _bad("versions", "expected a non-empty list of integers")
        return cls(
            peer_id=_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=_str(meta, "name", limits.MAX_NAME_CHARS, allow_empty=False),
            room=_str(meta, "room", limits.MAX_ROOM_CHARS, allow_empty=False),
            host=_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=None if meta.get("port") is None else _int(meta, "port", 1, 65535),
            versions=tuple(versions),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class PeerList(_Base):
    """The room as the tracker sees it, sent on register and whenever it changes."""

    KIND: ClassVar[MessageType] = MessageType.PEER_LIST
    room: str
    peers: tuple[PeerInfo, ...]
    streamer_id: str | None = None
    streamer_name: str | None = None
    epoch: int = 0
    your_id: str | None = None

    def to_meta(self) -> Meta:
        return {"room": self.room, "peers": [p.to_meta() for p in self.peers],
                "streamer_id": self.streamer_id, "streamer_name": self.streamer_name,
                "epoch": self.epoch, "you": self.your_id}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PeerList:
        return cls(
            room=_str(meta, "room", limits.MAX_ROOM_CHARS),
            peers=_nested(meta, "peers", limits.MAX_ROOM_PEERS, PeerInfo.from_meta),
            streamer_id=_opt_str(meta, "streamer_id", limits.MAX_ID_CHARS),
            streamer_name=_opt_str(meta, "streamer_name", limits.MAX_NAME_CHARS),
            epoch=_int(meta, "epoch"),
            your_id=_opt_str(meta, "you", limits.MAX_ID_CHARS),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat(_Base):
    """I am alive (renews my registration and, if I stream, my lease), and where I
    sit in the tree (for everyone's tree view). ``depth`` None: not in the tree yet.
    ``sent_at`` is the sender's own clock; the tracker echoes it in StreamGranted."""

    KIND: ClassVar[MessageType] = MessageType.HEARTBEAT
    depth: int | None = None
    free_slots: int = 0
    parent_id: str | None = None
    layer: int | None = None
    sent_at: float | None = None

    def to_meta(self) -> Meta:
        return {"depth": self.depth, "free": self.free_slots, "parent": self.parent_id,
                "layer": self.layer, "t": self.sent_at}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Heartbeat:
        depth = None if meta.get("depth") is None else _int(meta, "depth", 0, limits.MAX_PATH_LEN)
        return cls(depth=depth, free_slots=_int(meta, "free", 0, 1024),
                   parent_id=_opt_str(meta, "parent", limits.MAX_ID_CHARS),
                   layer=None if meta.get("layer") is None else _layer(meta),
                   sent_at=_opt_float(meta, "t"))


@dataclass(frozen=True, slots=True)
class StreamClaim(_Base):
    """Ask for the room's streamer lock. ``sent_at``: as in Heartbeat."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_CLAIM
    sent_at: float | None = None

    def to_meta(self) -> Meta:
        return {"t": self.sent_at}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamClaim:
        return cls(sent_at=_opt_float(meta, "t"))


@dataclass(frozen=True, slots=True)
class StreamGranted(_Base):
    """You hold the lock; ``epoch`` is the fencing token, renew within ``lease_s``.

    ``request_sent_at`` echoes the ``sent_at`` of the claim or heartbeat this answers.
    The tracker's lease runs from when it *received* that request, which is after it
    was sent, so ``request_sent_at + lease_s`` on the holder's clock never outlives
    the tracker's lease, whatever the network delay.
    """

    KIND: ClassVar[MessageType] = MessageType.STREAM_GRANTED
    epoch: int
    lease_s: float
    request_sent_at: float | None = None

    def to_meta(self) -> Meta:
        return {"epoch": self.epoch, "lease": self.lease_s, "rt": self.request_sent_at}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamGranted:
        lease = _float(meta, "lease")
        if lease <= 0:
            raise _bad("lease", "must be positive")
        return cls(epoch=_int(meta, "epoch", 1), lease_s=lease,
                   request_sent_at=_opt_float(meta, "rt"))


@dataclass(frozen=True, slots=True)
class StreamDenied(_Base):
    """Someone else streams in this room."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_DENIED
    holder_id: str
    holder_name: str

    def to_meta(self) -> Meta:
        return {"holder_id": self.holder_id, "holder": self.holder_name}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamDenied:
        return cls(holder_id=_str(meta, "holder_id", limits.MAX_ID_CHARS),
                   holder_name=_str(meta, "holder", limits.MAX_NAME_CHARS))


@dataclass(frozen=True, slots=True)
class StreamRelease(_Base):
    """I stop streaming; the lock is free."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_RELEASE

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamRelease:
        return cls()


@dataclass(frozen=True, slots=True)
class StreamerChanged(_Base):
    """The room's streamer changed (None: nobody streams). Sent to everyone."""

    KIND: ClassVar[MessageType] = MessageType.STREAMER_CHANGED
    streamer_id: str | None
    streamer_name: str | None
    epoch: int
    host: str | None = None
    port: int | None = None

    def to_meta(self) -> Meta:
        return {"id": self.streamer_id, "name": self.streamer_name, "epoch": self.epoch,
                "host": self.host, "port": self.port}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamerChanged:
        return cls(
            streamer_id=_opt_str(meta, "id", limits.MAX_ID_CHARS),
            streamer_name=_opt_str(meta, "name", limits.MAX_NAME_CHARS),
            epoch=_int(meta, "epoch"),
            host=_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=None if meta.get("port") is None else _int(meta, "port", 1, 65535),
        )


@dataclass(frozen=True, slots=True)
class RoomQuery(_Base):
    """Look at a room without joining it (the start screen); answered by a PeerList."""

    KIND: ClassVar[MessageType] = MessageType.ROOM_QUERY
    room: str

    def to_meta(self) -> Meta:
        return {"room": self.room}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> RoomQuery:
        return cls(room=_str(meta, "room", limits.MAX_ROOM_CHARS, allow_empty=False))


@dataclass(frozen=True, slots=True)
class Unknown:
    """A kind this build does not know; receivers skip it (forward compatibility)."""

    kind: int
    meta: Meta
    payload: bytes = field(repr=False)


Message = (
    Hello | JoinRequest | Accept | PathUpdate | Redirect | VideoFrame | LayerDemand | Chat
    | ChatHave | Ping | Pong | Bye | Error | Register | PeerList | Heartbeat | StreamClaim
    | StreamGranted | StreamDenied | StreamRelease | StreamerChanged | RoomQuery
)

_CLASSES: dict[int, type[_Base]] = {
    cls.KIND: cls
    for cls in (
        Hello, JoinRequest, Accept, PathUpdate, Redirect, VideoFrame, LayerDemand, Chat,
        ChatHave, Ping, Pong, Bye, Error, Register, PeerList, Heartbeat, StreamClaim,
        StreamGranted, StreamDenied, StreamRelease, StreamerChanged, RoomQuery,
    )
}


def message_class(kind: int) -> type[_Base] | None:
    """The class for a wire code, or None for kinds this build does not know."""
    return _CLASSES.get(kind)
