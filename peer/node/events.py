"""Events a node reports to whoever drives it (CLI, GUI bridge, tests).

Past-tense names; each is a frozen dataclass. ``to_json()`` gives the ``--events``
line format: ``{"event": <kind>, "t": <unix seconds>, ...fields}``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar

from peer.node.audio.stats import AudioStats
from protocol.records import TreeLevel

if TYPE_CHECKING:  # a headless viewer never holds a picture: it does not import numpy
    import numpy as np
    import numpy.typing as npt


# Values JSON writes as they are (checked by exact type first: the common case).
_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
# Each dataclass's field names, looked up once (``dataclasses.fields`` builds a tuple
# of Field objects on every call, and a headless viewer writes a stats line a second).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data: a dataclass as a dict of its fields, a tuple or
    list as a list, an enum as its value (each recursively), anything else as it is.
    The same JSON as ``dataclasses.asdict`` gives, without its deep copies."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is tuple or cls is list:
        return [_plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(cls)}
    return value


class StreamEndReason(Enum):
    """Why a stream ended: code decides what happens next, the value is what the
    ``--events`` line says."""

    FINISHED = "stream ended"  # the source ended, or the streamer stopped it
    LOCK_LOST = "lost the streamer lock"
    LOCK_TAKEN = "another peer took the streamer lock"
    SOURCE_FAILED = "the source failed"


@dataclass(frozen=True, slots=True)
class NodeEvent:
    KIND: ClassVar[str] = "event"
    t: float = field(default_factory=time.time, kw_only=True)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.KIND}
        for name in _field_names(type(self)):
            data[name] = _plain(getattr(self, name))
        return data


@dataclass(frozen=True, slots=True)
class Ready(NodeEvent):
    KIND: ClassVar[str] = "ready"
    id: str
    listen: str
    # The name the room knows us by: the tracker makes a taken one unique ("Bob (2)").
    name: str = ""
    # How others can dial us (reachability.py); "mapped": ``mapped`` is the router's
    # external HOST:PORT forwarded to ``listen``.
    reachability: str = "checking"
    mapped: str | None = None
    # The event loop implementation: "uvloop" or "asyncio" (peer/node/loops.py).
    loop: str = "asyncio"


@dataclass(frozen=True, slots=True)
class Joined(NodeEvent):
    KIND: ClassVar[str] = "joined"
    parent: str
    parent_id: str
    depth: int
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class ParentLost(NodeEvent):
    KIND: ClassVar[str] = "parent_lost"
    parent: str
    parent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Resumed(NodeEvent):
    """The first frame after a repair: how long video stopped and what was lost."""

    KIND: ClassVar[str] = "resumed"
    parent: str
    gap_ms: float  # from noticing the parent was gone to this frame
    lost: int  # frames missing across the gap (by sequence numbers)


@dataclass(frozen=True, slots=True)
class FirstFrame(NodeEvent):
    """The first picture this peer can show after a join (a keyframe, or what follows
    one): with H.264 it waits for a keyframe, made on request."""

    KIND: ClassVar[str] = "first_frame"
    wait_ms: float  # since ``joined``
    layer: int
    codec: str


@dataclass(frozen=True, slots=True)
class EpochSeen(NodeEvent):
    """Frames of a new stream epoch started arriving (fencing is visible here)."""

    KIND: ClassVar[str] = "epoch"
    epoch: int
    seq: int


@dataclass(frozen=True, slots=True)
class Stats(NodeEvent):
    """Once a second, over a sliding window."""

    KIND: ClassVar[str] = "stats"
    fps: float
    kbps_in: float
    kbps_out: float
    latency_ms: float | None  # p50, capture to receive, across the whole path
    latency_p95_ms: float | None
    loss_pct: float
    frames: int  # frames received (or produced, for the streamer) in total
    dropped: int  # frames dropped toward children in total
    lost: int  # frames missing by sequence gaps in total
    width: int
    height: int
    depth: int | None
    parent: str | None
    children: int
    layer: int  # what this peer is delivered: the layer it shows (or streams)
    layer_in: int | None = None  # the layer arriving from the parent (max of subtree)
    wanted: int | str = 0  # what this peer asked for, or "auto"
    codec: str | None = None  # the stream's video codec (None before a stream)
    keyframes: int = 0  # keyframes received (a streamer: made) in total
    # Totals on all links, framing included: video vs everything else (control).
    bytes_in: int = 0
    bytes_out: int = 0
    video_bytes_in: int = 0
    video_bytes_out: int = 0
    audio: AudioStats | None = None  # None: this peer neither sends nor receives sound
    paused: bool = False  # the streamer paused its file: no frames, on purpose
    reachability: str = "checking"  # how others can dial us (reachability.py)
    # Frames and sound packets from our parents that did not verify against the
    # streamer's signed announcement, in total (dropped; their gaps count in ``lost``).
    forged: int = 0


@dataclass(frozen=True, slots=True)
class ChatReceived(NodeEvent):
    KIND: ClassVar[str] = "chat"
    id: str
    origin_id: str
    sender: str
    text: str
    sent_at: float
    own: bool = False

    def to_json(self) -> dict[str, Any]:
        data = NodeEvent.to_json(self)
        data["from"] = self.sender
        return data


@dataclass(frozen=True, slots=True)
class StreamStarted(NodeEvent):
    KIND: ClassVar[str] = "stream_started"
    streamer: str
    streamer_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class StreamEnded(NodeEvent):
    KIND: ClassVar[str] = "stream_ended"
    streamer: str | None
    reason: StreamEndReason
    # What failed, in words (SOURCE_FAILED: the source's error).
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class LockDenied(NodeEvent):
    """The lock was refused: ``holder`` streams, or ("") ``message`` says why not."""

    KIND: ClassVar[str] = "lock_denied"
    holder: str
    message: str


@dataclass(frozen=True, slots=True)
class ErrorRaised(NodeEvent):
    KIND: ClassVar[str] = "error"
    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class TreePeer:
    """One peer in the room as everyone's tree view draws it."""

    id: str
    name: str
    parent_id: str | None
    depth: int | None
    layer: int | None
    role: str
    # Whether others can dial it (the tracker's connect-back); None: not known (LAN).
    reachable: bool | None = None
    relay: bool = False  # a --relay peer (it said so at registration)
    # Its link to its parent was made by a hole punch: nobody can dial either of them,
    # which leaves no other way (directory.py derives it from the room list).
    punched: bool = False


