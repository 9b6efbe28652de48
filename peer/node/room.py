"""The node's view of its room: which directory it uses, and what the tree asks of it.

``open_directory`` picks the directory from the config (a tracker; on a LAN a tracker
found by mDNS, or tracker-less zeroconf). ``DirectoryRoom`` answers the tree state's
questions (``RoomView``) from whatever directory the node has.
"""

from __future__ import annotations

from collections.abc import Callable

from peer.lan.addresses import interfaces_for
from peer.lan.browser import find_tracker
from peer.node.config import NodeConfig
from peer.node.directory import Directory, DirectoryChange, TrackerDirectory
from peer.node.errors import TrackerUnreachableError
from peer.node.lan_directory import LanDirectory
from peer.node.tree.state import subtree_of
from peer.trust.pins import KnownTrackers
from protocol import Candidate
from protocol.fields import is_wildcard_host
from protocol.identity import Identity

# How long a --lan peer listens for a tracker before running tracker-less.
LAN_TRACKER_WAIT_S = 1.5


async def open_directory(config: NodeConfig, identity: Identity, listen: tuple[str, int],
                         on_change: Callable[[DirectoryChange], None]) -> Directory:
    """The directory ``config`` asks for (not opened yet). ``identity`` signs our LAN
    records and, with ``config.tls``, makes the tracker link TLS.

    Raises:
        TrackerUnreachableError: no tracker given and not on a LAN.
    """
    tracker = config.tracker
    if tracker is None and config.lan:
        tracker = await find_tracker(LAN_TRACKER_WAIT_S, interfaces_for(config.listen_host))
        if tracker is None:
            return LanDirectory(identity=identity, name=config.name, room=config.room,
                                listen_host=config.listen_host, listen_port=listen[1],
                                on_change=on_change)
    if tracker is None:
        raise TrackerUnreachableError(
            "no tracker given (use --tracker HOST:PORT, or --lan on a LAN)")
    return TrackerDirectory(
        tracker[0], tracker[1], peer_id=identity.peer_id, name=config.name, room=config.room,
        listen_host=config.advertise_host or listen[0], listen_port=listen[1],
        heartbeat_s=config.timing.tracker_heartbeat_s, on_change=on_change,
        more_trackers=config.more_trackers, relay=config.relay,
        identity=identity if config.tls else None, fingerprint=config.tracker_fingerprint,
        pins=KnownTrackers(config.known_trackers_path))


class DirectoryRoom:
    """``RoomView`` over the node's directory (empty until it has one)."""

    def __init__(self, config: NodeConfig) -> None:
        self._config = config
        self.directory: Directory | None = None
        self.listen: tuple[str, int] | None = None

    def candidates(self) -> list[Candidate]:
        return self.directory.candidates() if self.directory is not None else []

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        if self.directory is None:
            return set(children)
        return subtree_of(peer_id, children,
                          ((p.id, p.parent_id) for p in self.directory.tree()))

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        if self.directory is None:
            return epoch >= newest
        return self.directory.is_live_epoch(epoch, newest)

    def reachable(self) -> bool:
        return self.directory.reachable() if self.directory is not None else True

    def advertised(self) -> tuple[str | None, int | None]:
        if self.listen is None:
            return None, None
        host = self._config.advertise_host
        if host is None and self.directory is not None:
            host = self.directory.own_host()
        if host is None and not is_wildcard_host(self.listen[0]):
            host = self.listen[0]
        return host, self.listen[1]
