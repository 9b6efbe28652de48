"""Peers behind NAT routers in the NAT lab (tests/support/natlab.py), end to end.

A streamer at home behind a UPnP router maps its port (``--upnp``), registers under
it, is found reachable by the tracker's connect-back and serves a viewer that sits
behind a NAT of its own; the mapping is gone when the streamer leaves.

A streamer behind a NAT without UPnP cannot be dialled by anyone: it dials a public
peer instead (connection reversal), and a viewer behind a symmetric NAT then joins
that public peer.

With nobody public but the tracker, a streamer and viewers behind port-preserving NATs
link up by TCP hole punching the tracker coordinates (punching.py), and say so.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.support import netns
from tests.support.natlab import Kind, NatLab, natlab_unavailable

KINDS = (Kind.PUBLIC, Kind.UPNP, Kind.CONE)
_why = natlab_unavailable(KINDS)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_why is not None, reason=str(_why))]
START_TIMEOUT_S = 60.0
PATTERN = ("--test-pattern", "320x240", "--fps", "10")


def kind(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def test_streamer_behind_upnp_router_maps_its_port_and_serves_a_natted_viewer() -> None:
    with NatLab(KINDS) as lab:
        public, upnp_home, cone_home = lab.hosts
        _, _, port = netns.start_tracker(public, "--no-mdns")
        common = ("--room", f"nat-{uuid.uuid4().hex[:8]}", "--tracker",
                  f"{public.address}:{port}")
        streamer, s_events = netns.start_peer(upnp_home, "--name", "S", *common, "--upnp",
                                              *PATTERN)
        ready = s_events.next(kind("ready"), timeout=START_TIMEOUT_S)
        external_port = int(ready["listen"].rsplit(":", 1)[1])
        assert ready["mapped"] == f"{upnp_home.wan_address}:{external_port}", ready
        assert f"dport {external_port} dnat" in lab.router_mappings(upnp_home)
        s_events.find(kind("stats", reachability="mapped"), timeout=START_TIMEOUT_S)

        _, v_events = netns.start_peer(cone_home, "--name", "V", *common, "--watch")
        v_ready = v_events.next(kind("ready"), timeout=START_TIMEOUT_S)
        assert v_ready["mapped"] is None
        joined = v_events.next(kind("joined"), timeout=START_TIMEOUT_S)
        assert joined["parent"] == "S"
        v_events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) > 0
                      and e["reachability"] == "outbound-only", timeout=START_TIMEOUT_S)

        streamer.send_signal(signal.SIGTERM)
        assert streamer.wait(timeout=30) == 0, netns.stderr_tail(streamer)
        assert "dnat" not in lab.router_mappings(upnp_home)


def test_streamer_behind_nat_without_upnp_reaches_viewers_by_reversal() -> None:
    kinds = (Kind.PUBLIC, Kind.PUBLIC, Kind.CONE, Kind.SYMMETRIC)
    with NatLab(kinds) as lab:
        tracker_host, public_peer, streamer_home, sym_home = lab.hosts
        _, _, port = netns.start_tracker(tracker_host, "--no-mdns")
        common = ("--room", f"nat-{uuid.uuid4().hex[:8]}", "--tracker",
                  f"{tracker_host.address}:{port}")
        _, s_events = netns.start_peer(streamer_home, "--name", "S", *common, *PATTERN)
        s_events.find(kind("stats", reachability="outbound-only"), timeout=START_TIMEOUT_S)
        _, p_events = netns.start_peer(public_peer, "--name", "P", *common, "--watch")
        joined = p_events.next(kind("joined"), timeout=START_TIMEOUT_S)
        assert joined["parent"] == "S"
        p_events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) > 0
                      and e["reachability"] == "direct", timeout=START_TIMEOUT_S)
        _, v_events = netns.start_peer(sym_home, "--name", "V", *common, "--watch")
        assert v_events.next(kind("joined"), timeout=START_TIMEOUT_S)["parent"] == "P"
        v_events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) > 0,
                      timeout=START_TIMEOUT_S)


def test_a_viewer_nobody_can_serve_is_told_why_within_10_s() -> None:
    # No UPnP, no relay, symmetric NATs only: the streamer and the viewer can only dial
    # out, so no link between them can be made.
    with NatLab((Kind.PUBLIC, Kind.SYMMETRIC, Kind.SYMMETRIC)) as lab:
        tracker_host, streamer_home, viewer_home = lab.hosts
        _, _, port = netns.start_tracker(tracker_host, "--no-mdns")
        common = ("--room", f"nat-{uuid.uuid4().hex[:8]}", "--tracker",
                  f"{tracker_host.address}:{port}")
        _, s_events = netns.start_peer(streamer_home, "--name", "S", *common, *PATTERN)
        s_events.find(kind("stats", reachability="outbound-only"), timeout=START_TIMEOUT_S)
        _, v_events = netns.start_peer(viewer_home, "--name", "V", *common, "--watch")
        ready = v_events.next(kind("ready"), timeout=START_TIMEOUT_S)
        error = v_events.next(lambda e: e.get("event") == "error", timeout=START_TIMEOUT_S)
        assert "accepts no incoming connections" in error["message"], error
        assert error["t"] - ready["t"] < 10.0, (ready, error)
        assert not any(e.get("event") == "joined" for e in v_events.lines)


def test_viewers_behind_port_preserving_nats_join_by_hole_punching() -> None:
    # Tracker public; streamer and two viewers each behind their own port-preserving
    # NAT without UPnP, routers dropping unasked-for SYNs (as home routers do); no
    # relay peer. Nobody can dial anybody but the tracker: only punches link them.
    kinds = (Kind.PUBLIC, Kind.CONE, Kind.CONE, Kind.CONE)
    with NatLab(kinds, drop_unsolicited=True) as lab:
        tracker_host, streamer_home, *viewer_homes = lab.hosts
        _, _, port = netns.start_tracker(tracker_host, "--no-mdns")
        common = ("--room", f"nat-{uuid.uuid4().hex[:8]}", "--tracker",
                  f"{tracker_host.address}:{port}")
        _, s_events = netns.start_peer(streamer_home, "--name", "S", *common, *PATTERN)
        s_events.find(kind("stats", reachability="outbound-only"), timeout=START_TIMEOUT_S)
        viewers = [netns.start_peer(home, "--name", f"V{i}", *common, "--watch")[1]
                   for i, home in enumerate(viewer_homes, 1)]
        for events in viewers:
            events.next(kind("joined"), timeout=START_TIMEOUT_S)
            events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) > 0
                        and e["reachability"] == "punched", timeout=START_TIMEOUT_S)
            assert not any(e.get("event") == "error" for e in events.lines), events.lines
        # The streamer (a parent linked by punches) says so too, and the room's tree
        # marks the viewers' links as punched.
        s_events.find(kind("stats", reachability="punched"), timeout=START_TIMEOUT_S)
        tree = s_events.find(lambda e: e.get("event") == "tree" and sum(
            1 for p in e["peers"] if p.get("punched")) == 2, timeout=START_TIMEOUT_S)
        assert {p["name"] for p in tree["peers"] if p["punched"]} == {"V1", "V2"}
