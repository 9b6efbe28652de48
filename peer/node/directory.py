"""Where a node learns who is in the room, who streams, and takes the streamer lock.

Two implementations share one small interface so the node does not care which it has:
``TrackerDirectory`` (a tracker over TCP; across the internet) and ``LanDirectory``
(zeroconf only, no tracker; see peer/node/lan_directory.py).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from peer.node.events import TreePeer
from peer.node.tracker_client import TrackerClient
from peer.trust.pins import KnownTrackers
from protocol import Candidate, PeerInfo, PeerList, PunchStart, StreamerChanged, TreeLevel
from protocol.identity import Identity


class DirectoryChange(StrEnum):
    """What changed in a directory (the argument of its ``on_change`` callback); a
    StrEnum, so it also prints and compares as its word."""

    PEERS = "peers"  # the room's peer list (candidates, the tree view)
    STREAMER = "streamer"  # who streams, with which epoch
    CLOSED = "closed"  # the tracker connection is gone


@dataclass(frozen=True, slots=True)
class StreamerInfo:
    id: str
    name: str
    epoch: int


class Directory(Protocol):
    """What the node needs from discovery and the lock."""

    async def open(self) -> None:
        """Connect / start discovery. Raises TrackerUnreachableError."""

    def candidates(self) -> list[Candidate]:
        """Peers in the tree that may take a child: shallowest, then freest first."""

    def streamer(self) -> StreamerInfo | None:
        """The room's current streamer, if any."""

    def tree(self) -> tuple[TreePeer, ...]:
        """The peers listed with their parent and layer (for tree views): everyone in
        a small room; in a large one only ourselves, the streamer and our candidates
        (``room_size`` and ``tree_levels`` then describe the rest)."""

    def room_size(self) -> int:
        """How many peers the room holds (``len(tree())`` when it is listed whole)."""

    def tree_levels(self) -> tuple[TreeLevel, ...]:
        """The tree in aggregate (peers and free slots per depth, root first, "not in
        the tree yet" as depth None last) when the room is too large to list; ()
        when ``tree()`` is the whole room."""

    def own_name(self) -> str:
        """The display name we are known by in the room (a name someone else in the
        room already used gets a suffix: "Bob (2)")."""

    def own_host(self) -> str | None:
        """Our address as the others see it (None until known)."""

    def reachable(self) -> bool:
        """Whether others can dial us (peers that cannot are leaves only)."""

    async def claim(self) -> int:
        """Take the streamer lock; returns the epoch. Raises LockDeniedError."""

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        """Whether frames of ``epoch`` are the current stream's (fencing), given the
        newest epoch this node has accepted so far."""

    def lease_valid(self) -> bool:
        """True while we hold an unexpired streamer lease."""

    async def release(self) -> None:
        """Give the lock back."""

    def set_position(self, *, depth: int | None, free_slots: int, parent_id: str | None,
                     layer: int | None, streaming: bool) -> None:
        """Tell the room where we sit in the tree."""

    async def close(self) -> None:
        """Leave the room."""


def order_candidates(candidates: list[Candidate],
                     relays: frozenset[str] = frozenset()) -> list[Candidate]:
    """Shallowest with a free slot first; full ones last (they redirect to children).
    Of one depth, ``--relay`` peers (ids in ``relays``) first: they are the public
    hosts meant to carry the tree near its root, as the tracker's own picks do.

    Ties are shuffled so that many joiners do not all dial the same peer at once.
    """
    shuffled = candidates[:]
    random.shuffle(shuffled)
    return sorted(shuffled, key=lambda c: (c.free_slots == 0, c.depth, c.id not in relays))


# After a lost tracker link, how long a list without a streamer is not believed: a
# holder's lease plus grace at the tracker's defaults (3 + 5 s), plus a margin.
_UNSURE_AFTER_LOSS_S = 10.0
# How long opening waits for a tracker that does not answer (yet): a peer started
# while its tracker restarts joins once it is back, not with an error.
OPEN_PATIENCE_S = 10.0


