"""Unit tests of the tracker's sans-IO state: time is injected, nothing sleeps."""

from __future__ import annotations

import itertools

import pytest

from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.messages import (
    Bye,
    Chat,
    Error,
    Heartbeat,
    Hello,
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
    Unknown,
    VideoFrame,
)
from protocol.records import PeerInfo
from tracker.config import TrackerConfig
from tracker.state import ConnectBack, TrackerState

CFG = TrackerConfig(lease_s=3.0, lease_grace_s=0.0, peer_timeout_s=10.0,
                    update_interval_s=0.5,
                    max_peers_per_room=4, max_connections_per_address=3,
                    max_messages_per_s=10.0, burst_messages=5)


class Granted:
    """Matches a StreamGranted by epoch, lease and echo (its token is random)."""

    def __init__(self, epoch: int, lease_s: float, request_sent_at: float | None = None):
        self.fields = (epoch, lease_s, request_sent_at)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreamGranted) and self.fields == (
            other.epoch, other.lease_s, other.request_sent_at)

    def __repr__(self) -> str:
        return f"Granted{self.fields}"


def new_state(**changes: object) -> TrackerState:
    from dataclasses import replace
    return TrackerState(replace(CFG, **changes))  # type: ignore[arg-type]


def join(state: TrackerState, conn: int, pid: str, *, room: str = "lobby", now: float = 0.0,
         host: str | None = "10.0.0.9", port: int | None = 7000,
         address: str | None = None) -> list[tuple[int, object]]:
    assert state.connect(conn, address or f"10.0.0.{conn}", now) == []
    return state.receive(conn, Register(pid, pid.upper(), room, host, port), now)


def to(out: list[tuple[int, object]], conn: int) -> list[object]:
    return [m for c, m in out if c == conn]


def kinds(out: list[tuple[int, object]]) -> list[tuple[int, str]]:
    return [(c, type(m).__name__) for c, m in out]


# --- registration and peer lists -------------------------------------------------------


def test_register_replies_with_peer_list() -> None:
    state = new_state()
    out = join(state, 1, "a")
    assert len(out) == 1
    conn, reply = out[0]
    assert conn == 1 and isinstance(reply, PeerList)
    assert reply.room == "lobby" and reply.your_id == "a" and reply.epoch == 0
    assert reply.streamer_id is None
    (info,) = reply.peers
    assert (info.id, info.name, info.host, info.port) == ("a", "A", "10.0.0.1", 7000)
    assert (info.reachable, info.role, info.depth, info.free_slots) == (False, "viewer", None, 0)


@pytest.mark.parametrize("host", [None, "0.0.0.0", "::", "", "10.0.0.9", "victim.example"])
def test_listed_and_checked_at_the_seen_address(host: str | None) -> None:
    # Naming another host must not aim the connect-back check (a port scanner) or
    # the room's viewers at it: the tracker only ever uses the address it sees.
    state = new_state()
    out = join(state, 1, "a", host=host, address="192.0.2.7")
    assert to(out, 1)[0].peers[0].host == "192.0.2.7"  # type: ignore[attr-defined]
    assert state.take_checks() == [ConnectBack(1, "a", "192.0.2.7", 7000)]


def test_no_port_means_no_check() -> None:
    state = new_state()
    join(state, 1, "a", host="peer.example", port=None)
    assert state.room_peers("lobby")[0].host == "10.0.0.1"
    assert state.take_checks() == []


def test_second_peer_joins_and_first_gets_a_push() -> None:
    state = new_state()
    join(state, 1, "a")
    out = join(state, 2, "b", now=1.0)
    # b gets its reply; a gets the (immediate, first after quiet) push; b no duplicate.
    assert kinds(out) == [(2, "PeerList"), (1, "PeerList")]
    for conn, msg in out:
        assert [p.id for p in msg.peers] == ["a", "b"]  # type: ignore[attr-defined]
        # The reply names its peer; the push is one object shared by the whole room.
        assert msg.your_id == {1: None, 2: "b"}[conn]  # type: ignore[attr-defined]


