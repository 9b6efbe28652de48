"""Connection reversal in memory (TreeState.offer): a parent nobody can dial dials its
child, and the link then works as any other. Two TreeStates, messages passed by hand.
"""

from __future__ import annotations

from peer.node.directory import TrackerDirectory
from peer.node.tree import actions as act
from peer.node.tree.state import OFFER_AGAIN_S, RECHECK_S, StreamInfo, TreeState, TreeTiming
from protocol import (
    Accept,
    Bye,
    Candidate,
    Hello,
    JoinRequest,
    Message,
    PeerInfo,
    PeerList,
    Redirect,
)
from tests.support.rooms import FixedRoom

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)


def _tree(peer_id: str, reachable: bool, fanout: int = 2) -> TreeState:
    room = FixedRoom(dialable=reachable,
                     address=("198.51.100.7" if reachable else "203.0.113.2", 7000))
    tree = TreeState(peer_id=peer_id, name=peer_id, room="lobby", fanout=fanout, layer=720,
                     room_view=room, timing=TIMING, now=0.0)
    tree.set_reachable(reachable, fanout, 0.0)
    return tree


def _nat_root(fanout: int = 2) -> TreeState:
    root = _tree("root", reachable=False, fanout=fanout)
    root.become_root(1, StreamInfo(640, 360, 10.0), 0.0)
    return root


def _viewer(peer_id: str = "v", offers_from: frozenset[str] = frozenset({"root"})) -> TreeState:
    viewer = _tree(peer_id, reachable=True)
    viewer.offers_from = offers_from
    viewer.set_streamer("root", 1, 0.0)  # no candidates: it waits
    return viewer


ORPHAN = Candidate("v", "v", "198.51.100.7", 7000)


def _sent(actions: list[act.Action]) -> list[Message]:
    return [a.message for a in actions if isinstance(a, act.Send)]


def test_a_parent_nobody_can_dial_dials_its_child_and_adopts_it() -> None:
    root, viewer = _nat_root(), _viewer()
    assert root.fanout == 0  # not a join candidate: its slots are offered instead
    dial = root.offer([ORPHAN], 1.0)
    assert dial == [act.Dial(1, ORPHAN)]
    hello = _sent(root.connected(1, 1.0))
    assert [type(m) for m in hello] == [Hello]

    inbound = viewer.inbound(1.0, "203.0.113.2")
    answer = viewer.receive(inbound, hello[0], 1.0)
    back = _sent(answer)
    assert [type(m) for m in back] == [Hello, JoinRequest]

    root_actions = root.receive(1, back[0], 1.1) + root.receive(1, back[1], 1.1)
    accept = [m for m in _sent(root_actions) if isinstance(m, Accept)]
    assert accept and any(isinstance(a, act.ChildAttached) for a in root_actions)
    assert root.children == [1]

    attached = viewer.receive(inbound, accept[0], 1.2)
    assert any(isinstance(a, act.ParentAttached) for a in attached)
    assert viewer.parent == inbound and viewer.parent_id == "root" and viewer.depth == 1
    # One slot of two is used: the next orphan gets an offer too.
    assert root.offer([Candidate("w", "w", "198.51.100.8", 7000)], 1.3) == [
        act.Dial(2, Candidate("w", "w", "198.51.100.8", 7000))]


def test_a_reachable_peer_does_not_offer() -> None:
    relay = _tree("relay", reachable=True)
    relay.become_root(1, StreamInfo(640, 360, 10.0), 0.0)
    assert relay.offer([ORPHAN], 1.0) == []


