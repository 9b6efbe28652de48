"""LAN discovery and streaming across real (namespaced) hosts: multicast over a bridge.

The first tests run small probe scripts with the venv's Python (via ``ip netns exec``)
that advertise a LanPeer on every interface (the default, as a real peer does) and print
a JSON line whenever their view of the LAN changes. The streaming tests run the real
headless peer (``treecast-peer --lan``) and tracker, one per host, and read their JSON
events. See tests/support/netns.py for the harness.

Timing figures (discovery, join, first frame) are printed with the ``LAN-FIGURE``
prefix: run with ``-s`` to see them. Bounds are generous for a loaded 2-core machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from peer.node.errors import ExitCode
from peer.node.events import StreamEndReason
from peer.node.lan_directory import LAN_SETTLE_S
from protocol.identity import Identity
from tests.support.netns import (
    Host,
    JsonLines,
    Lan,
    first_of,
    heal,
    netns_unavailable,
    partition,
    python,
    run_cli,
    start_peer,
    start_tracker,
    wait_for_log,
)


@pytest.fixture
def lan_hosts() -> Iterator[Callable[[int], list[Host]]]:
    """A factory ``lan_hosts(n) -> [Host, ...]``; everything is torn down after the test.

    Skips the test (with the reason) when namespaces are not available.
    """
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    lans: list[Lan] = []

    def make(n: int) -> list[Host]:
        lan = Lan(n)
        lans.append(lan)
        return lan.hosts

    try:
        yield make
    finally:
        for lan in lans:
            lan.close()


# Each test runs for ~10-30 s; allow for a loaded shared machine.
pytestmark = [pytest.mark.netns, pytest.mark.timeout(300)]

# Python start-up plus zeroconf's ~1.2 s of probing, on a loaded 2-core machine.
SEEN_TIMEOUT_S = 45.0
# Probes' record TTL: short so that a killed probe expires quickly.
PROBE_TTL_S = 3

PEER_PROBE = """
import asyncio, json, signal, sys, time
from peer.lan.advertiser import LanAdvertiser
from peer.lan.browser import LanBrowser
from protocol.identity import Identity
from protocol.lan import LanPeer