def test_pushes_are_coalesced_per_interval() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b", now=1.0)  # pushed at 1.0
    out = state.receive(1, Heartbeat(depth=0, free_slots=4), 1.1)
    assert out == []  # changed, but pushed 0.1 s ago
    out = state.receive(2, Heartbeat(depth=1, free_slots=3, parent_id="a", layer=720), 1.2)
    assert out == []
    assert state.get_timer() == pytest.approx(1.5)
    assert state.handle_timer(1.4) == []
    out = state.handle_timer(1.5)
    assert sorted(kinds(out)) == [(1, "PeerList"), (2, "PeerList")]
    peers = {p.id: p for p in to(out, 1)[0].peers}  # type: ignore[attr-defined]
    assert (peers["a"].depth, peers["a"].free_slots) == (0, 4)
    assert (peers["b"].depth, peers["b"].parent_id, peers["b"].layer) == (1, "a", 720)
    # Nothing else pending (only the idle timers: a was last heard at 1.1).
    assert state.get_timer() == pytest.approx(11.1)


def test_a_large_whole_listed_room_is_pushed_less_often() -> None:
    # A whole list costs each of N peers O(N) to read: a room of 100 peers at 50
    # records per peer per second is pushed at most every 2 s, however many join.
    state = TrackerState(TrackerConfig(update_interval_s=0.5, list_records_per_s=50.0,
                                       max_connections_per_address=200))
    for i in range(100):
        join(state, i + 1, f"p{i}", now=0.0)
    state.handle_timer(0.0)
    pushed_at = []
    t = 0.0
    while t < 10.0:
        t = round(t + 0.1, 1)
        out = join(state, 1000 + int(t * 10), f"late{t}", now=t)  # a join every 0.1 s
        out += state.handle_timer(t)
        if any(c == 1 and isinstance(m, PeerList) for c, m in out):
            pushed_at.append(t)
    gaps = [b - a for a, b in itertools.pairwise(pushed_at)]
    # The room grows from 101 to 200 peers: the gap grows from ~2 s to ~4 s.
    assert len(pushed_at) >= 3 and min(gaps) >= 2.0 - 1e-9
    small = new_state()
    join(small, 1, "a")
    join(small, 2, "b", now=1.0)
    small.receive(1, Heartbeat(depth=0, free_slots=4), 1.1)
    assert small.get_timer() == pytest.approx(1.5)  # a small room: update_interval_s


def test_config_push_interval() -> None:
    cfg = TrackerConfig(update_interval_s=0.5, list_records_per_s=50.0)
    assert cfg.push_interval_s(10) == 0.5 and cfg.push_interval_s(200) == 4.0
    with pytest.raises(ValueError):
        TrackerConfig(list_records_per_s=0)


def test_unchanged_heartbeat_pushes_nothing() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b", now=1.0)
    assert state.receive(1, Heartbeat(), 5.0) == []
    assert state.handle_timer(6.0) == []


def test_rooms_are_separate() -> None:
    state = new_state()
    join(state, 1, "a", room="r1")
    out = join(state, 2, "b", room="r2")
    assert kinds(out) == [(2, "PeerList")]
    assert sorted(state.rooms()) == ["r1", "r2"]


def test_leave_pushes_and_empty_room_disappears() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b", now=1.0)
    out = state.disconnect(2, 5.0)
    assert kinds(out) == [(1, "PeerList")]
    assert [p.id for p in to(out, 1)[0].peers] == ["a"]  # type: ignore[attr-defined]
    assert state.disconnect(2, 5.0) == []  # idempotent
    assert state.disconnect(1, 5.0) == []
    assert state.rooms() == [] and state.connection_count == 0


def test_room_query_does_not_join() -> None:
    state = new_state()
    join(state, 1, "a")
    state.connect(9, "10.0.0.99", 0.0)
    out = state.receive(9, RoomQuery("lobby"), 1.0)
    assert kinds(out) == [(9, "PeerList")]
    reply = out[0][1]
    # A stranger learns the room's name, size and streamer name, not its members.
    assert reply == PeerList("lobby", (), total=1)
    assert len(state.room_peers("lobby")) == 1
    assert state.receive(9, RoomQuery("empty"), 1.0) == [(9, PeerList("empty", ()))]
    assert state.rooms() == ["lobby"]


def test_room_full() -> None:
    state = new_state(max_peers_per_room=2)
    join(state, 1, "a")
    join(state, 2, "b")
    out = join(state, 3, "c")
    assert kinds(out) == [(3, "Error"), (3, "Bye")]
    assert out[0][1] == Error(ErrorCode.ROOM_FULL, "room 'lobby' is full (2 peers)")
    assert out[1][1].code == ErrorCode.ROOM_FULL  # type: ignore[attr-defined]
    assert state.connection_count == 2
    assert kinds(join(state, 4, "d", room="other")) == [(4, "PeerList")]