class TrackerDirectory:
    """A Directory backed by a tracker connection (one of a list of trackers).

    While the link is down the node keeps what it had: its tree links, the last
    candidates and streamer. A PeerList without a streamer that arrives right after a
    reconnect means "not known yet" (a restarted tracker learns the room back from its
    peers and its streamer's resume), not "the stream ended": only a StreamerChanged
    says that, or the streamer still missing once a lock's grace is over.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        peer_id: str,
        name: str,
        room: str,
        listen_host: str | None,
        listen_port: int | None,
        heartbeat_s: float,
        on_change: Callable[[DirectoryChange], None],
        more_trackers: Sequence[tuple[str, int]] = (),
        open_patience_s: float = OPEN_PATIENCE_S,
        identity: Identity | None = None,
        fingerprint: str | None = None,
        pins: KnownTrackers | None = None,
        relay: bool = False,
    ) -> None:
        self._peer_id = peer_id
        self._name = name
        self._on_change = on_change
        self._streamer: StreamerInfo | None = None
        self._open_patience_s = open_patience_s
        # Where the tracker's PunchStart messages go (the node's hole punching).
        self.on_punch: Callable[[PunchStart], None] | None = None
        # Until then a list without a streamer is "not known yet" (see class docs).
        self._unsure_until = 0.0
        # Answers worked out from one PeerList (a new list is a new object).
        self._offerers: tuple[PeerList | None, frozenset[str]] | None = None
        self._undialable: tuple[PeerList | None, frozenset[str]] | None = None
        self._reachable: tuple[PeerList | None, bool] | None = None
        self._client = TrackerClient(
            host, port, peer_id=peer_id, name=name, room=room, listen_host=listen_host,
            listen_port=listen_port, heartbeat_s=heartbeat_s,
            on_peer_list=self._on_peer_list, on_streamer_changed=self._on_streamer_changed,
            on_closed=self._on_closed, on_reconnected=self._on_reconnected,
            more_trackers=more_trackers, identity=identity, fingerprint=fingerprint,
            pins=pins, relay=relay, on_punch=self._on_punch_start)

    async def open(self) -> None:
        peers = await self._client.connect(patience=self._open_patience_s)
        if peers.your_name:  # an older tracker does not say: it took our name as is
            self._name = peers.your_name
        self._on_peer_list(peers)

    def _on_peer_list(self, peers: PeerList) -> None:
        streamer = (StreamerInfo(peers.streamer_id, peers.streamer_name or "?", peers.epoch)
                    if peers.streamer_id else None)
        if streamer is None and time.monotonic() < self._unsure_until:
            streamer = self._streamer  # a restarted tracker has not heard from it yet
        if streamer != self._streamer:
            self._streamer = streamer
            self._on_change(DirectoryChange.STREAMER)
        self._on_change(DirectoryChange.PEERS)

    def _on_streamer_changed(self, message: StreamerChanged) -> None:
        streamer = (StreamerInfo(message.streamer_id, message.streamer_name or "?",
                                 message.epoch) if message.streamer_id else None)
        if streamer != self._streamer:
            self._streamer = streamer
            self._on_change(DirectoryChange.STREAMER)

    def _on_closed(self, reason: str) -> None:
        # Lists from the next tracker we reach may lack the streamer for as long as
        # a holder's lease and grace (about 8 s): allow for that, and a margin.
        self._unsure_until = time.monotonic() + _UNSURE_AFTER_LOSS_S
        self._on_change(DirectoryChange.CLOSED)

    def _on_reconnected(self, where: str) -> None:
        self._on_change(DirectoryChange.PEERS)

    # --- connection reversal (issue 15; TreeState.offer) ---------------------------

    def orphans(self) -> list[Candidate]:
        """Listed peers that anyone can dial and that are outside the tree: a parent
        nobody can dial offers itself to them."""
        peers = self._client.peers
        found = [p for p in (peers.peers if peers else ())
                 if p.id != self._peer_id and p.depth is None and p.reachable
                 and p.host is not None and p.port is not None and p.role != "streamer"]
        # The most free slots first: relay peers (--relay) go near the root.
        found.sort(key=lambda p: -p.free_slots)
        return [Candidate(p.id, p.name, p.host, p.port) for p in found
                if p.host is not None and p.port is not None]

    def _on_punch_start(self, message: PunchStart) -> None:
        if self.on_punch is not None:
            self.on_punch(message)

    def request_punch(self, peer_id: str) -> None:
        """Ask the tracker to coordinate a hole punch with ``peer_id``."""
        self._client.request_punch(peer_id)

    def peers(self) -> tuple[PeerInfo, ...]:
        """Everyone the room lists (all of it in a small room)."""
        peers = self._client.peers
        return peers.peers if peers is not None else ()

    def offerers(self) -> frozenset[str]:
        """Listed peers in the tree that nobody can dial: the ones whose offers to be
        our parent we take (asked ten times a second: worked out once per list)."""
        peers = self._client.peers
        if self._offerers is not None and self._offerers[0] is peers:
            return self._offerers[1]
        found = frozenset(p.id for p in (peers.peers if peers else ())
                          if p.id != self._peer_id and p.depth is not None
                          and not p.reachable)
        self._offerers = (peers, found)
        return found

    def undialable(self) -> frozenset[str]:
        """Listed peers the tracker could not dial back (or has not checked yet): a
        full parent does not redirect joiners to such children (asked ten times a
        second: worked out once per list)."""
        peers = self._client.peers
        if self._undialable is not None and self._undialable[0] is peers:
            return self._undialable[1]
        found = frozenset(p.id for p in (peers.peers if peers else ()) if not p.reachable)
        self._undialable = (peers, found)
        return found

    def candidates(self) -> list[Candidate]:
        peers = self._client.peers
        if peers is None:
            return []
        found = [c for p in peers.peers if p.id != self._peer_id
                 if (c := p.candidate()) is not None]
        return order_candidates(found, frozenset(p.id for p in peers.peers if p.relay))

    def streamer(self) -> StreamerInfo | None:
        return self._streamer

    def tree(self) -> tuple[TreePeer, ...]:
        peers = self._client.peers
        listed = peers.peers if peers else ()
        undialable = {p.id for p in listed if not p.reachable}
        # A child and a parent nobody can dial can only have met through a hole punch
        # (reversal needs a dialable child, a join a dialable parent).
        return tuple(TreePeer(p.id, p.name, p.parent_id, p.depth, p.layer, p.role,
                              p.reachable, p.relay,
                              punched=p.id in undialable and p.parent_id in undialable)
                     for p in listed)

    def room_size(self) -> int:
        peers = self._client.peers
        return peers.room_size if peers is not None else 0

    def tree_levels(self) -> tuple[TreeLevel, ...]:
        peers = self._client.peers
        return peers.levels if peers is not None else ()

    def own_name(self) -> str:
        return self._name

    def own_host(self) -> str | None:
        peers = self._client.peers
        for p in peers.peers if peers else ():
            if p.id == self._peer_id:
                return p.host
        return None

    def reachable(self) -> bool:
        peers = self._client.peers
        if self._reachable is not None and self._reachable[0] is peers:
            return self._reachable[1]  # asked ten times a second: once per list
        found = True  # not listed yet: reachable until the connect-back check says not
        for p in peers.peers if peers else ():
            if p.id == self._peer_id:
                found = p.reachable
                break
        self._reachable = (peers, found)
        return found

    async def claim(self) -> int:
        granted = await self._client.claim_stream()
        return granted.epoch

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        # Tracker epochs only grow: anything not older is current (a new stream's frames
        # may arrive before the tracker's news of it).
        return epoch >= newest

    def lease_valid(self) -> bool:
        return self._client.lease_valid()

    async def release(self) -> None:
        await self._client.release_stream()

    def set_position(self, *, depth: int | None, free_slots: int, parent_id: str | None,
                     layer: int | None, streaming: bool) -> None:
        self._client.set_position(depth=depth, free_slots=free_slots, parent_id=parent_id,
                                  layer=layer)

    async def close(self) -> None:
        await self._client.close()
