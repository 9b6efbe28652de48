"""Many ``TreeState``s on a virtual network, in virtual time (tests and bench/sim).

Theory of operation
-------------------
``SimNet`` is a discrete-event loop: a heap of (time, callback). Each peer is a real
``TreeState``; the net carries out its actions the way the asyncio node does, with a
link model instead of sockets:

- a message arrives one-way ``latency`` later, in order per direction (TCP); with
  probability ``loss`` it waits one retransmission timeout more (TCP hides loss as
  delay, and delays everything behind it on that link);
- a dial connects after one round trip; a dead peer's host refuses (RST) after one
  round trip; a frozen peer's kernel still completes the handshake but nothing
  answers; across a network split nothing answers at all;
- heartbeats are not scheduled as messages (they are most of the traffic and carry
  nothing the tree reads): a ``PingDue`` marks both ends heard at once when they can
  reach each other (the Pong as an answer only), and counts the bytes of a Ping and
  a Pong;
- with ``media`` (the default), video flows: at each of its wake-ups a peer has just
  heard from its parent when that parent is attached, runs and still has it as a
  child; one that froze, stalled or was split off since sent its last frame then
  (video bytes are not counted: they are not control traffic). A parent that sends
  video spares its child's probes; a child still pings every keepalive;
- a killed peer's neighbours see EOF one latency later; a frozen peer processes
  nothing (timers included); a split drops everything between the two sides;
- a stalled peer (its event loop starved for a while) runs nothing until the stall
  ends, then its overdue timer first and what arrived meanwhile after it, in order:
  the order asyncio gives a loop that wakes up with a timer due and bytes unread.

Every control byte a peer sends is counted (``Peer.control_bytes``). What a peer
reports to its directory goes to ``on_report``; the room each peer sees is whatever
``RoomView`` the caller gives it (an omniscient one here, the real tracker in the
simulator).
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from peer.node.tree import actions as act
from peer.node.tree.state import RoomView, StreamInfo, TreeState, TreeTiming, subtree_of
from protocol import Candidate, Message, Ping, Pong, encode

# What TCP adds when a segment is lost: one minimum retransmission timeout (RFC 6298
# lets Linux use 200 ms).
RETRANSMIT_S = 0.2
_PING_BYTES = len(encode(Ping(t0=0.0)))
_PONG_BYTES = len(encode(Pong(t0=0.0, t1=0.0, t2=0.0, root_offset=0.0)))


@dataclass(eq=False, slots=True)
class _End:
    """One side of a connection."""

    peer: Peer
    link: int
    other: _End | None = None
    closed: bool = False
    next_arrival: float = 0.0  # keeps this direction in order


@dataclass(eq=False, slots=True)
class Peer:
    """A simulated peer: a TreeState and what the network needs to know about it."""

    id: str
    tree: TreeState
    host: str
    port: int
    alive: bool = True
    frozen: bool = False
    group: int = 0  # peers in different groups cannot reach each other (a split)
    access_s: float | None = None  # one-way delay of its access link (None: the net's)
    ends: dict[int, _End] = field(default_factory=dict)
    control_bytes: int = 0
    joined_at: float | None = None  # first attach
    attached_at: float | None = None  # latest attach
    started_at: float = 0.0
    lost_at: float | None = None  # parent lost, not yet re-attached
    repairs: list[float] = field(default_factory=list)  # parent lost -> re-attached
    armed: float | None = None
    stalled_until: float = 0.0  # its loop runs nothing before this
    quiet_since: float = -math.inf  # when it last froze or stalled (its children's video)
    backlog: list[Callable[[], None]] = field(default_factory=list)  # arrived meanwhile

    @property
    def healthy(self) -> bool:
        return self.alive and not self.frozen


class SimNet:
    """A virtual network of TreeStates.

    Args:
        timing: every peer's tree timers.
        latency_s: one-way latency of every link.
        loss: probability that a message waits one retransmission more.
        seed: for the loss draws and anything else random.
        on_report: receives (peer, Report) for every position report.
        media: video flows down the tree (see the module's theory of operation).
    """

    def __init__(self, *, timing: TreeTiming, latency_s: float = 0.01, loss: float = 0.0,
                 seed: int = 0,
                 on_report: Callable[[Peer, act.Report], None] | None = None,
                 media: bool = True) -> None:
        self.timing = timing
        self.media = media
        self.latency_s = latency_s
        self.loss = loss
        self.rng = random.Random(seed)
        self.now = 0.0
        self.split_at = -math.inf  # when the latest split began
        self.peers: dict[str, Peer] = {}
        self.by_address: dict[tuple[str, int], Peer] = {}
        self.on_report = on_report
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._ports = itertools.count(10000)

    # --- building --------------------------------------------------------------------

    def add_peer(self, peer_id: str, *, fanout: int, layer: int = 720,
                 room: Callable[[Callable[[], Peer]], RoomView] | None = None) -> Peer:
        """A new peer (not yet told about any streamer).

        Args:
            room: builds the peer's room view, given a way to reach the peer (which
                exists only after its view); None for an ``OmniRoom``.
        """
        port = next(self._ports)
        holder: list[Peer] = []

        def me() -> Peer:
            return holder[0]
        view = room(me) if room is not None else OmniRoom(self, me)
        tree = TreeState(peer_id=peer_id, name=peer_id, room="sim", fanout=fanout,
                         layer=layer, room_view=view, timing=self.timing, now=self.now)
        # One host per peer (a tracker sees each at its own address).
        host = f"10.{port >> 16 & 255}.{port >> 8 & 255}.{port & 255}"
        peer = Peer(peer_id, tree, host, port, started_at=self.now)
        holder.append(peer)
        self.peers[peer_id] = peer
        self.by_address[(peer.host, peer.port)] = peer
        self._arm(peer)
        return peer

    def candidate(self, peer: Peer) -> Candidate:
        depth = peer.tree.depth
        free = max(0, peer.tree.fanout - len(peer.tree.children))
        return Candidate(peer.id, peer.id, peer.host, peer.port, depth or 0, free)

    # --- running ---------------------------------------------------------------------

    def at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._order), callback))

    def run_until(self, until: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, callback = heapq.heappop(heap)
            self.now = max(self.now, when)
            callback()
        self.now = max(self.now, until)

    def apply(self, peer: Peer, actions: list[act.Action]) -> None:
        """Carry out a peer's actions (the simulated node)."""
        for action in actions:
            if isinstance(action, act.Send):
                end = peer.ends.get(action.link)
                if end is not None:
                    self._send(end, action.message)
            elif isinstance(action, act.PingDue):
                self._ping(peer, action.link)
            elif isinstance(action, act.Close):
                self._close(peer, action)
            elif isinstance(action, act.Dial):
                self._dial(peer, action.link, action.candidate)
            elif isinstance(action, act.Report):
                if self.on_report is not None:
                    self.on_report(peer, action)
            elif isinstance(action, act.ParentAttached):
                peer.attached_at = self.now
                if peer.joined_at is None:
                    peer.joined_at = self.now
                if peer.lost_at is not None:
                    peer.repairs.append(self.now - peer.lost_at)
                    peer.lost_at = None
            elif isinstance(action, act.ParentDetached) and not action.stream_over \
                    and peer.lost_at is None:
                peer.lost_at = self.now
        self._arm(peer)

    # --- what happens to peers ---------------------------------------------------------

    def kill(self, peer: Peer) -> None:
        """The process dies: its neighbours see EOF one latency later."""
        peer.alive = False
        for end in list(peer.ends.values()):
            self._hang_up(end, "connection closed by peer")
        peer.ends.clear()

    def leave(self, peer: Peer) -> None:
        """A graceful leave (Byes with hints), then the process exits."""
        self.apply(peer, peer.tree.leave(self.now))
        self.kill(peer)

    def freeze(self, peer: Peer) -> None:
        """The process stops (SIGSTOP): sockets stay open, nothing is answered."""
        peer.frozen = True
        peer.quiet_since = self.now

    def stall(self, peer: Peer, seconds: float) -> None:
        """The peer's event loop does not run for ``seconds`` (a starved CPU): sockets
        stay open and the kernel keeps what arrives; nothing is read, no timer runs."""
        if peer.stalled_until <= self.now:
            peer.quiet_since = self.now
        peer.stalled_until = max(peer.stalled_until, self.now + seconds)
        self.at(peer.stalled_until, lambda: self._resume(peer))

    def _resume(self, peer: Peer) -> None:
        if not peer.alive or peer.stalled_until > self.now:
            return  # dead, or a longer stall began meanwhile
        if peer.armed is not None and peer.armed <= self.now:
            self._fire(peer, peer.armed)  # the overdue timer runs first ...
        backlog, peer.backlog = peer.backlog, []
        for arrived in backlog:  # ... then the readers parse what waited
            arrived()

    def split(self, groups: dict[str, int]) -> None:
        """Peers in different groups can no longer reach each other."""
        self.split_at = self.now
        for peer_id, group in groups.items():
            self.peers[peer_id].group = group

    def heal(self) -> None:
        for peer in self.peers.values():
            peer.group = 0

    def make_root(self, peer: Peer, epoch: int = 1) -> None:
        """``peer`` streams; everyone hears of it (as a directory would tell them)."""
        self.apply(peer, peer.tree.become_root(epoch, StreamInfo(1280, 720, 30.0), self.now))
        for other in self.peers.values():
            if other is not peer and other.healthy:
                self.apply(other, other.tree.set_streamer(peer.id, epoch, self.now))

    # --- what the tree looks like --------------------------------------------------------

    def parent_of(self, peer: Peer) -> Peer | None:
        """The peer at the other end of our parent link (None when detached)."""
        link = peer.tree.parent
        end = peer.ends.get(link) if link is not None else None
        return end.other.peer if end is not None and end.other is not None else None

    def receiving(self, root: Peer) -> set[str]:
        """Peers whose chain of parents reaches ``root`` through live, reachable,
        mutually agreeing links: they get the video."""
        good: dict[str, bool] = {root.id: root.healthy}
        for peer in self.peers.values():
            chain: list[Peer] = []
            node: Peer | None = peer
            verdict = False
            while node is not None:
                if node.id in good:
                    verdict = good[node.id]
                    break
                if not node.healthy or len(chain) > 256:
                    break
                chain.append(node)
                parent = self.parent_of(node)
                if parent is None or not parent.healthy or parent.group != node.group:
                    break
                end = node.ends[node.tree.parent]  # type: ignore[index]
                other = end.other
                if other is None or other.link not in parent.tree.children:
                    break
                node = parent
            for member in chain:
                good[member.id] = verdict
        return {pid for pid, ok in good.items() if ok and pid != root.id}

    def depth_of(self, peer: Peer) -> int:
        return peer.tree.depth or 0

    # --- the link model ----------------------------------------------------------------

    def _arm(self, peer: Peer) -> None:
        # Like the node's driver: the one timer at the state's latest due time (a
        # superseded wake-up stays in the heap and is skipped by ``_fire``).
        if not peer.alive:
            return
        due = peer.tree.get_timer()
        if due == peer.armed or due == math.inf:
            peer.armed = None if due == math.inf else due
            return
        peer.armed = due
        self.at(due, lambda: self._fire(peer, due))

    def _fire(self, peer: Peer, due: float) -> None:
        if peer.armed != due or peer.stalled_until > self.now:
            return  # re-armed meanwhile, or stalled (``_resume`` fires it)
        peer.armed = None
        if not peer.alive:
            return
        if peer.frozen:
            return  # a stopped process runs no timers
        if self.media:
            self._video(peer)
        actions = peer.tree.handle_timer(self.now)
        if len(actions) == 1 and type(actions[0]) is act.PingDue:
            # Most ticks of a large room: a child's heartbeat and nothing else.
            self._ping(peer, actions[0].link)
            self._arm(peer)
            return
        self.apply(peer, actions)

    def _video(self, peer: Peer) -> None:
        """Video from the parent arrived just now, if the parent sends any."""
        link = peer.tree.parent
        end = peer.ends.get(link) if link is not None else None
        other = end.other if end is not None else None
        if other is None or other.closed:
            return
        parent = other.peer
        if not (parent.alive and parent.tree.attached and parent.tree.is_child(other.link)):
            return
        if not parent.frozen and parent.stalled_until <= self.now \
                and parent.group == peer.group:
            peer.tree.heard(link, self.now)  # type: ignore[arg-type]
            return
        # Its stream stopped since our last wake-up: its last frame came when it froze,
        # stalled or the network split (not at our previous wake-up: wake-ups are
        # sparse, while frames come many times a second).
        stopped = max(parent.quiet_since, self.split_at if parent.group != peer.group
                      else -math.inf)
        if stopped > -math.inf:
            peer.tree.heard(link, min(self.now, stopped))  # type: ignore[arg-type]

    def _reaches(self, a: Peer, b: Peer) -> bool:
        return a.group == b.group

    def one_way(self, a: Peer, b: Peer) -> float:
        """The one-way latency between two peers (without loss)."""
        if a.access_s is not None and b.access_s is not None:
            return a.access_s + b.access_s
        return self.latency_s

    def _delay(self, a: Peer, b: Peer) -> float:
        delay = self.one_way(a, b)
        if self.loss and self.rng.random() < self.loss:
            delay += RETRANSMIT_S
        return delay

    def _send(self, end: _End, message: Message) -> None:
        end.peer.control_bytes += len(encode(message, check_fields=False))
        self._deliver(end, lambda to: self.apply(
            to.peer, to.peer.tree.receive(to.link, message, self.now)))

    def _deliver(self, end: _End, handler: Callable[[_End], None]) -> None:
        """Run ``handler`` at the far end of ``end`` after the link's delay."""
        other = end.other
        if other is None:
            return  # the far side never answers (a frozen peer's kernel took the dial)
        sender = end.peer
        arrival = max(self.now + self._delay(sender, other.peer), end.next_arrival)
        end.next_arrival = arrival

        def arrive() -> None:
            to = other.peer
            if other.closed or not to.alive or to.frozen or not self._reaches(sender, to):
                return
            if to.stalled_until > self.now:
                to.backlog.append(arrive)  # in the kernel's buffer until it runs
                return
            handler(other)
        self.at(arrival, arrive)

    def _ping(self, peer: Peer, link: int) -> None:
        # The hottest path of a large simulation: kept to plain attribute reads.
        end = peer.ends.get(link)
        if end is None:
            return
        peer.control_bytes += _PING_BYTES
        other = end.other
        if other is None or other.closed:
            return
        far = other.peer
        if not far.alive or far.frozen or far.group != peer.group:
            return
        if far.stalled_until > self.now:
            far.backlog.append(lambda: self._answer(peer, link, far, other.link))
            return
        now = self.now
        far.tree.heard(other.link, now)
        far.control_bytes += _PONG_BYTES
        peer.tree.heard(link, now, answer=True)

    def _answer(self, peer: Peer, link: int, far: Peer, far_link: int) -> None:
        """A stalled peer reads a Ping once it runs again and answers it."""
        if not far.alive or far.frozen:
            return
        far.tree.heard(far_link, self.now)
        far.control_bytes += _PONG_BYTES
        if not peer.alive or peer.frozen:
            return
        if peer.stalled_until > self.now:
            peer.backlog.append(lambda: peer.tree.heard(link, self.now, answer=True))
        else:
            peer.tree.heard(link, self.now, answer=True)

    def _close(self, peer: Peer, close: act.Close) -> None:
        end = peer.ends.pop(close.link, None)
        if end is None:
            return
        if close.bye is not None:
            self._send(end, close.bye)
        self._hang_up(end, close.reason)

    def _hang_up(self, end: _End, reason: str) -> None:
        """Close our side; the far side sees EOF after the link's delay."""
        end.closed = True
        self._deliver(end, lambda to: self._eof(to, reason))

    def _eof(self, end: _End, reason: str) -> None:
        end.closed = True
        peer = end.peer
        if peer.ends.pop(end.link, None) is not None:
            self.apply(peer, peer.tree.link_closed(end.link, reason, self.now))

    def _dial(self, peer: Peer, link: int, candidate: Candidate) -> None:
        target = self.by_address.get((candidate.host, candidate.port))
        rtt = 2 * (self.one_way(peer, target) if target is not None else self.latency_s)

        def answer() -> None:
            if not peer.healthy:
                return
            if target is None or not self._reaches(peer, target):
                return  # nothing answers: the dialer's own deadline gives up
            if not target.alive:
                self.apply(peer, peer.tree.link_closed(link, "connection refused", self.now))
                return
            mine = _End(peer, link)
            peer.ends[link] = mine
            if not target.frozen:
                theirs = _End(target, target.tree.inbound(self.now, peer.host))
                target.ends[theirs.link] = theirs
                mine.other, theirs.other = theirs, mine
                self._arm(target)
            # If the state gave up on this dial meanwhile, it answers with a Close.
            self.apply(peer, peer.tree.connected(link, self.now))
        self.at(self.now + rtt, answer)


class OmniRoom:
    """A room view that knows everyone's true position (tests)."""

    def __init__(self, net: SimNet, me: Callable[[], Peer]) -> None:
        self._net = net
        self._me = me

    def candidates(self) -> list[Candidate]:
        me = self._me()
        found = [self._net.candidate(p) for p in self._net.peers.values()
                 if p is not me and p.alive and p.tree.attached]
        self._net.rng.shuffle(found)
        return sorted(found, key=lambda c: (c.free_slots == 0, c.depth))[:32]

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        pairs = []
        for p in self._net.peers.values():
            parent = self._net.parent_of(p)
            pairs.append((p.id, parent.id if parent is not None else None))
        return subtree_of(peer_id, children, pairs)

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        return epoch >= newest

    def reachable(self) -> bool:
        return True

    def advertised(self) -> tuple[str | None, int | None]:
        me = self._me()
        return me.host, me.port
