"""LAN discovery across real (namespaced) hosts: multicast over a bridge, not loopback.

Each host runs a small probe script with the venv's Python (via ``ip netns exec``) that
advertises a LanPeer on every interface (the default, as a real peer does) and prints a
JSON line whenever its view of the LAN changes. See tests/netns.py for the harness.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from typing import Any

import netns
import pytest
from netns import Host, JsonLines, python

lan_hosts = netns.lan_hosts  # the fixture: lan_hosts(n) -> [Host, ...]

pytestmark = pytest.mark.netns

# Python start-up plus zeroconf's ~1.2 s of probing, on a loaded 2-core machine.
SEEN_TIMEOUT_S = 45.0
# Probes' record TTL: short so that a killed probe expires quickly.
PROBE_TTL_S = 3

PEER_PROBE = """
import asyncio, json, signal, sys, time
from peer.node.discovery import LanAdvertiser, LanBrowser, LanPeer

async def main(peer_id, name, room, role, ttl):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    changed = asyncio.Event()
    browser = LanBrowser(on_change=changed.set, sweep_s=0.25)
    await browser.start()
    streamer = role == "streamer"
    advertiser = LanAdvertiser(ttl_s=ttl, refresh_s=ttl / 4)
    await advertiser.start(LanPeer(
        id=peer_id, name=name, room=room, role=role, depth=0 if streamer else None,
        free_slots=2, version=1, host="", port=7000,
        claim=int(time.time() * 1000) if streamer else 0))
    print(json.dumps({"event": "ready", "instance": advertiser.instance_name}))
    while not stop.is_set():
        print(json.dumps({"event": "peers", "peers": [
            {"id": p.id, "name": p.name, "host": p.host, "port": p.port, "role": p.role}
            for p in browser.peers(room)]}))
        waiter = asyncio.ensure_future(changed.wait())
        await asyncio.wait([waiter, asyncio.ensure_future(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        changed.clear()
    await advertiser.close()
    await browser.close()
    print(json.dumps({"event": "closed"}))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
"""

TRACKER_PROBE = """
import asyncio, json, signal, sys
from tracker.mdns import TrackerAdvertiser

async def main(port):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with TrackerAdvertiser(port) as advertiser:
        print(json.dumps({"event": "ready", "instance": advertiser.instance_name}))
        await stop.wait()

asyncio.run(main(int(sys.argv[1])))
"""

FIND_PROBE = """
import asyncio, dataclasses, json, sys
from peer.node.discovery import find_tracker, list_lan

async def main(timeout, list_s):
    found = await find_tracker(timeout)
    print(json.dumps({"event": "tracker", "found": found}))
    if list_s > 0:
        sessions = await list_lan(list_s)
        print(json.dumps({"event": "sessions",
                          "sessions": [dataclasses.asdict(s) for s in sessions]}))

asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))
"""


def start_probe(host: Host, peer_id: str, name: str, room: str,
                role: str = "viewer") -> tuple[subprocess.Popen[Any], JsonLines]:
    proc = python(host, "-c", PEER_PROBE, peer_id, name, room, role, str(PROBE_TTL_S),
                  stdout=subprocess.PIPE)
    return proc, JsonLines(proc)


def sees(ids_and_hosts: dict[str, str]) -> Any:
    """Predicate: a ``peers`` line listing exactly these peer ids at these addresses
    (plus the probe itself, which sees its own record)."""
    def check(line: dict[str, Any]) -> bool:
        if line.get("event") != "peers":
            return False
        seen = {p["id"]: p["host"] for p in line["peers"]}
        return all(seen.get(i) == h for i, h in ids_and_hosts.items()) and (
            len(seen) == len(ids_and_hosts) + 1)
    return check


def test_every_host_sees_the_others_and_notices_leaves_and_crashes(lan_hosts: Any) -> None:
    hosts = lan_hosts(4)
    room = f"netns-{uuid.uuid4().hex[:8]}"
    ids = [f"{i}{uuid.uuid4().hex[:15]}" for i in range(4)]
    probes = [start_probe(h, ids[i], f"host{i}", room, "streamer" if i == 0 else "viewer")
              for i, h in enumerate(hosts)]

    for i, (_, events) in enumerate(probes):
        others = {ids[j]: hosts[j].address for j in range(4) if j != i}
        line = events.next(sees(others), timeout=SEEN_TIMEOUT_S)
        roles = {p["id"]: p["role"] for p in line["peers"]}
        assert roles[ids[0]] == "streamer"
        assert all(p["port"] == 7000 for p in line["peers"])

    # host 3 leaves cleanly: goodbye packets, gone at once on every other host
    leaver, _ = probes[3]
    leaver.send_signal(signal.SIGTERM)
    for i in range(3):
        others = {ids[j]: hosts[j].address for j in range(3) if j != i}
        probes[i][1].next(sees(others), timeout=10)
    assert probes[3][1].next(lambda e: e["event"] == "closed", timeout=10)

    # host 2 crashes: no goodbye, its records expire after PROBE_TTL_S
    crasher, _ = probes[2]
    crasher.kill()
    for i in range(2):
        others = {ids[j]: hosts[j].address for j in range(2) if j != i}
        probes[i][1].next(sees(others), timeout=PROBE_TTL_S + 15)


def test_tracker_in_one_namespace_is_found_from_another(lan_hosts: Any) -> None:
    tracker_host, finder_host, peer_host = lan_hosts(3)

    # no tracker yet: find_tracker gives up quietly after its timeout
    proc = python(finder_host, "-c", FIND_PROBE, "1.0", "0", stdout=subprocess.PIPE)
    assert JsonLines(proc).next(timeout=SEEN_TIMEOUT_S)["found"] is None

    port = 7654
    tracker_proc = python(tracker_host, "-c", TRACKER_PROBE, str(port), stdout=subprocess.PIPE)
    JsonLines(tracker_proc).next(lambda e: e["event"] == "ready", timeout=SEEN_TIMEOUT_S)
    room = f"netns-{uuid.uuid4().hex[:8]}"
    _, peer_events = start_probe(peer_host, uuid.uuid4().hex[:16], "Caster", room, "streamer")
    peer_events.next(lambda e: e["event"] == "ready", timeout=SEEN_TIMEOUT_S)

    proc = python(finder_host, "-c", FIND_PROBE, "20", "3", stdout=subprocess.PIPE)
    events = JsonLines(proc)
    assert events.next(timeout=SEEN_TIMEOUT_S)["found"] == [tracker_host.address, port]
    sessions = events.next(timeout=SEEN_TIMEOUT_S)["sessions"]
    assert sessions == [{"room": room, "streamer": "Caster", "peers": 1,
                         "tracker": [tracker_host.address, port]}], json.dumps(sessions)


# --- Streaming across hosts ---------------------------------------------------------
# To be written once the node lands (peer/node/node.py): use
#     peer, events = netns.start_peer(host, "--name", "a", "--lan", "--test-pattern")
#     events.next(lambda e: e["event"] == "joined")
# and netns.cap_upload(host, kbit) to give a host a slow uplink.
