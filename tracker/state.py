"""The tracker's registry and streamer lock, sans-IO.

Theory of operation
-------------------
``TrackerState`` knows connections by an integer id that the adapter (server.py)
chooses. The adapter reports what happens to a connection (``connect``, ``receive``,
``disconnect``) and when time passes (``handle_timer``), always with ``now`` from one
monotonic clock. Every such call returns ``Outbound`` pairs (connection id, message)
for the adapter to send, in order. A ``Bye`` is always the last message for its
connection: the state forgets the connection when it emits one, and the adapter closes
the connection once the Bye is written.

Rooms. A connection joins one room with Register; it is then a *peer* (PeerInfo in
the room's PeerList), under a display name unique in the room (a second "Bob" becomes
"Bob (2)"; the reply's ``your_name`` says which). A room exists while it has peers.
Every change to a room (join, leave, a heartbeat that changes a listed field, a
reachability result, a new streamer) bumps the room's version.

Small rooms (up to ``full_list_peers``) are listed whole, as one PeerList object
shared by everyone. Pushes are coalesced: the first change after a quiet period is
pushed at once, later ones at most once per ``update_interval_s``, and a room of N
peers at most once per N / ``list_records_per_s`` seconds (each push costs each of
its N peers O(N) to read: a room growing by joins would cost O(N^2) a second with a
push per change); a peer that already saw the current version (the newcomer, who got
a PeerList as its reply) is skipped. The work per push is bounded by
``full_list_peers``.

Large rooms are never listed whole and a change pushes nothing: each peer gets its own
bounded PeerList (itself, the streamer, ``candidates`` join candidates picked for it,
the room's size and the tree per depth; see tracker/room.py) in the reply to Register
and then at most every ``refresh_s`` while the room changes (``settled_refresh_s``
once the peer is in the tree). A change costs O(1) index updates, a refresh
O(candidates): the tracker's work per peer per second stays flat however large the
room grows. StreamerChanged still reaches everyone at once.

Streamer lock. Each room has at most one holder. A grant carries an epoch from one
tracker-wide counter, so epochs only ever rise, in every room, even across a room
emptying and coming back: a peer that saw epoch N can drop any frame stamped < N. The
lease runs ``lease_s`` from the holder's last message; a heartbeat from the holder is
answered with StreamGranted (same epoch) as a renewal confirmation, echoing the
request's ``sent_at`` so the holder can date its lease from when it asked. The lock
ends on StreamRelease, on the holder's disconnect, or when the lease runs out; each
end and each new grant is announced to the room with StreamerChanged.

Expiry is computed from ``now`` whenever a room's lock is touched, so a claim that
arrives after the lease ran out succeeds even if ``handle_timer`` has not run yet.

Connect-back. A Register with a port queues a ``ConnectBack`` (``take_checks``); the
adapter tries a TCP connection and reports with ``check_done``. Until then the peer
is listed as not reachable. The check, and the address the peer is listed at, is
always the address the registration came from, never one the peer names: the
tracker must not be a port scanner, nor send viewers to someone else's host.

Hole punching. Two peers of a room that nobody can dial (both behind NATs) can still
link up if both dial each other from their listening ports at once (TCP simultaneous
open; peer/node/punch.py). A PunchRequest from one names the other; the tracker sends
both a PunchStart with the other's address as it lists it (the host its registration
came from, the port it listens on) and one moment, relative to receipt. Only between
two registered, unreachable peers of one room, with the target in the tree; at most
``punch_requests_per_s`` per requester and ``punch_invites_per_s`` per target (a
target made to dial out is work done for someone else): anything else is refused with
an Error and nothing is sent to the target. The addresses are the tracker's own
observations, so nobody can aim a peer at a third party's host.

Hostile clients. Connections are capped in total and per address; one that has not
registered within ``register_timeout_s`` is closed. One address holds at most
``max_connections_per_address`` connections, so at most that many registrations in a
room: enough for a lab behind one NAT, and a room (``max_peers_per_room``) takes
hundreds of addresses to fill.
"""

from __future__ import annotations

import heapq
import math
import random
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

from protocol import limits
from protocol.errors import ErrorCode
from protocol.messages import (
    Bye,
    DenyReason,
    Error,
    Heartbeat,
    Message,
    PeerList,
    Ping,
    Pong,
    PunchRequest,
    PunchStart,
    Register,
    RoomList,
    RoomListQuery,
    RoomQuery,
    StatusQuery,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
    TrackerStatus,
    Unknown,
)
from protocol.private_room import is_private
from protocol.ratelimit import TokenBucket
from protocol.records import PeerInfo, RoomStatus, RoomSummary
from tracker.config import TrackerConfig
from tracker.room import Peer, Room

_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})

Outbound = tuple[int, Message]
"""A message to send on a connection, by connection id."""


@dataclass(frozen=True, slots=True)
class ConnectBack:
    """A reachability check to run: connect to ``host:port``, close at once.

    Attributes:
        conn: the registering connection (the result applies only while it is open).
        peer_id: the peer that registered on it.
        host: where its listener should be.
        port: the listener's port.
    """

    conn: int
    peer_id: str
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class LockOp:
    """A lock operation for the shared store to run (shared mode); its outcome comes
    back through ``lock_result``.

    Attributes:
        kind: "claim" (a fresh claim), "resume" (a holder back with its epoch and
            token), "release" (a local holder gave the lock up or lost it).
        room / peer_id / name / host / port: the claimant or holder.
        conn: the claimant's connection (its answer goes there).
        sent_at: the claim's ``sent_at`` (echoed in the grant).
        resume_epoch / token: for a resume, and for a release (whose lock).
    """

    kind: str
    room: str
    peer_id: str
    name: str = ""
    host: str | None = None
    port: int | None = None
    conn: int = 0
    sent_at: float | None = None
    resume_epoch: int | None = None
    token: str | None = None


