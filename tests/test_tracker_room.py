"""Large rooms at the tracker: bounded lists, candidate picks, names, per-peer refresh.

Sans-IO: time is injected and the randomness seeded; nothing sleeps.
"""

from __future__ import annotations

import random
from collections import Counter

from protocol import limits
from protocol.framing import encode
from protocol.messages import Heartbeat, PeerList, Ping, Register, RoomQuery, StreamClaim
from protocol.records import TreeLevel
from tracker.config import TrackerConfig
from tracker.room import Peer, Room
from tracker.state import TrackerState

SMALL = 4  # full_list_peers in these tests: a room of 5 or more is "large"


def new_state(**changes: object) -> TrackerState:
    settings: dict[str, object] = {
        "full_list_peers": SMALL, "candidates": 3, "refresh_s": 5.0, "reserve_s": 1.0,
        "max_connections_per_address": 100_000, "max_connections": 100_000}
    settings.update(changes)
    config = TrackerConfig(**settings)  # type: ignore[arg-type]
    return TrackerState(config, rng=random.Random(7))


def register(state: TrackerState, conn: int, pid: str, now: float = 0.0, *,
             name: str | None = None, port: int | None = 7000) -> list[tuple[int, object]]:
    state.connect(conn, f"10.{conn // 65536}.{conn // 256 % 256}.{conn % 256}", now)
    return state.receive(conn, Register(pid, name or pid, "big", "10.9.9.9", port), now)


def place(state: TrackerState, conn: int, depth: int, free: int, now: float,
          parent: str | None = None) -> list[tuple[int, object]]:
    """Mark reachable (connect-back) and report a tree position."""
    for check in state.take_checks():
        state.check_done(check, True, now)
    return state.receive(conn, Heartbeat(depth=depth, free_slots=free, parent_id=parent,
                                         layer=720), now)


def build(state: TrackerState, n: int) -> None:
    """A room of n peers: p1 at depth 0 (4 slots), the rest at depth 1 and 2."""
    for i in range(1, n + 1):
        register(state, i, f"p{i}")
        depth = 0 if i == 1 else (1 if i <= 5 else 2)
        place(state, i, depth, 0 if depth == 0 else 2, 0.0)


def peer_lists(out: list[tuple[int, object]]) -> list[tuple[int, PeerList]]:
    return [(c, m) for c, m in out if isinstance(m, PeerList)]


# --- names -----------------------------------------------------------------------------


def test_second_bob_gets_a_suffix_and_the_reply_says_so() -> None:
    state = new_state()
    (_, first), = peer_lists(register(state, 1, "a", name="Bob"))
    out = register(state, 2, "b", name="bob")  # names compare without case
    second = dict(peer_lists(out))[2]
    assert (first.your_name, second.your_name) == ("Bob", "bob (2)")
    third = dict(peer_lists(register(state, 3, "c", name="Bob")))[3]
    assert third.your_name == "Bob (3)"
    assert {p.name for p in state.room_peers("big")} == {"Bob", "bob (2)", "Bob (3)"}
    state.disconnect(1, 1.0)  # the name is free again once its holder leaves
    assert dict(peer_lists(register(state, 4, "d", name="Bob", now=1.0)))[4].your_name == "Bob"


def test_same_peer_id_keeps_its_name_and_long_names_stay_in_the_limit() -> None:
    room = Room("r")
    long = "x" * limits.MAX_NAME_CHARS
    room.add(Peer(1, "a", long, "r", None, None))
    assert room.unique_name(long, "a") == long  # re-registering: its own name
    other = room.unique_name(long, "b")
    assert other.endswith(" (2)") and len(other) == limits.MAX_NAME_CHARS


def test_a_name_flood_costs_constant_work_per_registration() -> None:
    room = Room("r")
    for i in range(2000):
        name = room.unique_name("Bob", f"p{i}")
        room.add(Peer(i, f"p{i}", name, "r", None, None))
    assert len(room.names) == 2000
    # The suffix counter moved on: the next one is found at the first try.
    assert room.next_suffix["bob"] == 2001
    assert room.unique_name("Bob", "new") == "Bob (2001)"


# --- bounded lists ---------------------------------------------------------------------


def test_small_room_is_listed_whole_with_its_total() -> None:
    state = new_state()
    build(state, SMALL)
    reply = dict(peer_lists(register(state, 99, "late", now=0.0)))[99]
    # 5 peers now: the newcomer's room is large, so it gets the bounded form...
    assert reply.total == 5 and not reply.complete
    state2 = new_state()
    build(state2, SMALL - 1)
    reply2 = dict(peer_lists(register(state2, 99, "late")))[99]
    assert reply2.complete and reply2.room_size == SMALL and reply2.levels == ()


def test_large_room_reply_is_bounded_and_holds_self_streamer_candidates_levels() -> None:
    state = new_state()
    build(state, 50)
    state.receive(1, StreamClaim(), 0.0)
    # (after the promises made to the builders' own joins have expired)
    reply = dict(peer_lists(register(state, 99, "joiner", now=2.0)))[99]
    ids = [p.id for p in reply.peers]
    assert ids[0] == "joiner" and ids[1] == "p1" and len(ids) == 2 + 3
    assert reply.your_id == "joiner" and reply.your_name == "joiner"
    assert reply.streamer_id == "p1" and reply.peers[1].role == "streamer"
    assert reply.total == 51
    assert reply.levels == (TreeLevel(0, 1, 0), TreeLevel(1, 4, 8), TreeLevel(2, 45, 90),
                            TreeLevel(None, 1, 0))
    # The streamer has no free slot: the candidates are the depth-1 peers with room.
    assert {p.depth for p in reply.peers[2:]} == {1}


