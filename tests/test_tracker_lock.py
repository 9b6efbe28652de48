"""The streamer lock as a hypothesis state machine over tracker/state.py.

The model plays the peers: each remembers the grant it holds as a peer would (valid
until the time of the request that the grant answered + lease_s, void once a
StreamerChanged names someone else). Invariants: never two peers of one room who
believe they stream; new grants carry an epoch above every earlier one; the state
never keeps an expired lease past handle_timer. Time is injected; nothing sleeps.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from protocol.messages import (
    Bye,
    Heartbeat,
    Ping,
    Register,
    RoomQuery,
    StreamClaim,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
)
from tracker.config import TrackerConfig
from tracker.state import TrackerState

LEASE_S = 3.0
CFG = TrackerConfig(lease_s=LEASE_S, lease_grace_s=0.0, peer_timeout_s=8.0,
                    update_interval_s=0.5,
                    max_peers_per_room=4, max_messages_per_s=1000.0, burst_messages=1000)
ROOMS = st.sampled_from(["r1", "r2"])
PEER_IDS = st.sampled_from(["a", "b", "c", "d", "e"])


class LockMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = TrackerState(CFG)
        self.now = 0.0
        self.next_conn = 1
        self.open: dict[int, tuple[str, str] | None] = {}  # conn -> (peer id, room)
        self.belief: dict[int, tuple[int, float]] = {}  # conn -> (epoch, valid until)
        self.max_epoch = 0
        self.last_announced: dict[int, int] = {}  # conn -> last StreamerChanged epoch

    # --- feeding the state and checking what comes out --------------------------------

    def apply(self, out: list[tuple[int, object]]) -> None:
        # Who believed they streamed before this event: a new grant is only fair once
        # each of them has lost the lock (lease run out, released, gone).
        before = {c: until for c, (_, until) in self.belief.items() if until > self.now}
        for conn, message in out:
            assert conn in self.open, f"message for a closed connection {conn}: {message}"
            if isinstance(message, Bye):
                del self.open[conn]
                self.belief.pop(conn, None)
            elif isinstance(message, StreamGranted):
                held = self.belief.get(conn)
                if held is None or held[0] != message.epoch:
                    # A new grant: its epoch is above every epoch ever granted.
                    assert message.epoch > self.max_epoch
                    self.max_epoch = message.epoch
                    room = self.open[conn][1]  # type: ignore[index]
                    rivals = [c for c in before if c != conn and c in self.open
                              and self.open[c] is not None
                              and self.open[c][1] == room]  # type: ignore[index]
                    assert not rivals, f"granted to {conn} while {rivals} held a lease"
                assert message.lease_s == LEASE_S
                self.belief[conn] = (message.epoch, self.now + LEASE_S)
            elif isinstance(message, StreamerChanged):
                assert message.epoch >= self.last_announced.get(conn, 0)
                self.last_announced[conn] = message.epoch
                me = self.open[conn]
                held = self.belief.get(conn)
                if held is not None and (me is None or message.streamer_id != me[0]
                                         or message.epoch != held[0]):
                    del self.belief[conn]

    def send(self, conn: int, message: object) -> None:
        self.apply(self.state.receive(conn, message, self.now))  # type: ignore[arg-type]

    def registered(self) -> list[int]:
        return [c for c, who in self.open.items() if who is not None]

    # --- rules ------------------------------------------------------------------------

    @rule(pid=PEER_IDS, room=ROOMS)
    def join(self, pid: str, room: str) -> None:
        conn = self.next_conn
        self.next_conn += 1
        out = self.state.connect(conn, f"10.0.0.{conn % 7}", self.now)
        self.open[conn] = None
        self.apply(out)
        if conn not in self.open:
            return
        out = self.state.receive(conn, Register(pid, pid.upper(), room, None, 7000), self.now)
        # Set before applying: the reply may include a StreamerChanged for us. An
        # older connection with this peer id in this room gets a Bye in `out`; a full
        # room gives us one.
        self.open[conn] = (pid, room)
        self.apply(out)

    @precondition(lambda self: self.registered())
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        self.send(data.draw(st.sampled_from(self.registered())), StreamClaim())

    @precondition(lambda self: self.registered())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        self.send(data.draw(st.sampled_from(self.registered())),
                  Heartbeat(depth=data.draw(st.none() | st.integers(0, 3)), free_slots=1))

    @precondition(lambda self: self.registered())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(self.registered()))
        self.belief.pop(conn, None)  # a peer stops believing before it sends a release
        self.send(conn, StreamRelease())

    @precondition(lambda self: self.open)
    @rule(data=st.data(), room=ROOMS)
    def query(self, data: st.DataObject, room: str) -> None:
        conn = data.draw(st.sampled_from(sorted(self.open)))
        self.send(conn, RoomQuery(room))
        self.send(conn, Ping(self.now))

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def disconnect(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(sorted(self.open)))
        del self.open[conn]
        self.belief.pop(conn, None)
        self.apply(self.state.disconnect(conn, self.now))

    @rule(dt=st.floats(0.0, 4.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def timer(self) -> None:
        self.apply(self.state.handle_timer(self.now))
        for room in ("r1", "r2"):
            lock = self.state.lock(room)
            assert lock is None or lock.expires_at > self.now
        deadline = self.state.get_timer()
        assert deadline is None or deadline > self.now or not self.open

    # --- invariants -------------------------------------------------------------------

    @invariant()
    def at_most_one_streamer_per_room(self) -> None:
        for room in ("r1", "r2"):
            believers = [c for c, (_, until) in self.belief.items()
                         if until > self.now and self.open.get(c) is not None
                         and self.open[c][1] == room]  # type: ignore[index]
            assert len(believers) <= 1, (room, believers)

    @invariant()
    def lock_epochs_were_granted(self) -> None:
        # (A holder whose connection dropped keeps the lock until its lease is out: its
        # process may still stream. The timer rule checks that no lease outlives it.)
        for room in ("r1", "r2"):
            lock = self.state.lock(room)
            if lock is not None:
                assert lock.epoch <= self.max_epoch

    @invariant()
    def state_and_model_agree_on_connections(self) -> None:
        assert self.state.connection_count == len(self.open)


def test_lock_state_machine() -> None:
    run_state_machine_as_test(
        LockMachine,
        settings=settings(max_examples=150, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))


GRACE_S = 2.0
GRACE_CFG = TrackerConfig(lease_s=LEASE_S, lease_grace_s=GRACE_S, peer_timeout_s=8.0,
                          update_interval_s=0.5, max_peers_per_room=4,
                          max_messages_per_s=1000.0, burst_messages=1000)


class GraceLockMachine(RuleBasedStateMachine):
    """The lock with a grace period and resumes. A peer whose connection drops keeps
    believing it streams (its process goes on) until its lease plus grace runs out;
    it may come back on a new connection and resume with its epoch and token. The
    invariant: never two peers of a room who believe they stream, connected or not."""

    def __init__(self) -> None:
        super().__init__()
        self.state = TrackerState(GRACE_CFG, epoch_floor=1000)
        self.now = 0.0
        self.next_conn = 1
        self.conns: dict[int, tuple[str, str]] = {}  # conn -> (peer id, room)
        # (peer id, room) -> (epoch, believed until, token): kept while disconnected
        self.belief: dict[tuple[str, str], tuple[int, float, str | None]] = {}
        self.max_epoch = 0

    def apply(self, out: list[tuple[int, object]]) -> None:
        for conn, message in out:
            who = self.conns.get(conn)
            if isinstance(message, Bye):
                self.conns.pop(conn, None)
            elif isinstance(message, StreamGranted) and who is not None:
                held = self.belief.get(who)
                if held is None or held[0] != message.epoch:
                    assert message.epoch > self.max_epoch
                    self.max_epoch = message.epoch
                    rivals = [w for w, (_, until, _) in self.belief.items()
                              if w != who and w[1] == who[1] and until > self.now]
                    assert not rivals, f"granted to {who} while {rivals} believed"
                assert message.lease_s == LEASE_S + GRACE_S
                token = message.token or (held[2] if held else None)
                self.belief[who] = (message.epoch, self.now + message.lease_s, token)
            elif isinstance(message, StreamerChanged) and who is not None:
                held = self.belief.get(who)
                if held is not None and (message.streamer_id != who[0]
                                         or message.epoch != held[0]):
                    del self.belief[who]

    def connect(self, pid: str, room: str) -> int | None:
        conn = self.next_conn
        self.next_conn += 1
        self.conns[conn] = (pid, room)
        self.apply(self.state.connect(conn, f"10.0.0.{conn % 7}", self.now))
        if conn not in self.conns:
            return None
        self.apply(self.state.receive(conn, Register(pid, pid.upper(), room, None, 7000),
                                      self.now))
        return conn if conn in self.conns else None

    @rule(pid=PEER_IDS, room=ROOMS)
    def join(self, pid: str, room: str) -> None:
        self.connect(pid, room)

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(sorted(self.conns)))
        self.apply(self.state.receive(conn, StreamClaim(sent_at=self.now), self.now))

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(sorted(self.conns)))
        self.apply(self.state.receive(conn, Heartbeat(sent_at=self.now), self.now))

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from(sorted(self.conns)))
        self.belief.pop(self.conns[conn], None)
        self.apply(self.state.receive(conn, StreamRelease(), self.now))

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        """The link drops; the peer process (and its belief) goes on."""
        conn = data.draw(st.sampled_from(sorted(self.conns)))
        del self.conns[conn]
        self.apply(self.state.disconnect(conn, self.now))

    @precondition(lambda self: self.belief)
    @rule(data=st.data(), forged=st.booleans())
    def resume(self, data: st.DataObject, forged: bool) -> None:
        """A believer back on a new connection claims its lock back (or an impostor
        with its id but a wrong token)."""
        who = data.draw(st.sampled_from(sorted(self.belief)))
        epoch, _, token = self.belief[who]
        if forged:
            self.belief.pop(who)  # the impostor's process is not the believer
            token = "forged"
        conn = self.connect(*who)
        if conn is None:
            return
        out = self.state.receive(conn, StreamClaim(sent_at=self.now, resume_epoch=epoch,
                                                   token=token), self.now)
        if not any(isinstance(m, StreamGranted) for c, m in out if c == conn):
            self.belief.pop(who, None)  # denied: it steps down
        self.apply(out)

    @rule(dt=st.floats(0.0, 3.0))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def timer(self) -> None:
        self.apply(self.state.handle_timer(self.now))

    @invariant()
    def at_most_one_believer_per_room(self) -> None:
        for room in ("r1", "r2"):
            believers = [w for w, (_, until, _) in self.belief.items()
                         if w[1] == room and until > self.now]
            assert len(believers) <= 1, (room, believers)


def test_lock_with_grace_and_resumes_state_machine() -> None:
    run_state_machine_as_test(
        GraceLockMachine,
        settings=settings(max_examples=150, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]))