async def main(seed, name, room, role, ttl):
    identity = Identity.from_seed(bytes.fromhex(seed))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    changed = asyncio.Event()
    browser = LanBrowser(on_change=changed.set, sweep_s=0.25)
    await browser.start()
    streamer = role == "streamer"
    advertiser = LanAdvertiser(identity=identity, ttl_s=ttl, refresh_s=ttl / 4)
    await advertiser.start(LanPeer(
        id=identity.peer_id, name=name, room=room, role=role, depth=0 if streamer else None,
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
from peer.lan.browser import find_tracker, list_lan

async def main(timeout, list_s):
    found = await find_tracker(timeout)
    print(json.dumps({"event": "tracker", "found": found}))
    if list_s > 0:
        sessions = await list_lan(list_s)
        print(json.dumps({"event": "sessions",
                          "sessions": [dataclasses.asdict(s) for s in sessions]}))

asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))
"""


def start_probe(host: Host, identity: Identity, name: str, room: str,
                role: str = "viewer") -> tuple[subprocess.Popen[Any], JsonLines]:
    proc = python(host, "-c", PEER_PROBE, identity.private_bytes().hex(), name, room, role,
                  str(PROBE_TTL_S),
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
    keys = [Identity.generate() for _ in range(4)]
    ids = [k.peer_id for k in keys]
    probes = [start_probe(h, keys[i], f"host{i}", room, "streamer" if i == 0 else "viewer")
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
    _, peer_events = start_probe(peer_host, Identity.generate(), "Caster", room, "streamer")
    peer_events.next(lambda e: e["event"] == "ready", timeout=SEEN_TIMEOUT_S)

    proc = python(finder_host, "-c", FIND_PROBE, "20", "3", stdout=subprocess.PIPE)
    events = JsonLines(proc)
    assert events.next(timeout=SEEN_TIMEOUT_S)["found"] == [tracker_host.address, port]
    sessions = events.next(timeout=SEEN_TIMEOUT_S)["sessions"]
    assert sessions == [{"room": room, "streamer": "Caster", "peers": 1,
                         "tracker": [tracker_host.address, port]}], json.dumps(sessions)


# --- Streaming across hosts -----------------------------------------------------------
# Every peer below is a real ``treecast-peer --lan`` process in its own namespace. A
# --lan peer first looks for a tracker for 1.5 s, then (without one) browses for 1.5 s
# more before claiming a room, so a streamer needs ~3 s plus Python's start-up.

# Start-up of a peer or tracker (Python imports, mDNS probing, the waits above) and of
# joins, on a loaded 2-core machine. Healthy runs need a few seconds.
START_TIMEOUT_S = 60.0
# A viewer started after the stream is live: from its ``ready`` event to ``joined`` and
# to its first frame. Measured ~0.01-0.1 s; the bound leaves room for a loaded machine.
JOIN_BOUND_S = 5.0
# How long two streamers get to settle on one (a step-down takes well under a second).
SETTLE_TIMEOUT_S = 30.0
PATTERN = ("--test-pattern", "640x360", "--fps", "10")
# A LAN epoch is the streamer's claim time in ms; a tracker's epochs count from 1.
MIN_LAN_EPOCH = 10**12
STEP_DOWN = StreamEndReason.LOCK_TAKEN.value


def new_room() -> str:
    return f"lan-{uuid.uuid4().hex[:8]}"


def lan_peer(host: Host, name: str, room: str, *args: str) -> tuple[subprocess.Popen[Any],
                                                                    JsonLines]:
    """``treecast-peer --lan`` in ``host`` (no tracker address)."""
    return start_peer(host, "--name", name, "--room", room, "--lan", *args)


def kind(name: str, **fields: Any) -> Callable[[dict[str, Any]], bool]:
    """Predicate: an event of this kind whose fields have these values."""
    return lambda e: e.get("event") == name and all(e.get(k) == v for k, v in fields.items())


def frames_flowing(e: dict[str, Any]) -> bool:
    return e.get("event") == "stats" and e.get("frames", 0) > 0


def figure(text: str) -> None:
    print(f"LAN-FIGURE {text}", flush=True)


def later_stats(events: JsonLines, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """A stats event printed at least a second from now (namespaces share the clock)."""
    after = time.time() + 1.0
    return events.find(lambda e: e.get("event") == "stats" and e["t"] >= after,
                       timeout=timeout)


def streamers_in(tree: dict[str, Any]) -> list[str]:
    return [p["name"] for p in tree["peers"] if p["role"] == "streamer"]


def wait_single_streamer(events: JsonLines, name: str,
                         timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Wait until the peer's latest view of the room (its last ``tree`` event, from the
    mDNS records) shows ``name`` as the one and only streamer."""
    deadline = time.monotonic() + timeout
    while True:
        trees = [e for e in events.lines if e.get("event") == "tree"]
        if trees and streamers_in(trees[-1]) == [name]:
            return
        assert time.monotonic() < deadline, f"streamers seen: {trees[-1:]}"
        events.read_for(0.2)