def test_offers_in_flight_are_bounded_by_free_slots_and_not_repeated_soon() -> None:
    root = _nat_root(fanout=2)
    other = Candidate("w", "w", "198.51.100.8", 7000)
    third = Candidate("x", "x", "198.51.100.9", 7000)
    assert root.offer([ORPHAN, other, third], 1.0) == [act.Dial(1, ORPHAN),
                                                       act.Dial(2, other)]
    assert root.offer([ORPHAN, other, third], 1.1) == []  # both slots are on offer
    root.link_closed(1, "refused", 1.2)
    assert root.offer([ORPHAN, other, third], 1.3) == [act.Dial(3, third)]
    root.link_closed(2, "refused", 1.4)
    assert root.offer([ORPHAN, other], 1.5) == []  # offered a moment ago
    assert root.offer([ORPHAN], 1.0 + OFFER_AGAIN_S + 0.1) == [act.Dial(4, ORPHAN)]


def test_an_unanswered_offer_frees_its_slot_after_the_connect_timeout() -> None:
    root = _nat_root(fanout=1)
    root.offer([ORPHAN], 1.0)
    root.connected(1, 1.0)
    out: list[act.Action] = []
    # (Its deadline's wake-up is the first in a while: the verdict waits for a re-check.)
    while (due := root.get_timer()) <= 1.0 + TIMING.connect_timeout_s + RECHECK_S:
        out += root.handle_timer(due)  # every wake-up on time (a late one is a stall)
    assert any(isinstance(a, act.Close) for a in out)
    assert root.offer([Candidate("w", "w", "198.51.100.8", 7000)], 3.1) != []


def test_a_peer_busy_joining_declines_an_offer_at_once() -> None:
    busy = TreeState(peer_id="b", name="b", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("p", "p", "198.51.100.9", 7000)]),
                     timing=TIMING, now=0.0)
    busy.offers_from = frozenset({"root"})
    assert any(isinstance(a, act.Dial) for a in busy.set_streamer("root", 1, 0.0))
    link = busy.inbound(0.5, "203.0.113.2")
    out = busy.receive(link, Hello(peer_id="root", name="root", room="lobby"), 0.5)
    byes = [a.bye for a in out if isinstance(a, act.Close)]
    assert byes and byes[0] is not None and byes[0].reason == "busy joining"


def test_an_unattached_or_full_peer_does_not_offer() -> None:
    idle = _tree("idle", reachable=False)
    assert idle.offer([ORPHAN], 1.0) == []
    full = _nat_root(fanout=0)
    assert full.offer([ORPHAN], 1.0) == []


def test_an_offer_from_a_peer_not_listed_as_offering_is_ignored() -> None:
    # A hostile peer dialling in with a Hello does not become our parent: only peers
    # the room lists as attached and undialable may offer.
    viewer = _viewer(offers_from=frozenset({"root"}))
    link = viewer.inbound(1.0, "203.0.113.66")
    out = viewer.receive(link, Hello(peer_id="mallory", name="m", room="lobby"), 1.0)
    assert [type(m) for m in _sent(out)] == [Hello]
    assert viewer.parent is None


def test_a_peer_with_a_parent_ignores_offers() -> None:
    root, viewer = _nat_root(), _viewer()
    root.offer([ORPHAN], 1.0)
    hello = _sent(root.connected(1, 1.0))[0]
    first = viewer.inbound(1.0, "203.0.113.2")
    join = _sent(viewer.receive(first, hello, 1.0))
    answers = _sent(root.receive(1, join[0], 1.1) + root.receive(1, join[1], 1.1))
    accept = next(m for m in answers if isinstance(m, Accept))
    viewer.receive(first, accept, 1.2)
    second = viewer.inbound(2.0, "203.0.113.2")
    assert [type(m) for m in _sent(viewer.receive(second, hello, 2.0))] == [Hello]


def test_a_join_request_on_an_ordinary_outbound_link_is_still_refused() -> None:
    # An ordinary dial (we joining someone) must not be turned into adopting it.
    joiner = TreeState(peer_id="j", name="j", room="lobby", fanout=2, layer=720,
                       room_view=FixedRoom([Candidate("p", "p", "198.51.100.9", 7000)]),
                       timing=TIMING, now=0.0)
    dial = joiner.set_streamer("root", 1, 0.1)
    link = next(a.link for a in dial if isinstance(a, act.Dial))
    joiner.connected(link, 0.2)
    joiner.receive(link, Hello(peer_id="p", name="p", room="lobby"), 0.3)
    out = joiner.receive(link, JoinRequest(layer=720, listen_host=None, listen_port=None), 0.4)
    assert any(isinstance(a, act.Close) for a in out) and joiner.children == []


