"""One room's peers with the indexes that keep the tracker's work per change bounded.

Theory of operation
-------------------
A room may hold thousands of peers, and every heartbeat may move one of them. Nothing
here walks the whole room on a change: each change updates

* ``levels``: peers and free slots per depth (the aggregated tree the GUI draws when
  the room is too big to list), one counter pair per depth;
* ``open``: per depth, the peers that can take a child now (listening, reachable,
  free slots), each an ``_OpenLevel`` with O(1) add, remove and random pick;
* ``names``: the display names in use, so a second "Bob" becomes "Bob (2)".

``pick_candidates`` first offers ``--relay`` peers that can take a child (``relays``,
shallowest then freest, sampled like a level), then walks depths from the root down
(at most MAX_PATH_LEN + 1 of them) and samples a few peers at random from each until
it has ``count``: the shallowest peers with room first (the freest of a level's sample
first), spread at random over the peers of one depth so a join storm does not pile
onto one peer. Relay peers are public hosts with a high fan-out meant to carry the
tree near its root, so joiners fill them before home peers. A peer handed to a joiner
(one not yet in the tree) carries a short *reservation* of a fraction of a slot, so
the next joiners of the same moment are sent elsewhere once its slots are spoken for.

Pure data: no clock (``now`` is passed in), no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from protocol import limits
from protocol.records import PeerInfo, TreeLevel

# Tries per depth when sampling candidates: a level whose sampled peers are all
# reserved is left for the next one after this many looks (bounds the work per pick).
_TRIES_PER_CANDIDATE = 4


@dataclass(slots=True, eq=False)
class Peer:
    """A registered peer (mutable; identity is the object)."""

    conn: int
    id: str
    name: str
    room: str
    host: str | None
    port: int | None
    reachable: bool = False
    depth: int | None = None
    free_slots: int = 0
    parent_id: str | None = None
    layer: int | None = None
    seen_version: int = -1
    reserved: float = 0.0  # slots promised to recent joiners (see module docs)
    reserved_until: float = 0.0
    refresh_queued: bool = False  # waits in the tracker's refresh queue
    tracker: str | None = None  # another tracker's peer (shared store; conn is -1)
    relay: bool = False  # registered as a --relay peer: offered first to joiners

    def info(self, role: str) -> PeerInfo:
        return PeerInfo(self.id, self.name, self.host, self.port, self.depth,
                        self.free_slots, self.reachable, role, self.parent_id, self.layer,
                        self.relay)

    def can_adopt(self) -> bool:
        """Whether a joiner can dial this peer and be taken as its child."""
        return (self.free_slots > 0 and self.reachable and self.depth is not None
                and self.host is not None and self.port is not None)

    def free_now(self, now: float) -> float:
        """Free slots minus those promised to joiners in the last moments."""
        if now >= self.reserved_until:
            self.reserved = 0.0
        return self.free_slots - self.reserved


class _OpenLevel:
    """Peers of one depth that can take a child: O(1) add, remove and random pick."""

    __slots__ = ("_index", "_items")

    def __init__(self) -> None:
        self._items: list[Peer] = []
        self._index: dict[int, int] = {}  # id(peer) -> position in _items

    def __len__(self) -> int:
        return len(self._items)

    def add(self, peer: Peer) -> None:
        if id(peer) not in self._index:
            self._index[id(peer)] = len(self._items)
            self._items.append(peer)

    def remove(self, peer: Peer) -> None:
        position = self._index.pop(id(peer), None)
        if position is None:
            return
        last = self._items.pop()
        if last is not peer:  # move the last item into the hole
            self._items[position] = last
            self._index[id(last)] = position

    def sample(self, count: int, rng: random.Random) -> list[Peer]:
        return rng.sample(self._items, min(count, len(self._items)))


@dataclass(slots=True)
class Room:
    """The peers of one room and its indexes."""

    name: str
    peers: dict[str, Peer] = field(default_factory=dict)  # by id, in join order
    levels: dict[int | None, list[int]] = field(default_factory=dict)  # depth -> [n, free]
    open: dict[int, _OpenLevel] = field(default_factory=dict)
    relays: _OpenLevel = field(default_factory=_OpenLevel)  # relay peers in ``open``
    names: dict[str, str] = field(default_factory=dict)  # casefolded name -> peer id
    next_suffix: dict[str, int] = field(default_factory=dict)  # base name -> next n
    version: int = 0

    def __len__(self) -> int:
        return len(self.peers)

    # --- membership -------------------------------------------------------------------

    def add(self, peer: Peer) -> None:
        """Add a new peer (its name must come from ``unique_name``)."""
        self.peers[peer.id] = peer
        self.names[peer.name.casefold()] = peer.id
        self._count(peer, +1)

    def remove(self, peer: Peer) -> None:
        del self.peers[peer.id]
        if self.names.get(peer.name.casefold()) == peer.id:
            del self.names[peer.name.casefold()]
        self._count(peer, -1)

    def unique_name(self, name: str, peer_id: str) -> str:
        """``name``, or ``name (n)`` with the smallest free n >= 2 if another peer uses it.

        Amortised O(1): the next suffix to try is remembered per name, so a flood of
        registrations under one name does not make each one scan the ones before.
        """
        holder = self.names.get(name.casefold())
        if holder is None or holder == peer_id:
            return name
        n = self.next_suffix.get(name.casefold(), 2)
        while True:
            suffix = f" ({n})"
            candidate = name[: limits.MAX_NAME_CHARS - len(suffix)] + suffix
            n += 1
            if self.names.get(candidate.casefold()) in (None, peer_id):
                self.next_suffix[name.casefold()] = n
                return candidate

    def update(self, peer: Peer, *, depth: int | None, free_slots: int,
               parent_id: str | None, layer: int | None, reachable: bool) -> bool:
        """Move ``peer``; returns whether anything listed changed."""
        new = (depth, free_slots, parent_id, layer, reachable)
        if new == (peer.depth, peer.free_slots, peer.parent_id, peer.layer, peer.reachable):
            return False
        self._count(peer, -1)
        peer.depth, peer.free_slots, peer.parent_id, peer.layer, peer.reachable = new
        self._count(peer, +1)
        return True

    def _count(self, peer: Peer, sign: int) -> None:
        counts = self.levels.setdefault(peer.depth, [0, 0])
        counts[0] += sign
        counts[1] += sign * peer.free_slots
        if counts[0] == 0:
            del self.levels[peer.depth]
        if peer.depth is not None and peer.can_adopt():
            level = self.open.setdefault(peer.depth, _OpenLevel())
            if sign > 0:
                level.add(peer)
                if peer.relay:
                    self.relays.add(peer)
            else:
                level.remove(peer)
                self.relays.remove(peer)
                if not level:
                    del self.open[peer.depth]

    # --- views ------------------------------------------------------------------------

    def tree_levels(self) -> tuple[TreeLevel, ...]:
        """The tree in aggregate, root first, "not in the tree yet" last."""
        depths = sorted(d for d in self.levels if d is not None)
        rows = [TreeLevel(d, *self.levels[d]) for d in depths]
        if None in self.levels:
            rows.append(TreeLevel(None, *self.levels[None]))
        return tuple(rows)

    def pick_candidates(self, count: int, *, exclude: Peer | None, now: float,
                        reserve_s: float, rng: random.Random) -> list[Peer]:
        """Up to ``count`` peers to join under: relay peers with room first, then the
        shallowest with room (freest first), at random among equals.

        Args:
            count: how many to return at most.
            exclude: the asking peer (never its own candidate).
            now: the current time (reservations expire).
            reserve_s: when > 0, the picked peers are promised to this asker for that
                long (one slot in all, shared among them).
            rng: the randomness (tests seed it).
        """
        picked: list[Peer] = []
        for level in (self.relays, *(self.open[depth] for depth in sorted(self.open))):
            want = count - len(picked)
            sampled = level.sample(want * _TRIES_PER_CANDIDATE, rng)
            # Freest first (then shallowest, for the relays, which span depths);
            # the sort is stable, so equals stay in their random order.
            sampled.sort(key=lambda p: (p.depth or 0, -p.free_now(now)))
            for peer in sampled:
                if peer is not exclude and peer not in picked and peer.free_now(now) > 0:
                    picked.append(peer)
                    if len(picked) == count:
                        break
            if len(picked) == count:
                break
        if reserve_s > 0 and picked:
            share = 1.0 / len(picked)
            for peer in picked:
                peer.reserved += share
                peer.reserved_until = now + reserve_s
        return picked