def test_streamer_and_viewers_on_separate_hosts_stream_without_a_tracker(
        lan_hosts: Any) -> None:
    hosts = lan_hosts(5)
    room = new_room()
    streamer, s_events = lan_peer(hosts[0], "S", room, *PATTERN,
                                  "--listen", f"{hosts[0].address}:0")
    started = s_events.next(kind("stream_started", streamer="S"), timeout=START_TIMEOUT_S)
    assert started["epoch"] > MIN_LAN_EPOCH, "a tracker-less room's epoch is the claim time"
    s_id = started["streamer_id"]

    viewers = {f"V{i}": lan_peer(hosts[i], f"V{i}", room, "--watch") for i in (1, 2, 3)}
    for name, (_, events) in viewers.items():
        ready = events.next(kind("ready"), timeout=START_TIMEOUT_S)
        joined = events.next(kind("joined"), timeout=START_TIMEOUT_S)
        first = events.next(kind("epoch", epoch=started["epoch"]), timeout=START_TIMEOUT_S)
        assert (joined["parent_id"], joined["depth"]) == (s_id, 1), joined
        assert (joined["width"], joined["height"]) == (640, 360)
        stats = events.next(frames_flowing, timeout=START_TIMEOUT_S)
        assert (stats["depth"], stats["parent"]) == (1, "S"), stats
        figure(f"{name}: ready->joined {joined['t'] - ready['t']:.3f} s, "
               f"ready->first frame {first['t'] - ready['t']:.3f} s")

    # The tree as everyone sees it in the mDNS records: each viewer advertises its
    # place under S (the streamer's own view here).
    def formed(e: dict[str, Any]) -> bool:
        if e.get("event") != "tree":
            return False
        by_name = {p["name"]: p for p in e["peers"]}
        return (set(by_name) == {"S", *viewers}
                and (by_name["S"]["role"], by_name["S"]["depth"]) == ("streamer", 0)
                and all((by_name[v]["depth"], by_name[v]["parent_id"]) == (1, s_id)
                        for v in viewers))
    s_events.next(formed, timeout=START_TIMEOUT_S)
    assert later_stats(s_events)["children"] == 3

    # A viewer that arrives while the stream is live finds it at once: the records are
    # in its cache by the time its directory is open (``ready``).
    spawned = time.time()
    _, late = lan_peer(hosts[4], "Late", room, "--watch")
    ready = late.next(kind("ready"), timeout=START_TIMEOUT_S)
    joined = late.next(kind("joined"), timeout=START_TIMEOUT_S)
    first = late.next(kind("epoch", epoch=started["epoch"]), timeout=START_TIMEOUT_S)
    figure(f"late viewer: spawn->ready {ready['t'] - spawned:.3f} s (Python start-up, "
           f"1.5 s tracker search, mDNS probing), ready->joined "
           f"{joined['t'] - ready['t']:.3f} s, ready->first frame "
           f"{first['t'] - ready['t']:.3f} s, spawn->first frame {first['t'] - spawned:.3f} s")
    assert joined["t"] - ready["t"] <= JOIN_BOUND_S
    assert first["t"] - ready["t"] <= JOIN_BOUND_S
    assert late.next(frames_flowing, timeout=START_TIMEOUT_S)["parent"] == "S"
    assert streamer.poll() is None


def test_relays_on_separate_hosts_form_a_chain(lan_hosts: Any) -> None:
    # one child each: the tree can only grow as a chain S <- a <- b <- c, so every
    # frame the last viewer sees crossed the bridge three times through two relays
    hosts = lan_hosts(4)
    room = new_room()
    _, s_events = lan_peer(hosts[0], "S", room, *PATTERN, "--max-children", "1")
    s_events.next(kind("stream_started", streamer="S"), timeout=START_TIMEOUT_S)
    viewers = [lan_peer(hosts[i], f"V{i}", room, "--watch", "--max-children", "1")
               for i in (1, 2, 3)]
    stats = [events.next(frames_flowing, timeout=START_TIMEOUT_S) for _, events in viewers]
    depth = {f"V{i + 1}": s["depth"] for i, s in enumerate(stats)}
    parent = {f"V{i + 1}": s["parent"] for i, s in enumerate(stats)}
    assert sorted(depth.values()) == [1, 2, 3], stats
    chain = sorted(depth, key=depth.__getitem__)
    assert [parent[v] for v in chain] == ["S", chain[0], chain[1]], stats
    deepest = viewers[int(chain[2][1:]) - 1][1]
    last = later_stats(deepest)
    assert last["frames"] > stats[int(chain[2][1:]) - 1]["frames"], "video keeps flowing"
    figure(f"chain of 3: deepest viewer latency p50 {last['latency_ms']} ms, "
           f"fps {last['fps']}")


QUERY_PROBE = """
import asyncio, dataclasses, json, sys
from peer.node.tracker_client import query_room

peers = asyncio.run(query_room(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
print(json.dumps({"event": "room", "streamer": peers.streamer_name, "total": peers.total,
                  "peers": [dataclasses.asdict(p) for p in peers.peers]}))
"""


