"""The tracker's room list (the start screen's room browser, ``treecast-peer --list
--tracker``): busiest rooms first, bounded, and nothing about who is in them."""

from __future__ import annotations

from protocol import limits
from protocol.messages import Register, RoomList, RoomListQuery, StreamClaim
from protocol.records import RoomSummary
from tests.test_tracker_state import join, new_state, to


def test_room_list_names_rooms_streamers_and_sizes_only() -> None:
    state = new_state()
    join(state, 1, "a", room="lobby")
    join(state, 2, "b", room="lobby")
    join(state, 3, "c", room="movies")
    state.receive(3, StreamClaim(), 0.5)
    state.connect(9, "10.0.0.99", 1.0)
    out = state.receive(9, RoomListQuery(), 1.0)
    assert out == [(9, RoomList((RoomSummary("lobby", None, 2),
                                 RoomSummary("movies", "C", 1)), total=2))]
    # Asking does not join anything.
    assert state.rooms() == ["lobby", "movies"]
    assert state.receive(9, RoomListQuery(), 1.0) == out


def test_room_list_is_bounded_however_many_rooms() -> None:
    state = new_state()
    rooms = limits.MAX_LISTED_ROOMS + 20
    for index in range(rooms):
        conn = 100 + index
        address = f"10.{index // 250}.{index % 250}.1"
        assert state.connect(conn, address, 0.0) == []
        state.receive(conn, Register(f"p{index}", f"P{index}", f"room-{index:03d}",
                                     "10.0.0.9", 7000), 0.0)
    # One busy room: it comes first.
    state.connect(9000, "10.200.0.1", 0.0)
    state.receive(9000, Register("extra", "Extra", "room-077", "10.0.0.9", 7000), 0.0)
    state.connect(9, "10.0.0.99", 0.0)
    [reply] = to(state.receive(9, RoomListQuery(), 0.0), 9)
    assert isinstance(reply, RoomList)
    assert len(reply.rooms) == limits.MAX_LISTED_ROOMS and reply.total == rooms
    assert reply.rooms[0] == RoomSummary("room-077", None, 2)


async def test_peer_list_command_prints_a_trackers_rooms(capsys) -> None:
    import asyncio

    from peer.node import cli
    from peer.node.errors import ExitCode
    from tests.test_tracker_server import CFG, register
    from tracker.server import TrackerServer

    async with TrackerServer(CFG, host="127.0.0.1", port=0) as server:
        port = server.address[1]
        a, _ = await register(port, "a", room="den")
        b, _ = await register(port, "b", room="den")
        # The command runs its own event loop: give it a thread.
        # The test tracker speaks plaintext (the raw-protocol helpers above need it).
        code = await asyncio.to_thread(cli.main, ["--list", "--tracker", f"127.0.0.1:{port}",
                                                  "--no-tls"])
        await a.close()
        await b.close()
    assert code == ExitCode.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ROOM", "STREAMER", "VIEWERS"]
    assert lines[1].split() == ["den", "-", "2"]


def test_peer_list_command_says_when_the_tracker_is_unreachable(capsys) -> None:
    import socket

    from peer.node import cli
    from peer.node.errors import ExitCode

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = cli.main(["--list", "--tracker", f"127.0.0.1:{port}"])
    assert code == ExitCode.NO_TRACKER
    assert "cannot reach tracker" in capsys.readouterr().err


async def test_peer_list_command_over_tls_by_default(capsys) -> None:
    import asyncio
    from dataclasses import replace

    from peer.node import cli
    from peer.node.errors import ExitCode
    from tests.test_tracker_server import CFG
    from tracker.server import TrackerServer

    async with TrackerServer(replace(CFG, tls=True), host="127.0.0.1", port=0) as server:
        port = server.address[1]
        code = await asyncio.to_thread(cli.main, ["--list", "--tracker", f"127.0.0.1:{port}"])
    assert code == ExitCode.OK
    assert capsys.readouterr().out.strip() == "The tracker has no rooms."
