"""LanDirectory (the node's tracker-less directory) against real mDNS on loopback.

Other peers are plain ``LanAdvertiser`` records and a ``LanBrowser`` shows what the
directory itself advertises. Everything uses ``interfaces=["127.0.0.1"]`` and a room of
its own, so other tests advertising on loopback at the same time cannot disturb these.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from peer.lan.advertiser import LanAdvertiser
from peer.lan.browser import LanBrowser
from peer.node.directory import DirectoryChange, StreamerInfo
from peer.node.errors import LockDeniedError
from peer.node.lan_directory import LanDirectory
from protocol.identity import Identity
from protocol.lan import CLAIM_SLACK_MS, LanPeer

LOOPBACK = ["127.0.0.1"]
# Generous: zeroconf probes for ~1 s before a record is out; a loaded machine is slower.
SEEN_TIMEOUT_S = 20.0
# Closing sends goodbyes (~0.25 s); anything near this means close waited for a task
# that did not end.
CLOSE_BOUND_S = 10.0


def _uid() -> str:
    return uuid.uuid4().hex[:16]


@pytest.fixture
def room() -> str:
    return f"landir-{_uid()}"


# Records are signed by the key their id names: the key of every id made here.
KEY_OF: dict[str, Identity] = {}


def new_identity() -> Identity:
    identity = Identity.generate()
    KEY_OF[identity.peer_id] = identity
    return identity


def viewer(room: str, **changes: Any) -> LanPeer:
    fields: dict[str, Any] = {
        "id": new_identity().peer_id, "name": "Vic", "room": room, "role": "viewer", "depth": 1,
        "free_slots": 2, "version": 1, "host": "127.0.0.1", "port": 41000, "claim": 0,
    }
    fields.update(changes)
    return LanPeer(**fields)


def streamer(room: str, claim: int, **changes: Any) -> LanPeer:
    return viewer(room, role="streamer", depth=0, claim=claim, **changes)


async def until(condition: Callable[[], bool], timeout: float = SEEN_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


class Harness:
    """Opens directories, advertisers and a browser; closes them all at the end."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.changes: list[DirectoryChange] = []
        self._open: list[LanDirectory | LanAdvertiser | LanBrowser] = []
        self.browser: LanBrowser | None = None
        self.own_id = ""
        self.slow_closes: list[str] = []

    async def directory(self, name: str = "Me", port: int = 42000) -> LanDirectory:
        identity = new_identity()
        self.own_id = identity.peer_id
        directory = LanDirectory(identity=identity, name=name, room=self.room,
                                 listen_host="127.0.0.1", listen_port=port,
                                 on_change=self.changes.append)
        self._open.append(directory)
        await directory.open()
        return directory

    async def advertise(self, peer: LanPeer) -> LanAdvertiser:
        advertiser = LanAdvertiser(LOOPBACK, identity=KEY_OF[peer.id])
        self._open.append(advertiser)
        await advertiser.start(peer)
        return advertiser

    async def watch(self) -> LanBrowser:
        """A browser of our own, to see the records the directory advertises."""
        self.browser = LanBrowser(LOOPBACK, sweep_s=0.2)
        self._open.append(self.browser)
        await self.browser.start()
        return self.browser

    def mine(self) -> LanPeer | None:
        """The directory's own record as the others see it (needs ``watch``)."""
        assert self.browser is not None
        return next((p for p in self.browser.peers(self.room) if p.id == self.own_id), None)

    async def close(self) -> None:
        for thing in reversed(self._open):
            started = time.monotonic()
            try:
                async with asyncio.timeout(CLOSE_BOUND_S):
                    await thing.close()
            except TimeoutError:
                pass
            # Timed out, or hung until cancelled and then returned normally anyway.
            if time.monotonic() - started >= CLOSE_BOUND_S / 2:
                self.slow_closes.append(type(thing).__name__)


@pytest.fixture
async def lan(room: str) -> AsyncIterator[Harness]:
    harness = Harness(room)
    try:
        yield harness
    finally:
        await harness.close()
    assert harness.slow_closes == [], "close() must end promptly"


def ids(directory: LanDirectory) -> list[str]:
    return [c.id for c in directory.candidates()]


