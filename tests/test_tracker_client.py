"""TrackerClient and query_room against the real tracker on 127.0.0.1 (and a few fake
trackers for failure modes). Waits are on events; timeouts only bound a failure."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

import peer.node.tracker_client as tc
from peer.node.errors import LockDeniedError, TrackerUnreachableError
from peer.node.tracker_client import TrackerClient, query_room
from protocol.framing import FrameDecoder, encode
from protocol.messages import Heartbeat, Message, PeerList, Ping, StreamerChanged
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 20.0
# Plaintext: these clients have no key (TLS is tested in test_trust_tls.py).
CFG = TrackerConfig(lease_s=30.0, peer_timeout_s=30.0, update_interval_s=0.02, tls=False)


class Seen:
    """Collects what a client's callbacks report; wait for a matching one."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self._changed = asyncio.Event()

    def __call__(self, item: object) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, match: Callable[[object], bool]) -> object:
        async with asyncio.timeout(WAIT_S):
            while True:
                for item in self.items:
                    if match(item):
                        return item
                self._changed.clear()
                await self._changed.wait()


class Peer:
    """A TrackerClient plus recorders for its three callbacks."""

    def __init__(self, port: int, peer_id: str, *, room: str = "lobby",
                 heartbeat_s: float = 0.1, listen_port: int | None = None) -> None:
        self.lists, self.streamers, self.closed = Seen(), Seen(), Seen()
        self.client = TrackerClient(
            "127.0.0.1", port, peer_id=peer_id, name=peer_id.upper(), room=room,
            listen_host=None, listen_port=listen_port, heartbeat_s=heartbeat_s,
            on_peer_list=self.lists, on_streamer_changed=self.streamers,
            on_closed=self.closed)