def test_candidates_spread_over_a_join_storm() -> None:
    """Joiners arriving together are sent to different peers: no hot spot."""
    state = new_state(candidates=1)
    build(state, 45)  # depth 1: p2..p5 with 2 slots each = 8 slots in all
    first_choice: Counter[str] = Counter()
    for i in range(8):  # (the builders' own promises have expired by 2.0)
        reply = dict(peer_lists(register(state, 100 + i, f"j{i}", now=2.0)))[100 + i]
        (candidate,) = [p for p in reply.peers if p.id != f"j{i}"]
        first_choice[candidate.id] += 1
    # Each depth-1 peer is promised at most its two free slots...
    assert sorted(first_choice) == ["p2", "p3", "p4", "p5"]
    assert max(first_choice.values()) == 2
    # ...and the ninth joiner of the same moment is sent one level down.
    reply = dict(peer_lists(register(state, 200, "j9", now=2.0)))[200]
    assert [p.depth for p in reply.peers if p.id != "j9"] == [2]
    # Promises expire: a second later depth 1 is offered again.
    reply = dict(peer_lists(register(state, 201, "j10", now=3.5)))[201]
    assert [p.depth for p in reply.peers if p.id != "j10"] == [1]


def test_full_and_unreachable_peers_are_never_candidates() -> None:
    state = new_state()
    for i in range(1, 7):
        register(state, i, f"p{i}")
    for check in state.take_checks():  # p1..p3 reachable, the rest not
        state.check_done(check, check.conn <= 3, 0.0)
    state.receive(1, Heartbeat(depth=0, free_slots=0), 0.0)  # full
    state.receive(2, Heartbeat(depth=1, free_slots=2), 0.0)
    state.receive(3, Heartbeat(), 0.0)  # not in the tree
    state.receive(4, Heartbeat(depth=1, free_slots=2), 0.0)  # unreachable
    reply = dict(peer_lists(register(state, 9, "j", now=0.1)))[9]
    assert [p.id for p in reply.peers] == ["j", "p2"]


def test_a_change_in_a_large_room_pushes_nothing_and_refreshes_come_per_peer() -> None:
    state = new_state()
    build(state, 40)
    state.handle_timer(0.0)  # whatever was due at 0
    out = state.receive(7, Heartbeat(depth=2, free_slots=1, parent_id="p2", layer=720), 1.0)
    assert peer_lists(out) == []  # O(1): indexes updated, nobody pushed
    # Over one refresh period every peer gets its own bounded list, once.
    sent: Counter[int] = Counter()
    for step in range(600):  # 1.0 .. 7.0 s (the idle timeout, 10 s, stays away)
        for conn, msg in peer_lists(state.handle_timer(1.0 + step / 100)):
            sent[conn] += 1
            assert len(msg.peers) <= 2 + 3 and msg.total == 40
    assert sorted(sent) == list(range(1, 41)) and set(sent.values()) == {1}
    # Peers in the tree wait settled_refresh_s (20 s) for their next turn, and a
    # quiet room sends nothing even then.
    assert state.get_timer() is not None and state.get_timer() >= 7.0
    for conn in range(1, 41):
        state.receive(conn, Ping(0.0), 8.0)  # (stay clear of the idle timeout)
    assert peer_lists(state.handle_timer(9.0)) == []
    for conn in range(1, 41):
        state.receive(conn, Ping(0.0), 16.0)
    assert peer_lists(state.handle_timer(25.0)) == []


def test_room_query_of_a_large_room_is_bounded() -> None:
    state = new_state()
    build(state, 30)
    state.connect(500, "10.8.8.8", 1.0)
    ((_, reply),) = peer_lists(state.receive(500, RoomQuery("big"), 1.0))
    assert reply.your_id is None and reply.total == 30 and len(reply.peers) <= 3
    assert len(state.room_peers("big")) == 30


def test_work_per_change_does_not_grow_with_the_room() -> None:
    """The bytes a heartbeat or a join makes the tracker send are the same at 50 and
    at 5,000 peers (the attacker's view: a flood of joins cannot make each one dearer)."""

    def cost(n: int) -> tuple[int, int]:
        state = new_state(candidates=8)
        build(state, n)
        state.handle_timer(0.0)
        change = state.receive(3, Heartbeat(depth=1, free_slots=1, layer=480), 0.5)
        join = register(state, 10**6, "joiner", now=0.5)
        return (sum(len(encode(m)) for _, m in change),  # type: ignore[arg-type]
                sum(len(encode(m)) for _, m in join))  # type: ignore[arg-type]

    small_change, small_join = cost(50)
    big_change, big_join = cost(5000)
    assert small_change == big_change == 0
    assert big_join <= small_join + 64  # the same list; only the counts have more digits
