"""Several trackers on one real Redis (``--store redis://``): one room, one tree, one
lock, across tracker failures and a Redis restart. Each test starts its own
redis-server on a free port and ends it by pid; waits are on conditions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from peer.node.errors import LockDeniedError
from peer.node.tracker_client import TrackerClient
from tests.support.redis_server import REDIS_SERVER, RedisServer
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

pytestmark = pytest.mark.skipif(REDIS_SERVER is None,
                                reason="redis-server is not installed (apt-get install "
                                       "redis-server)")
WAIT_S = 20.0
# Plaintext: these clients have no key (TLS is tested in test_trust_tls.py).
CFG = TrackerConfig(lease_s=2.0, lease_grace_s=3.0, peer_timeout_s=30.0,
                    update_interval_s=0.02, tls=False)


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def trackers(redis: RedisServer) -> AsyncIterator[list[TrackerServer]]:
    servers = [TrackerServer(CFG, host="127.0.0.1", port=0, store=redis.url)
               for _ in range(2)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.close()


async def until(predicate: Callable[[], object], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not predicate():
            await asyncio.sleep(0.05)  # polling a condition
    assert predicate(), what


def client(server: TrackerServer, peer_id: str, *,
           more: tuple[TrackerServer, ...] = ()) -> TrackerClient:
    return TrackerClient(
        "127.0.0.1", server.address[1], peer_id=peer_id, name=peer_id.upper(), room="r",
        listen_host=None, listen_port=None, heartbeat_s=0.1,
        more_trackers=[("127.0.0.1", m.address[1]) for m in more])


def ids(server: TrackerServer) -> set[str]:
    return {p.id for p in server.state.room_peers("r")}


async def test_two_trackers_one_room_one_lock(trackers: list[TrackerServer]) -> None:
    a, b = trackers
    on_a, on_b = client(a, "pa"), client(b, "pb")
    try:
        await on_a.connect()
        await on_b.connect()
        # Each tracker lists the other's peer: one room, one tree.
        await until(lambda: ids(a) == ids(b) == {"pa", "pb"}, "both peers on both")
        granted = await on_a.claim_stream()
        with pytest.raises(LockDeniedError, match="PA"):
            await on_b.claim_stream()
        # The other tracker shows the holder (its peers see who streams).
        await until(lambda: (lock := b.state.lock("r")) is not None
                    and lock.holder_id == "pa", "B mirrors the lock")
        assert b.state.lock("r").epoch == granted.epoch  # type: ignore[union-attr]
        assert a.state.status().store.startswith("redis://127.0.0.1:")
        assert a.state.status().store_ok
    finally:
        await on_a.close()
        await on_b.close()


async def test_the_holder_moves_to_the_other_tracker_with_its_epoch(
        trackers: list[TrackerServer]) -> None:
    a, b = trackers
    holder, other = client(a, "h", more=(b,)), client(b, "o")
    try:
        await holder.connect()
        await other.connect()
        granted = await holder.claim_stream()
        await a.close()  # its tracker goes away
        await until(lambda: "h" in {p.id for p in b.state.room_peers("r")
                                    if p.role == "streamer"} and holder.connected,
                    "the holder re-registered at B")
        await until(lambda: (lock := b.state.lock("r")) is not None
                    and lock.holder_id == "h" and holder.epoch == granted.epoch,
                    "the holder resumed its lock at B")
        with pytest.raises(LockDeniedError):
            await other.claim_stream()  # never two holders
    finally:
        await holder.close()
        await other.close()


async def test_a_redis_restart_ends_no_broadcast_and_epochs_still_rise(
        redis: RedisServer, trackers: list[TrackerServer]) -> None:
    a, b = trackers
    holder, other = client(a, "h"), client(b, "o")
    try:
        await holder.connect()
        await other.connect()
        granted = await holder.claim_stream()
        redis.restart()  # empty: no persistence
        # The holder's tracker re-asserts its lock; the other tracker's peers are back.
        await until(lambda: a.state.status().store_ok and b.state.status().store_ok,
                    "both trackers see Redis again")
        await until(lambda: ids(a) == ids(b) == {"h", "o"}, "peers re-published")
        assert holder.lease_valid() and holder.epoch == granted.epoch
        with pytest.raises(LockDeniedError):
            await other.claim_stream()
        # The next grant is still higher than any before the restart.
        await holder.release_stream()
        await until(lambda: b.state.lock("r") is None, "the release reached B")
        later = await other.claim_stream()
        assert later.epoch > granted.epoch
    finally:
        await holder.close()
        await other.close()