@pytest.fixture
async def tracker() -> AsyncIterator[TrackerServer]:
    async with TrackerServer(CFG, host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
async def peers(tracker: TrackerServer) -> AsyncIterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(peer_id: str, **kwargs: object) -> Peer:
        peer = Peer(tracker.address[1], peer_id, **kwargs)  # type: ignore[arg-type]
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.client.close()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- connect and peer lists --------------------------------------------------------------


async def test_connect_and_follow_the_room(peers: Callable[..., Peer]) -> None:
    a = peers("a")
    first = await a.client.connect()
    assert first.your_id == "a" and [p.id for p in first.peers] == ["a"]
    assert first.peers[0].host == "127.0.0.1"  # the tracker filled in listen_host None
    assert a.client.peers == first and a.client.connected
    b = peers("b")
    await b.client.connect()
    pushed = await a.lists.wait_for(lambda m: len(m.peers) == 2)  # type: ignore[attr-defined]
    assert a.client.peers == pushed
    b.client.set_position(depth=1, free_slots=2, parent_id="a", layer=480)
    moved = await a.lists.wait_for(
        lambda m: any(p.id == "b" and p.depth == 1 for p in m.peers))  # type: ignore[attr-defined]
    info = next(p for p in moved.peers if p.id == "b")  # type: ignore[attr-defined]
    assert (info.free_slots, info.parent_id, info.layer) == (2, "a", 480)
    await b.client.close()
    await a.lists.wait_for(lambda m: [p.id for p in m.peers] == ["a"])  # type: ignore[attr-defined]
    assert a.closed.items == [] and b.closed.items == []  # close() is not "dropped"


async def test_connect_errors() -> None:
    port = free_port()
    client = TrackerClient("127.0.0.1", port, peer_id="a", name="A", room="lobby",
                           listen_host=None, listen_port=None)
    with pytest.raises(TrackerUnreachableError,
                       match=rf"^cannot reach tracker at 127\.0\.0\.1:{port}: "):
        await client.connect(timeout=5.0)
    assert not client.connected
    await client.close()
    await client.close()


async def test_connect_times_out_on_a_silent_server() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads until the client gives up; answers nothing
        writer.close()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = TrackerClient("127.0.0.1", port, peer_id="a", name="A", room="lobby",
                               listen_host=None, listen_port=None)
        with pytest.raises(TrackerUnreachableError, match=r"no answer within 0\.3 s"):
            await client.connect(timeout=0.3)
    finally:
        server.close()
        await server.wait_closed()


async def test_room_full_is_reported() -> None:
    async with TrackerServer(replace(CFG, max_peers_per_room=1), host="127.0.0.1",
                             port=0) as server:
        a = Peer(server.address[1], "a")
        b = Peer(server.address[1], "b")
        await a.client.connect()
        with pytest.raises(TrackerUnreachableError, match="refused: room 'lobby' is full"):
            await b.client.connect()
        await a.client.close()
        await b.client.close()


# --- the lock ------------------------------------------------------------------------------


async def test_claim_deny_release(peers: Callable[..., Peer]) -> None:
    a, b = peers("a"), peers("b")
    await a.client.connect()
    await b.client.connect()
    assert a.client.epoch is None and not a.client.lease_valid()
    granted = await a.client.claim_stream()
    assert a.client.epoch == granted.epoch and a.client.lease_valid()
    changed = await b.streamers.wait_for(lambda m: m.streamer_id == "a")  # type: ignore[attr-defined]
    assert changed.epoch == granted.epoch  # type: ignore[attr-defined]
    again = await a.client.claim_stream()  # idempotent
    assert again.epoch == granted.epoch
    with pytest.raises(LockDeniedError, match="A is already streaming") as info:
        await b.client.claim_stream()
    assert info.value.holder == "A"
    await a.client.release_stream()
    assert a.client.epoch is None and not a.client.lease_valid()
    await b.streamers.wait_for(lambda m: m.streamer_id is None)  # type: ignore[attr-defined]
    won = await b.client.claim_stream()
    assert won.epoch > granted.epoch and b.client.lease_valid()
    await a.streamers.wait_for(lambda m: m.streamer_id == "b")  # type: ignore[attr-defined]


async def test_close_while_holding_releases(peers: Callable[..., Peer]) -> None:
    a, b = peers("a"), peers("b")
    await a.client.connect()
    await b.client.connect()
    epoch = (await a.client.claim_stream()).epoch
    await a.client.close()
    await b.streamers.wait_for(lambda m: m.streamer_id is None and m.epoch == epoch)  # type: ignore[attr-defined]
    assert a.closed.items == []
    with pytest.raises(TrackerUnreachableError, match="closed"):
        await a.client.claim_stream()
    await a.client.close()


async def test_lease_expires_without_heartbeats() -> None:
    # The holder's heartbeat period is far longer than the lease: the tracker must
    # end the lock, and the holder's own view must already say it is gone.
    async with TrackerServer(replace(CFG, lease_s=0.3), host="127.0.0.1", port=0) as server:
        a = Peer(server.address[1], "a", heartbeat_s=60.0)
        b = Peer(server.address[1], "b", heartbeat_s=60.0)
        await a.client.connect()
        await b.client.connect()
        epoch = (await a.client.claim_stream()).epoch
        ended = await b.streamers.wait_for(lambda m: m.streamer_id is None)  # type: ignore[attr-defined]
        assert ended == StreamerChanged(None, None, epoch)
        # Dated from the claim's send time: never valid after the tracker's expiry.
        assert not a.client.lease_valid()
        await a.streamers.wait_for(lambda m: m.streamer_id is None)  # type: ignore[attr-defined]
        assert a.client.epoch is None
        assert (await b.client.claim_stream()).epoch > epoch
        await a.client.close()
        await b.client.close()


async def test_heartbeats_renew_the_lease_and_registration() -> None:
    config = replace(CFG, lease_s=2.0, peer_timeout_s=2.0)
    async with TrackerServer(config, host="127.0.0.1", port=0) as server:
        a = Peer(server.address[1], "a", heartbeat_s=0.1)
        b = Peer(server.address[1], "b", heartbeat_s=0.1)
        await a.client.connect()
        await b.client.connect()
        epoch = (await a.client.claim_stream()).epoch
        # Time passing is the point here: well past the lease and the idle timeout.
        await asyncio.sleep(3.0)
        assert a.client.lease_valid() and a.client.epoch == epoch
        with pytest.raises(LockDeniedError):
            await b.client.claim_stream()
        assert a.closed.items == [] and b.closed.items == []
        await a.client.close()
        await b.client.close()



async def test_only_the_lock_holder_beats_every_period(tracker: TrackerServer,
                                                       peers: Callable[..., Peer]) -> None:
    # A peer without the lock sends its position when it changes; its beat only keeps
    # the link alive, so it comes every IDLE_BEAT_PERIODS periods. The holder's renews
    # the lease: every period.
    a = peers("a", heartbeat_s=0.05)
    b = peers("b", heartbeat_s=0.05)
    beats: dict[str, int] = {"a": 0, "b": 0}
    for name, peer in (("a", a), ("b", b)):
        sent = peer.client._send

        async def counted(*messages: Message, _name: str = name,
                          _sent: Callable[..., Awaitable[None]] = sent) -> None:
            beats[_name] += sum(isinstance(m, Heartbeat) for m in messages)
            await _sent(*messages)

        peer.client._send = counted  # type: ignore[method-assign]
    await a.client.connect()
    await b.client.connect()
    await a.client.claim_stream()
    start = dict(beats)

    async def watch() -> None:
        while beats["a"] - start["a"] < 12:
            await asyncio.sleep(0.01)  # polls a condition; the beats set the pace

    await asyncio.wait_for(watch(), 30.0)
    a_beats, b_beats = beats["a"] - start["a"], beats["b"] - start["b"]
    assert 1 <= b_beats <= a_beats // tc.IDLE_BEAT_PERIODS + 1
    assert a.closed.items == [] and b.closed.items == []


async def test_a_new_holder_renews_one_period_after_its_grant(
        tracker: TrackerServer, peers: Callable[..., Peer]) -> None:
    # A peer without the lock sleeps IDLE_BEAT_PERIODS periods between beats in one
    # go; a grant restarts that sleep, so the lease is renewed one period after it,
    # not up to IDLE_BEAT_PERIODS later.
    period = 2.0
    a = peers("a", heartbeat_s=period)
    beat = asyncio.Event()
    sent = a.client._send

    async def counted(*messages: Message) -> None:
        if any(isinstance(m, Heartbeat) for m in messages):
            beat.set()
        await sent(*messages)

    a.client._send = counted  # type: ignore[method-assign]
    await a.client.connect()
    await a.client.claim_stream()
    granted = time.monotonic()
    # The loop asleep since connect would beat IDLE_BEAT_PERIODS periods after it.
    await asyncio.wait_for(beat.wait(), (tc.IDLE_BEAT_PERIODS - 0.25) * period)
    assert time.monotonic() - granted >= period * 0.9
    assert a.client.lease_valid() and a.closed.items == []


async def test_a_beat_and_its_ping_go_out_in_one_write(
        tracker: TrackerServer, peers: Callable[..., Peer]) -> None:
    # The tracker only speaks on changes: a beat after a quiet period carries a Ping,
    # and both leave in one write (one TLS record, one send).
    a = peers("a", heartbeat_s=0.05)
    await a.client.connect()
    writer = a.client._writer
    assert writer is not None
    chunks: list[list[type]] = []
    both = asyncio.Event()
    write = writer.write

    def recorded(data: bytes) -> None:
        decoder = FrameDecoder()
        decoder.receive_data(bytes(data))
        kinds = []
        while (message := decoder.next_message()) is not None:
            kinds.append(type(message))
        chunks.append(kinds)
        if Heartbeat in kinds and Ping in kinds:
            both.set()
        write(data)

    writer.write = recorded  # type: ignore[method-assign]
    await asyncio.wait_for(both.wait(), WAIT_S)
    assert [Heartbeat, Ping] in chunks
    assert a.closed.items == []


# --- the link ending -----------------------------------------------------------------------


async def test_tracker_shutdown_calls_on_closed(tracker: TrackerServer,
                                                peers: Callable[..., Peer]) -> None:
    a = peers("a")
    await a.client.connect()
    await a.client.claim_stream()
    await tracker.close()
    reason = await a.closed.wait_for(lambda r: True)
    assert reason == "tracker closed the link: tracker shutting down"
    # The lease is kept while the client tries to get back (the tracker gives an
    # absent holder its grace); nothing can be claimed without a link.
    assert not a.client.connected and a.client.epoch is not None and a.client.lease_valid()
    with pytest.raises(TrackerUnreachableError, match="tracker shutting down"):
        await a.client.claim_stream()
    await a.client.close()
    assert a.closed.items == [reason]  # exactly once


async def test_killed_tracker_process_calls_on_closed() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-mdns",
        "--no-tls", "--log-level", "ERROR", cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(WAIT_S):
            line = (await proc.stdout.readline()).decode()  # type: ignore[union-attr]
        port = int(line.rsplit(":", 1)[1])
        a = Peer(port, "a")
        await a.client.connect()
        proc.kill()  # no goodbye: the OS closes the socket
        reason = await a.closed.wait_for(lambda r: True)
        assert "closed" in reason or "reset" in reason.lower(), reason
        assert not a.client.connected
        await a.client.close()
        # Told once, however many reconnect attempts failed meanwhile.
        assert a.closed.items == [reason]
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _fake_tracker(after_register: bytes) -> tuple[asyncio.Server, int]:
    """Answers Register with a PeerList, then sends ``after_register`` and idles."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(encode(PeerList("lobby", (), your_id="a")) + after_register)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_garbage_from_the_tracker_ends_the_link() -> None:
    server, port = await _fake_tracker(b"this is not the treecast protocol")
    try:
        a = Peer(port, "a")
        await a.client.connect()
        reason = await a.closed.wait_for(lambda r: True)
        assert reason.startswith("tracker sent bad data: bad magic")
        await a.client.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_silent_tracker_is_declared_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tc, "_MIN_SILENCE_S", 0.5)  # the fake never answers our pings
    server, port = await _fake_tracker(b"")
    try:
        a = Peer(port, "a", heartbeat_s=0.05)
        await a.client.connect()
        assert await a.closed.wait_for(lambda r: True) == "tracker silent for 0.5 s"
        await a.client.close()
    finally:
        server.close()
        await server.wait_closed()


def test_callback_errors_do_not_break_the_link(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: object) -> None:
        raise ValueError("owner bug")

    tc._call(boom, 1)
    assert "callback failed" in caplog.text


# --- query_room --------------------------------------------------------------------------


async def test_query_room(tracker: TrackerServer, peers: Callable[..., Peer]) -> None:
    port = tracker.address[1]
    a = peers("a", room="den")
    await a.client.connect()
    await a.client.claim_stream()
    answer = await query_room("127.0.0.1", port, "den", tls=False)
    assert answer.your_id is None and answer.streamer_name == "A"
    # A stranger learns the room's size and streamer name, not who is in it.
    assert answer.peers == () and answer.room_size == 1 and answer.streamer_id is None
    assert (await query_room("127.0.0.1", port, "empty", tls=False)).peers == ()
    assert [p.id for p in tracker.state.room_peers("den")] == ["a"]


async def test_query_room_unreachable() -> None:
    port = free_port()
    with pytest.raises(TrackerUnreachableError,
                       match=rf"^cannot reach tracker at 127\.0\.0\.1:{port}: "):
        await query_room("127.0.0.1", port, "lobby", timeout=5.0)


def test_a_refusal_reads_as_who_streams_or_why_nobody_can() -> None:
    from peer.node.tracker_client import denied_error
    from protocol.messages import DenyReason, StreamDenied

    assert str(denied_error(StreamDenied("a", "Alice"))) == (
        "Alice is already streaming in this room")
    for reason in (DenyReason.RECOVERING, DenyReason.NO_STORE, DenyReason.SUPERSEDED):
        error = denied_error(StreamDenied("", "", reason))
        assert error.holder == "" and "already streaming" not in str(error)
    assert "try again" in str(denied_error(StreamDenied("", "", DenyReason.NO_STORE)))


async def test_our_own_stall_past_the_silence_is_not_the_trackers(
        monkeypatch: pytest.MonkeyPatch, peers: Callable[..., Peer]) -> None:
    monkeypatch.setattr(tc, "_MIN_SILENCE_S", 0.3)
    a = peers("a", heartbeat_s=0.05)  # silence: 0.3 s
    await a.client.connect()
    # A starved CPU: our loop (the tracker's too, it runs in this one) does nothing for
    # a second, three silence periods. The read's timeout then runs late: that silence
    # is ours, and the link must survive it.
    asyncio.get_running_loop().call_soon(time.sleep, 1.0)
    await asyncio.sleep(0)
    granted = await a.client.claim_stream()  # a round trip over the same link
    assert granted.epoch >= 1 and a.closed.items == []
