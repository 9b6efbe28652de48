"""Whom a peer asks to punch a hole to, and the punches it takes part in as the parent
(peer/node/punch_plan.py); time is injected. Plus the tree view's ``punched`` mark and
the ``punched`` reachability word."""

from __future__ import annotations

from peer.node.directory import TrackerDirectory
from peer.node.punch_plan import MAX_PLANS, MAX_PUNCHED, PUNCH_AGAIN_S, REQUEST_WAIT_S, PunchPlanner
from peer.node.reachability import Reachability, classify
from protocol import PeerInfo, PeerList, PunchStart


def info(pid: str, *, depth: int | None = 1, free: int = 2, reachable: bool = False,
         parent: str | None = None) -> PeerInfo:
    return PeerInfo(pid, pid.upper(), "203.0.113.9", 7000, depth, free, reachable,
                    "viewer", parent)


def want(planner: PunchPlanner, now: float, peers: list[PeerInfo], **kw: object) -> str | None:
    args = {"waiting": True, "reachable": False, "free_candidates": 0, **kw}
    return planner.want(now, peers=peers, **args)  # type: ignore[arg-type]


def test_asks_for_the_shallowest_then_freest_undialable_peer_with_room() -> None:
    planner = PunchPlanner("me", punch_s=1.7)
    peers = [info("me", depth=None), info("deep", depth=3, free=4), info("full", depth=0, free=0),
             info("public", depth=0, reachable=True), info("out", depth=None),
             info("a", depth=1, free=1), info("b", depth=1, free=3)]
    assert want(planner, 0.0, peers) == "b"
    assert planner.requests == 1


def test_asks_only_when_waiting_unreachable_and_nothing_dialable_has_room() -> None:
    peers = [info("p")]
    for kw in ({"waiting": False}, {"reachable": True}, {"free_candidates": 1}):
        assert want(PunchPlanner("me", 1.7), 0.0, peers, **kw) is None
    assert want(PunchPlanner("me", 1.7), 0.0, []) is None


def test_one_request_at_a_time_and_each_peer_rests_after_it_was_asked_for() -> None:
    planner = PunchPlanner("me", punch_s=1.7)
    peers = [info("a", free=3), info("b", free=1)]
    assert want(planner, 0.0, peers) == "a"
    assert want(planner, REQUEST_WAIT_S / 2, peers) is None  # unanswered yet
    assert want(planner, REQUEST_WAIT_S, peers) == "b"  # a rests
    assert want(planner, 2 * REQUEST_WAIT_S, peers) is None  # both rest
    assert want(planner, PUNCH_AGAIN_S, peers) == "a"


def test_only_the_answer_to_our_own_request_starts_a_punch() -> None:
    planner = PunchPlanner("me", punch_s=1.7)
    assert want(planner, 0.0, [info("a")]) == "a"
    start = PunchStart("a", "A", "203.0.113.9", 7000, 100, requester=True)
    assert not planner.answered(PunchStart("x", "X", "1.2.3.4", 1, 0, True), 0.1)
    assert not planner.answered(PunchStart("a", "A", "1.2.3.4", 1, 0, False), 0.1)
    assert planner.answered(start, 0.1)
    assert not planner.answered(start, 0.2)  # once
    # No other request while that punch runs (0.1 s start delay, 1.7 s punch).
    assert want(planner, 1.8, [info("b")]) is None
    assert want(planner, 1.9, [info("b")]) == "b"
    late = 1.9 + REQUEST_WAIT_S
    assert not planner.answered(PunchStart("b", "B", "1.2.3.4", 1, 0, True), late)


def test_invitations_become_plans_bounded_and_used_once() -> None:
    planner = PunchPlanner("me", punch_s=1.5)
    plans = [planner.invited(PunchStart(f"c{i}", "C", "203.0.113.9", 7000 + i, 200, False),
                             10.0) for i in range(MAX_PLANS + 2)]
    assert all(p is not None for p in plans[:MAX_PLANS])
    assert plans[MAX_PLANS:] == [None, None]
    assert planner.invitations_refused == 2
    first = plans[0]
    assert first is not None and first.start_at == 10.2 and first.expires_at == 10.2 + 1.5
    assert planner.invited(PunchStart("c1", "C", "h", 1, 0, False), 10.0) is None  # twice
    assert planner.take_plan("c0", 10.1) == first
    assert planner.take_plan("c0", 10.1) is None
    assert planner.take_plan("c1", 12.0) is None  # expired
    # Expired plans free their places; our own request's answer is never a plan.
    assert planner.invited(PunchStart("c9", "C", "h", 1, 0, False), 12.0) is not None
    assert planner.invited(PunchStart("c8", "C", "h", 1, 0, True), 12.0) is None


def test_punched_peers_are_remembered_bounded() -> None:
    planner = PunchPlanner("me", punch_s=1.5)
    assert not planner.punched(None) and not planner.punched("a")
    for i in range(MAX_PUNCHED + 1):
        planner.linked(f"p{i}")
    assert not planner.punched("p0") and planner.punched(f"p{MAX_PUNCHED}")


def test_reachability_word_for_a_punched_link() -> None:
    assert classify(False, False, punched=True) is Reachability.PUNCHED
    assert classify(False, False, True, punched=True) is Reachability.VIA_RELAY
    assert classify(True, False, punched=True) is Reachability.DIRECT
    assert classify(None, False, punched=True) is Reachability.CHECKING


def test_the_tree_view_marks_links_between_two_undialable_peers() -> None:
    directory = TrackerDirectory("127.0.0.1", 1, peer_id="me", name="Me", room="r",
                                 listen_host=None, listen_port=None, heartbeat_s=1.0,
                                 on_change=lambda change: None)
    directory._client._peers = PeerList("r", (  # type: ignore[attr-defined]
        info("s", depth=0), info("relay", reachable=True, parent="s"),
        info("punched", parent="s"), info("reversed", reachable=True, parent="s"),
        info("dialled", parent="relay"), info("waiting", depth=None)))
    marks = {p.id: p.punched for p in directory.tree()}
    assert marks == {"s": False, "relay": False, "punched": True, "reversed": False,
                     "dialled": False, "waiting": False}
