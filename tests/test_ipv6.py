"""IPv6: address text in and out, dual-stack listeners, a tracker and peers on [::1]."""

from __future__ import annotations

import asyncio
import socket

import pytest

from peer.lan.listen import listen_socket
from peer.node.cli import build_parser
from peer.node.config import parse_trackers
from protocol.addresses import AddressError, join_host_port, plain_host, split_host_port
from protocol.framing import FrameDecoder, encode
from protocol.messages import PeerList, Register
from tests.support.procs import Peer, session, wait_for
from tracker.config import TrackerConfig
from tracker.server import TrackerServer

WAIT_S = 20.0  # only reached when something is broken


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(),
                                reason="this system has no IPv6 loopback (::1)")


# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.1:7000", ("192.0.2.1", 7000)),
    ("tracker.example:7700", ("tracker.example", 7700)),
    ("[2001:db8::1]:7000", ("2001:db8::1", 7000)),
    ("[::1]:1", ("::1", 1)),
    ("[::ffff:192.0.2.1]:65535", ("::ffff:192.0.2.1", 65535)),
    ("[fe80::1%eth0]:7000", ("fe80::1%eth0", 7000)),  # a link-local address and its scope
])
def test_split_reads_ipv4_names_and_bracketed_ipv6(text: str,
                                                     expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected
    assert split_host_port(join_host_port(*expected)) == expected


@pytest.mark.parametrize("text", [
    "",                          # nothing
    "7000",                      # no host
    ":7000",                     # empty host
    "2001:db8::1:7000",          # IPv6 without brackets: which part is the port?
    "::1",                       # ditto
    "[2001:db8::1]",             # no port
    "[2001:db8::1]7000",         # no colon after the bracket
    "[]:7000",                   # empty brackets
    "[192.0.2.1]:7000",          # brackets around IPv4
    "[2001:db8::zz]:7000",       # not an IPv6 address
    "[2001:db8::1:7000",         # bracket never closed
    "2001:db8::1]:7000",         # bracket never opened
    "host:",                     # empty port
    "host:70000",                # port out of range
    "host:0",                    # port 0 is no dialable port
    "host:-1",
    "host:+80",
    "host:0x50",
    "host: 80",
    "host:\u0667\u0660\u0660\u0660",  # digits of another script (Arabic-Indic 7000)
    "host:000000000000007000",   # absurdly long digit string
    "ho st:7000",                # whitespace inside
    "host\n:7000",
    "user@host:7000",            # not a URL
    "host/path:7000",
    "a,b:7000",
    "x" * 300 + ":7000",         # too long to be any host
    "[" * 100 + ":7000",
])
def test_split_refuses_hostile_text_with_a_reason(text: str) -> None:
    with pytest.raises(AddressError) as info:
        split_host_port(text)
    assert str(info.value)


def test_port_zero_only_where_asked_for() -> None:
    assert split_host_port("[::]:0", allow_port_zero=True) == ("::", 0)
    with pytest.raises(AddressError):
        split_host_port("[::]:0")


def test_join_brackets_ipv6_only() -> None:
    assert join_host_port("2001:db8::1", 7000) == "[2001:db8::1]:7000"
    assert join_host_port("192.0.2.1", 7000) == "192.0.2.1:7000"
    assert join_host_port("::", 0) == "[::]:0"


def test_plain_host_unmaps_ipv4_and_leaves_the_rest() -> None:
    assert plain_host("::ffff:192.0.2.1") == "192.0.2.1"
    assert plain_host("::FFFF:127.0.0.1") == "127.0.0.1"
    assert plain_host("::ffff:nonsense") == "::ffff:nonsense"
    assert plain_host("2001:db8::1") == "2001:db8::1"
    assert plain_host("192.0.2.1") == "192.0.2.1"
    assert plain_host("tracker.example") == "tracker.example"


def test_cli_and_tracker_lists_take_ipv6() -> None:
    args = build_parser().parse_args(["--listen", "[::1]:0", "--tracker",
                                      "[2001:db8::1]:7700,192.0.2.7:7700"])
    assert args.listen == ("::1", 0)
    assert parse_trackers("[2001:db8::1]:7700,192.0.2.7:7700") == (
        ("2001:db8::1", 7700), ("192.0.2.7", 7700))
    assert build_parser().parse_args([]).listen == ("::", 0)  # dual-stack by default
    with pytest.raises(ValueError, match="brackets"):
        parse_trackers("2001:db8::1:7700")


def test_cli_refuses_a_bad_listen_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--listen", "::1:7000"])
    assert "brackets" in capsys.readouterr().err


# --- listeners --------------------------------------------------------------------------


@needs_ipv6
def test_wildcard_listener_takes_ipv4_and_ipv6_on_one_port() -> None:
    server = listen_socket("::", 0)
    try:
        server.setblocking(True)
        server.settimeout(WAIT_S)
        port = server.getsockname()[1]
        seen = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_STREAM) as client:
                client.settimeout(WAIT_S)
                client.connect((host, port))
                conn, address = server.accept()
                conn.close()
                seen.append(plain_host(address[0]))
        assert seen == ["127.0.0.1", "::1"]
    finally:
        server.close()


