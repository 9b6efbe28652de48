"""A headless viewer imports only what it uses: real processes on loopback.

A viewer that neither shows, records, plays nor transcodes runs without OpenCV, numpy
and PyAV (tests/support/bare_peer.py makes them unimportable): it checks each received
H.264 frame in pure Python (protocol.h264) and forwards it untouched. Two such viewers
in a chain (streamer -> relay -> leaf) receive the stream, and the streamer's sound
reaches neither (nobody asked for it).
"""

from __future__ import annotations

import time

import pytest

from tests.support.procs import Peer, session, start_bare_chain, wait_for

pytestmark = pytest.mark.slow


def _fps_since(peer: Peer, t: float) -> list[float]:
    return [e.get("fps", 0) for e in peer.all("stats") if e["t"] > t]


def test_a_relay_and_a_leaf_stream_without_media_libraries() -> None:
    with session() as s:
        _, relay, leaf = start_bare_chain(s)
        since = time.time()
        # Three stats ticks each after both joined: frames keep arriving at both.
        assert wait_for(lambda: all(len(_fps_since(p, since)) >= 3 for p in (relay, leaf)),
                        30), (relay.events[-3:], leaf.events[-3:])
        for peer in (relay, leaf):
            assert all(fps > 0 for fps in _fps_since(peer, since)), \
                (peer.name, _fps_since(peer, since))
            assert peer.proc.poll() is None, peer.name
            assert not (peer.last("stats") or {}).get("audio", {}).get("sound"), peer.name
        assert (relay.last("stats") or {}).get("children") == 1
    for peer in (relay, leaf):
        assert peer.proc.stderr is not None
        errors = peer.proc.stderr.read()
        assert "halted" not in errors and "Traceback" not in errors, (peer.name, errors)
