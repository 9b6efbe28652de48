"""The streamer lock across freezes, reconnects and tracker restarts (sans-IO: time is
injected, nothing sleeps): grace, resume with a token, epoch floor, recovery window,
status reports."""

from __future__ import annotations

from protocol.errors import ErrorCode
from protocol.framing import encode
from protocol.messages import (
    Bye,
    DenyReason,
    Heartbeat,
    PeerList,
    Register,
    StatusQuery,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
    TrackerStatus,
)
from tracker.config import TrackerConfig
from tracker.state import TrackerState

CFG = TrackerConfig(lease_s=3.0, lease_grace_s=5.0, peer_timeout_s=30.0,
                    update_interval_s=0.0)


def join(state: TrackerState, conn: int, pid: str, now: float = 0.0,
         **position: object) -> list[tuple[int, object]]:
    state.connect(conn, "127.0.0.1", now)
    return state.receive(conn, Register(pid, pid.upper(), "lobby", None, 7000,
                                        **position), now)  # type: ignore[arg-type]


def granted(out: list[tuple[int, object]], conn: int) -> StreamGranted | None:
    found = [m for c, m in out if c == conn and isinstance(m, StreamGranted)]
    return found[0] if found else None


def refusal(out: list[tuple[int, object]], conn: int) -> StreamDenied | None:
    """The refusal sent to ``conn``, checked to fit on the wire (a refusal that does
    not encode is never sent: the claimant would wait for an answer in vain)."""
    found = [m for c, m in out if c == conn and isinstance(m, StreamDenied)]
    for message in found:
        encode(message)
    return found[0] if found else None


def denied(out: list[tuple[int, object]], conn: int) -> bool:
    return refusal(out, conn) is not None


def test_a_frozen_holder_keeps_the_lock_through_the_grace() -> None:
    state = TrackerState(CFG)
    join(state, 1, "s")
    first = granted(state.receive(1, StreamClaim(), 0.0), 1)
    assert first is not None and first.lease_s == 8.0  # lease + grace, told to the holder
    join(state, 2, "v")
    # Frozen 5 s: past the lease, inside the grace. Nobody else may take it...
    out = state.handle_timer(5.0)
    assert not any(isinstance(m, StreamerChanged) for _, m in out)
    assert denied(state.receive(2, StreamClaim(), 5.0), 2)
    # ...and the holder's next heartbeat carries on with the same epoch.
    renewal = granted(state.receive(1, Heartbeat(), 5.5), 1)
    assert renewal is not None and renewal.epoch == first.epoch
    # Silent for lease + grace: the lock ends and the room hears it.
    out = state.handle_timer(5.5 + 8.0)
    assert (2, StreamerChanged(None, None, first.epoch)) in out


def test_a_dropped_holder_resumes_on_a_new_connection_with_its_token() -> None:
    state = TrackerState(CFG)
    join(state, 1, "s")
    first = granted(state.receive(1, StreamClaim(), 0.0), 1)
    assert first is not None and first.token
    join(state, 2, "v")
    state.disconnect(1, 1.0)  # the link dropped (a failover, a blip)
    assert state.lock("lobby") is not None  # in grace
    assert denied(state.receive(2, StreamClaim(), 2.0), 2)
    join(state, 3, "s", 2.5, depth=0, free_slots=3)
    # A wrong token proves nothing.
    assert denied(state.receive(3, StreamClaim(resume_epoch=first.epoch, token="x" * 32),
                                2.6), 3)
    again = granted(state.receive(3, StreamClaim(resume_epoch=first.epoch,
                                                 token=first.token), 2.7), 3)
    assert again is not None and (again.epoch, again.token) == (first.epoch, first.token)
    assert state.lock("lobby").holder_id == "s"  # type: ignore[union-attr]
    # The position came with the registration: the room is rebuilt at once.
    (info,) = [p for p in state.room_peers("lobby") if p.id == "s"]
    assert (info.depth, info.free_slots, info.role) == (0, 3, "streamer")


def test_a_holder_back_too_late_steps_down_and_epochs_only_rise() -> None:
    state = TrackerState(CFG)
    join(state, 1, "s")
    first = granted(state.receive(1, StreamClaim(), 0.0), 1)
    assert first is not None
    join(state, 2, "v")
    state.disconnect(1, 1.0)
    state.handle_timer(8.0)  # lease and grace over (counted from its last message)
    second = granted(state.receive(2, StreamClaim(), 8.1), 2)
    assert second is not None and second.epoch > first.epoch
    join(state, 3, "s", 9.0)
    out = state.receive(3, StreamClaim(resume_epoch=first.epoch, token=first.token), 9.0)
    assert denied(out, 3) and state.lock("lobby").holder_id == "v"  # type: ignore[union-attr]


def test_a_released_lock_cannot_be_resumed() -> None:
    state = TrackerState(CFG)
    join(state, 1, "s")
    first = granted(state.receive(1, StreamClaim(), 0.0), 1)
    assert first is not None
    state.receive(1, StreamRelease(), 1.0)
    out = state.receive(1, StreamClaim(resume_epoch=first.epoch, token=first.token), 1.5)
    assert denied(out, 1)


