"""Private rooms: only peers with the passphrase can join, see, chat or watch.

The tracker stores an opaque id and hides the room; peers hold each other to the
passphrase in their Hellos. Attackers: a stranger who learned the room's id (but not
its passphrase), a member's proof replayed on another link, a wrong passphrase.
"""

from __future__ import annotations

import asyncio

import pytest

from peer.node.cli import build_parser, config_from_args
from peer.node.config import NodeConfig, PatternSource, Timing
from peer.node.node import Node
from protocol import Accept, Bye, FrameDecoder, Hello, JoinRequest, encode
from protocol.identity import Identity
from protocol.messages import PeerList, Register, RoomList, RoomListQuery, RoomQuery
from protocol.private_room import is_private, link_key, member_proof, room_id, stretch
from tests.support.procs import session, wait_for
from tests.support.tls_client import tls_connect
from tests.test_node_links import StandInDirectory, _read_until
from tracker.config import TrackerConfig
from tracker.state import TrackerState

SECRET = stretch("lobby\0correct horse battery staple")
ROOM = room_id(SECRET)


def test_the_room_id_and_proofs_come_from_the_passphrase() -> None:
    assert is_private(ROOM) and len(ROOM) <= 32
    assert room_id(stretch("lobby\0correct horse battery staple")) == ROOM
    assert room_id(stretch("lobby\0wrong")) != ROOM
    assert room_id(stretch("other\0correct horse battery staple")) != ROOM
    key = link_key(SECRET)
    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    proofs = {member_proof(key, "dialler", a, b), member_proof(key, "listener", a, b),
              member_proof(key, "dialler", b, a), member_proof(link_key(stretch("x")),
                                                               "dialler", a, b)}
    assert len(proofs) == 4  # bound to role, to both ends and to the passphrase


def test_the_cli_joins_a_private_room_by_passphrase(tmp_path) -> None:
    (tmp_path / "pw").write_text("correct horse battery staple\n")
    for argv in (["--secret", "correct horse battery staple"],
                 ["--secret-file", str(tmp_path / "pw")]):
        config = config_from_args(build_parser().parse_args(["--name", "a", *argv]))
        assert config.room == ROOM and config.room_secret == SECRET
    with pytest.raises(ValueError, match="needs TLS"):
        config_from_args(build_parser().parse_args(["--name", "a", "--secret", "x",
                                                    "--no-tls"]))
    with pytest.raises(ValueError, match="cannot start with"):
        NodeConfig(name="a", room="~sneaky")


def test_the_tracker_hides_private_rooms_from_strangers() -> None:
    state = TrackerState(TrackerConfig())
    for conn, room in ((1, ROOM), (2, "public")):
        state.connect(conn, f"10.0.0.{conn}", 0.0)
        state.receive(conn, Register(f"p{conn}", f"P{conn}", room, None, None), 0.0)
    state.connect(9, "10.0.0.9", 0.0)
    [(_, rooms)] = [o for o in state.receive(9, RoomListQuery(), 1.0) if o[0] == 9]
    assert isinstance(rooms, RoomList)
    assert [r.room for r in rooms.rooms] == ["public"] and rooms.total == 1
    [(_, view)] = [o for o in state.receive(9, RoomQuery(ROOM), 1.0) if o[0] == 9]
    assert view == PeerList(ROOM, ())  # not even its size


async def test_a_stranger_with_the_room_id_but_not_the_passphrase_is_refused() -> None:
    events: list[object] = []
    config = NodeConfig(name="me", room=ROOM, room_secret=SECRET, listen_host="127.0.0.1",
                        source=PatternSource(320, 180, 10.0), timing=Timing(link_timeout_s=5.0))
    node = Node(config, events.append, directory_factory=lambda n: StandInDirectory())
    await node.start()
    try:
        assert node.listen is not None
        port = node.listen[1]
        stranger, member = Identity.generate(), Identity.generate()
        # The stranger learned the id (say, from a member's screen) and says it.
        reader, writer, _ = await tls_connect(port, stranger)
        writer.write(encode(Hello(stranger.peer_id, "s", ROOM)) + encode(JoinRequest(360)))
        bye = await _read_until(reader, Bye)
        assert isinstance(bye, Bye) and "not a member" in bye.reason
        writer.close()
        # It replays a member's proof made for another link: bound to other ids.
        other = member_proof(link_key(SECRET), "dialler", Identity.generate().peer_id,
                             member.peer_id)
        reader, writer, _ = await tls_connect(port, stranger)
        writer.write(encode(Hello(stranger.peer_id, "s", ROOM, member=other))
                     + encode(JoinRequest(360)))
        bye = await _read_until(reader, Bye)
        assert isinstance(bye, Bye) and "not a member" in bye.reason
        writer.close()
        # A member proves the passphrase and is accepted; the node proves it back.
        reader, writer, _ = await tls_connect(port, member)
        proof = member_proof(link_key(SECRET), "dialler", node.peer_id, member.peer_id)
        writer.write(encode(Hello(member.peer_id, "m", ROOM, member=proof))
                     + encode(JoinRequest(360)))
        got: list[object] = []
        decoder = FrameDecoder()
        async with asyncio.timeout(20):
            while not any(isinstance(m, Accept) for m in got):
                decoder.receive_data(await reader.read(65536))
                got += list(decoder)
        [hello] = [m for m in got if isinstance(m, Hello)]
        assert hello.member == member_proof(link_key(SECRET), "listener", node.peer_id,
                                            member.peer_id)
        writer.close()
    finally:
        await node.stop()


@pytest.mark.slow
def test_a_private_room_streams_to_members_only() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--secret", "open sesame")
        assert wait_for(lambda: root.last("stream_started"), 30)
        member = s.start_peer("member", "--watch", "--secret", "open sesame")
        wrong = s.start_peer("wrong", "--watch", "--secret", "open barley")
        public = s.start_peer("public", "--watch")
        assert wait_for(lambda: (member.last("stats") or {}).get("frames", 0) >= 10, 60)
        # The others are in rooms of their own (other ids): no streamer, no frames.
        for outsider in (wrong, public):
            assert outsider.last("joined") is None
            assert (outsider.last("stats") or {}).get("frames", 0) == 0