def test_the_offered_slot_count_is_the_full_fanout() -> None:
    full_root = _nat_root(fanout=1)
    full_root.offer([ORPHAN], 1.0)
    full_root.connected(1, 1.0)
    full_root.receive(1, Hello(peer_id="v", name="v", room="lobby"), 1.0)
    out = full_root.receive(1, JoinRequest(layer=720, listen_host=None, listen_port=None), 1.1)
    assert any(isinstance(m, Accept) for m in _sent(out))
    assert full_root.offer([Candidate("w", "w", "198.51.100.8", 7000)], 1.2) == []
    # A second JoinRequest on the adopted link is refused like any out-of-order one.
    again = full_root.receive(1, JoinRequest(layer=720, listen_host=None, listen_port=None),
                              1.3)
    assert any(isinstance(a, act.Close) for a in again)
    assert not any(isinstance(m, (Accept, Redirect)) for m in _sent(again))
    assert all(not isinstance(m, Bye) or m.reason for m in _sent(again))


def test_an_offer_we_asked_for_beats_a_dial_under_way() -> None:
    # A hole punch (punching.py): the child asked for this parent's offer, while its
    # join round dials a peer that may take a whole connect timeout to fail.
    busy = TreeState(peer_id="b", name="b", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("p", "p", "198.51.100.9", 7000)]),
                     timing=TIMING, now=0.0)
    busy.offers_from = frozenset({"root", "other"})
    dial = [a for a in busy.set_streamer("root", 1, 0.0) if isinstance(a, act.Dial)]
    busy.awaited_offer = "root"
    # Another offerer's Hello is still declined: only the awaited one wins.
    other = busy.inbound(0.4, "203.0.113.3")
    declined = busy.receive(other, Hello(peer_id="other", name="other", room="lobby"), 0.4)
    assert any(isinstance(a, act.Close) and a.link == other for a in declined)
    link = busy.inbound(0.5, "203.0.113.2")
    out = busy.receive(link, Hello(peer_id="root", name="root", room="lobby"), 0.5)
    closes = [a for a in out if isinstance(a, act.Close)]
    assert [c.link for c in closes] == [dial[0].link]  # the dial is withdrawn
    assert [type(m) for m in _sent(out)] == [Hello, JoinRequest]
    assert busy.awaited_offer is None
    accept = Accept(path=(), epoch=1, source_width=640, source_height=360, fps=10.0)
    attached = busy.receive(link, accept, 0.6)
    assert any(isinstance(a, act.ParentAttached) for a in attached)
    # The withdrawn dial completing later changes nothing.
    assert busy.connected(dial[0].link, 0.7) == [act.Close(dial[0].link,
                                                           "join no longer needed")]


def test_a_peer_nobody_can_dial_reports_the_slots_offers_and_punches_can_fill() -> None:
    # Joiners only dial peers the tracker found reachable, so the slots an undialable
    # peer reports are for reversal offers and hole punches (punch_plan.py picks by them).
    root = _nat_root(fanout=3)
    assert root.fanout == 0  # no joiner is sent here ...
    root.offer([ORPHAN], 1.0)
    root.connected(1, 1.0)
    root.receive(1, Hello(peer_id="v", name="v", room="lobby"), 1.0)
    out = root.receive(1, JoinRequest(layer=720, listen_host=None, listen_port=None), 1.1)
    # ... yet it reports its free slots: 3 minus the child it adopted.
    assert [a.free_slots for a in out if isinstance(a, act.Report)] == [2]