@needs_ipv6
def test_a_specific_ipv6_address_listens_there_only() -> None:
    server = listen_socket("::1", 0)
    try:
        port = server.getsockname()[1]
        assert server.family == socket.AF_INET6
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client, \
                pytest.raises(ConnectionRefusedError):
            client.settimeout(WAIT_S)
            client.connect(("127.0.0.1", port))
    finally:
        server.close()


# --- the tracker, dual-stack ------------------------------------------------------------


async def _register(host: str, port: int, pid: str, listen_port: int) -> asyncio.StreamWriter:
    async with asyncio.timeout(WAIT_S):
        reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Register(pid, pid, "lobby", None, listen_port)))
    await writer.drain()
    decoder = FrameDecoder()
    async with asyncio.timeout(WAIT_S):
        while True:
            data = await reader.read(65536)
            assert data, "tracker closed the connection"
            decoder.receive_data(data)
            if any(isinstance(m, PeerList) for m in decoder):
                return writer


@needs_ipv6
async def test_dual_stack_tracker_lists_each_family_as_itself_and_checks_it_back() -> None:
    cfg = TrackerConfig(tls=False, connect_back_timeout_s=2.0)
    async with TrackerServer(cfg, host="::", port=0) as tracker:
        port = tracker.address[1]
        v4 = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
        v6 = await asyncio.start_server(lambda _r, w: w.close(), "::1", 0)
        writers = []
        try:
            writers.append(await _register("127.0.0.1", port, "four",
                                           v4.sockets[0].getsockname()[1]))
            writers.append(await _register("::1", port, "six",
                                           v6.sockets[0].getsockname()[1]))

            async def checked() -> None:
                while not all(p.reachable for p in tracker.state.room_peers("lobby")):
                    await asyncio.sleep(0.02)  # polls in-process state, bounded below

            async with asyncio.timeout(WAIT_S):
                await checked()
            # Not "::ffff:127.0.0.1": IPv4-only peers must be able to dial what is listed.
            assert {p.id: p.host for p in tracker.state.room_peers("lobby")} == \
                {"four": "127.0.0.1", "six": "::1"}
        finally:
            for writer in writers:
                writer.close()
            for server in (v4, v6):
                server.close()
                await server.wait_closed()


# --- end to end on [::1] ----------------------------------------------------------------


def _frames(peer: Peer) -> int:
    return int((peer.last("stats") or {}).get("frames", 0))


@needs_ipv6
@pytest.mark.slow
def test_tracker_and_peers_stream_over_ipv6_loopback() -> None:
    with session() as s:
        port = s.start_tracker(host="::1")
        tracker = f"[::1]:{port}"
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--max-children", "1", tracker=tracker, listen="[::1]:0")
        assert wait_for(lambda: root.last("stream_started"), 60), root.proc.stderr
        ready = root.last("ready")
        assert ready is not None and ready["listen"].startswith("[::1]:")
        # One child each: the second viewer must dial the first at its IPv6 address.
        first = s.start_peer("first", "--watch", "--max-children", "1",
                             tracker=tracker, listen="[::1]:0")
        assert wait_for(lambda: _frames(first) >= 10, 60), first.last("stats")
        second = s.start_peer("second", "--watch", "--max-children", "1",
                              tracker=tracker, listen="[::1]:0")
        assert wait_for(lambda: _frames(second) >= 20, 60), second.last("stats")
        assert (second.last("stats") or {})["depth"] == 2
        assert (first.last("stats") or {})["reachability"] == "direct"


def test_tracker_status_takes_bracketed_ipv6_and_refuses_the_ambiguous_form(
        capsys: pytest.CaptureFixture[str]) -> None:
    from tracker.__main__ import build_parser as tracker_parser
    from tracker.__main__ import main
    with pytest.raises(SystemExit) as info:
        main(["--status", "::1:7700"])
    assert info.value.code == 2
    assert "brackets" in capsys.readouterr().err
    assert tracker_parser().parse_args(["--host", "[::1]"]).host == "::1"
    assert tracker_parser().parse_args([]).host == "::"  # dual-stack by default


@needs_ipv6
async def test_tracker_status_answers_over_ipv6() -> None:
    from tracker.status import query_status
    async with TrackerServer(TrackerConfig(tls=False), host="::1", port=0) as tracker:
        status = await query_status("::1", tracker.address[1], tls=False)
    assert status.store_ok


def test_a_shared_listening_port_is_still_refused_when_in_use() -> None:
    # Peers' listeners allow SO_REUSEPORT (hole punches dial out from them), yet a
    # second listener on a port in use must fail as before.
    import socket as _socket

    from peer.lan.listen import listen_socket as _listen

    first = _listen("127.0.0.1", 0, reuse_port=True)
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError):
            _listen("127.0.0.1", port, reuse_port=True).close()
        punch = _socket.socket()
        punch.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
        punch.bind(("127.0.0.1", port))  # a punch's socket may share it
        punch.close()
    finally:
        first.close()
