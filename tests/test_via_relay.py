"""``via-relay``: a peer nobody can dial, fed by a ``--relay`` peer, says so in ``stats``.

On loopback: the viewer listens on 127.0.0.2 but talks to the tracker from 127.0.0.1,
so the tracker's connect-back (to where the registration came from) finds nobody and
the viewer is undialable, as behind a NAT.
"""

from __future__ import annotations

import pytest

from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow


def _stats(peer: Peer) -> dict:
    return peer.last("stats") or {}


def test_an_undialable_viewer_under_a_relay_peer_reports_via_relay() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--max-children", "1")
        assert wait_for(lambda: root.last("stream_started"), 60), root.proc.stderr
        relay = s.start_peer("relay", "--relay")
        # The root's one slot goes to the relay: the viewer can only go under it.
        assert wait_for(lambda: _stats(relay).get("reachability") == "direct"
                        and relay.last("joined"), 60), _stats(relay)
        viewer = s.start_peer("viewer", "--watch", listen="127.0.0.2:0")
        assert wait_for(lambda: _stats(viewer).get("frames", 0) >= 10
                        and _stats(viewer).get("reachability") == "via-relay", 60), \
            _stats(viewer)
        assert _stats(viewer)["depth"] == 2
        tree = viewer.last("tree")
        assert tree is not None
        assert {p["name"]: p["relay"] for p in tree["peers"]} == \
            {"root": False, "relay": True, "viewer": False}