def _adopt(parent: TreeState, peer_id: str, host: str, now: float) -> int:
    """``peer_id`` dials ``parent`` from ``host`` and asks to join; returns its link."""
    link = parent.inbound(now, host)
    parent.receive(link, Hello(peer_id=peer_id, name=peer_id, room="lobby"), now)
    parent.receive(link, JoinRequest(layer=720, listen_host=host, listen_port=7000), now)
    return link


def test_a_full_peer_redirects_only_to_children_others_can_dial() -> None:
    # A public relay full of children behind NATs: redirecting a joiner to them would
    # cost it a connect timeout each behind routers that drop unasked-for SYNs
    # (bench_nat); reversal and hole punches reach them through the tracker's lists.
    relay = _tree("relay", reachable=True, fanout=3)
    relay.become_root(1, StreamInfo(640, 360, 10.0), 0.0)
    relay.undialable = frozenset({"nat1", "nat2"})
    for peer_id, host in (("nat1", "203.0.113.5"), ("pub", "198.51.100.8"),
                          ("nat2", "203.0.113.6")):
        _adopt(relay, peer_id, host, 0.1)
    assert len(relay.children) == 3
    redirects = []
    for n in range(4):  # each redirect starts at a different child
        link = relay.inbound(0.3, "198.51.100.21")
        relay.receive(link, Hello(peer_id=f"j{n}", name="j", room="lobby"), 0.3)
        out = relay.receive(link, JoinRequest(layer=720, listen_host="198.51.100.21",
                                              listen_port=7000), 0.3)
        redirects += [m for m in _sent(out) if isinstance(m, Redirect)]
    assert len(redirects) == 4
    assert all([c.id for c in r.candidates] == ["pub"] for r in redirects)
    assert redirects[0].candidates[0] == Candidate("pub", "pub", "198.51.100.8", 7000, 1, 1)
    # Once the room lists the last one as dialable too, it is offered again.
    relay.undialable = frozenset({"nat1"})
    link = relay.inbound(0.4, "198.51.100.22")
    relay.receive(link, Hello(peer_id="k", name="k", room="lobby"), 0.4)
    out = relay.receive(link, JoinRequest(layer=720, listen_host=None, listen_port=None), 0.4)
    redirect = next(m for m in _sent(out) if isinstance(m, Redirect))
    assert sorted(c.id for c in redirect.candidates) == ["nat2", "pub"]


def test_a_full_peer_whose_children_nobody_can_dial_redirects_to_none() -> None:
    relay = _tree("relay", reachable=True, fanout=1)
    relay.become_root(1, StreamInfo(640, 360, 10.0), 0.0)
    relay.undialable = frozenset({"nat"})
    _adopt(relay, "nat", "203.0.113.5", 0.1)
    link = relay.inbound(0.2, "198.51.100.21")
    relay.receive(link, Hello(peer_id="j", name="j", room="lobby"), 0.2)
    out = relay.receive(link, JoinRequest(layer=720, listen_host=None, listen_port=None), 0.2)
    assert [m for m in _sent(out) if isinstance(m, Redirect)] == [
        Redirect(candidates=(), reason="full")]


def test_the_directory_lists_unchecked_and_unreachable_peers_as_undialable() -> None:
    directory = TrackerDirectory("127.0.0.1", 1, peer_id="me", name="Me", room="r",
                                 listen_host=None, listen_port=None, heartbeat_s=1.0,
                                 on_change=lambda change: None)
    assert directory.undialable() == frozenset()  # no list yet
    directory._client._peers = PeerList("r", (  # type: ignore[attr-defined]
        PeerInfo("s", "S", "203.0.113.9", 7000, 0, 0, False, "streamer"),
        PeerInfo("relay", "R", "198.51.100.7", 7000, 1, 0, True, "viewer", "s"),
        PeerInfo("nat", "N", "203.0.113.5", 7000, 2, 3, False, "viewer", "relay"),
        PeerInfo("new", "New", "203.0.113.6", 7000, None, 0, False)))
    assert directory.undialable() == frozenset({"s", "nat", "new"})
