"""The tree event carries a large room's size and per-depth counts (the tracker lists
only part of such a room), so the app can show the peers it does not list."""

from __future__ import annotations

import asyncio

from peer.node.config import NodeConfig, Timing
from peer.node.events import NodeEvent, TreeChanged
from peer.node.node import Node
from protocol.records import TreeLevel
from tests.test_node_links import StandInDirectory

LEVELS = (TreeLevel(0, 1, 0), TreeLevel(1, 4, 0), TreeLevel(2, 290, 900), TreeLevel(None, 5, 0))


class LargeRoom(StandInDirectory):
    """A 300-peer room whose listing (here: nobody) is partial."""

    def room_size(self) -> int:
        return 300

    def tree_levels(self) -> tuple[TreeLevel, ...]:
        return LEVELS


async def test_the_tree_event_carries_room_size_and_levels() -> None:
    events: list[NodeEvent] = []
    config = NodeConfig(name="me", listen_host="127.0.0.1", timing=Timing(link_timeout_s=5.0),
                        tls=False)
    node = Node(config, events.append, directory_factory=lambda n: LargeRoom())
    await node.start()
    try:
        async with asyncio.timeout(20):
            while not any(isinstance(e, TreeChanged) for e in events):
                await asyncio.sleep(0.01)  # polling for the event, not timing
    finally:
        await node.stop()
    tree = next(e for e in events if isinstance(e, TreeChanged))
    assert (tree.room_size, tree.levels) == (300, LEVELS)
    # Headless --json output keeps them readable.
    as_json = tree.to_json()
    assert as_json["room_size"] == 300
    assert as_json["levels"][2] == {"depth": 2, "peers": 290, "free_slots": 900}
