"""Sound goes only where it is used: real processes on loopback.

A headless viewer that neither plays nor records sound asks its parent for none (the
demand flag of JoinRequest / LayerDemand, see peer/node/tree/state.py): fifty packets
a second it would only count are most of a silent viewer's CPU. A sibling that plays
(``--audio-out``) still gets every packet.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow


def _audio(peer: Peer) -> dict[str, Any]:
    return (peer.last("stats") or {}).get("audio") or {}


def _stats_after(peer: Peer, t: float) -> list[dict[str, Any]]:
    return [e for e in peer.all("stats") if e["t"] > t]


def test_a_silent_leaf_gets_no_sound_while_a_playing_sibling_does(
        pulse_null_sink: str) -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--max-children", "3")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        leaves = {
            "quiet": s.start_peer("quiet", "--watch", "--no-audio", "--max-children", "0"),
            "plain": s.start_peer("plain", "--watch", "--max-children", "0"),
            "listener": s.start_peer("listener", "--watch", "--max-children", "0",
                                     "--audio-out", pulse_null_sink),
        }
        for peer in leaves.values():
            assert wait_for(lambda p=peer: (p.last("joined") or {}).get("depth") == 1, 30), \
                (peer.name, peer.events[-5:])
        listener = leaves["listener"]
        assert wait_for(lambda: _audio(listener).get("kbps", 0) > 10, 30), _audio(listener)
        since = time.time()
        # Three more stats ticks of everyone: the playing leaf keeps its sound, the
        # others see video and never a packet of sound.
        assert wait_for(lambda: all(len(_stats_after(p, since)) >= 3
                                    for p in leaves.values()), 30)
        assert all(e["audio"]["sound"] and e["audio"]["loss_pct"] == 0.0
                   for e in _stats_after(listener, since)), _audio(listener)
        for name in ("quiet", "plain"):
            stats = leaves[name].all("stats")
            assert stats and stats[-1].get("fps", 0) > 0, (name, stats[-1:])
            assert all(not (e.get("audio") or {}).get("sound")
                       and (e.get("audio") or {}).get("kbps", 0) == 0 for e in stats), \
                (name, [e.get("audio") for e in stats])
        assert _audio(root)["sound"]  # the root still sends (to the listener)
