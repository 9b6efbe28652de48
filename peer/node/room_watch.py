"""What the node does when its room's directory changes.

- PEERS: the user sees the new tree; the tree state hears whether we can be dialled
  (a peer nobody can dial takes no children) and may retry a waiting join at once;
  connection reversal runs (``reverse``).
- STREAMER: a new streamer is announced once (``StreamStarted``); nobody streaming
  ends the stream for a viewer; another peer holding the lock ends ours
  (``LOCK_TAKEN``); the tree state learns the streamer and its epoch (fencing).
- CLOSED: only a warning: the directory reconnects by itself while the tree, the
  stream and chat carry on.

``reverse`` also runs on the node's tick: it takes offers from undialable parents,
makes ours to undialable orphans, asks for a hole punch when nothing else can give us
a parent (punching.py), and says so when we have waited too long for a parent nobody
can give us (stranded.py).
"""

from __future__ import annotations

from collections.abc import Callable

from peer.node.broadcast import Broadcast
from peer.node.connections import Connections
from peer.node.directory import DirectoryChange, TrackerDirectory
from peer.node.events import (
    ErrorRaised,
    NodeEvent,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
)
from peer.node.fanout import FanoutControl
from peer.node.pump import StreamEnd
from peer.node.punching import HolePunching
from peer.node.reachability import classify
from peer.node.room import DirectoryRoom
from peer.node.stranded import StrandedWatch
from peer.node.tree_driver import TreeDriver, now


class RoomWatch:
    """Follows the directory's changes.

    Args:
        peer_id: our id.
        room: the directory.
        driver: the tree state's driver.
        broadcast: our own stream (ended when another peer takes the lock).
        fanout: how many children we take.
        connections: whether our listener has a port mapping.
        emit: reports events.
        punching: hole punching (None: never punch).
    """

    def __init__(self, peer_id: str, room: DirectoryRoom, driver: TreeDriver,
                 broadcast: Broadcast, fanout: FanoutControl, connections: Connections,
                 emit: Callable[[NodeEvent], None],
                 punching: HolePunching | None = None) -> None:
        self._punching = punching
        self._peer_id = peer_id
        self._room = room
        self._driver = driver
        self._tree = driver.tree
        self._broadcast = broadcast
        self._fanout = fanout
        self._connections = connections
        self._emit = emit
        self._stranded = StrandedWatch()
        # False until the directory is open and Ready is out (start() catches up
        # then), and again once the node stops.
        self.live = False
        # The ids the room list marks as --relay peers, taken from the list once per
        # change (the stats ask every second; the list may hold 200 peers).
        self._relays: frozenset[str] | None = None

    def changed(self, change: DirectoryChange) -> None:
        directory = self._room.directory
        if change is DirectoryChange.PEERS:
            self._relays = None
        if directory is None or not self.live:
            return
        at = now()
        tree, apply = self._tree, self._driver.apply
        if change is DirectoryChange.PEERS:
            peers = directory.tree()
            self._relays = frozenset(p.id for p in peers if p.relay)
            self._emit(TreeChanged(peers=peers, self_id=self._peer_id,
                                   room_size=directory.room_size(),
                                   levels=directory.tree_levels()))
            apply(tree.set_reachable(directory.reachable(), self._fanout.fanout(at), at))
            apply(tree.directory_changed(at))
            self.reverse(at)
        elif change is DirectoryChange.STREAMER:
            self._streamer_changed(at)
        elif change is DirectoryChange.CLOSED:
            # Not fatal: the directory reconnects by itself (the next tracker of the
            # list first) while the tree links, the stream and chat carry on.
            self._emit(ErrorRaised(
                message="lost the connection to the tracker; reconnecting (the stream "
                        "and chat go on)"))

    def _streamer_changed(self, at: float) -> None:
        directory = self._room.directory
        assert directory is not None
        broadcast = self._broadcast
        streamer = directory.streamer()
        if streamer is None:
            if broadcast.announced is not None and broadcast.pump is None:
                broadcast.announced = None
                self._emit(StreamEnded(streamer=None, reason=StreamEndReason.FINISHED))
            self._driver.apply(self._tree.set_streamer(None, 0, at))
            return
        if broadcast.pump is not None and streamer.id != self._peer_id:
            broadcast.end_soon(StreamEnd(StreamEndReason.LOCK_TAKEN))
        if streamer.id != broadcast.announced:
            broadcast.announced = streamer.id
            if streamer.id != self._peer_id:
                self._emit(StreamStarted(streamer=streamer.name, streamer_id=streamer.id,
                                         epoch=streamer.epoch))
        self._driver.apply(self._tree.set_streamer(streamer.id, streamer.epoch, at))

    def reverse(self, at: float) -> None:
        """Connection reversal: take offers from undialable parents; make ours. Also
        tells the tree who nobody can dial (its Redirects leave them out)."""
        directory = self._room.directory
        if not isinstance(directory, TrackerDirectory) or not self.live:
            return
        tree = self._tree
        tree.offers_from = directory.offerers()
        tree.undialable = directory.undialable()
        reachable = directory.reachable()
        if not reachable:  # a dialable peer makes no offers (TreeState.offer)
            self._driver.apply(tree.offer(directory.orphans(), at))
        streamer = directory.streamer()
        waiting = (not tree.attached and self._broadcast.pump is None
                   and streamer is not None and streamer.id != self._peer_id)
        if self._punching is not None:
            self._punching.tick(at, waiting=waiting)
        # This runs ten times a second on every peer: the candidates (built and
        # shuffled afresh) are only counted when they can matter.
        why = self._stranded.update(
            at, waiting=waiting, reachable=reachable,
            candidates=len(directory.candidates()) if waiting and not reachable else 0)
        if why is not None:
            self._emit(ErrorRaised(message=why))

    def reachability(self) -> str:
        """How others can dial us (reachability.py), for the stats."""
        directory = self._room.directory
        parent = self._tree.parent_id
        # The room list says who registered as a relay (a large room may not list our
        # parent: then we cannot tell and say outbound-only).
        relayed = False
        if directory is not None and parent is not None:
            if self._relays is None:
                self._relays = frozenset(p.id for p in directory.tree() if p.relay)
            relayed = parent in self._relays
        tree, punching = self._tree, self._punching
        punched = punching is not None and (punching.punched(parent) or any(
            punching.punched(tree.peer_of(child)[0]) for child in tree.children))
        return classify(directory.reachable() if directory is not None else None,
                        self._connections.mapping is not None, relayed,
                        punched=punched).value
