"""Authenticated, encrypted links: each test plays someone who is not who they claim.

Peers and trackers run in-process on 127.0.0.1 with TLS on (the default); attackers
are raw clients with keys of their own (tests/support/tls_client.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from peer.node.errors import TrackerUnreachableError
from peer.node.link import open_link
from peer.node.tracker_client import TrackerClient, query_room
from peer.trust.pins import KnownTrackers
from peer.trust.tls import AuthenticationError, LinkGuard, client_context, make_proof
from protocol import Bye, ErrorCode, Hello, JoinRequest, Ping, encode, limits
from protocol.errors import RemoteProtocolError
from protocol.identity import Identity
from protocol.messages import LinkProof, PeerList, Register, StreamClaim, StreamDenied
from tests.support.tls_client import tls_connect
from tests.test_node_links import _node, _read_until
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

WAIT_S = 20.0


async def _until_bye(reader: asyncio.StreamReader) -> Bye:
    message = await _read_until(reader, Bye, WAIT_S)
    assert isinstance(message, Bye)
    return message


# --- the listener's check of a dialler (LinkGuard) ---------------------------------------


def test_guard_wants_a_valid_proof_first_then_the_same_id() -> None:
    listener, me, other = Identity.generate(), Identity.generate(), Identity.generate()
    guard = LinkGuard(listener.public_key)
    with pytest.raises(RemoteProtocolError, match="expected a LinkProof first"):
        LinkGuard(listener.public_key).admit(Hello(me.peer_id, "me", "lobby"))
    # A proof made for another listener (replayed from elsewhere) is worthless here.
    with pytest.raises(RemoteProtocolError, match="does not verify"):
        LinkGuard(listener.public_key).admit(make_proof(me, other.public_key))
    # A proof in someone else's name.
    forged = LinkProof(other.peer_id, make_proof(me, listener.public_key).proof)
    with pytest.raises(RemoteProtocolError, match="does not verify"):
        LinkGuard(listener.public_key).admit(forged)
    assert guard.admit(make_proof(me, listener.public_key)) is False  # consumed
    assert guard.peer_id == me.peer_id
    assert guard.admit(Ping(1.0)) is True
    with pytest.raises(RemoteProtocolError, match="names id"):
        guard.admit(Hello(other.peer_id, "other", "lobby"))
    with pytest.raises(RemoteProtocolError, match="a second LinkProof"):
        guard.admit(make_proof(me, listener.public_key))


# --- peer links ----------------------------------------------------------------------------


async def test_dialling_a_peer_that_holds_another_key_fails() -> None:
    node, _ = await _node(tls=True)
    try:
        assert node.listen is not None
        impostor_of = Identity.generate().peer_id  # the id we think we are dialling
        with pytest.raises(AuthenticationError, match="expected peer"):
            await open_link("127.0.0.1", node.listen[1], timeout=WAIT_S,
                            on_message=lambda link, m: None,
                            on_close=lambda link, reason: None,
                            identity=Identity.generate(), expected_id=impostor_of)
    finally:
        await node.stop()


async def test_a_dialler_must_prove_its_id_before_anything_else() -> None:
    node, _ = await _node(tls=True)
    me, victim = Identity.generate(), Identity.generate()
    try:
        assert node.listen is not None
        port = node.listen[1]
        # Plaintext at a TLS listener: the handshake fails, nothing is decoded.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode(Hello(me.peer_id, "me", "lobby")))
        async with asyncio.timeout(WAIT_S):
            assert await reader.read() == b""
        writer.close()
        # TLS, proven as ourselves, then a Hello in the victim's name.
        reader, writer, _ = await tls_connect(port, me)
        writer.write(encode(Hello(victim.peer_id, "victim", "lobby"))
                     + encode(JoinRequest(layer=360)))
        bye = await _until_bye(reader)
        assert bye.code == ErrorCode.UNEXPECTED and "names id" in bye.reason
        writer.close()
        # TLS without the proof.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(),
            server_hostname="")
        writer.write(encode(Hello(me.peer_id, "me", "lobby")))
        bye = await _until_bye(reader)
        assert "expected a LinkProof first" in bye.reason
        writer.close()
        # And an honest one is still served.
        reader, writer, _ = await tls_connect(port, me)
        writer.write(encode(Hello(me.peer_id, "me", "lobby")))
        assert isinstance(await _read_until(reader, Hello, WAIT_S), Hello)
        writer.close()
    finally:
        await node.stop()


async def test_video_and_chat_are_not_readable_on_the_wire() -> None:
    # A tap on the path (a TCP relay that records what passes) sees only TLS records.
    node, _ = await _node(tls=True)
    me = Identity.generate()
    seen = bytearray()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert node.listen is not None
        up_r, up_w = await asyncio.open_connection("127.0.0.1", node.listen[1])

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                seen.extend(data)
                dst.write(data)
        await asyncio.gather(pump(reader, up_w), pump(up_r, writer), return_exceptions=True)

    tap = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        port = tap.sockets[0].getsockname()[1]
        reader, writer, _ = await tls_connect(port, me)
        writer.write(encode(Hello(me.peer_id, "secret-name-xyz", "lobby")))
        assert isinstance(await _read_until(reader, Hello, WAIT_S), Hello)
        assert len(seen) > 0
        assert b"secret-name-xyz" not in seen and b"lobby" not in seen and b"TC" not in seen[:64]
        writer.close()
    finally:
        tap.close()
        await node.stop()


# --- the tracker: ids are keys, the lock belongs to a key -------------------------------


@pytest.fixture
async def tracker() -> TrackerServer:  # type: ignore[misc]
    async with TrackerServer(TrackerConfig(update_interval_s=0.02), host="127.0.0.1",
                             port=0) as server:
        yield server


def _client(tracker: TrackerServer, identity: Identity, pins: Path,
            fingerprint: str | None = None) -> TrackerClient:
    return TrackerClient("127.0.0.1", tracker.address[1], peer_id=identity.peer_id,
                         name="n", room="lobby", listen_host=None, listen_port=None,
                         heartbeat_s=0.1, identity=identity, fingerprint=fingerprint,
                         pins=KnownTrackers(pins))


async def test_nobody_can_register_as_the_streamer_or_take_its_lock(
        tracker: TrackerServer, tmp_path: Path) -> None:
    streamer = Identity.generate()
    client = _client(tracker, streamer, tmp_path / "pins")
    await client.connect()
    granted = await client.claim_stream()
    attacker = Identity.generate()
    port = tracker.address[1]
    # 1. Proven as itself, registering with the streamer's id: refused.
    reader, writer, _ = await tls_connect(port, attacker)
    writer.write(encode(Register(streamer.peer_id, "fake", "lobby", None, None)))
    bye = await _until_bye(reader)
    assert "names id" in bye.reason
    writer.close()
    # 2. Claiming to be the streamer in the proof itself: it cannot sign.
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(),
        server_hostname="")
    forged = LinkProof(streamer.peer_id, make_proof(attacker, tracker.identity.public_key).proof)
    writer.write(encode(forged) + encode(Register(streamer.peer_id, "fake", "lobby", None,
                                                  None)))
    bye = await _until_bye(reader)
    assert "does not verify" in bye.reason
    writer.close()
    # 3. As itself, it may join and ask for the lock: denied while the lease lives.
    reader, writer, _ = await tls_connect(port, attacker)
    writer.write(encode(Register(attacker.peer_id, "mallory", "lobby", None, None))
                 + encode(StreamClaim()))
    denied = await _read_until(reader, StreamDenied, WAIT_S)
    assert isinstance(denied, StreamDenied) and denied.holder_id == streamer.peer_id
    writer.close()
    lock = tracker.state.lock("lobby")
    assert lock is not None and lock.holder_id == streamer.peer_id
    assert lock.epoch == granted.epoch
    await client.close()


async def test_trackers_are_pinned_on_first_use_and_a_changed_key_is_refused(
        tmp_path: Path) -> None:
    pins = tmp_path / "known_trackers"
    me = Identity.generate()
    async with TrackerServer(TrackerConfig(), host="127.0.0.1", port=0) as first:
        port = first.address[1]
        client = _client(first, me, pins)
        await client.connect()
        await client.close()
    assert pins.read_text() == f"127.0.0.1:{port} {first.identity.fingerprint}\n"
    # Same address, another key (an impostor, or a re-keyed tracker): refused.
    async with TrackerServer(TrackerConfig(), host="127.0.0.1", port=port) as second:
        with pytest.raises(TrackerUnreachableError,
                           match=r"someone may be impersonating it.*remove the line"):
            await _client(second, me, pins).connect()
        with pytest.raises(TrackerUnreachableError, match="presented key"):
            await query_room("127.0.0.1", port, "lobby", pins=KnownTrackers(pins))
        # HOST:PORT#FINGERPRINT: held to what the user gave from the first contact.
        with pytest.raises(TrackerUnreachableError, match="not the sha256:00 you gave"):
            await _client(second, me, tmp_path / "fresh",
                          fingerprint="sha256:00").connect()
        given = _client(second, me, tmp_path / "fresh2",
                        fingerprint=second.identity.fingerprint)
        peers = await given.connect()
        assert isinstance(peers, PeerList)
        await given.close()


async def test_a_plaintext_client_cannot_talk_to_a_tls_tracker(
        tracker: TrackerServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", tracker.address[1])
    writer.write(encode(Register(Identity.generate().peer_id, "x", "lobby", None, None)))
    async with asyncio.timeout(WAIT_S):
        data = await reader.read()
    assert not data.startswith(limits.MAGIC)  # a TLS alert or nothing: never a reply
    assert tracker.state.rooms() == []  # it never registered
    writer.close()