def test_peers_find_a_lan_tracker_by_mdns_and_use_it(lan_hosts: Any) -> None:
    tracker_host, s_host, v_host, w_host = lan_hosts(4)
    # No --no-mdns: the tracker advertises itself; peers get no address at all.
    tracker, _, port = start_tracker(tracker_host)
    wait_for_log(tracker, "advertising the tracker on the LAN", timeout=START_TIMEOUT_S)
    room = new_room()
    _, s_events = lan_peer(s_host, "S", room, *PATTERN)
    started = s_events.next(kind("stream_started", streamer="S"), timeout=START_TIMEOUT_S)
    # (Tracker epochs are floored at the wall clock in ms, like LAN claims, so the epoch
    # does not tell the modes apart: the tracker's own answers below do.)
    viewers = [lan_peer(h, name, room, "--watch") for h, name in ((v_host, "V"),
                                                                   (w_host, "W"))]
    for _, events in viewers:
        assert events.next(frames_flowing, timeout=START_TIMEOUT_S)["parent"] == "S"

    # The tracker's own view of the room, as it pushes it to members (W's tree events):
    # everyone registered there, under S. Positions arrive with the next heartbeat.
    w_events = viewers[1][1]

    def registered(line: dict[str, Any]) -> bool:
        by_name = {p["name"]: p for p in line["peers"]}
        return (set(by_name) == {"S", "V", "W"}
                and all(by_name[v]["parent_id"] == by_name["S"]["id"] for v in "VW"))

    w_events.find(lambda e: e.get("event") == "tree" and registered(e),
                  timeout=START_TIMEOUT_S)
    # The tracker knows the room (so the peers use it); a stranger's query is told only
    # the room's streamer and size.
    probe = python(w_host, "-c", QUERY_PROBE, tracker_host.address, str(port), room,
                   stdout=subprocess.PIPE)
    line = JsonLines(probe).next(kind("room"), timeout=START_TIMEOUT_S)
    assert (line["streamer"], line["total"], line["peers"]) == ("S", 3, []), line

    # The lock is the tracker's: a second streamer is refused by it.
    code, out, err = run_cli(w_host, "--name", "S2", "--room", room, "--lan", *PATTERN,
                             "--events", "-", timeout=START_TIMEOUT_S)
    assert code == ExitCode.LOCK_DENIED, err
    assert "S is already streaming in this room" in err
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert any(e["event"] == "lock_denied" and e["holder"] == "S" for e in events), events
    assert all(e["epoch"] == started["epoch"]
               for e in events if e["event"] == "stream_started"), events


def test_second_streamer_is_refused_and_list_shows_the_room(lan_hosts: Any) -> None:
    s_host, v_host, rival_host, list_host = lan_hosts(4)
    room = new_room()
    streamer, s_events = lan_peer(s_host, "Sam", room, *PATTERN)
    s_events.next(kind("stream_started", streamer="Sam"), timeout=START_TIMEOUT_S)
    _, v_events = lan_peer(v_host, "V", room, "--watch")
    v_events.next(frames_flowing, timeout=START_TIMEOUT_S)

    code, out, err = run_cli(rival_host, "--name", "Rival", "--room", room, "--lan",
                             *PATTERN, "--events", "-", timeout=START_TIMEOUT_S)
    assert code == ExitCode.LOCK_DENIED, err
    assert "Sam is already streaming in this room" in err
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert any(e["event"] == "lock_denied" and e["holder"] == "Sam" for e in events), events

    started = time.monotonic()
    code, out, err = run_cli(list_host, "--list", timeout=START_TIMEOUT_S)
    figure(f"--list took {time.monotonic() - started:.2f} s")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["ROOM", "STREAMER", "PEERS", "TRACKER"], out
    ours = [r for r in rows if r[0] == room]
    assert len(ours) == 1, out
    assert ours[0][1] == "Sam" and int(ours[0][2]) >= 2, out
    assert " ".join(ours[0][3:]) == "none (LAN only)", out
    assert streamer.poll() is None


