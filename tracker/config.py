"""The tracker's limits and timers, each with the reason for its default."""

from __future__ import annotations

from dataclasses import dataclass

from protocol import limits


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Limits and timers of one tracker. Tests shorten the timers; defaults suit real
    networks.

    Attributes:
        lease_s: the streamer lock's lease. The holder renews it with every message
            (its heartbeats, every second by default); three missed heartbeats free the
            room for someone else.
        lease_grace_s: how long past the lease a silent holder keeps the lock, and how
            long a holder whose connection dropped has to come back (reconnect and
            resume): a tracker restart or failover, or a streamer frozen for a few
            seconds (SIGSTOP, a laptop lid), must not end the broadcast. The holder
            is told lease plus grace as the time its grant is good for. The cost: a
            streamer that died keeps its room for this long before another can go
            live.
        peer_timeout_s: a connection that sends nothing for this long is closed (dead
            peer, half-open TCP, a client that connected and never spoke).
        max_peers_per_room: registrations per room; one more gets ROOM_FULL. Rooms
            past ``full_list_peers`` are listed in a bounded form, so this is bounded
            by memory and CPU (about 1 KB and, with 1 s heartbeats, 20-30 us of CPU
            per second per peer; see docs/PERFORMANCE.md), not by message sizes.
        full_list_peers: a room up to this size is listed whole to everyone (the GUI
            draws its whole tree); a larger one gets per-peer bounded lists. At most
            what one PeerList may carry (limits.MAX_ROOM_PEERS).
        candidates: join candidates in a bounded list: enough that a joiner whose
            first choices filled up meanwhile still has somewhere to go.
        refresh_s: how often a peer of a large room gets a fresh bounded list while
            the room changes. Joins do not wait for it (the Register reply carries
            candidates, full peers redirect), so it can be slow; it sets the tracker's
            bytes per peer per second.
        settled_refresh_s: the same for a peer already in the tree: it needs
            candidates only for a repair (its parent's Bye carries hints too) and the
            aggregate only for its GUI, so it is refreshed less often.
        reserve_s: how long a candidate handed to a joiner counts as (a share of) a
            taken slot, so a join storm spreads over the peers with room instead of
            all dialing the same one; about a join's round trips.
        max_connections_per_address: open connections from one IP address: enough for
            a lab of peers behind one NAT, too few to exhaust the tracker's sockets.
        max_connections: open connections in total (file descriptors are finite).
        register_timeout_s: a connection that has not registered this long after it
            opened is closed: idle sockets must not fill ``max_connections``.
        max_messages_per_s: token-bucket refill rate per connection. A peer sends ~1
            heartbeat per second plus rare claims; 50/s is far above honest use.
        burst_messages: token-bucket size: short bursts (a reconnect storm of claims
            and queries) pass, a sustained flood does not.
        connect_back_timeout_s: how long the reachability check waits for the peer's
            listener to accept; unanswered means "behind NAT/firewall".
        max_connect_backs: connect-back checks running at once, so registrations cannot
            make the tracker open unbounded outgoing connections.
        update_interval_s: at most one PeerList push per room per interval: heartbeats
            of a busy room coalesce into one update instead of one per change.
        list_records_per_s: a whole list costs each of a room's N peers O(N) to read
            (parse, directory, its GUI's tree), so a room is pushed at most every
            N / this seconds (never more often than ``update_interval_s``): each peer
            reads about this many records a second however many join, where one push
            per change would cost the room O(N^2) while it grows.
        max_write_buffer_bytes: a connection whose unsent output grows past this does
            not read what we send (stuck or hostile) and is dropped; room for a few
            full PeerLists.
        punch_requests_per_s: hole-punch requests one peer may make (token-bucket
            rate): a joiner tries one parent at a time, each attempt taking up to a few
            seconds, so a few per second is far above honest use.
        punch_invites_per_s: punches one peer may be asked to make (each makes it dial
            out from its listening port): bounds what a room can make one peer do.
        punch_burst: the bucket size of both.
        punch_delay_s: how long after receiving PunchStart both sides dial: both
            messages leave at once, so receipt differs by the difference of the two
            one-way delays; a short pause lets each side get its socket ready.
        tls: TLS 1.3 with the tracker's key on every connection, and every client
            proves its id's key before it may register. False only for protocol
            tests and overhead measurements on a trusted host.
    """

    lease_s: float = 3.0
    lease_grace_s: float = 5.0
    peer_timeout_s: float = 10.0
    max_peers_per_room: int = 20_000
    full_list_peers: int = 200
    candidates: int = 8
    refresh_s: float = 5.0
    settled_refresh_s: float = 20.0
    reserve_s: float = 1.0
    max_connections_per_address: int = 64
    max_connections: int = 4096
    register_timeout_s: float = 5.0
    max_messages_per_s: float = 50.0
    burst_messages: int = 100
    connect_back_timeout_s: float = 2.0
    max_connect_backs: int = 32
    update_interval_s: float = 0.5
    list_records_per_s: float = 50.0
    max_write_buffer_bytes: int = 4 * 1024 * 1024
    punch_requests_per_s: float = 2.0
    punch_invites_per_s: float = 4.0
    punch_burst: int = 4
    punch_delay_s: float = 0.1
    tls: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_peers_per_room <= limits.MAX_TRACKER_ROOM_PEERS:
            raise ValueError(
                f"max_peers_per_room must be 1-{limits.MAX_TRACKER_ROOM_PEERS}")
        if not 1 <= self.full_list_peers <= limits.MAX_ROOM_PEERS:
            raise ValueError(f"full_list_peers must be 1-{limits.MAX_ROOM_PEERS}")
        # The receiver, the streamer and the candidates share one list.
        if not 1 <= self.candidates <= limits.MAX_ROOM_PEERS - 2:
            raise ValueError(f"candidates must be 1-{limits.MAX_ROOM_PEERS - 2}")
        if self.reserve_s < 0:
            raise ValueError("reserve_s must not be negative")
        for name in ("lease_s", "peer_timeout_s", "max_messages_per_s",
                     "connect_back_timeout_s", "refresh_s", "settled_refresh_s",
                     "register_timeout_s", "punch_requests_per_s",
                     "punch_invites_per_s", "list_records_per_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.lease_grace_s < 0:
            raise ValueError("lease_grace_s must not be negative")
        if not 0 <= self.punch_delay_s * 1000 <= limits.MAX_PUNCH_DELAY_MS:
            raise ValueError(f"punch_delay_s must be 0-{limits.MAX_PUNCH_DELAY_MS / 1000:g}")
        if self.update_interval_s < 0:
            raise ValueError("update_interval_s must not be negative")
        for name in ("max_connections_per_address", "max_connections", "burst_messages",
                     "max_connect_backs", "max_write_buffer_bytes", "punch_burst"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    def push_interval_s(self, room_size: int) -> float:
        """The least time between two pushes of a whole-listed room of this size."""
        return max(self.update_interval_s, room_size / self.list_records_per_s)