def test_same_peer_id_replaces_the_old_connection() -> None:
    state = new_state()
    join(state, 1, "a")
    state.receive(1, StreamClaim(), 0.0)
    out = join(state, 2, "a", now=1.0)
    assert to(out, 1) == [Bye("replaced by a newer connection", code=ErrorCode.UNEXPECTED)]
    # The old connection held the lock: it stays until its lease is out (the peer may
    # still be streaming), and the id alone does not take it over (that is a resume).
    assert state.lock("lobby").holder_id == "a"  # type: ignore[union-attr]
    assert any(isinstance(m, StreamDenied) for m in to(state.receive(2, StreamClaim(), 1.5), 2))
    assert state.handle_timer(3.0) and state.lock("lobby") is None
    assert [p.id for p in to(out, 2)[0].peers] == ["a"]  # type: ignore[attr-defined]
    assert state.connection_count == 1


def test_connections_per_address() -> None:
    state = new_state()
    for conn in range(3):
        assert state.connect(conn, "10.1.1.1", 0.0) == []
    (refusal,) = state.connect(3, "10.1.1.1", 0.0)
    assert refusal[0] == 3 and refusal[1].code == ErrorCode.TOO_MANY_CONNECTIONS  # type: ignore[attr-defined]
    assert state.connect(4, "10.1.1.2", 0.0) == []
    state.disconnect(0, 1.0)
    assert state.connect(5, "10.1.1.1", 1.0) == []


def test_total_connections() -> None:
    state = new_state(max_connections=2, max_connections_per_address=5)
    assert state.connect(1, "a", 0.0) == [] and state.connect(2, "b", 0.0) == []
    assert state.connect(3, "c", 0.0)[0][1].code == ErrorCode.TOO_MANY_CONNECTIONS  # type: ignore[attr-defined]


def test_connect_back_result_marks_reachable_and_pushes() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b", now=1.0)
    check_a, check_b = state.take_checks()
    assert state.take_checks() == []
    out = state.check_done(check_a, True, 2.0)
    assert sorted(kinds(out)) == [(1, "PeerList"), (2, "PeerList")]
    assert {p.id: p.reachable for p in state.room_peers("lobby")} == {"a": True, "b": False}
    assert state.check_done(check_b, False, 3.0) == []  # no change, no push
    state.disconnect(2, 4.0)
    assert state.check_done(check_b, True, 5.0) == []  # registration gone


def test_connect_back_for_a_replaced_registration_is_ignored() -> None:
    state = new_state()
    join(state, 1, "a", port=7000)
    (old,) = state.take_checks()
    state.disconnect(1, 1.0)
    join(state, 1, "a", port=7001, now=2.0)  # connection id reused, new port
    state.check_done(old, True, 3.0)
    assert state.room_peers("lobby")[0].reachable is False


# --- limits and protocol misuse ----------------------------------------------------------


def test_rate_limit_token_bucket() -> None:
    state = new_state()
    join(state, 1, "a")  # 1 token used of 5
    for _ in range(4):
        assert state.receive(1, Heartbeat(), 0.0) == []
    out = state.receive(1, Heartbeat(), 0.0)
    assert out[0] == (1, Bye("more than 10 messages per second", code=ErrorCode.RATE_LIMITED))
    assert state.connection_count == 0


def test_rate_limit_refills_over_time() -> None:
    state = new_state()
    join(state, 1, "a")
    now = 0.0
    for _ in range(200):  # 10/s is exactly the refill rate: never limited
        now += 0.1
        assert state.receive(1, Heartbeat(), now) == []


def test_idle_connection_is_closed() -> None:
    state = new_state(register_timeout_s=60.0)  # the idle timeout alone
    state.connect(1, "10.0.0.1", 0.0)  # never says anything (half-open)
    join(state, 2, "b", now=0.0)
    state.receive(2, Heartbeat(), 5.0)
    assert state.get_timer() == pytest.approx(10.0)
    assert state.handle_timer(9.9) == []
    out = state.handle_timer(10.0)
    assert out == [(1, Bye("silent for 10 s", code=ErrorCode.TIMEOUT))]
    out = state.handle_timer(15.0)
    assert out[0] == (2, Bye("silent for 10 s", code=ErrorCode.TIMEOUT))
    assert state.connection_count == 0 and state.rooms() == []


