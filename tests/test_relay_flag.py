"""``treecast-peer --relay``: a forward-only peer with a high fan-out (peer/node/cli.py)."""

from __future__ import annotations

import pytest

from peer.node.cli import RELAY_FANOUT, build_parser, config_from_args
from peer.node.directory import order_candidates
from peer.node.tracker_client import TrackerClient
from protocol.records import Candidate
from tracker.config import TrackerConfig
from tracker.server import TrackerServer


def _config(*argv: str):  # type: ignore[no-untyped-def]
    return config_from_args(build_parser().parse_args(["--name", "r", *argv]))


def test_relay_forwards_only_with_a_high_fanout() -> None:
    config = _config("--relay")
    assert config.source is None and not config.decode and not config.audio.play
    assert config.max_children == RELAY_FANOUT and config.fanout == RELAY_FANOUT
    # It asks for the least itself: demand is what its children ask for.
    assert config.resolution == 360 and not config.auto_resolution


def test_relay_fanout_can_be_set() -> None:
    assert _config("--relay", "--max-children", "40").max_children == 40


def test_relay_does_not_stream() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--relay", "--test-pattern"])


def test_relay_says_so_at_registration() -> None:
    assert _config("--relay").relay
    assert not _config("--watch").relay


async def test_the_tracker_learns_the_relay_role_from_the_client() -> None:
    config = TrackerConfig(tls=False)
    async with TrackerServer(config, host="127.0.0.1", port=0) as tracker:
        clients = [TrackerClient("127.0.0.1", tracker.address[1], peer_id=pid, name=pid,
                                 room="lobby", listen_host=None, listen_port=None,
                                 relay=relay, reconnect=False)
                   for pid, relay in (("relay", True), ("viewer", False))]
        try:
            for client in clients:
                await client.connect(timeout=20.0)
            assert {p.id: p.relay for p in tracker.state.room_peers("lobby")} == \
                {"relay": True, "viewer": False}
        finally:
            for client in clients:
                await client.close()


def test_peers_in_a_listed_room_dial_relay_peers_first_of_a_depth() -> None:
    home = [Candidate(f"home{i}", "H", "192.0.2.1", 7000 + i, 1, 3) for i in range(5)]
    relay = Candidate("relay", "R", "198.51.100.1", 7000, 1, 1)
    deep_relay = Candidate("deep", "D", "198.51.100.2", 7000, 2, 16)
    full_relay = Candidate("full", "F", "198.51.100.3", 7000, 0, 0)
    relays = frozenset({"relay", "deep", "full"})
    for _ in range(20):  # ties are shuffled: the order must hold whatever the shuffle
        ordered = order_candidates([*home, deep_relay, full_relay, relay], relays)
        # The shallowest level still comes first; of it, the relay; full ones last.
        assert ordered[0] is relay
        assert ordered[-2:] == [deep_relay, full_relay]
    # Without the relay role known, the relay is one of its level like any other.
    positions = {order_candidates([*home, relay]).index(relay) for _ in range(200)}
    assert len(positions) > 1
