"""The asyncio driver of the sans-IO ``TreeState``: its actions on real links, its timer.

Every call into the tree state returns actions; ``apply`` carries them out in order:
``Send`` and ``Close`` on the link with that id, ``PingDue`` as a Ping stamped with
the wall clock (the NTP-style offset estimate needs it), ``Dial`` as a background
task that reports back ``connected`` or ``link_closed``, ``Report`` to the directory
(once it is open: it then hears the latest). Tree events (a parent or child came or
went) go to ``on_event``. After each batch the one timer is re-armed at
``get_timer()``: ``loop.call_at`` uses the same monotonic clock the state is fed. The
bytes a link reads between wake-ups (every frame) reach the state without re-arming:
they only move its due times later, and at the next wake-up the driver first hands it
each link's latest read, then the state says when it is due again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from peer.node.connections import Connections
from peer.node.link import PeerLink
from peer.node.linktable import LinkTable
from peer.node.room import DirectoryRoom
from peer.node.tasks import TaskSet
from peer.node.tree import actions as act
from peer.node.tree.state import TreeState
from protocol import Candidate, Ping

log = logging.getLogger(__name__)

# How early a loop may run a timer that is still taken as on time (see ``_on_timer``).
_EARLY_S = 0.002


def now() -> float:
    """The clock the tree state runs on (asyncio's loop clock is the same)."""
    return time.monotonic()


class TreeDriver:
    """Runs a ``TreeState`` on the node's links.

    Args:
        tree: the state to drive.
        links: the open links by tree id.
        connections: dials for ``Dial``.
        room: where ``Report`` goes (its directory).
        tasks: where dials run.
        on_event: the tree's news (parent or child attached, detached ...).
    """

    def __init__(self, tree: TreeState, links: LinkTable, connections: Connections,
                 room: DirectoryRoom, tasks: TaskSet,
                 on_event: Callable[[act.TreeEvent], None]) -> None:
        self.tree = tree
        self._links = links
        self._connections = connections
        self._room = room
        self._tasks = tasks
        self._on_event = on_event
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._position: act.Report | None = None
        self._reporting = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the timer on ``loop`` from now on (armed by the next ``apply`` or
        ``arm``)."""
        self._loop = loop

    def stop(self) -> None:
        """No more timer (the node is stopping)."""
        self._loop = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def start_reporting(self) -> None:
        """The directory is open: it hears our position now and on every change."""
        self._reporting = True
        self._report()

    def apply(self, actions: list[act.Action]) -> None:
        """Carry out what the tree state asked for, in order."""
        for action in actions:
            if isinstance(action, act.Send):
                link = self._links.get(action.link)
                if link is not None:
                    link.send(action.message)
            elif isinstance(action, act.PingDue):
                link = self._links.get(action.link)
                if link is not None:
                    link.send(Ping(t0=time.time()))
            elif isinstance(action, act.Close):
                link = self._links.get(action.link)
                if link is not None:
                    link.close(action.reason, action.bye)
            elif isinstance(action, act.Dial):
                self._tasks.spawn(self._dial(action.link, action.candidate), "node-dial")
            elif isinstance(action, act.Report):
                self._position = action
                self._report()
            else:
                self._on_event(action)
        self.arm()

    def inbound(self, link: PeerLink, address: str | None) -> None:
        """An admitted inbound link: give it a tree id and start it."""
        self._links.add(self.tree.inbound(now(), address), link)
        link.start()
        self.arm()

    def closed(self, link: PeerLink, reason: str) -> None:
        """A link closed: the tree hears it (if the link had an id)."""
        link_id = self._links.remove(link)
        if link_id is not None:
            self.apply(self.tree.link_closed(link_id, reason, now()))

    def arm(self) -> None:
        """Set the one timer to the tree state's next due time."""
        if self._loop is None:
            return
        due = self.tree.get_timer()
        if self._timer is not None and due == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        # loop.time() and time.monotonic() are the same clock in asyncio's loops.
        self._timer = self._loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        tree = self.tree
        at = now()
        if 0.0 < self._timer_at - at <= _EARLY_S:
            # A loop that keeps its timers in whole milliseconds (uvloop as shipped;
            # loops.py's rounds up) may run one a little early; the state compares
            # exactly, so it would find nothing due and name the same instant again:
            # a second wake-up for nothing.
            at = self._timer_at
        for link in self._links:
            # The link stamps every read (a piece of a large frame too, which the
            # tree hears of only once the frame is whole): a sign of life.
            link_id = self._links.id_of(link)
            if link_id is not None:
                tree.heard(link_id, link.last_heard, answer=True)
        self.apply(tree.handle_timer(at))

    def _report(self) -> None:
        """Tell the directory where we are."""
        position = self._position
        if self._reporting and position is not None:
            assert self._room.directory is not None
            self._room.directory.set_position(
                depth=position.depth, free_slots=position.free_slots,
                parent_id=position.parent_id, layer=position.layer,
                streaming=position.streaming)

    async def _dial(self, link_id: int, candidate: Candidate) -> None:
        try:
            link = await self._connections.dial(candidate)
        except (OSError, TimeoutError) as exc:
            log.debug("cannot reach %s at %s:%s: %s", candidate.name, candidate.host,
                      candidate.port, exc)
            self.apply(self.tree.link_closed(link_id, f"cannot reach: {exc}", now()))
            return
        self._links.add(link_id, link)
        link.start()
        self.apply(self.tree.connected(link_id, now()))
