"""The tracker's part in TCP hole punching (tracker/state.py ``_punch``), sans-IO.

Two registered peers nobody can dial get each other's listed address and one moment;
everything else is refused with an Error and the target hears nothing. A hostile client
that floods requests or names arbitrary ids is bounded, and cannot make one peer dial
out more than ``punch_invites_per_s``.
"""

from __future__ import annotations

from dataclasses import replace

from protocol.errors import ErrorCode
from protocol.messages import Error, Heartbeat, PunchRequest, PunchStart, Register
from tracker.config import TrackerConfig
from tracker.state import TrackerState

CFG = TrackerConfig(max_messages_per_s=1000.0, burst_messages=1000,
                    punch_requests_per_s=2.0, punch_invites_per_s=4.0, punch_burst=4,
                    punch_delay_s=0.1)


def room(n: int, *, reachable: tuple[bool, ...] | None = None,
         **changes: object) -> TrackerState:
    """``n`` peers p1..pn on conns 1..n at 203.0.113.<i>:700<i>, all in the tree
    (depth 1) and, unless told otherwise, found unreachable by the connect-back."""
    state = TrackerState(replace(CFG, **changes))  # type: ignore[arg-type]
    for i in range(1, n + 1):
        assert state.connect(i, f"203.0.113.{i}", 0.0) == []
        state.receive(i, Register(f"p{i}", f"P{i}", "lobby", None, 7000 + i), 0.0)
        state.receive(i, Heartbeat(depth=1, free_slots=2), 0.0)
    for check in state.take_checks():
        ok = reachable[check.conn - 1] if reachable is not None else False
        state.check_done(check, ok, 0.0)
    return state


def starts(out: list[tuple[int, object]]) -> list[tuple[int, PunchStart]]:
    return [(c, m) for c, m in out if isinstance(m, PunchStart)]


def errors(out: list[tuple[int, object]]) -> list[tuple[int, Error]]:
    return [(c, m) for c, m in out if isinstance(m, Error)]


def test_both_sides_get_the_others_observed_address_and_one_moment() -> None:
    state = room(2)
    out = state.receive(1, PunchRequest("p2"), 1.0)
    assert starts(out) == [
        (1, PunchStart("p2", "P2", "203.0.113.2", 7002, 100, requester=True)),
        (2, PunchStart("p1", "P1", "203.0.113.1", 7001, 100, requester=False)),
    ]


def test_the_address_is_the_one_the_tracker_saw_never_one_the_peer_named() -> None:
    state = TrackerState(CFG)
    for i, named in ((1, "192.0.2.99"), (2, "192.0.2.98")):
        state.connect(i, f"203.0.113.{i}", 0.0)
        state.receive(i, Register(f"p{i}", f"P{i}", "lobby", named, 7000 + i), 0.0)
        state.receive(i, Heartbeat(depth=1), 0.0)
    out = state.receive(2, PunchRequest("p1"), 1.0)
    assert {m.host for _, m in starts(out)} == {"203.0.113.1", "203.0.113.2"}


def test_refused_when_either_side_can_be_dialled() -> None:
    for reachable in ((True, False), (False, True)):
        state = room(2, reachable=reachable)
        out = state.receive(1, PunchRequest("p2"), 1.0)
        assert starts(out) == []
        assert [(c, m.reason) for c, m in errors(out)] == [
            (1, "punch refused: one of you can be dialled: no punch needed")]


def test_refused_for_unknown_ids_itself_and_peers_outside_the_tree() -> None:
    state = room(3)
    state.receive(3, Heartbeat(depth=None), 0.5)  # p3 left the tree
    for target, why in (("nobody", "no such peer in your room on this tracker"),
                        ("p1", "no such peer in your room on this tracker"),
                        ("p3", "that peer is not in the tree")):
        out = state.receive(1, PunchRequest(target), 1.0)
        assert starts(out) == []
        assert [(c, m.reason) for c, m in errors(out)] == [(1, f"punch refused: {why}")]


def test_a_peer_of_another_room_cannot_be_named() -> None:
    state = room(1)
    state.connect(9, "203.0.113.9", 0.0)
    state.receive(9, Register("other", "O", "elsewhere", None, 7009), 0.0)
    state.receive(9, Heartbeat(depth=0), 0.0)
    out = state.receive(1, PunchRequest("other"), 1.0)
    assert starts(out) == [] and errors(out)[0][1].reason.startswith("punch refused: no such")


def test_before_register_closes_the_connection() -> None:
    state = TrackerState(CFG)
    state.connect(1, "203.0.113.1", 0.0)
    out = state.receive(1, PunchRequest("p2"), 0.0)
    assert [type(m).__name__ for _, m in out] == ["Bye"]
    assert state.connection_count == 0


def test_a_flood_of_requests_is_bounded_per_requester() -> None:
    state = room(6)
    sent = 0
    for k in range(200):  # 200 requests in one second, to every id there is and more
        out = state.receive(1, PunchRequest(f"p{2 + k % 5}" if k % 2 else f"x{k}"),
                            1.0 + k / 200)
        sent += len(starts(out))
        for conn, error in errors(out):
            assert conn == 1
            assert error.code in (ErrorCode.RATE_LIMITED, ErrorCode.UNEXPECTED)
    # The bucket: a burst of 4 plus 2 per second; half of those named nobody.
    assert 0 < sent <= 2 * (4 + 2)
    assert state.connection_count == 6  # refused, not a reason to drop anyone


def test_a_target_is_asked_to_punch_at_most_its_invite_rate() -> None:
    # Many requesters (each within its own limit) all name p1.
    state = room(12)
    invited = 0
    for i in range(2, 13):
        out = state.receive(i, PunchRequest("p1"), 1.0)
        invited += sum(1 for c, _ in starts(out) if c == 1)
    assert invited == 4  # punch_burst: the rest are refused
    later = state.receive(2, PunchRequest("p1"), 1.5)  # half a second: 2 more tokens
    assert sum(1 for c, _ in starts(later) if c == 1) == 1


def test_config_bounds() -> None:
    import pytest

    for bad in ({"punch_requests_per_s": 0}, {"punch_invites_per_s": -1},
                {"punch_burst": 0}, {"punch_delay_s": 6.0}, {"punch_delay_s": -0.1}):
        with pytest.raises(ValueError):
            TrackerConfig(**bad)  # type: ignore[arg-type]
    TrackerConfig(punch_delay_s=5.0)