def test_a_timer_run_at_its_due_time_does_what_was_due() -> None:
    # 0.2106... + 10 - 10 < 0.2106... in floating point: a deadline checked as
    # "last_seen <= now - timeout" was not yet due at the time get_timer named, so the
    # adapter's timer fired again and again at the same instant (the simulator hung).
    heard_at = 0.21060533511106927
    assert heard_at + 10.0 - 10.0 < heard_at
    state = new_state(register_timeout_s=10.0)
    state.connect(1, "10.0.0.1", heard_at)  # never registers
    join(state, 2, "b", now=0.0)
    state.receive(2, Heartbeat(), heard_at)
    due = state.get_timer()
    assert due == heard_at + 10.0
    out = state.handle_timer(due)
    assert kinds(out) == [(1, "Bye"), (2, "Bye")]
    assert state.get_timer() is None


@pytest.mark.parametrize("message", [
    Hello("x", "x", "lobby"),
    VideoFrame(1, 1, 0.0, 2, 2, 360, b"x"),
    Chat("a:1", "a", "A", 0.0, "hi"),
    PeerList("lobby", ()),
    StreamGranted(1, 1.0),
    StreamDenied("a", "A"),
    StreamerChanged(None, None, 0),
])
def test_peer_kinds_are_unexpected(message: object) -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b")
    out = state.receive(1, message, 1.0)  # type: ignore[arg-type]
    assert out[0] == (1, Bye(f"{type(message).__name__} is not a tracker message",
                             code=ErrorCode.UNEXPECTED))
    assert [p.id for p in state.room_peers("lobby")] == ["b"]


@pytest.mark.parametrize("message", [Heartbeat(), StreamClaim(), StreamRelease()])
def test_lock_and_heartbeat_need_registration(message: object) -> None:
    state = new_state()
    state.connect(1, "10.0.0.1", 0.0)
    (out,) = state.receive(1, message, 0.0)  # type: ignore[arg-type]
    assert out[1].code == ErrorCode.UNEXPECTED  # type: ignore[attr-defined]


def test_register_twice_and_bad_versions() -> None:
    state = new_state()
    join(state, 1, "a")
    out = state.receive(1, Register("a", "A", "lobby", None, None), 0.0)
    assert out[0] == (1, Bye("already registered", code=ErrorCode.UNEXPECTED))
    state.connect(2, "10.0.0.2", 0.0)
    out = state.receive(2, Register("b", "B", "lobby", None, None, versions=(99,)), 0.0)
    assert out[0][1].code == ErrorCode.BAD_VERSION  # type: ignore[attr-defined]


def test_unknown_kinds_error_and_ping_are_harmless() -> None:
    state = new_state()
    join(state, 1, "a")
    assert state.receive(1, Unknown(99, {"x": 1}, b""), 0.0) == []
    assert state.receive(1, Error(1, "meh"), 0.0) == []
    assert state.receive(1, Ping(4.5), 2.0) == [(1, Pong(4.5, 2.0, 2.0))]
    assert state.connection_count == 1


def test_bye_from_peer_leaves_quietly() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b", now=1.0)
    out = state.receive(2, Bye("bye"), 5.0)
    assert kinds(out) == [(1, "PeerList")]
    assert state.receive(2, Heartbeat(), 5.0) == []  # gone: late input ignored


# --- streamer lock -----------------------------------------------------------------------


def test_claim_grant_deny_and_announce() -> None:
    state = new_state()
    join(state, 1, "a", host="10.0.0.1", port=7001)
    join(state, 2, "b", now=1.0)
    out = state.receive(1, StreamClaim(), 2.0)
    announce = StreamerChanged("a", "A", 1, "10.0.0.1", 7001)
    assert to(out, 1) == [announce, Granted(1, 3.0), to(out, 1)[2]]
    assert to(out, 2) == [announce, to(out, 2)[1]]
    peer_list = to(out, 2)[1]
    assert peer_list.streamer_id == "a" and peer_list.epoch == 1  # type: ignore[attr-defined]
    assert {p.id: p.role for p in peer_list.peers} == {"a": "streamer", "b": "viewer"}  # type: ignore[attr-defined]
    assert state.receive(2, StreamClaim(), 2.1) == [(2, StreamDenied("a", "A"))]
    # Idempotent for the holder: same epoch back.
    assert state.receive(1, StreamClaim(), 2.2) == [(1, Granted(1, 3.0))]