@dataclass(frozen=True, slots=True)
class LockRecord:
    """A room's lock as the shared store holds it."""

    holder_id: str
    holder_name: str
    host: str | None
    port: int | None
    epoch: int
    token: str
    tracker: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class PeerChange:
    """A local peer appeared, moved or left (shared mode: for the other trackers)."""

    room: str
    peer_id: str
    info: PeerInfo | None  # None: gone


@dataclass(frozen=True, slots=True)
class LockView:
    """A room's streamer lock as seen from outside (tests, logs)."""

    holder_id: str
    holder_name: str
    epoch: int
    expires_at: float


@dataclass(slots=True)
class _Conn:
    id: int
    address: str
    last_seen: float
    bucket: TokenBucket
    peer: Peer | None = None
    connected_at: float = 0.0
    asking_store: bool = False  # a claim of ours is with the store (shared mode)
    # Hole punching (see _punch): what this peer asks for, and is asked to do.
    punch_asks: TokenBucket | None = None
    punch_invites: TokenBucket | None = None


@dataclass(slots=True)
class _Lock:
    peer: Peer  # the holder's registration (gone from the room while it is away)
    epoch: int
    expires_at: float
    token: str  # the holder's proof for a resume (StreamClaim.token)


@dataclass(slots=True)
class _Room(Room):
    lock: _Lock | None = None
    epoch: int = 0  # the last epoch granted here (0: never)
    last_push: float = -math.inf
    large: bool = False  # listed in bounded form (see _changed)
    last_token: str | None = None  # the last grant's token while it may be resumed
    rebuilt: bool = False  # peers re-registered with tree positions (see _claim)
    last_holder: str | None = None


