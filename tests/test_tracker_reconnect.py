"""A peer rides out its tracker going away: reconnect with backoff, re-register with
its position and name, resume its lock with the same epoch, move to the next tracker
of its list. Real trackers on 127.0.0.1; waits are on events, timeouts only bound a
failure."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from peer.node.tracker_client import TrackerClient
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

WAIT_S = 20.0
# Plaintext: these clients have no key, and a restarted in-process tracker has a new
# one (TLS and pinning are tested in test_trust_tls.py).
CFG = TrackerConfig(tls=False, lease_s=2.0, lease_grace_s=5.0, peer_timeout_s=30.0,
                    update_interval_s=0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self._changed = asyncio.Event()

    def recorder(self, kind: str) -> Callable[[object], None]:
        def record(item: object) -> None:
            self.items.append((kind, item))
            self._changed.set()
        return record

    async def wait_for(self, kind: str) -> object:
        async with asyncio.timeout(WAIT_S):
            while True:
                for k, item in self.items:
                    if k == kind:
                        return item
                self._changed.clear()
                await self._changed.wait()


def client(port: int, peer_id: str, events: Events, *,
           more: tuple[tuple[str, int], ...] = ()) -> TrackerClient:
    return TrackerClient(
        "127.0.0.1", port, peer_id=peer_id, name="Bob", room="lobby", listen_host=None,
        listen_port=None, heartbeat_s=0.1, more_trackers=more,
        on_closed=events.recorder("closed"), on_reconnected=events.recorder("back"))


async def test_restart_on_the_same_port_resumes_the_lock_and_the_position() -> None:
    port = free_port()
    first = TrackerServer(CFG, host="127.0.0.1", port=port, epoch_floor=100)
    await first.start()
    events = Events()
    other = client(port, "other", Events())
    holder = client(port, "holder", events)
    try:
        await other.connect()
        reply = await holder.connect()
        assert reply.your_name == "Bob (2)"  # the name in use, kept across reconnects
        granted = await holder.claim_stream()
        holder.set_position(depth=0, free_slots=3, parent_id=None, layer=None)
        await first.close()
        await events.wait_for("closed")
        assert holder.lease_valid()  # streaming goes on meanwhile
        second = TrackerServer(CFG, host="127.0.0.1", port=port, epoch_floor=10_000)
        await second.start()
        try:
            assert await events.wait_for("back") == f"127.0.0.1:{port}"
            assert holder.connected and holder.epoch == granted.epoch
            lock = second.state.lock("lobby")
            assert lock is not None and (lock.holder_id, lock.epoch) == ("holder",
                                                                         granted.epoch)
            (me,) = [p for p in second.state.room_peers("lobby") if p.id == "holder"]
            assert (me.name, me.depth, me.free_slots) == ("Bob (2)", 0, 3)
        finally:
            await holder.close()
            await other.close()
            await second.close()
    finally:
        await first.close()


async def test_a_peer_moves_to_the_next_tracker_of_its_list() -> None:
    a = TrackerServer(CFG, host="127.0.0.1", port=0)
    b = TrackerServer(CFG, host="127.0.0.1", port=0)
    await a.start()
    await b.start()
    events = Events()
    peer = client(a.address[1], "p", events, more=(("127.0.0.1", b.address[1]),))
    try:
        await peer.connect()
        assert [p.id for p in a.state.room_peers("lobby")] == ["p"]
        await a.close()
        assert await events.wait_for("back") == f"127.0.0.1:{b.address[1]}"
        assert [p.id for p in b.state.room_peers("lobby")] == ["p"]
    finally:
        await peer.close()
        await a.close()
        await b.close()


async def test_connect_waits_out_a_tracker_that_is_not_up_yet() -> None:
    port = free_port()
    events = Events()
    peer = client(port, "late", events)
    server = TrackerServer(CFG, host="127.0.0.1", port=port)
    try:
        connecting = asyncio.create_task(peer.connect(timeout=1.0, patience=WAIT_S))
        await asyncio.sleep(0.3)  # (the outage being ridden out, not a sync wait)
        assert not connecting.done()
        await server.start()
        reply = await connecting
        assert reply.your_id == "late"
    finally:
        await peer.close()
        await server.close()


async def test_status_command_prints_one_line_per_room() -> None:
    import os
    import sys
    from pathlib import Path

    server = TrackerServer(CFG, host="127.0.0.1", port=0)
    await server.start()
    streamer, viewer = client(server.address[1], "s", Events()), client(
        server.address[1], "v", Events())
    try:
        await streamer.connect()
        await viewer.connect()
        await streamer.claim_stream()
        repo = Path(__file__).resolve().parent.parent
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tracker", "--no-tls", "--status",
            f"127.0.0.1:{server.address[1]}",
            cwd=repo, env=dict(os.environ, PYTHONPATH=str(repo)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(WAIT_S):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
        lines = out.decode().splitlines()
        assert lines[0].startswith("tracker ") and "store memory (ok)" in lines[0]
        assert "3 connections, 1 rooms" in lines[0]  # (the query is one of them)
        assert lines[1].startswith("room lobby: 2 peers, streamer Bob (epoch ")
    finally:
        await streamer.close()
        await viewer.close()
        await server.close()


def test_a_tracker_list_parses_for_the_cli_and_the_app() -> None:
    import pytest

    from peer.node.cli import build_parser
    from peer.node.config import parse_trackers

    assert parse_trackers("a.example:7700, [::1]:7701,b:7702,a.example:7700") == (
        ("a.example", 7700), ("::1", 7701), ("b", 7702))
    for bad in ("", "a", "a:0", "a:1,b", "a:x", ":7700", "::1:7700"):
        with pytest.raises(ValueError):
            parse_trackers(bad)
    args = build_parser().parse_args(["--name", "n", "--tracker", "a:1,b:2", "--watch"])
    assert args.tracker == (("a", 1), ("b", 2))