def test_heartbeat_renews_and_confirms_only_for_the_holder() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b")
    state.receive(1, StreamClaim(), 0.0)
    assert sorted(kinds(state.handle_timer(0.5))) == [(1, "PeerList"), (2, "PeerList")]
    now = 0.0
    for _ in range(10):  # well past the 3 s lease, renewed every 2 s
        now += 2.0
        assert state.handle_timer(now) == []
        assert state.receive(1, Heartbeat(), now) == [(1, Granted(1, 3.0))]
        assert state.receive(2, Heartbeat(), now) == []
    assert state.lock("lobby").expires_at == pytest.approx(now + 3.0)  # type: ignore[union-attr]


def test_grants_echo_the_request_time() -> None:
    state = new_state()
    join(state, 1, "a")
    out = state.receive(1, StreamClaim(sent_at=41.5), 0.0)
    assert Granted(1, 3.0, 41.5) in to(out, 1)
    assert to(state.receive(1, Heartbeat(sent_at=42.5), 1.0), 1)[0] == Granted(1, 3.0, 42.5)


def test_lease_expires_without_messages() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b")
    state.receive(1, StreamClaim(), 0.0)
    assert state.get_timer() == pytest.approx(0.5)  # the coalesced push of the new role
    state.handle_timer(0.5)
    assert state.get_timer() == pytest.approx(3.0)
    assert state.handle_timer(2.9) == []
    out = state.handle_timer(3.0)
    ended = StreamerChanged(None, None, 1)
    assert to(out, 1)[0] == ended and to(out, 2)[0] == ended
    assert state.lock("lobby") is None
    # The ex-holder's heartbeat gets no renewal; b can claim with a higher epoch.
    assert state.receive(1, Heartbeat(), 3.1) == []
    assert to(state.receive(2, StreamClaim(), 3.2), 2)[1] == Granted(2, 3.0)


def test_claim_after_expiry_succeeds_before_the_timer_runs() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b")
    state.receive(1, StreamClaim(), 0.0)
    out = state.receive(2, StreamClaim(), 10.0)  # no handle_timer since
    assert Granted(2, 3.0) in to(out, 2)
    assert StreamerChanged(None, None, 1) in to(out, 1)
    assert StreamerChanged("b", "B", 2, "10.0.0.2", 7000) in to(out, 1)


def test_release_and_disconnect_free_the_lock() -> None:
    state = new_state()
    join(state, 1, "a")
    join(state, 2, "b")
    state.receive(1, StreamClaim(), 0.0)
    assert state.receive(2, StreamRelease(), 0.1) == []  # not the holder: no-op
    out = state.receive(1, StreamRelease(), 0.2)
    assert StreamerChanged(None, None, 1) in to(out, 2)
    state.receive(2, StreamClaim(), 0.3)
    # A holder that disconnects keeps the lock until its lease is out.
    state.disconnect(2, 0.4)
    assert state.lock("lobby") is not None
    out = state.handle_timer(3.3)
    assert to(out, 1)[0] == StreamerChanged(None, None, 2)


def test_epochs_never_reused_after_the_room_empties() -> None:
    state = new_state()
    join(state, 1, "a")
    state.receive(1, StreamClaim(), 0.0)
    state.disconnect(1, 1.0)
    state.handle_timer(3.0)  # the lease is out
    assert state.rooms() == []
    join(state, 2, "b", now=3.0)
    out = state.receive(2, StreamClaim(), 3.0)
    assert Granted(2, 3.0) in to(out, 2)
    join(state, 3, "c", room="other", now=3.0)
    assert Granted(3, 3.0) in to(state.receive(3, StreamClaim(), 3.0), 3)


def test_new_peer_sees_the_current_streamer() -> None:
    state = new_state()
    join(state, 1, "a")
    state.receive(1, StreamClaim(), 0.0)
    reply = to(join(state, 2, "b", now=0.5), 2)[0]
    assert (reply.streamer_id, reply.streamer_name, reply.epoch) == ("a", "A", 1)  # type: ignore[attr-defined]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_peers_per_room"):
        TrackerConfig(max_peers_per_room=100_001)
    TrackerConfig(max_peers_per_room=100_000)
    with pytest.raises(ValueError, match="full_list_peers"):
        TrackerConfig(full_list_peers=257)
    with pytest.raises(ValueError, match="candidates"):
        TrackerConfig(candidates=255)
    with pytest.raises(ValueError, match="refresh_s"):
        TrackerConfig(refresh_s=0)
    with pytest.raises(ValueError, match="lease_s"):
        TrackerConfig(lease_s=0)
    with pytest.raises(ValueError, match="burst_messages"):
        TrackerConfig(burst_messages=0)


