"""Whom to punch a hole to, and which punches the tracker arranged with us, sans-IO.

Theory of operation
-------------------
Two peers nobody can dial (both behind NATs without port mapping) cannot link up by
dialling, nor by connection reversal (which needs the child to be dialable). They can
by TCP hole punching (punch.py): the tracker tells both the other's address and a
moment, and both dial from their listening ports at once.

*As a child.* While we wait for a parent, the tracker's verdict on us is "unreachable"
and no candidate the room lists has a free slot we could dial, ``want`` picks a peer
in the tree that nobody can dial either and that has a free slot (shallowest, then
freest), and we ask the tracker for a punch with it. One at a time: the next request
only once the punch is over (or, unanswered, ``REQUEST_WAIT_S`` passed); a peer we asked for is
not asked for again for ``PUNCH_AGAIN_S`` whatever came of it (behind a symmetric NAT
every punch fails, and the relay or reversal path must get its turn). The answer
(PunchStart with ``requester``) is taken only for the peer we asked for, while we wait.

*As a parent.* A PunchStart without ``requester`` means a peer asked to join us by a
punch: ``invited`` keeps a *plan* (its address and the moment), at most
``MAX_PLANS`` at once, each good until its punch would be over; the node then offers
itself to that peer as for a connection reversal, and the dial for that offer takes
the plan (``take_plan``) and punches instead of dialling.

``punched`` remembers the peers we are linked with through a punch (bounded), so the
stats can say ``punched``.

No sockets, no clock: ``now`` comes from the caller's monotonic clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from protocol import PeerInfo, PunchStart

REQUEST_WAIT_S = 1.0
"""How long an unanswered punch request blocks the next one (the tracker answers
within a round trip; a refusal comes as an Error we do not match)."""

PUNCH_AGAIN_S = 10.0
"""A peer we asked for a punch with is not asked for again for this long: a failed
punch (a symmetric NAT) fails the same way next time, and a successful one made it our
parent (if we lose it, its grandparent and the others come first)."""

MAX_PLANS = 4
"""Punches we take part in as the parent at once. Each is a dial from our listening
port; a room asking for more gets nothing from us beyond these (the tracker bounds the
rate too)."""

MAX_PUNCHED = 64
"""Peers remembered as linked by a punch: more than our children and parent."""


@dataclass(frozen=True, slots=True)
class PunchPlan:
    """A punch to make: dial ``host:port`` from our listening port at ``start_at``.

    Attributes:
        peer_id: the other side.
        name: its display name.
        host: its address as the tracker saw it.
        port: its listening port.
        start_at: when to dial (our monotonic clock).
        expires_at: when the plan is useless (its punch would be over).
    """

    peer_id: str
    name: str
    host: str
    port: int
    start_at: float
    expires_at: float


class PunchPlanner:
    """Decides punch requests and keeps punch plans (see the module docs).

    Args:
        peer_id: our id.
        punch_s: how long one punch may take (the plan expires after it).
    """

    def __init__(self, peer_id: str, punch_s: float) -> None:
        self._peer_id = peer_id
        self._punch_s = punch_s
        # (peer id, blocks the next request until, answered): one punch at a time.
        self._asked: tuple[str, float, bool] | None = None
        self._again: dict[str, float] = {}  # peer id -> not before
        self._plans: dict[str, PunchPlan] = {}
        self._punched: OrderedDict[str, None] = OrderedDict()
        self.requests = 0
        self.invitations_refused = 0

    # --- as a child ------------------------------------------------------------------

    def want(self, now: float, *, waiting: bool, reachable: bool,
             free_candidates: int, peers: Iterable[PeerInfo]) -> str | None:
        """The peer to ask the tracker for a punch with now, or None.

        Args:
            waiting: we need a parent (out of the tree, a streamer live, not us).
            reachable: the tracker's verdict on our listener (True while unknown).
            free_candidates: dialable candidates with a free slot the room lists.
            peers: the room as listed.
        """
        if not waiting or reachable or free_candidates > 0:
            return None
        if self._asked is not None and now < self._asked[1]:
            return None
        self._asked = None
        self._again = {k: t for k, t in self._again.items() if t > now}
        best: PeerInfo | None = None
        for p in peers:
            if (p.id == self._peer_id or p.reachable or p.depth is None
                    or p.free_slots <= 0 or p.host is None or p.port is None
                    or p.id in self._again):
                continue
            if best is None or (p.depth, -p.free_slots) < (best.depth or 0, -best.free_slots):
                best = p
        if best is None:
            return None
        self._asked = (best.id, now + REQUEST_WAIT_S, False)
        self._again[best.id] = now + PUNCH_AGAIN_S
        self.requests += 1
        return best.id

    def answered(self, message: PunchStart, now: float) -> bool:
        """The tracker's PunchStart for our request: True if it is the one we wait for
        (then punch now, as the child)."""
        asked = self._asked
        if not message.requester or asked is None or asked[0] != message.peer_id \
                or now >= asked[1] or asked[2]:
            return False
        # No other request until this punch is over.
        self._asked = (asked[0], now + message.start_in_ms / 1000 + self._punch_s, True)
        return True

    # --- as a parent -----------------------------------------------------------------

    def invited(self, message: PunchStart, now: float) -> PunchPlan | None:
        """A peer asked to join us by a punch: the plan to keep, or None (refused:
        too many at once, or one with that peer is under way)."""
        if message.requester or message.peer_id == self._peer_id:
            return None
        self._plans = {k: p for k, p in self._plans.items() if p.expires_at > now}
        if message.peer_id in self._plans or len(self._plans) >= MAX_PLANS:
            self.invitations_refused += 1
            return None
        start = now + message.start_in_ms / 1000
        plan = PunchPlan(message.peer_id, message.name, message.host, message.port,
                         start, start + self._punch_s)
        self._plans[plan.peer_id] = plan
        return plan

    def take_plan(self, peer_id: str, now: float) -> PunchPlan | None:
        """The plan for a dial to ``peer_id``, if one is pending (it is used up)."""
        plan = self._plans.pop(peer_id, None)
        return plan if plan is not None and plan.expires_at > now else None

    # --- both ------------------------------------------------------------------------

    def linked(self, peer_id: str) -> None:
        """A punch with ``peer_id`` made a connection."""
        self._punched[peer_id] = None
        self._punched.move_to_end(peer_id)
        while len(self._punched) > MAX_PUNCHED:
            self._punched.popitem(last=False)

    def punched(self, peer_id: str | None) -> bool:
        """Whether our link with ``peer_id`` was made by a punch."""
        return peer_id is not None and peer_id in self._punched
