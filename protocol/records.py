"""Records nested inside messages: a peer on a path, a join candidate, a listed peer,
one depth of a room's tree in aggregate.

Each record has ``to_meta()`` and a ``from_meta(meta)`` classmethod that validates
every field; the messages that carry lists of them (Accept, Redirect, Bye, PeerList)
parse them with ``read_nested`` so an error names the item, e.g. ``peers[3].port``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits
from protocol.fields import (
    Meta,
    read_bool,
    read_int,
    read_opt_int,
    read_opt_layer,
    read_opt_port,
    read_opt_str,
    read_str,
)

__all__ = ["Candidate", "PathEntry", "PeerInfo", "RoomStatus", "RoomSummary", "TreeLevel"]


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
            id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS),
            host=read_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=read_opt_port(meta),
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
            id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS),
            host=read_str(meta, "host", limits.MAX_HOST_CHARS, allow_empty=False),
            port=read_int(meta, "port", 1, 65535),
            depth=read_int(meta, "depth", 0, limits.MAX_PATH_LEN),
            free_slots=read_int(meta, "free", 0, limits.MAX_FREE_SLOTS),
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
    relay: bool = False  # registered as a --relay peer (see Register)

    def to_meta(self) -> Meta:
        meta: Meta = {
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
        if self.relay:  # sent only when set: full lists stay as small as they were
            meta["relay"] = True
        return meta

    @classmethod
    def from_meta(cls, meta: Meta) -> PeerInfo:
        port = read_opt_port(meta)
        depth = read_opt_int(meta, "depth", 0, limits.MAX_PATH_LEN)
        return cls(
            id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS),
            host=read_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=port,
            depth=depth,
            free_slots=read_int(meta, "free", 0, limits.MAX_FREE_SLOTS),
            reachable=read_bool(meta, "reachable"),
            role=read_str(meta, "role", 16),
            parent_id=read_opt_str(meta, "parent", limits.MAX_ID_CHARS),
            layer=read_opt_layer(meta),
            relay=meta.get("relay") is not None and read_bool(meta, "relay"),
        )

    def candidate(self) -> Candidate | None:
        """This peer as a join candidate, if it can accept children at all."""
        if self.host is None or self.port is None or not self.reachable or self.depth is None:
            return None
        return Candidate(self.id, self.name, self.host, self.port, self.depth, self.free_slots)


@dataclass(frozen=True, slots=True)
class TreeLevel:
    """One depth of a room's tree in aggregate: how many peers sit there and how many
    children they could still take. ``depth`` None: registered, not in the tree yet."""

    depth: int | None
    peers: int
    free_slots: int

    def to_meta(self) -> Meta:
        return {"depth": self.depth, "peers": self.peers, "free": self.free_slots}

    @classmethod
    def from_meta(cls, meta: Meta) -> TreeLevel:
        return cls(depth=read_opt_int(meta, "depth", 0, limits.MAX_PATH_LEN),
                   peers=read_int(meta, "peers", 0, limits.MAX_TRACKER_ROOM_PEERS),
                   free_slots=read_int(meta, "free", 0,
                                       limits.MAX_FREE_SLOTS * limits.MAX_TRACKER_ROOM_PEERS))


@dataclass(frozen=True, slots=True)
class RoomSummary:
    """A room as a tracker's room list shows it to anyone: no member ids or addresses."""

    room: str
    streamer_name: str | None
    peers: int

    def to_meta(self) -> Meta:
        return {"room": self.room, "streamer": self.streamer_name, "peers": self.peers}

    @classmethod
    def from_meta(cls, meta: Meta) -> RoomSummary:
        return cls(
            room=read_str(meta, "room", limits.MAX_ROOM_CHARS, allow_empty=False),
            streamer_name=read_opt_str(meta, "streamer", limits.MAX_NAME_CHARS),
            peers=read_int(meta, "peers", 0, limits.MAX_TRACKER_ROOM_PEERS),
        )


@dataclass(frozen=True, slots=True)
class RoomStatus:
    """One room in a tracker's status report: its size and its lock."""

    room: str
    peers: int
    streamer_name: str | None
    epoch: int

    def to_meta(self) -> Meta:
        return {"room": self.room, "peers": self.peers, "streamer": self.streamer_name,
                "epoch": self.epoch}

    @classmethod
    def from_meta(cls, meta: Meta) -> RoomStatus:
        return cls(room=read_str(meta, "room", limits.MAX_ROOM_CHARS),
                   peers=read_int(meta, "peers", 0, limits.MAX_TRACKER_ROOM_PEERS),
                   streamer_name=read_opt_str(meta, "streamer", limits.MAX_NAME_CHARS),
                   epoch=read_int(meta, "epoch"))
