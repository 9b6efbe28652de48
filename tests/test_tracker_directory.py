"""TrackerDirectory against a real tracker on 127.0.0.1: the name in use, a large
room's bounded view. Waits are on conditions; timeouts only bound a failure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from peer.node.directory import TrackerDirectory
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

WAIT_S = 20.0


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    # Plaintext: these directories have no key (TLS: test_trust_tls.py).
    config = TrackerConfig(update_interval_s=0.02, full_list_peers=3, refresh_s=0.2, tls=False)
    async with TrackerServer(config, host="127.0.0.1", port=0) as server:
        yield server


def directory(tracker: TrackerServer, peer_id: str, name: str,
              changes: list[str] | None = None) -> TrackerDirectory:
    return TrackerDirectory(
        "127.0.0.1", tracker.address[1], peer_id=peer_id, name=name, room="lobby",
        listen_host=None, listen_port=None, heartbeat_s=0.1,
        on_change=(changes.append if changes is not None else lambda _: None))


async def test_a_second_bob_is_told_the_name_in_use(tracker: TrackerServer) -> None:
    first, second = directory(tracker, "p1", "Bob"), directory(tracker, "p2", "Bob")
    try:
        await first.open()
        await second.open()
        assert (first.own_name(), second.own_name()) == ("Bob", "Bob (2)")
        names = {p.id: p.name for p in second.tree()}
        assert names == {"p1": "Bob", "p2": "Bob (2)"}
    finally:
        await first.close()
        await second.close()


async def test_a_large_room_is_seen_in_bounded_form(tracker: TrackerServer) -> None:
    changes: list[str] = []
    dirs = [directory(tracker, f"p{i}", f"P{i}", changes if i == 0 else None)
            for i in range(6)]
    try:
        for d in dirs:
            await d.open()
        watcher = dirs[0]
        async with asyncio.timeout(WAIT_S):
            while watcher.room_size() != 6:  # refreshed within refresh_s
                await asyncio.sleep(0.05)
        assert sum(level.peers for level in watcher.tree_levels()) == 6
        assert [level.depth for level in watcher.tree_levels()] == [None]
        assert len(watcher.tree()) < 6 and "p0" in {p.id for p in watcher.tree()}
        assert "peers" in changes
    finally:
        for d in dirs:
            await d.close()
