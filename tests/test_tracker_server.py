"""The tracker over real sockets on 127.0.0.1: in-process on port 0, and once as a
subprocess. Timeouts below only bound a failing test; nothing asserts on timing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from protocol import framing, limits
from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import (
    Bye,
    Error,
    Heartbeat,
    MessageType,
    PeerList,
    Ping,
    Pong,
    Register,
    RoomQuery,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
    VideoFrame,
)
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 20.0  # only reached when something is broken
# Plaintext: these tests speak the raw protocol (TLS is tested in test_trust_tls.py).
CFG = TrackerConfig(lease_s=30.0, lease_grace_s=0.0, peer_timeout_s=1.5, update_interval_s=0.05,
                    max_messages_per_s=20.0, burst_messages=40, connect_back_timeout_s=2.0,
                    tls=False)


class Client:
    """A bare protocol client for tests: send messages or raw bytes, read messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.inbox: list[object] = []

    @classmethod
    async def open(cls, port: int) -> Client:
        async with asyncio.timeout(WAIT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    @property
    def label(self) -> str:
        host, port = self.writer.get_extra_info("sockname")[:2]
        return f"{host}:{port}"

    async def send(self, *messages: object) -> None:
        self.writer.write(b"".join(encode(m) for m in messages))  # type: ignore[arg-type]
        await self.writer.drain()

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self) -> object:
        """The next message; raises EOFError when the tracker closed the connection."""
        async with asyncio.timeout(WAIT_S):
            while not self.inbox:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError
                self.decoder.receive_data(data)
                self.inbox.extend(self.decoder)
        return self.inbox.pop(0)

    async def expect(self, kind: type, where: object = None) -> object:
        """Skip messages until one of ``kind`` (matching ``where(msg)``) arrives."""
        while True:
            message = await self.recv()
            if isinstance(message, kind) and (where is None or where(message)):  # type: ignore[operator]
                return message

    async def until_closed(self) -> list[object]:
        """Every message up to the tracker closing the connection."""
        got = []
        try:
            while True:
                got.append(await self.recv())
        except (EOFError, ConnectionError):
            return got

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):  # reset by the tracker: closed all the same
            await self.writer.wait_closed()


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    server = TrackerServer(CFG, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def listener() -> tuple[asyncio.Server, int]:
    """A peer's listen socket: accepts and closes (enough for the connect-back)."""
    async def handle(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def register(port: int, pid: str, room: str = "lobby", *, listen_port: int | None = None,
                   host: str | None = None) -> tuple[Client, PeerList]:
    client = await Client.open(port)
    await client.send(Register(pid, pid.upper(), room, host, listen_port))
    reply = await client.expect(PeerList)
    assert reply.your_id == pid  # type: ignore[attr-defined]
    return client, reply  # type: ignore[return-value]


async def keep_alive(client: Client) -> None:
    """What a good peer does: heartbeat well within the idle timeout."""
    while True:
        await client.send(Heartbeat(depth=0, free_slots=2))
        await asyncio.sleep(0.1)  # pacing a periodic sender, not synchronisation


# --- behaviour ---------------------------------------------------------------------------


async def test_register_peer_list_and_updates(tracker: TrackerServer) -> None:
    port = tracker.address[1]
    a, first = await register(port, "a")
    assert [p.id for p in first.peers] == ["a"]
    assert first.peers[0].host == "127.0.0.1"  # substituted: host None
    b, second = await register(port, "b")
    assert [p.id for p in second.peers] == ["a", "b"]
    update = await a.expect(PeerList, lambda m: len(m.peers) == 2)
    assert update.your_id is None  # type: ignore[attr-defined]  # a shared push
    await b.send(Heartbeat(depth=1, free_slots=3, parent_id="a", layer=480))
    update = await a.expect(PeerList, lambda m: m.peers[1].depth == 1)
    info = update.peers[1]  # type: ignore[attr-defined]
    assert (info.free_slots, info.parent_id, info.layer) == (3, "a", 480)
    await b.close()
    await a.expect(PeerList, lambda m: [p.id for p in m.peers] == ["a"])
    await a.close()


async def test_lock_claim_deny_release_and_renewal(tracker: TrackerServer) -> None:
    port = tracker.address[1]
    a, _ = await register(port, "a", host="127.0.0.1", listen_port=9)
    b, _ = await register(port, "b")
    await a.send(StreamClaim())
    granted = await a.expect(StreamGranted)
    assert granted.lease_s == CFG.lease_s + CFG.lease_grace_s  # type: ignore[attr-defined]
    epoch = granted.epoch  # type: ignore[attr-defined]
    changed = await b.expect(StreamerChanged)
    assert changed == StreamerChanged("a", "A", epoch, "127.0.0.1", 9)
    await b.send(StreamClaim())
    assert await b.expect(StreamDenied) == StreamDenied("a", "A")
    await a.send(Heartbeat())
    assert await a.expect(StreamGranted) == StreamGranted(epoch, CFG.lease_s)
    await a.send(StreamClaim())  # the holder again: the same grant, token and all
    assert await a.expect(StreamGranted) == granted
    await a.send(StreamRelease())
    assert await b.expect(StreamerChanged) == StreamerChanged(None, None, epoch)
    await b.send(StreamClaim())
    assert (await b.expect(StreamGranted)).epoch > epoch  # type: ignore[attr-defined]
    # Leaving says so (a mere disconnect keeps the lock until the lease is out).
    await b.send(StreamRelease())
    await b.close()
    await a.expect(StreamerChanged, lambda m: m.streamer_id is None and m.epoch > epoch)
    await a.close()


async def test_lease_expires_when_the_holder_goes_quiet() -> None:
    config = replace(CFG, lease_s=0.3, peer_timeout_s=30.0)
    async with TrackerServer(config, host="127.0.0.1", port=0) as server:
        port = server.address[1]
        a, _ = await register(port, "a")
        b, _ = await register(port, "b")
        await a.send(StreamClaim())
        epoch = (await a.expect(StreamGranted)).epoch  # type: ignore[attr-defined]
        # a says nothing more: the tracker's own timer ends the lease.
        assert await b.expect(StreamerChanged, lambda m: m.streamer_id is None) == \
            StreamerChanged(None, None, epoch)
        await b.send(StreamClaim())
        assert (await b.expect(StreamGranted)).epoch > epoch  # type: ignore[attr-defined]
        await a.close()
        await b.close()


async def test_room_query_does_not_join(tracker: TrackerServer) -> None:
    port = tracker.address[1]
    a, _ = await register(port, "a", room="den")
    q = await Client.open(port)
    await q.send(RoomQuery("den"), Ping(1.0))
    answer = await q.recv()
    assert isinstance(answer, PeerList) and answer.your_id is None
    assert answer.peers == () and answer.room_size == 1  # strangers see no members
    assert isinstance(await q.recv(), Pong)
    assert [p.id for p in tracker.state.room_peers("den")] == ["a"]
    await q.close()
    await a.close()


async def test_connect_back(tracker: TrackerServer) -> None:
    port = tracker.address[1]
    done: list[bool] = []
    checked = asyncio.Event()
    check_done = tracker.state.check_done

    def spy(check: object, reachable: bool, now: float) -> object:
        done.append(reachable)
        checked.set()
        return check_done(check, reachable, now)  # type: ignore[arg-type]

    tracker.state.check_done = spy  # type: ignore[method-assign]
    server, listen_port = await listener()
    try:
        a, reply = await register(port, "a", listen_port=listen_port)
        assert reply.peers[0].reachable is False  # not checked yet
        update = await a.expect(PeerList, lambda m: m.peers[0].reachable)
        assert update.peers[0].port == listen_port  # type: ignore[attr-defined]
        assert done == [True]
    finally:
        server.close()
        await server.wait_closed()
    # A port nobody listens on (just closed): refused, stays unreachable.
    checked.clear()
    b, _ = await register(port, "b", listen_port=listen_port)
    async with asyncio.timeout(WAIT_S):
        await checked.wait()
    assert done == [True, False]
    assert {p.id: p.reachable for p in tracker.state.room_peers("lobby")} == \
        {"a": True, "b": False}
    await a.close()
    await b.close()


async def test_room_full_over_tcp() -> None:
    async with TrackerServer(replace(CFG, max_peers_per_room=1), host="127.0.0.1",
                             port=0) as server:
        port = server.address[1]
        a, _ = await register(port, "a")
        c = await Client.open(port)
        await c.send(Register("c", "C", "lobby", None, None))
        got = await c.until_closed()
        assert [type(m) for m in got] == [Error, Bye]
        assert got[0].code == got[1].code == ErrorCode.ROOM_FULL  # type: ignore[attr-defined]
        await a.close()
        await c.close()


async def test_connections_per_address_over_tcp() -> None:
    async with TrackerServer(replace(CFG, max_connections_per_address=2), host="127.0.0.1",
                             port=0) as server:
        port = server.address[1]
        ok = [await Client.open(port) for _ in range(2)]
        for client in ok:  # make sure both are accepted before the third
            await client.send(Ping(0.0))
            await client.expect(Pong)
        third = await Client.open(port)
        (bye,) = await third.until_closed()
        assert bye.code == ErrorCode.TOO_MANY_CONNECTIONS  # type: ignore[attr-defined]
        await ok[0].close()
        # A slot is free again once the tracker has seen the close.
        while True:
            fourth = await Client.open(port)
            await fourth.send(Ping(0.0))
            try:
                if isinstance(await fourth.recv(), Pong):
                    break
            except (EOFError, ConnectionError):
                pass
            await fourth.close()
        for client in (ok[1], third, fourth):
            await client.close()


# --- bad clients next to good ones -------------------------------------------------------


async def test_bad_clients_are_dropped_and_good_ones_keep_working(
        tracker: TrackerServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tracker")
    port = tracker.address[1]
    a, _ = await register(port, "a")
    b, _ = await register(port, "b")
    keepers = [asyncio.create_task(keep_alive(c)) for c in (a, b)]
    try:
        garbage = await Client.open(port)
        await garbage.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        oversize = await Client.open(port)
        header = struct.pack("!2sBBII", limits.MAGIC, framing.FRAMING_VERSION,
                             MessageType.CHAT, limits.MAX_META_BYTES + 1, 0)
        await oversize.send_raw(header)  # and never the body
        flood = await Client.open(port)
        await flood.send(*[RoomQuery("lobby")] * 200)
        silent = await Client.open(port)  # connects and says nothing
        unexpected = await Client.open(port)
        await unexpected.send(VideoFrame(1, 1, 0.0, 2, 2, 360, b"jpeg"))

        bad = {"garbage": garbage, "oversize": oversize, "flood": flood, "silent": silent,
               "unexpected": unexpected}
        byes = {}
        for name, client in bad.items():
            got = await client.until_closed()
            byes[name] = got[-1]
            assert isinstance(got[-1], Bye), (name, got)
        assert byes["garbage"].code == ErrorCode.MALFORMED
        assert "bad magic" in byes["garbage"].reason
        assert byes["oversize"].code == ErrorCode.TOO_LARGE
        assert "exceeds the limit" in byes["oversize"].reason
        assert byes["flood"].code == ErrorCode.RATE_LIMITED
        assert byes["silent"].code == ErrorCode.TIMEOUT
        assert byes["unexpected"].code == ErrorCode.UNEXPECTED

        # One warning line for each protocol-level offender, naming its address.
        for name in ("garbage", "oversize"):
            lines = [r for r in caplog.records
                     if r.levelno == logging.WARNING and bad[name].label in r.getMessage()]
            assert len(lines) == 1, (name, [r.getMessage() for r in lines])

        # The good clients were never disturbed and the lock still works for them.
        await a.send(StreamClaim())
        epoch = (await a.expect(StreamGranted)).epoch  # type: ignore[attr-defined]
        await b.expect(StreamerChanged, lambda m: m.streamer_id == "a")
        await b.send(StreamClaim())
        assert await b.expect(StreamDenied) == StreamDenied("a", "A")
        await a.expect(StreamGranted, lambda m: m.epoch == epoch)  # heartbeat renewal
        await b.send(RoomQuery("lobby"))
        listed = await b.expect(PeerList, lambda m: m.your_id is None)
        assert listed.streamer_id == "a"  # type: ignore[attr-defined]
        assert sorted(p.id for p in listed.peers) == ["a", "b"]  # type: ignore[attr-defined]
        for client in bad.values():
            await client.close()
    finally:
        for task in keepers:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        await a.close()
        await b.close()
    assert tracker.state.rooms() in ([], ["lobby"])


async def test_bye_from_the_tracker_is_decodable_and_last() -> None:
    # The decoder on the client side sees a clean Bye then EOF, never garbage.
    async with TrackerServer(CFG, host="127.0.0.1", port=0) as server:
        c = await Client.open(server.address[1])
        await c.send_raw(b"\x00" * 12)
        got = await c.until_closed()
        assert len(got) == 1 and isinstance(got[0], Bye)
        await c.close()


async def test_shutdown_says_bye(tracker: TrackerServer) -> None:
    a, _ = await register(tracker.address[1], "a")
    await tracker.close()
    got = await a.until_closed()
    assert got[-1] == Bye("tracker shutting down", code=ErrorCode.UNEXPECTED)
    await a.close()


def test_decoder_errors_are_remote_protocol_errors() -> None:
    # The server relies on this: one except clause per connection.
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.receive_data(b"garbage-garbage")


# --- the real command ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_subprocess_prints_port_serves_and_exits_cleanly(sig: signal.Signals) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    started = time.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-mdns",
        "--no-tls", "--log-level", "WARNING", cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(WAIT_S):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
        prefix = "treecast-tracker listening on 127.0.0.1:"
        assert line.startswith(prefix), line
        port = int(line[len(prefix):])
        a, reply = await register(port, "a")
        assert reply.room == "lobby"
        await a.send(StreamClaim())
        # Epochs start above the wall clock in ms: above anything an earlier run gave.
        epoch = (await a.expect(StreamGranted)).epoch  # type: ignore[attr-defined]
        assert epoch > int(started * 1000)
        proc.send_signal(sig)
        got = await a.until_closed()
        assert got[-1] == Bye("tracker shutting down", code=ErrorCode.UNEXPECTED)
        await a.close()
        async with asyncio.timeout(WAIT_S):
            code = await proc.wait()
        stderr = await proc.stderr.read()  # type: ignore[union-attr]
        assert code == 0, stderr.decode()
        assert b"Traceback" not in stderr
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_cli_rejects_bad_config(capsys: pytest.CaptureFixture[str]) -> None:
    from tracker.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["--lease", "0"])
    assert info.value.code == 2
    assert "lease_s must be positive" in capsys.readouterr().err