# --- relay peers (issue 15 item 5) ---------------------------------------------------------


def _large_room_state() -> TrackerState:
    # full_list_peers=2: every room here is "large", so the tracker picks the candidates.
    return new_state(full_list_peers=2, candidates=2, max_peers_per_room=50,
                     max_connections_per_address=50, reserve_s=0.0)


def _seat(state: TrackerState, conn: int, pid: str, *, depth: int, free: int,
          relay: bool = False, reachable: bool = True) -> None:
    assert state.connect(conn, f"192.0.2.{conn}", 0.0) == []
    state.receive(conn, Register(pid, pid, "lobby", None, 7000, relay=relay), 0.0)
    for check in state.take_checks():
        state.check_done(check, reachable, 0.0)
    state.receive(conn, Heartbeat(depth=depth, free_slots=free, parent_id=None, layer=720),
                  0.0)


def _offered(state: TrackerState, conn: int, pid: str) -> list[tuple[str, bool]]:
    assert state.connect(conn, f"192.0.2.{conn}", 1.0) == []
    (reply,) = to(state.receive(conn, Register(pid, pid, "lobby", None, 7000), 1.0), conn)
    assert isinstance(reply, PeerList)
    return [(p.id, p.relay) for p in reply.peers if p.id != pid]


def test_relay_peers_are_offered_first_then_the_freest() -> None:
    state = _large_room_state()
    _seat(state, 1, "root", depth=0, free=0)
    _seat(state, 2, "home-a", depth=1, free=1)
    _seat(state, 3, "home-b", depth=1, free=3)
    _seat(state, 4, "relay", depth=2, free=16, relay=True)
    # The relay first although it sits deeper; then the freer of the shallowest level.
    assert _offered(state, 9, "joiner") == [("relay", True), ("home-b", False)]


def test_without_relay_peers_the_freest_of_the_shallowest_level_comes_first() -> None:
    state = _large_room_state()
    _seat(state, 1, "root", depth=0, free=0)
    _seat(state, 2, "home-a", depth=1, free=1)
    _seat(state, 3, "home-b", depth=1, free=3)
    _seat(state, 4, "deep", depth=2, free=16)
    assert _offered(state, 9, "joiner") == [("home-b", False), ("home-a", False)]


def test_claiming_to_be_a_relay_gains_an_unreachable_or_full_peer_nothing() -> None:
    """The attacker: a peer that says it is a relay but cannot be dialled (or is full)
    is never offered; the connect-back and its slots decide, not the claim."""
    state = _large_room_state()
    _seat(state, 1, "root", depth=0, free=1)
    _seat(state, 2, "liar", depth=1, free=16, relay=True, reachable=False)
    _seat(state, 3, "full", depth=1, free=0, relay=True)
    assert _offered(state, 9, "joiner") == [("root", False)]
    # A relay that fills up leaves the relay index and a freed one comes back.
    state.receive(3, Heartbeat(depth=1, free_slots=5, parent_id=None, layer=720), 2.0)
    assert _offered(state, 10, "second")[0] == ("full", True)


def test_register_carries_the_relay_role_and_older_peers_are_not_relays() -> None:
    message = Register("r", "R", "lobby", None, 7000, relay=True)
    meta = message.to_meta()
    assert meta["relay"] is True
    assert Register.from_meta(meta, b"").relay is True
    del meta["relay"]
    assert Register.from_meta(meta, b"").relay is False
    with pytest.raises(RemoteProtocolError, match="relay"):
        Register.from_meta({**meta, "relay": 1}, b"")
    # Lists name relay peers (the key is left out for the others).
    listed = PeerInfo("r", "R", "192.0.2.1", 7000, 1, 16, True, relay=True)
    assert PeerInfo.from_meta(listed.to_meta()) == listed
    plain = PeerInfo("v", "V", "192.0.2.2", 7000, 1, 3, True)
    assert "relay" not in plain.to_meta()
    assert PeerInfo.from_meta(plain.to_meta()) == plain