async def test_candidates_exclude_self_losing_streamers_and_detached_peers(
        lan: Harness, room: str) -> None:
    winner = streamer(room, 1_700_000_000_000, name="Win", port=41001)
    loser = streamer(room, 1_700_000_000_500, name="Lose", port=41002)
    attached = viewer(room, name="Att", depth=1, port=41003)
    detached = viewer(room, name="Det", depth=None, port=41004)
    elsewhere = viewer(f"{room}-other", name="Else", port=41005)
    for peer in (winner, loser, attached, detached, elsewhere):
        await lan.advertise(peer)
    me = await lan.directory()
    await lan.watch()
    # Attached, so that our own record (which our browser sees too) would qualify.
    me.set_position(depth=2, free_slots=3, parent_id=attached.id, layer=720,
                    streaming=False)
    await until(lambda: {p.name for p in me.tree()} == {"Win", "Lose", "Att", "Det", "Me"})
    await until(lambda: (mine := lan.mine()) is not None and mine.depth == 2)
    # Our directory's own browser sees our record too (multicast loops back): only then
    # does "no self among the candidates" test anything.
    await until(lambda: me._browser is not None and any(
        p.id == lan.own_id and p.depth == 2 for p in me._browser.peers(room)))

    assert ids(me) == [winner.id, attached.id], "shallowest first; no self, loser, detached"
    assert me.streamer() == StreamerInfo(winner.id, "Win", winner.claim)
    first = me.candidates()[0]
    assert (first.host, first.port, first.depth, first.free_slots) == (
        "127.0.0.1", 41001, 0, 2)
    assert DirectoryChange.STREAMER in lan.changes and DirectoryChange.PEERS in lan.changes


async def test_claim_is_refused_while_a_streamer_is_live(lan: Harness, room: str) -> None:
    live = streamer(room, int(time.time() * 1000), name="Sam")
    await lan.advertise(live)
    me = await lan.directory()
    await lan.watch()
    await until(lambda: me.streamer() is not None)

    with pytest.raises(LockDeniedError) as denied:
        await me.claim()
    assert denied.value.holder == "Sam"
    assert str(denied.value) == "Sam is already streaming in this room"
    assert not me.lease_valid()
    assert me.streamer() == StreamerInfo(live.id, "Sam", live.claim)
    await until(lambda: lan.mine() is not None)
    record = lan.mine()
    assert record is not None and (record.role, record.claim) == ("viewer", 0)


async def test_claim_in_an_empty_room_then_release(lan: Harness, room: str) -> None:
    me = await lan.directory()
    await lan.watch()
    mine = lan.mine
    assert me.streamer() is None and not me.lease_valid()

    before = int(time.time() * 1000)
    epoch = await me.claim()
    assert before <= epoch <= int(time.time() * 1000), "the claim time is the epoch"
    assert me.streamer() == StreamerInfo(lan.own_id, "Me", epoch)
    assert me.lease_valid()
    assert DirectoryChange.STREAMER in lan.changes
    await until(lambda: (r := mine()) is not None and r.role == "streamer")
    record = mine()
    assert record is not None and (record.depth, record.claim) == (0, epoch)
    assert me.candidates() == [], "we are not our own candidate"

    lan.changes.clear()
    await me.release()
    assert me.streamer() is None and not me.lease_valid()
    assert DirectoryChange.STREAMER in lan.changes
    await until(lambda: (r := mine()) is not None and r.role == "viewer")
    record = mine()
    assert record is not None and (record.depth, record.claim) == (None, 0)


async def test_an_earlier_claim_takes_the_room_from_us(lan: Harness, room: str) -> None:
    me = await lan.directory()
    epoch = await me.claim()
    assert me.lease_valid()
    # Claims that crossed in flight: the other one is earlier, so it wins everywhere.
    rival = streamer(room, epoch - 1, name="Early")
    await lan.advertise(rival)
    await until(lambda: not me.lease_valid())
    assert me.streamer() == StreamerInfo(rival.id, "Early", rival.claim)
    assert rival.id in ids(me)
    # ... and a later one does not.
    late = streamer(room, epoch + 1, name="Late")
    await lan.advertise(late)
    await until(lambda: len([p for p in me.tree() if p.name == "Late"]) == 1)
    assert me.streamer() == StreamerInfo(rival.id, "Early", rival.claim)
    assert late.id not in ids(me), "a losing streamer is no candidate"