class TrackerState:
    """Rooms, registrations and streamer locks of one tracker (sans-IO).

    Args:
        config: limits and timers.
        rng: where candidate picks get their randomness (tests and the simulator seed
            it; default: a fresh unseeded generator).
    """

    def __init__(self, config: TrackerConfig | None = None, *,
                 rng: random.Random | None = None, epoch_floor: int = 0,
                 recovering_until: float | None = None, tracker_id: str = "tracker",
                 shared: bool = False) -> None:
        self.config = config or TrackerConfig()
        self.tracker_id = tracker_id
        # Shared mode: several trackers, one room state in a store. Locks are decided
        # by the store (LockOp out, lock_result in); other trackers' peers and locks
        # come in through remote_peer / remote_lock; our peers' changes go out.
        self.shared = shared
        self._lock_ops: list[LockOp] = []
        self._changes: list[PeerChange] = []
        self._rng = rng or random.Random()
        # Epochs of an earlier run of this tracker are all below the floor (see the
        # module docs): a resume of one of them cannot be checked against a token,
        # only against the room's history since we started.
        self._epoch_floor = epoch_floor
        # Until then, fresh claims wait: a restarted tracker does not know who
        # streamed, and the holder's resume must win over a newcomer.
        self._recovering_until = recovering_until
        self._store = ("memory", True)
        # Least recently heard first (receive moves a connection to the end): the idle
        # timer looks at the head only, so no timer call walks every connection.
        self._conns: OrderedDict[int, _Conn] = OrderedDict()
        self._locked: set[str] = set()  # rooms whose lock is held
        # Connections not registered yet, oldest first (for register_timeout_s).
        self._unregistered: OrderedDict[int, _Conn] = OrderedDict()
        self._per_address: dict[str, int] = {}
        self._rooms: dict[str, _Room] = {}
        self._dirty: set[str] = set()
        self._checks: list[ConnectBack] = []
        self._last_epoch = epoch_floor
        # Per-peer refresh turns in large rooms: one queue for joiners (refresh_s) and
        # one for peers in the tree (settled_refresh_s). Within a queue every peer is
        # re-queued one fixed period after its turn, so appending keeps it sorted
        # (a room that just grew large spreads its first turns over one period).
        self._joiner_turns: deque[tuple[float, Peer]] = deque()
        self._settled_turns: deque[tuple[float, Peer]] = deque()

    # --- events from the adapter ------------------------------------------------------

    def connect(self, conn: int, address: str, now: float) -> list[Outbound]:
        """A connection was accepted from ``address`` (an IP address).

        Returns:
            A Bye for this connection if a connection limit refuses it, else nothing.
        """
        assert conn not in self._conns, "connection ids must be unique"
        cfg = self.config
        if len(self._conns) >= cfg.max_connections:
            return [(conn, Bye("tracker is full", code=ErrorCode.TOO_MANY_CONNECTIONS))]
        if self._per_address.get(address, 0) >= cfg.max_connections_per_address:
            return [(conn, Bye(f"more than {cfg.max_connections_per_address} connections "
                               f"from {address}", code=ErrorCode.TOO_MANY_CONNECTIONS))]
        c = self._conns[conn] = _Conn(
            conn, address, now, TokenBucket(cfg.max_messages_per_s, cfg.burst_messages, now),
            connected_at=now)
        self._unregistered[conn] = c
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return []

    def receive(self, conn: int, message: Message | Unknown, now: float) -> list[Outbound]:
        """A decoded message arrived on ``conn``."""
        c = self._conns.get(conn)
        if c is None:
            return []  # already closed by us (a Bye went out); late input is moot
        out: list[Outbound] = []
        c.last_seen = now
        self._conns.move_to_end(conn)
        if not c.bucket.take(now):
            self._close(c, f"more than {self.config.max_messages_per_s:g} messages per second",
                        ErrorCode.RATE_LIMITED, now, out)
            return self._flushed(out, now)
        if c.peer is not None:
            room = self._rooms[c.peer.room]
            self._expire(room, now, out)
            if room.lock is not None and room.lock.peer is c.peer:
                # Any sign of life from the holder renews the lease ("expired when the
                # holder sends nothing for lease_s", plus the grace).
                room.lock.expires_at = now + self._lock_s
        if isinstance(message, Unknown):
            pass  # a newer peer's kind: ignored on purpose (forward compatibility)
        elif isinstance(message, Register):
            self._register(c, message, now, out)
        elif isinstance(message, Heartbeat):
            self._heartbeat(c, message, now, out)
        elif isinstance(message, StreamClaim):
            self._claim(c, message, now, out)
        elif isinstance(message, StreamRelease):
            self._release_by(c, now, out)
        elif isinstance(message, RoomQuery):
            if c.peer is not None and c.peer.room == message.room:
                # A member may look at its own room as members see it.
                room = self._rooms[message.room]
                out.append((c.id, self._bounded_list(room, None, now) if room.large
                            else self._full_list(room)))
            else:
                out.append((c.id, self._room_view(message.room, now)))
        elif isinstance(message, RoomListQuery):
            out.append((c.id, self._room_list()))
        elif isinstance(message, Ping):
            out.append((c.id, Pong(message.t0, now, now)))
        elif isinstance(message, StatusQuery):
            self._status_query(c, now, out)
        elif isinstance(message, PunchRequest):
            self._punch(c, message, now, out)
        elif isinstance(message, Bye):
            self._drop(c, now, out)  # a polite goodbye: nothing to answer
        elif isinstance(message, Error):
            pass  # the peer complains about something we sent; nothing to do
        else:
            self._close(c, f"{type(message).__name__} is not a tracker message",
                        ErrorCode.UNEXPECTED, now, out)
        return self._flushed(out, now)

    def disconnect(self, conn: int, now: float) -> list[Outbound]:
        """``conn`` is gone (EOF, reset, or closed after a Bye). Idempotent."""
        c = self._conns.get(conn)
        out: list[Outbound] = []
        if c is not None:
            self._drop(c, now, out)
        return self._flushed(out, now)

    def handle_timer(self, now: float) -> list[Outbound]:
        """Expire leases, close idle connections, send due PeerList pushes."""
        out: list[Outbound] = []
        for name in list(self._locked):
            self._expire(self._rooms[name], now, out)
        # Each deadline is computed exactly as get_timer computes it (x + timeout vs
        # now, not x vs now - timeout): in floating point the two can differ by one
        # ulp, and then the timer is due by get_timer yet not by this check, and the
        # adapter calls again at once, forever (the simulator hung on it at 10,000
        # peers; a real server spun until its clock moved on).
        timeout = self.config.peer_timeout_s
        while self._conns:
            c = next(iter(self._conns.values()))
            if c.last_seen + timeout > now:
                break
            self._close(c, f"silent for {self.config.peer_timeout_s:g} s", ErrorCode.TIMEOUT,
                        now, out)
        self._refresh_due(now, out)
        register_timeout = self.config.register_timeout_s
        while self._unregistered:
            c = next(iter(self._unregistered.values()))
            if c.connected_at + register_timeout > now:
                break
            # A connection that never registers holds a slot for nothing (a room query
            # is answered at once): it gets a short grace, not the idle timeout.
            self._close(c, f"not registered within {self.config.register_timeout_s:g} s",
                        ErrorCode.TIMEOUT, now, out)
        return self._flushed(out, now)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` has something to do next (None: nothing pending)."""
        # Called after every event (the server re-arms its timer): O(rooms with a lock
        # or a pending push), never O(connections).
        first: float | None = None
        if self._conns:
            first = next(iter(self._conns.values())).last_seen + self.config.peer_timeout_s
        if self._unregistered:
            due = (next(iter(self._unregistered.values())).connected_at
                   + self.config.register_timeout_s)
            first = due if first is None else min(first, due)
        for turns in (self._joiner_turns, self._settled_turns):
            if turns and (first is None or turns[0][0] < first):
                first = turns[0][0]
        for name in self._locked:
            lock = self._rooms[name].lock
            if lock is not None and (first is None or lock.expires_at < first):
                first = lock.expires_at
        for name in self._dirty:
            room = self._rooms[name]
            due = room.last_push + self.config.push_interval_s(len(room))
            if first is None or due < first:
                first = due
        return first

    def take_checks(self) -> list[ConnectBack]:
        """The connect-back checks queued since the last call."""
        checks, self._checks = self._checks, []
        return checks

    def check_done(self, check: ConnectBack, reachable: bool, now: float) -> list[Outbound]:
        """Report a connect-back result; ignored if that registration is gone."""
        out: list[Outbound] = []
        c = self._conns.get(check.conn)
        peer = c.peer if c is not None else None
        if (peer is not None and peer.id == check.peer_id and peer.host == check.host
                and peer.port == check.port):
            room = self._rooms[peer.room]
            if room.update(peer, depth=peer.depth, free_slots=peer.free_slots,
                           parent_id=peer.parent_id, layer=peer.layer, reachable=reachable):
                self._changed(room, now)
                self._replicate(room, peer)
        return self._flushed(out, now)

    # --- shared mode: several trackers, one state in a store ---------------------------

    def take_lock_ops(self) -> list[LockOp]:
        """The lock operations for the store queued since the last call."""
        ops, self._lock_ops = self._lock_ops, []
        return ops

    def take_changes(self) -> list[PeerChange]:
        """Our peers' changes for the store and the other trackers, since the last call."""
        changes, self._changes = self._changes, []
        return changes

    def local_peers(self) -> list[PeerChange]:
        """Every local peer as a change (a resync after the store came back)."""
        holder_ids = {r.name: r.lock.peer.id for r in self._rooms.values() if r.lock}
        return [PeerChange(r.name, p.id, p.info(
                    "streamer" if holder_ids.get(r.name) == p.id else "viewer"))
                for r in self._rooms.values() for p in r.peers.values() if p.tracker is None]

    def local_locks(self) -> list[tuple[str, LockRecord]]:
        """(room, lock) for the locks our own peers hold (the adapter keeps them alive
        in the store)."""
        return [(r.name, LockRecord(r.lock.peer.id, r.lock.peer.name, r.lock.peer.host,
                                    r.lock.peer.port, r.lock.epoch, r.lock.token,
                                    self.tracker_id, self._lock_s))
                for r in self._rooms.values()
                if r.lock is not None and r.lock.peer.tracker is None]

    def lock_result(self, op: LockOp, granted: bool, record: LockRecord | None,
                    now: float) -> list[Outbound]:
        """What the store decided for a claim or resume (``record``: the lock it holds
        now, ours if granted; None if the room is free or the store did not answer)."""
        out: list[Outbound] = []
        c = self._conns.get(op.conn)
        peer = c.peer if c is not None else None
        if c is not None:
            c.asking_store = False
        if c is None or peer is None or peer.id != op.peer_id:
            return self._flushed(out, now)  # the claimant left meanwhile
        room = self._rooms[peer.room]
        if granted and record is not None:
            self._grant(room, peer, record.epoch, record.token, now, out)
            out.append((c.id, StreamGranted(record.epoch, self._lock_s, op.sent_at,
                                            record.token)))
        elif record is not None:
            self._mirror(room, record, now, out)
            out.append((c.id, StreamDenied(record.holder_id, record.holder_name)))
        else:
            out.append((c.id, StreamDenied("", "", DenyReason.NO_STORE if op.kind == "claim"
                                           else DenyReason.SUPERSEDED)))
        return self._flushed(out, now)

    def lock_unanswered(self, op: LockOp) -> None:
        """The store did not answer ``op`` (a resume is then left for the holder to
        retry, never denied for want of a store); the connection may ask again."""
        c = self._conns.get(op.conn)
        if c is not None:
            c.asking_store = False

    def lock_lost(self, room_name: str, record: LockRecord | None,
                  now: float) -> list[Outbound]:
        """The store says our holder's lock is gone or someone else's (``record``)."""
        out: list[Outbound] = []
        room = self._rooms.get(room_name)
        if room is not None and room.lock is not None and room.lock.peer.tracker is None:
            if record is None:
                room.last_token = None
                self._release(room, now, out, tell_store=False)
            else:
                self._mirror(room, record, now, out)
        return self._flushed(out, now)

    def remote_lock(self, room_name: str, record: LockRecord | None,
                    now: float) -> list[Outbound]:
        """Another tracker granted, renewed or ended a lock in a room."""
        out: list[Outbound] = []
        room = self._rooms.get(room_name)
        if room is None:
            return out
        lock = room.lock
        if record is None:
            if lock is not None and lock.peer.tracker is not None:
                self._release(room, now, out, tell_store=False)
        elif record.tracker != self.tracker_id:
            self._mirror(room, record, now, out)
        return self._flushed(out, now)

    def remote_peer(self, room_name: str, info: PeerInfo, tracker: str,
                    now: float) -> list[Outbound]:
        """Another tracker's peer appeared or moved (it joins our room's tree)."""
        out: list[Outbound] = []
        room = self._rooms.get(room_name)
        if room is None:
            room = self._rooms[room_name] = _Room(room_name)
        peer = room.peers.get(info.id)
        if peer is not None and peer.tracker is None:
            return out  # it is ours now (it moved here): ours is the news
        if peer is None:
            if len(room) >= self.config.max_peers_per_room:
                return out
            peer = Peer(-1, info.id, info.name, room_name, info.host, info.port,
                        relay=info.relay,
                        tracker=tracker)
            room.add(peer)
        peer.tracker = tracker
        room.update(peer, depth=info.depth, free_slots=info.free_slots,
                    parent_id=info.parent_id, layer=info.layer, reachable=info.reachable)
        self._changed(room, now)
        return self._flushed(out, now)

    def remote_peer_gone(self, room_name: str, peer_id: str, now: float) -> list[Outbound]:
        """Another tracker's peer left."""
        out: list[Outbound] = []
        room = self._rooms.get(room_name)
        peer = room.peers.get(peer_id) if room is not None else None
        if room is not None and peer is not None and peer.tracker is not None:
            self._remove_remote(room, peer, now)
        return self._flushed(out, now)

    def remote_tracker_gone(self, tracker: str, now: float) -> list[Outbound]:
        """Another tracker died: its peers are gone from our view (they will come back
        registered here or at a third tracker)."""
        out: list[Outbound] = []
        for room in list(self._rooms.values()):
            for peer in [p for p in room.peers.values() if p.tracker == tracker]:
                self._remove_remote(room, peer, now)
        return self._flushed(out, now)

    def remote_trackers(self) -> set[str]:
        """The trackers whose peers we list."""
        return {p.tracker for r in self._rooms.values() for p in r.peers.values()
                if p.tracker is not None}

    def _remove_remote(self, room: _Room, peer: Peer, now: float) -> None:
        room.remove(peer)
        if room.peers:
            self._changed(room, now)
        elif room.lock is None:
            self._forget(room)

    def _mirror(self, room: _Room, record: LockRecord, now: float,
                out: list[Outbound]) -> None:
        """Show the store's lock (another tracker's holder) in our room."""
        lock = room.lock
        if lock is not None and lock.peer.id == record.holder_id \
                and lock.epoch == record.epoch:
            lock.expires_at = now + record.ttl_s  # a renewal
            if lock.peer.tracker is None and record.tracker != self.tracker_id:
                # Our holder resumed at another tracker: it is theirs now.
                lock.peer = self._stub(room, record)
            return
        holder = self._stub(room, record)
        room.lock = _Lock(holder, record.epoch, now + record.ttl_s, record.token)
        room.epoch = max(room.epoch, record.epoch)
        self._locked.add(room.name)
        self._announce(room, now, out)

    def _stub(self, room: _Room, record: LockRecord) -> Peer:
        known = room.peers.get(record.holder_id)
        if known is not None and known.tracker is not None:
            return known
        return Peer(-1, record.holder_id, record.holder_name, room.name, record.host,
                    record.port, tracker=record.tracker)

    def _replicate(self, room: _Room, peer: Peer, gone: bool = False) -> None:
        if self.shared and peer.tracker is None:
            holder = room.lock.peer if room.lock is not None else None
            self._changes.append(PeerChange(room.name, peer.id,
                                            None if gone else peer.info(_role(peer, holder))))

    # --- views (tests, logs) -----------------------------------------------------------

    def lock(self, room: str) -> LockView | None:
        """The room's current lock as last updated (expiry is applied on events)."""
        r = self._rooms.get(room)
        if r is None or r.lock is None:
            return None
        return LockView(r.lock.peer.id, r.lock.peer.name, r.lock.epoch, r.lock.expires_at)

    def room_peers(self, room: str) -> list[PeerInfo]:
        """Every peer of the room as listed, in join order (whatever the room's size)."""
        r = self._rooms.get(room)
        if r is None:
            return []
        holder = r.lock.peer if r.lock is not None else None
        return [p.info(_role(p, holder)) for p in r.peers.values()]

    def rooms(self) -> list[str]:
        """Names of the rooms that have peers."""
        return list(self._rooms)

    def set_store_health(self, description: str, ok: bool) -> None:
        """What status reports say about the store (the adapter knows, not we)."""
        self._store = (description[: limits.MAX_REASON_CHARS], ok)

    def status(self) -> TrackerStatus:
        """Rooms (largest first, bounded), peers, lock holders and store health."""
        rooms = sorted(self._rooms.values(), key=lambda r: -len(r))
        shown = tuple(RoomStatus(r.name, len(r), r.lock.peer.name if r.lock else None,
                                 r.lock.epoch if r.lock else r.epoch)
                      for r in rooms[: limits.MAX_STATUS_ROOMS])
        return TrackerStatus(self.tracker_id, self._store[0], self._store[1],
                             len(self._conns), shown, len(self._rooms))

    @property
    def connection_count(self) -> int:
        """Open connections the state knows about."""
        return len(self._conns)

    # --- handlers ----------------------------------------------------------------------

    def _register(self, c: _Conn, msg: Register, now: float, out: list[Outbound]) -> None:
        if c.peer is not None:
            self._close(c, "already registered", ErrorCode.UNEXPECTED, now, out)
            return
        if not set(msg.versions) & set(limits.SUPPORTED_VERSIONS):
            self._close(c, f"no common protocol version (tracker speaks "
                           f"{list(limits.SUPPORTED_VERSIONS)})", ErrorCode.BAD_VERSION, now, out)
            return
        room = self._rooms.get(msg.room)
        old = room.peers.get(msg.peer_id) if room is not None else None
        if room is not None and old is not None and old.tracker is not None:
            room.remove(old)  # it moved here from another tracker (shared mode)
        elif old is not None:
            # Same peer id again: the peer restarted and its old TCP connection may be
            # half-open for another peer_timeout_s. The new connection wins.
            self._close(self._conns[old.conn], "replaced by a newer connection",
                        ErrorCode.UNEXPECTED, now, out)
            room = self._rooms.get(msg.room)
        if room is not None and len(room) >= self.config.max_peers_per_room:
            reason = f"room {msg.room!r} is full ({self.config.max_peers_per_room} peers)"
            out.append((c.id, Error(ErrorCode.ROOM_FULL, reason)))
            self._close(c, reason, ErrorCode.ROOM_FULL, now, out)
            return
        if room is None:
            room = self._rooms[msg.room] = _Room(msg.room)
        # Listed and checked at the address the registration came from, never at one it
        # names: otherwise anyone could point viewers (and our connect-back check) at a
        # victim's host:port. A peer that names another address is listed at ours.
        host = c.address
        peer = Peer(c.id, msg.peer_id, room.unique_name(msg.name, msg.peer_id), msg.room,
                    host, msg.port, relay=msg.relay)
        c.peer = peer
        self._unregistered.pop(c.id, None)
        room.add(peer)
        # A re-registration (tracker restart, failover) says where it already sits.
        room.rebuilt = room.rebuilt or msg.depth is not None
        room.update(peer, depth=msg.depth, free_slots=msg.free_slots,
                    parent_id=msg.parent_id, layer=msg.layer, reachable=peer.reachable)
        self._changed(room, now)
        self._replicate(room, peer)
        peer.seen_version = room.version
        out.append((c.id, self._list_for(room, peer, now)))
        if room.large:
            self._queue_refresh(peer, now)
        if msg.port is not None:
            self._checks.append(ConnectBack(c.id, peer.id, host, msg.port))

    def _heartbeat(self, c: _Conn, msg: Heartbeat, now: float, out: list[Outbound]) -> None:
        peer = c.peer
        if peer is None:
            self._close(c, "Heartbeat before Register", ErrorCode.UNEXPECTED, now, out)
            return
        room = self._rooms[peer.room]
        if room.update(peer, depth=msg.depth, free_slots=msg.free_slots,
                       parent_id=msg.parent_id, layer=msg.layer, reachable=peer.reachable):
            self._changed(room, now)
            self._replicate(room, peer)
        lock = self._rooms[peer.room].lock
        if lock is not None and lock.peer is peer:
            out.append((c.id, StreamGranted(lock.epoch, self._lock_s, msg.sent_at)))

    @property
    def _lock_s(self) -> float:
        """How long a lock outlives its holder's last message: lease plus grace."""
        return self.config.lease_s + self.config.lease_grace_s

    def _claim(self, c: _Conn, msg: StreamClaim, now: float, out: list[Outbound]) -> None:
        peer = c.peer
        if peer is None:
            self._close(c, "StreamClaim before Register", ErrorCode.UNEXPECTED, now, out)
            return
        room = self._rooms[peer.room]
        lock = room.lock
        if c.asking_store:
            # One claim per connection at a time goes to the store: repeating it while
            # the store thinks costs Redis calls and decides nothing new.
            return
        if msg.resume_epoch is not None:
            self._resume(c, peer, room, msg, now, out)
            return
        if lock is not None and lock.peer is not peer:
            # Someone else's, or this peer id's from another connection: coming back
            # takes a resume with the grant's token (an id alone proves nothing).
            out.append((c.id, StreamDenied(lock.peer.id, lock.peer.name)))
            return
        if lock is None and room.rebuilt and self._recovering_until is not None \
                and now < self._recovering_until:
            # Restarted without a store, and this room had a tree (its peers came back
            # with positions): its streamer may be about to resume.
            out.append((c.id, StreamDenied("", "", DenyReason.RECOVERING)))
            return
        if self.shared and lock is None:
            # The store decides (another tracker may be granting this room right now).
            c.asking_store = True
            self._lock_ops.append(LockOp("claim", room.name, peer.id, peer.name, peer.host,
                                         peer.port, c.id, msg.sent_at))
            return
        if lock is None:
            self._last_epoch += 1
            self._grant(room, peer, self._last_epoch, secrets.token_hex(16), now, out)
            lock = room.lock
            assert lock is not None
        # A claim by the holder is idempotent: the same epoch again (lease renewed above).
        out.append((c.id, StreamGranted(lock.epoch, self._lock_s, msg.sent_at, lock.token)))

    def _resume(self, c: _Conn, peer: Peer, room: _Room, msg: StreamClaim, now: float,
                out: list[Outbound]) -> None:
        """A holder that lost its tracker link claims its lock back (see module docs)."""
        epoch = msg.resume_epoch
        assert epoch is not None
        lock = room.lock
        if lock is not None:
            remote = lock.peer.tracker is not None  # shared mode: another tracker's
            if lock.peer.id == peer.id and lock.epoch == epoch and lock.token == msg.token \
                    and not remote:
                lock.peer = peer
                lock.expires_at = now + self._lock_s
                out.append((c.id, StreamGranted(epoch, self._lock_s, msg.sent_at, lock.token)))
            elif self.shared and lock.peer.id == peer.id:
                # Its lock as another tracker left it: the store checks the token.
                c.asking_store = True
                self._lock_ops.append(LockOp("resume", room.name, peer.id, peer.name,
                                             peer.host, peer.port, c.id, msg.sent_at,
                                             epoch, msg.token))
            else:
                out.append((c.id, StreamDenied(lock.peer.id, lock.peer.name)))
            return
        if self.shared:
            c.asking_store = True
            self._lock_ops.append(LockOp("resume", room.name, peer.id, peer.name, peer.host,
                                         peer.port, c.id, msg.sent_at, epoch, msg.token))
            return
        # Free. Ours to give back only if nothing newer was granted here, and only an
        # epoch of an earlier run (below the floor: its token died with that run) or
        # the one whose holder we still remember; never a made-up future epoch.
        earlier_run = epoch <= self._epoch_floor
        remembered = (epoch == room.epoch and room.last_token is not None
                      and room.last_token == msg.token and room.last_holder == peer.id)
        if room.epoch > epoch or not (earlier_run or remembered):
            out.append((c.id, StreamDenied("", "", DenyReason.SUPERSEDED)))
            return
        token = msg.token if remembered or msg.token else secrets.token_hex(16)
        assert token is not None
        self._grant(room, peer, epoch, token, now, out)
        out.append((c.id, StreamGranted(epoch, self._lock_s, msg.sent_at, token)))

    def _grant(self, room: _Room, peer: Peer, epoch: int, token: str, now: float,
               out: list[Outbound]) -> None:
        room.lock = _Lock(peer, epoch, now + self._lock_s, token)
        room.epoch = max(room.epoch, epoch)
        room.last_token, room.last_holder = token, peer.id
        self._locked.add(room.name)
        self._announce(room, now, out)

    def _status_query(self, c: _Conn, now: float, out: list[Outbound]) -> None:
        # For the operator on the tracker's own host: room names, sizes and who
        # streams are not for strangers on the network.
        if c.address not in _LOOPBACK:
            self._close(c, "status is answered on the tracker's host only",
                        ErrorCode.UNEXPECTED, now, out)
            return
        out.append((c.id, self.status()))

    def _punch(self, c: _Conn, msg: PunchRequest, now: float, out: list[Outbound]) -> None:
        """Coordinate a hole punch between ``c``'s peer and ``msg.peer_id`` (module docs)."""
        asker = c.peer
        if asker is None:
            self._close(c, "PunchRequest before Register", ErrorCode.UNEXPECTED, now, out)
            return
        cfg = self.config
        if c.punch_asks is None:
            c.punch_asks = TokenBucket(cfg.punch_requests_per_s, cfg.punch_burst, now)
        if not c.punch_asks.take(now):
            out.append((c.id, Error(ErrorCode.RATE_LIMITED,
                                    f"more than {cfg.punch_requests_per_s:g} punch requests "
                                    f"per second")))
            return
        room = self._rooms[asker.room]
        target = room.peers.get(msg.peer_id)
        target_conn = self._conns.get(target.conn) if target is not None else None
        why: str | None = None
        if target is None or target is asker or target_conn is None \
                or target_conn.peer is not target:
            # Also another tracker's peer (shared mode): we cannot reach it.
            why = "no such peer in your room on this tracker"
        elif asker.reachable or target.reachable:
            why = "one of you can be dialled: no punch needed"
        elif asker.host is None or asker.port is None or target.host is None \
                or target.port is None:
            why = "both peers must listen"
        elif target.depth is None:
            why = "that peer is not in the tree"
        if why is None:
            assert target_conn is not None
            if target_conn.punch_invites is None:
                target_conn.punch_invites = TokenBucket(cfg.punch_invites_per_s,
                                                        cfg.punch_burst, now)
            if not target_conn.punch_invites.take(now):
                why = "that peer is asked to punch too often; try again later"
        if why is not None:
            out.append((c.id, Error(ErrorCode.UNEXPECTED, f"punch refused: {why}")))
            return
        assert target is not None and target.host is not None and target.port is not None
        assert asker.host is not None and asker.port is not None
        delay_ms = round(cfg.punch_delay_s * 1000)
        out.append((c.id, PunchStart(target.id, target.name, target.host, target.port,
                                     delay_ms, requester=True)))
        out.append((target.conn, PunchStart(asker.id, asker.name, asker.host, asker.port,
                                            delay_ms, requester=False)))

    def _release_by(self, c: _Conn, now: float, out: list[Outbound]) -> None:
        peer = c.peer
        if peer is None:
            self._close(c, "StreamRelease before Register", ErrorCode.UNEXPECTED, now, out)
            return
        room = self._rooms[peer.room]
        if room.lock is not None and room.lock.peer is peer:
            room.last_token = None  # given back: nothing to resume
            self._release(room, now, out)
        # A release by a non-holder (its lease already expired) is a harmless no-op.

    # --- internals ---------------------------------------------------------------------

    def _expire(self, room: _Room, now: float, out: list[Outbound]) -> None:
        if room.lock is not None and now >= room.lock.expires_at:
            room.last_token = None  # lapsed: whoever claims next starts a new epoch
            self._release(room, now, out)

    def _release(self, room: _Room, now: float, out: list[Outbound], *,
                 tell_store: bool = True) -> None:
        lock = room.lock
        if self.shared and tell_store and lock is not None and lock.peer.tracker is None:
            self._lock_ops.append(LockOp("release", room.name, lock.peer.id,
                                         resume_epoch=lock.epoch, token=lock.token))
        room.lock = None
        self._locked.discard(room.name)
        if not room.peers:
            self._forget(room)  # kept only for its holder's return, which did not come
            return
        self._announce(room, now, out)

    def _forget(self, room: _Room) -> None:
        del self._rooms[room.name]
        self._dirty.discard(room.name)

    def _announce(self, room: _Room, now: float, out: list[Outbound]) -> None:
        """Tell the room who streams now (roles in the PeerList change too)."""
        lock = room.lock
        if lock is None:
            msg = StreamerChanged(None, None, room.epoch)
        else:
            msg = StreamerChanged(lock.peer.id, lock.peer.name, lock.epoch, lock.peer.host,
                                  lock.peer.port)
        out.extend((p.conn, msg) for p in room.peers.values())
        self._changed(room, now)

    def _changed(self, room: _Room, now: float) -> None:
        room.version += 1
        self._dirty.add(room.name)
        large = len(room) > self.config.full_list_peers
        if large and not room.large:
            # Grown past a full list: from now on each peer is refreshed in turn, the
            # first turns spread over one period so they do not all fall due at once.
            step = self.config.refresh_s / len(room)
            for i, peer in enumerate(room.peers.values()):
                self._queue_refresh(peer, now, first_in=step * (i + 1))
        room.large = large  # a shrunk room is pushed whole again (_flushed)

    def _queue_refresh(self, peer: Peer, now: float, first_in: float | None = None) -> None:
        """Give ``peer`` its next refresh turn: soon while it looks for a parent, rarely
        once in the tree (it then needs candidates only for a repair, and its parent's
        Bye carries hints; the aggregate for its GUI may be that old)."""
        if peer.refresh_queued:
            return
        peer.refresh_queued = True
        if peer.depth is None:
            self._joiner_turns.append((now + (first_in or self.config.refresh_s), peer))
        else:
            self._settled_turns.append(
                (now + (first_in or self.config.settled_refresh_s), peer))

    def _close(self, c: _Conn, reason: str, code: ErrorCode, now: float,
               out: list[Outbound]) -> None:
        out.append((c.id, Bye(reason, code=code)))
        self._drop(c, now, out)

    def _drop(self, c: _Conn, now: float, out: list[Outbound]) -> None:
        """Forget a connection (after its Bye, or when it is gone)."""
        del self._conns[c.id]
        self._unregistered.pop(c.id, None)
        left = self._per_address[c.address] - 1
        if left:
            self._per_address[c.address] = left
        else:
            del self._per_address[c.address]
        peer = c.peer
        if peer is None:
            return
        room = self._rooms[peer.room]
        room.remove(peer)
        self._replicate(room, peer, gone=True)
        # A holder whose connection dropped (a Bye after StreamRelease has released
        # already) keeps the lock until its lease and grace run out: its process may
        # well go on streaming for that long (it was told so), and it may come back
        # and resume (a tracker failover, a network blip). Shortening it here would
        # let a second streamer in while the first still believes it streams.
        if room.peers:
            self._changed(room, now)
        elif room.lock is None and room.name in self._rooms:
            self._forget(room)

    def _flushed(self, out: list[Outbound], now: float) -> list[Outbound]:
        """Append the PeerList pushes that are due (coalescing) and return ``out``."""
        for name in list(self._dirty):
            room = self._rooms[name]
            if room.large:
                # A large room pushes nothing on a change: each peer's own refresh
                # (_refresh_due) picks the change up.
                self._dirty.discard(name)
                continue
            if now < room.last_push + self.config.push_interval_s(len(room)):
                continue  # pushed recently: handle_timer sends it when the interval ends
            self._dirty.discard(name)
            room.last_push = now
            # One object for everyone (no per-peer your_id: each peer got its id in the
            # register reply), so the server encodes a push once, not once per peer.
            shared = self._full_list(room)
            for peer in room.peers.values():
                if peer.seen_version != room.version:
                    peer.seen_version = room.version
                    out.append((peer.conn, shared))
        return out

    def _refresh_due(self, now: float, out: list[Outbound]) -> None:
        """Send large rooms' peers their own list when their turn has come."""
        for turns in (self._joiner_turns, self._settled_turns):
            while turns and turns[0][0] <= now:
                self._refresh_turn(turns.popleft()[1], now, out)

    def _refresh_turn(self, peer: Peer, now: float, out: list[Outbound]) -> None:
        peer.refresh_queued = False
        c = self._conns.get(peer.conn)
        if c is None or c.peer is not peer:
            return  # gone (or replaced): its turns end with it
        room = self._rooms[peer.room]
        if not room.large:
            return  # shrunk: pushed whole again; queued anew if it grows
        if peer.seen_version != room.version:
            peer.seen_version = room.version
            out.append((peer.conn, self._bounded_list(room, peer, now)))
        self._queue_refresh(peer, now)

    def _list_for(self, room: _Room, peer: Peer, now: float) -> PeerList:
        """The reply to ``peer``'s Register: the room whole, or bounded for it."""
        if room.large:
            return self._bounded_list(room, peer, now)
        return replace(self._full_list(room), your_id=peer.id, your_name=peer.name)

    def _room_view(self, name: str, now: float) -> PeerList:
        """The answer to a RoomQuery (from a stranger: it has not even registered).

        Only what a start screen shows: the room's name, who streams (by name) and how
        many are in it. No ids, names, addresses or ports of members: those are for
        peers in the room.
        """
        room = self._rooms.get(name)
        if room is None or is_private(name):
            return PeerList(name, ())  # a private room tells strangers nothing at all
        holder = room.lock.peer if room.lock is not None else None
        return PeerList(room.name, (), streamer_name=holder.name if holder else None,
                        total=len(room))

    def _room_list(self) -> RoomList:
        """The answer to a RoomListQuery: the busiest rooms, as a start screen shows
        them (name, streamer's name, size), never who is in them. O(rooms) per query,
        bounded like any message by the connection's rate limit."""
        # Private rooms (opaque ids from a passphrase) are never listed.
        public = [room for room in self._rooms.values() if not is_private(room.name)]
        busiest = heapq.nlargest(limits.MAX_LISTED_ROOMS, public,
                                 key=lambda room: (len(room), room.name))
        summaries = []
        for room in busiest:
            holder = room.lock.peer if room.lock is not None else None
            summaries.append(RoomSummary(room.name, holder.name if holder else None,
                                         len(room)))
        return RoomList(tuple(summaries), total=len(public))

    def _full_list(self, room: _Room) -> PeerList:
        holder = room.lock.peer if room.lock is not None else None
        peers = tuple(p.info(_role(p, holder)) for p in room.peers.values())
        return PeerList(room.name, peers, holder.id if holder else None,
                        holder.name if holder else None, room.epoch, total=len(room))

    def _bounded_list(self, room: _Room, peer: Peer | None, now: float) -> PeerList:
        """``peer`` itself, the streamer and candidates picked for it, plus the room in
        aggregate: O(candidates) however large the room."""
        holder = room.lock.peer if room.lock is not None else None
        joining = peer is not None and peer.depth is None
        picked = room.pick_candidates(
            self.config.candidates, exclude=peer, now=now, rng=self._rng,
            # Only a joiner will dial its candidates now: promise them to it briefly.
            reserve_s=self.config.reserve_s if joining else 0.0)
        listed = [p for p in (peer, holder) if p is not None]
        if peer is holder:
            listed = listed[:1]
        listed += [p for p in picked if p is not holder]
        return PeerList(
            room.name, tuple(p.info(_role(p, holder)) for p in listed),
            holder.id if holder else None, holder.name if holder else None, room.epoch,
            your_id=peer.id if peer is not None else None,
            total=len(room), levels=room.tree_levels(),
            your_name=peer.name if peer is not None else None)


def _role(peer: Peer, holder: Peer | None) -> str:
    # By id: in a shared room the holder may be another tracker's peer.
    return "streamer" if holder is not None and peer.id == holder.id else "viewer"