def test_a_restarted_tracker_starts_above_its_floor_and_lets_the_holder_resume() -> None:
    old = TrackerState(CFG, epoch_floor=1_000)
    join(old, 1, "s")
    first = granted(old.receive(1, StreamClaim(), 0.0), 1)
    assert first is not None and first.epoch == 1_001
    # The process dies; the new one's floor is above anything the old one granted.
    new = TrackerState(CFG, epoch_floor=5_000, recovering_until=8.0)
    join(new, 1, "v", depth=1, parent_id="s")  # the room had a tree
    # A newcomer cannot go live while the room's streamer may still come back...
    refused = refusal(new.receive(1, StreamClaim(), 0.5), 1)
    assert refused is not None and refused.reason is DenyReason.RECOVERING
    # ...the holder resumes its epoch (from an earlier run: below the floor)...
    join(new, 2, "s", 1.0, depth=0)
    again = granted(new.receive(2, StreamClaim(resume_epoch=first.epoch,
                                               token=first.token), 1.0), 2)
    assert again is not None and again.epoch == first.epoch
    # ...and the next new grant is higher than any before.
    new.receive(2, StreamRelease(), 2.0)
    later = granted(new.receive(1, StreamClaim(), 9.0), 1)
    assert later is not None and later.epoch == 5_001


def test_a_made_up_future_epoch_is_not_resumed() -> None:
    """The attacker: a resume of an epoch this run never granted and above its floor
    would let it pick epochs (and so fence off the next real stream)."""
    state = TrackerState(CFG, epoch_floor=100)
    join(state, 1, "x")
    refused = refusal(state.receive(1, StreamClaim(resume_epoch=10**12, token="t"), 0.0), 1)
    assert refused is not None and refused.reason is DenyReason.SUPERSEDED
    assert state.lock("lobby") is None


def test_status_is_for_the_local_operator_only() -> None:
    state = TrackerState(CFG, tracker_id="t1")
    join(state, 1, "s")
    join(state, 2, "v")
    state.receive(1, StreamClaim(), 0.0)
    state.set_store_health("memory", True)
    state.connect(9, "127.0.0.1", 0.0)
    ((_, status),) = state.receive(9, StatusQuery(), 0.0)
    assert isinstance(status, TrackerStatus)
    assert (status.tracker_id, status.store, status.store_ok, status.rooms_total) == (
        "t1", "memory", True, 1)
    (room,) = status.rooms
    assert (room.room, room.peers, room.streamer_name) == ("lobby", 2, "S")
    state.connect(10, "192.0.2.1", 0.0)
    ((_, bye),) = state.receive(10, StatusQuery(), 0.0)
    assert isinstance(bye, Bye) and bye.code == ErrorCode.UNEXPECTED


def test_register_reply_lists_the_position_it_brought() -> None:
    state = TrackerState(CFG)
    out = join(state, 1, "a", depth=2, free_slots=1, parent_id="p", layer=480)
    (reply,) = [m for _, m in out if isinstance(m, PeerList)]
    (info,) = reply.peers
    assert (info.depth, info.free_slots, info.parent_id, info.layer) == (2, 1, "p", 480)


def test_a_new_room_on_a_restarted_tracker_can_go_live_at_once() -> None:
    state = TrackerState(CFG, epoch_floor=5_000, recovering_until=8.0)
    join(state, 1, "s")  # a first registration: no tree to wait for
    assert granted(state.receive(1, StreamClaim(), 0.1), 1) is not None


def test_shared_mode_sends_one_claim_at_a_time_to_the_store() -> None:
    """The attacker: a flood of claims must not become a flood of store calls."""
    from tracker.state import LockRecord

    state = TrackerState(CFG, shared=True, tracker_id="t1")
    join(state, 1, "s")
    for _ in range(20):
        assert state.receive(1, StreamClaim(sent_at=1.0), 0.1) == []
    (op,) = state.take_lock_ops()
    assert (op.kind, op.room, op.peer_id, op.conn) == ("claim", "lobby", "s", 1)
    record = LockRecord("s", "S", "127.0.0.1", 7000, 42, "tok", "t1", 8.0)
    out = state.lock_result(op, True, record, 0.2)
    assert granted(out, 1) == StreamGranted(42, 8.0, 1.0, "tok")
    assert state.local_locks() == [("lobby", record)]
    # Our peers' changes are queued for the other trackers.
    assert [c.peer_id for c in state.take_changes()] == ["s"]
    # Another tracker's holder shows in our room; a claim here is asked of the store.
    join(state, 2, "v")
    state.receive(1, StreamRelease(), 0.3)
    assert [op.kind for op in state.take_lock_ops()] == ["release"]
    other = LockRecord("x", "X", "10.0.0.9", 7001, 43, "tok2", "t2", 8.0)
    out = state.remote_lock("lobby", other, 0.4)
    assert (2, StreamerChanged("x", "X", 43, "10.0.0.9", 7001)) in out
    refused = refusal(state.receive(2, StreamClaim(), 0.5), 2)
    assert refused == StreamDenied("x", "X", DenyReason.HELD)


def test_a_claim_the_store_cannot_answer_is_refused_in_words_that_fit() -> None:
    """Redis down (or restarting) while a peer claims: the peer hears why at once."""
    state = TrackerState(CFG, shared=True, tracker_id="t1")
    join(state, 1, "s")
    assert state.receive(1, StreamClaim(sent_at=1.0), 0.1) == []
    (op,) = state.take_lock_ops()
    refused = refusal(state.lock_result(op, False, None, 0.2), 1)
    assert refused == StreamDenied("", "", DenyReason.NO_STORE)