def started_or_denied(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "lock_denied" or (
        e.get("event") == "stream_started" and e.get("streamer") == name)


def test_two_streamers_started_at_once_leave_one_stream(lan_hosts: Any) -> None:
    hosts = lan_hosts(4)
    room = new_room()
    names = ("A", "B")
    rivals = [lan_peer(hosts[i], n, room, *PATTERN) for i, n in enumerate(names)]
    viewers = [lan_peer(h, f"V{i}", room, "--watch") for i, h in enumerate(hosts[2:])]

    # Each rival either starts (and may step down later) or is refused outright.
    first = [events.find(started_or_denied(n), timeout=START_TIMEOUT_S)
             for n, (_, events) in zip(names, rivals, strict=True)]
    denied = [i for i in (0, 1) if first[i]["event"] == "lock_denied"]
    assert len(denied) < 2, first
    if denied:
        # The usual outcome: the later claim already saw the earlier one's record.
        loser = denied[0]
        winner = 1 - loser
        assert first[loser]["holder"] == names[winner]
        assert rivals[loser][0].wait(START_TIMEOUT_S) == ExitCode.LOCK_DENIED
        figure("two streamers at once: the later claim was refused (lock_denied)")
    else:
        # Claims crossed in flight: both started; the tie-break loser steps down.
        loser, ended = first_of(
            [events for _, events in rivals],
            lambda e: e.get("event") == "stream_ended" and e.get("streamer") in names,
            timeout=SETTLE_TIMEOUT_S)
        winner = 1 - loser
        assert (ended["streamer"], ended["reason"]) == (names[loser], STEP_DOWN)
        assert rivals[loser][0].poll() is None, "a loser steps down and stays to watch"
        rivals[loser][1].find(kind("epoch", epoch=first[winner]["epoch"]),
                              timeout=SETTLE_TIMEOUT_S)
        figure("two streamers at once: claims crossed, the loser stepped down")

    w_events = rivals[winner][1]
    for _, events in viewers:
        wait_single_streamer(events, names[winner])
        events.find(kind("epoch", epoch=first[winner]["epoch"]), timeout=SETTLE_TIMEOUT_S)
        now = later_stats(events)
        assert later_stats(events)["frames"] > now["frames"], "the stream goes on"
    assert later_stats(w_events)["depth"] == 0
    assert not any(e["event"] == "stream_ended" for e in w_events.lines), w_events.lines


def test_rooms_split_by_a_partition_keep_their_streams_and_newcomers_pick_the_first(
        lan_hosts: Any) -> None:
    # W streams alone behind a partition; on the other side L streams to two viewers
    # (through a relay: L takes one child). When the LAN heals, everyone sees W's
    # earlier claim appear long after the time it states. That is exactly what a
    # stranger's backdated claim looks like (issue 13: a forged claim must not take a
    # live room), so nobody already watching switches: L keeps streaming and its
    # viewers keep L's frames. A newcomer, who has no history to judge by, joins the
    # earliest claim, W's.
    l_host, w_host, v_host, u_host, n_host = lan_hosts(5)
    room = new_room()
    partition(w_host)
    _, w_events = lan_peer(w_host, "W", room, *PATTERN)
    w_started = w_events.next(kind("stream_started", streamer="W"), timeout=START_TIMEOUT_S)
    _, l_events = lan_peer(l_host, "L", room, *PATTERN, "--max-children", "1")
    l_started = l_events.next(kind("stream_started", streamer="L"), timeout=START_TIMEOUT_S)
    assert l_started["epoch"] > w_started["epoch"]
    viewers = [lan_peer(h, n, room, "--watch") for h, n in ((v_host, "V"), (u_host, "U"))]
    depths = []
    for _, events in viewers:
        events.find(kind("epoch", epoch=l_started["epoch"]), timeout=START_TIMEOUT_S)
        flowing = events.find(frames_flowing, timeout=START_TIMEOUT_S)
        depths.append(flowing["depth"])
        # A directory judges claims by when they appear only once it has read the room
        # for LAN_SETTLE_S (before that, every record is new to it): heal after that.
        events.find(lambda e, t=flowing["t"]: e.get("event") == "stats" and
                    e["t"] >= t + LAN_SETTLE_S, timeout=START_TIMEOUT_S)
    assert sorted(depths) == [1, 2], "one viewer relays L's stream to the other"

    heal(w_host)
    for events in (l_events, w_events):
        events.find(lambda e: e.get("event") == "tree" and
                    sorted(streamers_in(e)) == ["L", "W"], timeout=SETTLE_TIMEOUT_S)
    _, n_events = lan_peer(n_host, "N", room, "--watch")
    n_events.find(kind("epoch", epoch=w_started["epoch"]), timeout=START_TIMEOUT_S)
    now = n_events.find(frames_flowing, timeout=START_TIMEOUT_S)
    assert later_stats(n_events)["frames"] > now["frames"], "the newcomer watches W"
    for name, events in [("V", viewers[0][1]), ("U", viewers[1][1])]:
        now = later_stats(events)
        assert later_stats(events)["frames"] > now["frames"], f"{name} keeps watching L"
        assert not any(e.get("event") == "epoch" and e.get("epoch") == w_started["epoch"]
                       for e in events.lines), f"{name} was taken over by W's claim"
    for events in (l_events, w_events):
        assert not any(e["event"] == "stream_ended" for e in events.lines), events.lines