async def test_a_backdated_claim_does_not_take_a_live_room(lan: Harness, room: str) -> None:
    # A stranger with a key of its own claims the room with a time long before the
    # live streamer's. Everyone already watching notes that the claim appeared long
    # after the time it states, and keeps the real streamer; so does the streamer.
    live = streamer(room, int(time.time() * 1000), name="Live")
    await lan.advertise(live)
    me = await lan.directory()
    await until(lambda: me.streamer() == StreamerInfo(live.id, "Live", live.claim))
    await until(me.settled)
    forged = streamer(room, live.claim - 2 * CLAIM_SLACK_MS, name="Mallory", port=41666)
    await lan.advertise(forged)
    await until(lambda: any(p.name == "Mallory" for p in me.tree()))
    assert me.streamer() == StreamerInfo(live.id, "Live", live.claim)
    assert forged.id not in ids(me), "a backdated claimant is no candidate"

    # The same against a streaming directory: it keeps its lease.
    other = Harness(f"{room}-b")
    try:
        caster = await other.directory(name="Caster", port=42001)
        epoch = await caster.claim()
        await until(caster.settled)
        backdated = streamer(other.room, epoch - 2 * CLAIM_SLACK_MS, name="Mallory")
        await other.advertise(backdated)
        await until(lambda: any(p.name == "Mallory" for p in caster.tree()))
        assert caster.lease_valid()
        assert caster.streamer() == StreamerInfo(other.own_id, "Caster", epoch)
    finally:
        await other.close()


async def test_set_position_updates_the_record(lan: Harness, room: str) -> None:
    me = await lan.directory(port=42042)
    await lan.watch()
    mine = lan.mine
    await until(lambda: mine() is not None)
    record = mine()
    assert record is not None
    assert (record.role, record.depth, record.host, record.port) == (
        "viewer", None, "127.0.0.1", 42042)
    assert me.own_host() == "127.0.0.1" and me.reachable()

    parent = _uid()
    me.set_position(depth=2, free_slots=1, parent_id=parent, layer=480, streaming=False)
    expected = dataclasses.replace(record, depth=2, free_slots=1, parent_id=parent,
                                   layer=480)
    await until(lambda: mine() == expected)
    own = next(p for p in me.tree() if p.name == "Me")
    assert (own.depth, own.parent_id, own.layer, own.role) == (2, parent, 480, "viewer")

    # Streaming is claim()'s business: a position that says so before a claim is
    # ignored rather than advertising a streamer without a claim.
    # (set_position hands a change to the advertiser at once, so an ignored one shows
    # in our own tree entry right away, with nothing to wait for.)
    me.set_position(depth=0, free_slots=4, parent_id=None, layer=None, streaming=True)
    own = next(p for p in me.tree() if p.name == "Me")
    assert (own.depth, own.parent_id, own.layer, own.role) == (2, parent, 480, "viewer")
    assert mine() == expected

    # Detached again: depth "-" in the record, no parent.
    me.set_position(depth=None, free_slots=3, parent_id=None, layer=720, streaming=False)
    await until(lambda: mine() == dataclasses.replace(expected, depth=None, free_slots=3,
                                                      parent_id=None, layer=720))



async def test_stopping_right_after_a_move_closes_promptly(lan: Harness, room: str) -> None:
    # A node that moves and stops at once: the fixture closes the directory while its
    # advertiser is still pushing this update (replacing the announcements of the
    # registration). Closing used to swallow its own cancellation there and wait for
    # the refresh task forever. Peers are advertised first so that the directory's
    # browser has them all on open (the moment at which this used to hang).
    for i in range(5):
        await lan.advertise(viewer(room, name=f"P{i}", port=41010 + i))
    me = await lan.directory()
    me.set_position(depth=1, free_slots=2, parent_id=_uid(), layer=720, streaming=False)
    # no await from here on: the test ends and the fixture closes everything
