"""TCP hole punching in the tree: the asyncio side of punch_plan.py.

Roles. The peer that needs a parent (the *child*) asks the tracker for a punch with a
peer in the tree that nobody can dial either (``tick``); the tracker sends both a
PunchStart (``started``). Both dial from their listening ports at the moment given
(punch.py). On the connection that results:

- the parent acts as if it had dialled its child for a connection reversal: the
  tracker's invitation becomes a reversal offer (``TreeState.offer``), and the dial
  for that offer (``Connections.dial``) takes the plan (``dial_socket``) and punches
  instead of connecting; it is the TLS client and checks the child's key against the
  id the tracker named, as for any dial;
- the child hands the connection to its listener's admission (``Connections.adopt``),
  as if the parent had dialled in: connection caps, then TLS as the server, and the
  parent must open with a proof of its id. Its Hello then comes from a peer whose
  offers we take (attached, nobody can dial it: ``offerers``), so the child answers
  with a JoinRequest (even while a dial of its join round is under way: the tree
  state's ``awaited_offer``) and the link is a tree link like any other.

So a punched link goes through exactly the checks a dialled one does. What fails
(a symmetric NAT on either side: nothing connects) ends within ``punch_s`` and leaves
the tree's other ways (a relay peer, reversal, mapped peers) untouched: a punch never
holds up the child's join round, which runs meanwhile.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Awaitable, Callable

from peer.node.directory import TrackerDirectory
from peer.node.punch import punch
from peer.node.punch_plan import PunchPlanner
from peer.node.room import DirectoryRoom
from peer.node.tasks import TaskSet
from peer.node.tree.state import TreeState
from peer.node.tree_driver import now
from protocol import Candidate, PunchStart

log = logging.getLogger(__name__)

# What a punch may take of a join attempt (the parent's offer link lives
# ``connect_timeout_s``): the start delay, the punch, then the TLS handshake.
_TLS_MARGIN_S = 0.3


class HolePunching:
    """Requests, answers and runs hole punches for one node.

    Args:
        tree: our tree state (its ``awaited_offer`` names the parent we punch to).
        room: the directory (a ``TrackerDirectory`` punches; others never do).
        tasks: where the child's punches run.
        listen_port: our listening port (the one both sides dial from), None before
            we listen.
        offer: makes the tree offer itself as parent to a candidate (the parent's side
            of a punch; ``TreeState.offer`` through the driver).
        adopt: hands a connected socket to the listener's admission (the child's side).
        connect_timeout_s: how long a join attempt may take (bounds a punch).
    """

    def __init__(self, tree: TreeState, room: DirectoryRoom, tasks: TaskSet, *,
                 listen_port: Callable[[], int | None],
                 offer: Callable[[Candidate, float], None],
                 adopt: Callable[[socket.socket], Awaitable[None]],
                 connect_timeout_s: float) -> None:
        self._tree = tree
        self._room = room
        self._tasks = tasks
        self._listen_port = listen_port
        self._offer = offer
        self._adopt = adopt
        self.punch_s = max(0.5, connect_timeout_s - _TLS_MARGIN_S)
        self.planner = PunchPlanner(tree.peer_id, self.punch_s)
        self._hooked: TrackerDirectory | None = None
        self.closing = False

    def tick(self, at: float, *, waiting: bool) -> None:
        """Ask for a punch if we wait for a parent nobody can give us otherwise."""
        directory = self._directory()
        if directory is None or self.closing or not waiting or directory.reachable():
            return  # nothing to ask for (``PunchPlanner.want``): skip the room's lists
        free = sum(1 for c in directory.candidates() if c.free_slots > 0)
        target = self.planner.want(at, waiting=waiting, reachable=False,
                                   free_candidates=free, peers=directory.peers())
        if target is not None:
            log.info("asking the tracker for a hole punch with %s", target[:12])
            directory.request_punch(target)

    def punched(self, peer_id: str | None) -> bool:
        """Whether our link with ``peer_id`` was made by a punch."""
        return self.planner.punched(peer_id)

    async def dial_socket(self, candidate: Candidate) -> socket.socket | None:
        """The parent's side: a connected socket to ``candidate`` by the punch the
        tracker arranged. Raises LookupError when no punch is planned with it (dial as
        usual), TimeoutError when the punch failed."""
        plan = self.planner.take_plan(candidate.id, now())
        port = self._listen_port()
        if plan is None or port is None:
            raise LookupError(candidate.id)
        sock = await punch(port, (plan.host, plan.port), _wall(plan.start_at),
                           timeout_s=self.punch_s - max(0.0, plan.start_at - now()))
        if sock is None:
            log.info("hole punch to %s failed", candidate.name)
            raise TimeoutError(f"hole punch to {candidate.name} failed")
        self.planner.linked(candidate.id)
        return sock

    # --- the tracker's PunchStart ------------------------------------------------------

    def _directory(self) -> TrackerDirectory | None:
        directory = self._room.directory
        if not isinstance(directory, TrackerDirectory):
            return None
        if directory is not self._hooked:
            directory.on_punch = self.started
            self._hooked = directory
        return directory

    def started(self, message: PunchStart) -> None:
        """The tracker arranged a punch with us (we asked, or were asked)."""
        if self.closing:
            return
        at = now()
        if message.requester:
            if self.planner.answered(message, at):
                self._tasks.spawn(self._as_child(message, at), "node-punch")
            return
        plan = self.planner.invited(message, at)
        if plan is not None:
            self._offer(Candidate(plan.peer_id, plan.name, plan.host, plan.port), at)

    async def _as_child(self, message: PunchStart, at: float) -> None:
        port = self._listen_port()
        if port is None:
            return
        start = at + message.start_in_ms / 1000
        # Its offer comes on this connection: take it even if a dial is under way.
        self._tree.awaited_offer = message.peer_id
        sock = await punch(port, (message.host, message.port), _wall(start),
                           timeout_s=self.punch_s)
        if sock is None:
            log.info("hole punch to %s failed", message.name)
            return
        self.planner.linked(message.peer_id)
        if self.closing:
            sock.close()
            return
        await self._adopt(sock)


def _wall(monotonic_at: float) -> float:
    """A moment on our monotonic clock as wall-clock time (punch() takes the latter)."""
    return time.time() + (monotonic_at - now())
