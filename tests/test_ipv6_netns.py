"""IPv6 between hosts: three network namespaces that share only IPv6 documentation
addresses (2001:db8::/32, RFC 3849), no IPv4 at all on the wire between them.

The tracker listens on its default (dual-stack ``::``), the peers on theirs
(``[::]:0``); the streamer and the viewer are listed at, checked back at and dialled
at their IPv6 addresses, and the video arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import netns

pytestmark = pytest.mark.netns
START_TIMEOUT_S = 60.0


def _kind(name: str, **fields: Any) -> Any:
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


@pytest.fixture
def ipv6_hosts() -> Iterator[list[tuple[netns.Host, str]]]:
    """Three hosts on one bridge, each with 2001:db8:a::N/64 and its IPv4 removed."""
    reason = netns.netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with netns.Lan(3) as lan:
        hosts = []
        for host in lan.hosts:
            address = f"2001:db8:a::{host.index + 1}"
            # nodad: usable at once (duplicate address detection would hold it back
            # ~1 s as "tentative"); the addresses are unique by construction.
            for argv in (["addr", "del", f"{host.address}/24", "dev", host.iface],
                         ["addr", "add", f"{address}/64", "dev", host.iface, "nodad"]):
                result = netns.run_in(host, ["ip", *argv])
                assert result.wait(timeout=netns.IP_TIMEOUT_S) == 0, argv
            hosts.append((host, address))
        yield hosts


def test_tracker_streamer_and_viewer_talk_over_ipv6_only(
        ipv6_hosts: list[tuple[netns.Host, str]]) -> None:
    (t_host, t_address), (s_host, _), (v_host, _) = ipv6_hosts
    _, _, port = netns.start_tracker(t_host, "--no-mdns")
    common = ("--room", f"v6-{uuid.uuid4().hex[:8]}", "--tracker", f"[{t_address}]:{port}")
    _, s_events = netns.start_peer(s_host, "--name", "S", *common,
                                   "--test-pattern", "320x240", "--fps", "10")
    s_events.find(_kind("stats", reachability="direct"), timeout=START_TIMEOUT_S)
    _, v_events = netns.start_peer(v_host, "--name", "V", *common, "--watch")
    ready = v_events.next(_kind("ready"), timeout=START_TIMEOUT_S)
    assert ready["listen"].startswith("[::]:"), ready  # dual-stack by default
    joined = v_events.next(_kind("joined"), timeout=START_TIMEOUT_S)
    assert joined["parent"] == "S"
    v_events.find(lambda e: e.get("event") == "stats" and e.get("frames", 0) >= 10
                  and e["reachability"] == "direct", timeout=START_TIMEOUT_S)
