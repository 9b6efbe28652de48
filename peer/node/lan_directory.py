"""A Directory with no tracker: the room as mDNS records on the LAN.

Every peer advertises a ``LanPeer`` record that follows its place in the tree; the
browser's view of the room gives join candidates and the streamer. The lock is best
effort (see protocol/lan.py): a claimant browses for a moment and is refused
when a live streamer is seen; two that claim at once compare records with
``streamer_wins`` and the loser steps down as soon as it sees the winner.

Records are signed (protocol/lan.py), so nobody advertises in another peer's name. A
stranger's own claim with a made-up early time is ignored once we watch a streamer:
we note when each claim first appeared and drop one that was already old then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from zeroconf.asyncio import AsyncZeroconf

from peer.lan.addresses import advertise_addresses, interfaces_for
from peer.lan.advertiser import LanAdvertiser
from peer.lan.browser import LanBrowser
from peer.node.directory import DirectoryChange, StreamerInfo, order_candidates
from peer.node.errors import LockDeniedError
from peer.node.events import TreePeer
from protocol import Candidate, TreeLevel, limits
from protocol.fields import is_wildcard_host
from protocol.identity import Identity
from protocol.lan import LAN_CLAIM_WAIT_S, LanPeer, claim_is_backdated, lan_streamer

# How long a new directory reads the room before it judges claims by when they appear:
# the room's records arrive over the first second or two (longer on a loaded host).
LAN_SETTLE_S = 2 * LAN_CLAIM_WAIT_S


class LanDirectory:
    """Directory over zeroconf: advertise ourselves, browse the room."""

    def __init__(self, *, identity: Identity, name: str, room: str, listen_host: str,
                 listen_port: int, on_change: Callable[[DirectoryChange], None]) -> None:
        self._identity = identity
        peer_id = self._peer_id = identity.peer_id
        self._name = name
        self._room = room
        self._port = listen_port
        self._on_change = on_change
        # Bound to one address: advertise and browse there only (tests on loopback).
        wildcard = is_wildcard_host(listen_host)
        self._interfaces = interfaces_for(listen_host)
        self._host = advertise_addresses(None if wildcard else listen_host,
                                         self._interfaces)[0]
        self._aiozc: AsyncZeroconf | None = None
        self._browser: LanBrowser | None = None
        self._advertiser: LanAdvertiser | None = None
        # "" advertises every address of ours; each browser picks the one on its subnet.
        self._record = LanPeer(id=peer_id, name=name, room=room, role="viewer", depth=None,
                               free_slots=0, version=max(limits.SUPPORTED_VERSIONS),
                               host="" if wildcard else listen_host, port=listen_port)
        self._streamer: StreamerInfo | None = None
        self._claim = 0
        # (id, claim) of every streamer record in view -> when we first saw it (ms);
        # pruned to what is in view, so bounded by the browser's service cap.
        self._claims_seen: dict[tuple[str, int], float] = {}
        self._opened_ms = time.time() * 1000

    async def open(self) -> None:
        self._opened_ms = time.time() * 1000
        self._aiozc = AsyncZeroconf(interfaces=self._interfaces)
        self._browser = LanBrowser(self._interfaces, on_change=self._on_browser_change,
                                   aiozc=self._aiozc)
        await self._browser.start()
        self._advertiser = LanAdvertiser(self._interfaces, identity=self._identity,
                                         aiozc=self._aiozc)
        await self._advertiser.start(self._record)

    def _others(self) -> list[LanPeer]:
        if self._browser is None:
            return []
        return [p for p in self._browser.peers(self._room) if p.id != self._peer_id]

    def _on_browser_change(self) -> None:
        peers = self._honest(self._others())
        if self._claim:
            peers.append(self._record)
        holder = lan_streamer(peers)
        streamer = (StreamerInfo(holder.id, holder.name, holder.claim)
                    if holder is not None else None)
        if streamer != self._streamer:
            self._streamer = streamer
            self._on_change(DirectoryChange.STREAMER)
        self._on_change(DirectoryChange.PEERS)

    def settled(self) -> bool:
        """Whether we have watched the room long enough to judge new claims."""
        return time.time() * 1000 - self._opened_ms >= LAN_SETTLE_S * 1000

    def _honest(self, peers: list[LanPeer]) -> list[LanPeer]:
        """``peers`` without streamer claims that were backdated when they appeared.

        Judged only once we have watched the room for ``LAN_SETTLE_S``: to a newcomer
        every record is new (they arrive over its first second or so), and it has no
        better arbiter than the claims themselves.
        """
        now_ms = time.time() * 1000
        in_view = {(p.id, p.claim) for p in peers if p.role == "streamer"}
        settled = self.settled()
        for key in list(self._claims_seen):
            if key not in in_view:
                del self._claims_seen[key]
        for key in in_view:
            # Before we settle, a claim counts as seen at its own time: not judged.
            self._claims_seen.setdefault(key, now_ms if settled else float(key[1]))
        return [p for p in peers if p.role != "streamer"
                or not claim_is_backdated(p.claim, self._claims_seen[(p.id, p.claim)])]

    def candidates(self) -> list[Candidate]:
        streamer = self._streamer
        found = []
        for peer in self._others():
            candidate = peer.candidate()
            # Only the current stream's tree: a losing streamer's peers are no home.
            if candidate is not None and (peer.role == "viewer" or
                                          (streamer is not None and peer.id == streamer.id)):
                found.append(candidate)
        return order_candidates(found)

    def streamer(self) -> StreamerInfo | None:
        return self._streamer

    def tree(self) -> tuple[TreePeer, ...]:
        peers = [*self._others(), self._record]
        return tuple(TreePeer(p.id, p.name, p.parent_id, p.depth, p.layer, p.role)
                     for p in peers)

    def room_size(self) -> int:
        return len(self._others()) + 1

    def tree_levels(self) -> tuple[TreeLevel, ...]:
        return ()  # tree() lists the whole room

    def own_name(self) -> str:
        return self._name  # no arbiter on a LAN: names are taken as given

    def own_host(self) -> str | None:
        return self._host

    def reachable(self) -> bool:
        return True

    async def claim(self) -> int:
        # Give the room's records a moment to arrive before deciding it is free.
        await asyncio.sleep(LAN_CLAIM_WAIT_S)
        holder = lan_streamer(self._others())
        if holder is not None:
            raise LockDeniedError(holder.name)
        self._claim = int(time.time() * 1000)
        await self._publish(role="streamer", depth=0, claim=self._claim, parent_id=None,
                            layer=None)
        self._on_browser_change()
        return self._claim

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        # The tie-break winner holds the EARLIER claim, so a higher epoch may be a
        # losing streamer's: only the epoch of the streamer we see is current.
        return self._streamer is not None and epoch == self._streamer.epoch

    def lease_valid(self) -> bool:
        return self._claim != 0 and (self._streamer is None or
                                     self._streamer.id == self._peer_id)

    async def release(self) -> None:
        self._claim = 0
        await self._publish(role="viewer", depth=None, claim=0, parent_id=None, layer=None)
        self._on_browser_change()

    def set_position(self, *, depth: int | None, free_slots: int, parent_id: str | None,
                     layer: int | None, streaming: bool) -> None:
        if streaming != bool(self._claim):
            return  # claim/release publish the role change themselves
        record = self._with(depth=depth, free_slots=free_slots, parent_id=parent_id,
                            layer=layer)
        if record != self._record and self._advertiser is not None:
            self._record = record
            self._advertiser.update(record)

    def _with(self, **changes: object) -> LanPeer:
        fields = {f: getattr(self._record, f) for f in LanPeer.__dataclass_fields__}
        fields.update(changes)
        if fields["role"] == "viewer" and fields["depth"] == 0:
            fields["depth"] = None
        return LanPeer(**fields)

    async def _publish(self, **changes: object) -> None:
        self._record = self._with(**changes)
        if self._advertiser is not None:
            self._advertiser.update(self._record)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._advertiser is not None:
                await self._advertiser.close()
        with contextlib.suppress(Exception):
            if self._browser is not None:
                await self._browser.close()
        if self._aiozc is not None:
            with contextlib.suppress(Exception):
                await self._aiozc.async_close()