@dataclass(frozen=True, slots=True)
class TreeChanged(NodeEvent):
    """The room's peers and who forwards to whom (from the tracker or LAN).

    In a large room the tracker lists only part of it: ``room_size`` says how many
    peers there are in all and ``levels`` how many sit at each depth (both as the
    directory gives them; 0 and () when ``peers`` is the whole room)."""

    KIND: ClassVar[str] = "tree"
    peers: tuple[TreePeer, ...]
    self_id: str
    room_size: int = 0
    levels: tuple[TreeLevel, ...] = ()


@dataclass(frozen=True, slots=True)
class SourceProgress(NodeEvent):
    """Streamer only: position in the file (duration None for live sources)."""

    KIND: ClassVar[str] = "progress"
    position_s: float
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class PlaybackChanged(NodeEvent):
    """The streamer paused, resumed or moved in its file (everyone in the room hears).

    Attributes:
        paused: no frames come until it resumes (this is not a broken link).
        position_s: where in the file the stream stands.
        duration_s: the file's length, None when unknown.
    """

    KIND: ClassVar[str] = "playback"
    paused: bool
    position_s: float
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class Stopped(NodeEvent):
    """The node has left the room and closed everything."""

    KIND: ClassVar[str] = "stopped"
    reason: str


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """A picture for display: BGR uint8, shape (height, width, 3). Not an event line;
    handed to ``on_frame`` (latest wins on the receiving side)."""

    image: npt.NDArray[np.uint8] = field(repr=False)
    width: int
    height: int
    seq: int
    epoch: int
    captured_at: float
