"""The tree protocol in memory: many TreeStates on a virtual network, no sockets.

Single-peer tables check the handshake and the loop guards; the SimNet scenarios
check what a room does: a join storm, churn without loops, simultaneous departures,
a frozen parent, a network split, a graceful leave and the end of a stream.
"""

from __future__ import annotations

import math

import pytest

from peer.node.tree import actions as act
from peer.node.tree.simnet import Peer, SimNet
from peer.node.tree.state import (
    MOVE_MAX_REFUSED,
    RECHECK_S,
    StreamInfo,
    TreeState,
    TreeTiming,
)
from protocol import (
    Accept,
    Bye,
    Candidate,
    ErrorCode,
    Hello,
    JoinRequest,
    LayerDemand,
    PathEntry,
    PathUpdate,
    Redirect,
    StreamRelease,
    limits,
)
from protocol.limits import NO_VIDEO
from tests.support.rooms import FixedRoom

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
RTT_S = 0.02


def _tree(peer_id: str = "me", candidates: list[Candidate] | None = None,
          fanout: int = 2) -> TreeState:
    return TreeState(peer_id=peer_id, name=peer_id, room="lobby", fanout=fanout, layer=720,
                     room_view=FixedRoom(candidates or []), timing=TIMING, now=0.0)


def _sent(actions: list[act.Action]) -> list[object]:
    return [a.message for a in actions if isinstance(a, act.Send)]


def _closes(actions: list[act.Action]) -> list[act.Close]:
    return [a for a in actions if isinstance(a, act.Close)]


def _root(fanout: int = 2) -> TreeState:
    tree = _tree("root", fanout=fanout)
    tree.become_root(1, StreamInfo(1280, 720, 30.0), 0.0)
    return tree


def _hello(tree: TreeState, link: int, peer_id: str, room: str = "lobby") -> list[act.Action]:
    return tree.receive(link, Hello(peer_id=peer_id, name=peer_id, room=room), 0.1)


# --- one peer --------------------------------------------------------------------


def test_an_acceptor_answers_hello_and_accepts_a_child_with_its_path() -> None:
    root = _root()
    link = root.inbound(0.0, "10.0.0.2")
    assert _sent(_hello(root, link, "kid")) == [Hello(peer_id="root", name="root", room="lobby")]
    actions = root.receive(link, JoinRequest(layer=480, listen_host="0.0.0.0",
                                             listen_port=7000), 0.1)
    accept = _sent(actions)[0]
    assert isinstance(accept, Accept)
    assert [p.id for p in accept.path] == ["root"] and accept.epoch == 1
    assert (accept.source_width, accept.source_height) == (1280, 720)
    assert act.ChildAttached(link, "kid", "kid", 480) in actions
    assert root.children == [link] and root.child_layer(link) == 480
    # The wildcard listen address becomes the address we saw it come from.
    full = root.inbound(0.0, "10.0.0.3")
    _hello(root, full, "b")
    root.receive(full, JoinRequest(layer=480, listen_port=7001), 0.1)
    third = root.inbound(0.0, "10.0.0.4")
    _hello(root, third, "c")
    redirect = _sent(root.receive(third, JoinRequest(layer=480), 0.1))[0]
    assert isinstance(redirect, Redirect) and redirect.reason == "full"
    assert {(c.id, c.host, c.port) for c in redirect.candidates} == {
        ("kid", "10.0.0.2", 7000), ("b", "10.0.0.3", 7001)}


@pytest.mark.parametrize(("room", "versions", "code"), [
    ("elsewhere", limits.SUPPORTED_VERSIONS, ErrorCode.UNEXPECTED),
    ("lobby", (99,), ErrorCode.BAD_VERSION),
])
def test_a_wrong_room_or_version_closes_the_link_with_a_coded_bye(
        room: str, versions: tuple[int, ...], code: ErrorCode) -> None:
    root = _root()
    link = root.inbound(0.0, "10.0.0.2")
    actions = root.receive(link, Hello(peer_id="x", name="x", room=room, versions=versions),
                           0.1)
    [close] = _closes(actions)
    assert close.bye is not None and close.bye.code == code
    assert root.peer_of(link) == (None, "?")


def test_a_join_before_hello_and_an_unexpected_message_close_that_link_only() -> None:
    root = _root()
    first = root.inbound(0.0, "10.0.0.2")
    [close] = _closes(root.receive(first, JoinRequest(layer=360), 0.1))
    assert close.bye is not None and close.bye.code == ErrorCode.UNEXPECTED
    second = root.inbound(0.0, "10.0.0.3")
    _hello(root, second, "y")
    assert root.receive(second, Accept(path=(), epoch=1), 0.1) == []  # nobody asked: ignored
    [close] = _closes(root.receive(second, StreamRelease(), 0.1))  # a tracker's message
    assert close.link == second and close.bye is not None
    assert close.bye.code == ErrorCode.UNEXPECTED and "StreamRelease" in close.reason
    assert root.children == []


def test_an_ancestor_is_refused_and_an_accept_holding_us_is_withdrawn() -> None:
    candidate = Candidate("p", "p", "10.0.0.5", 5000, 1, 1)
    tree = _tree("me", [candidate])
    assert tree.set_streamer("root", 1, 0.0) == [act.Dial(1, candidate)]
    sent = _sent(tree.connected(1, 0.02))
    assert isinstance(sent[1], JoinRequest)
    _hello(tree, 1, "p")
    loop_path = (PathEntry("root", "root"), PathEntry("me", "me"), PathEntry("p", "p"))
    actions = tree.receive(1, Accept(path=loop_path, epoch=1), 0.05)
    [close] = _closes(actions)
    assert close.bye is not None and close.bye.code == ErrorCode.LOOP
    assert tree.parent is None and tree.counters.loops_refused == 1

    # Attached under "a"; a joiner that is on our path is sent elsewhere.
    tree = _tree("me", [Candidate("a", "a", "10.0.0.6", 6000, 1, 1)])
    tree.set_streamer("root", 1, 0.0)
    tree.connected(1, 0.02)
    _hello(tree, 1, "a")
    tree.receive(1, Accept(path=(PathEntry("root", "root"), PathEntry("a", "a")), epoch=1),
                 0.05)
    assert tree.depth == 2
    ancestor = tree.inbound(0.1, "10.0.0.1")
    _hello(tree, ancestor, "root")
    refusal = _sent(tree.receive(ancestor, JoinRequest(layer=720), 0.1))[0]
    assert isinstance(refusal, Redirect) and refusal.reason == "you are my ancestor"
    # A path update that now holds us means our parent moved below us: leave it.
    loop = PathUpdate(path=(PathEntry("root", "root"), PathEntry("me", "me"),
                            PathEntry("a", "a")))
    [close] = _closes(tree.receive(1, loop, 0.2))
    assert close.link == 1 and close.bye is not None and close.bye.code == ErrorCode.LOOP


def _path(*ids: str) -> tuple[PathEntry, ...]:
    return tuple(PathEntry(i, i, "10.0.1.1", 5000) for i in ids)


def _dials(actions: list[act.Action]) -> list[act.Dial]:
    return [a for a in actions if isinstance(a, act.Dial)]


def test_a_peer_pushed_two_levels_deeper_looks_for_a_move_at_once() -> None:
    # Listed free places: its parent-to-be, and one near the root.
    near = Candidate("s", "s", "10.0.0.7", 7000, 1, 2)
    tree = _tree("me", [Candidate("a", "a", "10.0.0.6", 6000, 2, 1), near])
    assert _dials(tree.set_streamer("root", 1, 0.0))[0].candidate.id == "a"
    tree.connected(1, 0.02)
    _hello(tree, 1, "a")
    tree.receive(1, Accept(path=_path("root", "x", "a"), epoch=1), 0.05)
    assert tree.depth == 3
    # One level deeper: nothing to do before the periodic check.
    tree.receive(1, PathUpdate(path=_path("root", "y", "x", "a")), 1.0)
    assert _dials(tree.handle_timer(1.0)) == []
    # An ancestor re-attached at the bottom of the tree: three levels deeper at once.
    [dial] = _dials(tree.receive(1, PathUpdate(path=_path("root", "y", "z", "w", "x", "a")),
                                 2.0))
    assert dial.candidate == near and tree.parent == 1  # make before break


def test_a_refused_move_follows_the_redirect_while_it_gains_and_is_bounded() -> None:
    near = Candidate("s", "s", "10.0.0.7", 7000, 1, 2)
    tree = _tree("me", [Candidate("a", "a", "10.0.0.6", 6000, 4, 1), near])
    tree.set_streamer("root", 1, 0.0)
    tree.connected(1, 0.02)
    _hello(tree, 1, "a")
    tree.receive(1, Accept(path=_path("root", "v", "w", "x", "a"), epoch=1), 0.05)
    assert tree.depth == 5
    now = 5.0  # the periodic check
    tree.heard(1, now)  # the parent's pongs
    [dial] = _dials(tree.handle_timer(now))
    assert dial.candidate == near
    # "s" is full: its children one level down (depth 2, we would be at 3) still gain.
    tree.connected(dial.link, now)
    _hello(tree, dial.link, "s")
    kids = (Candidate("s1", "s1", "10.0.0.8", 8000, 2, 1),)
    [follow] = _dials(tree.receive(dial.link, Redirect(candidates=kids, reason="full"), now))
    assert follow.candidate.id == "s1"
    # Full too, and its children (depth 3: we would be at 4) gain one level only: stop.
    tree.connected(follow.link, now)
    _hello(tree, follow.link, "s1")
    grandkids = (Candidate("s2", "s2", "10.0.0.9", 9000, 3, 1),)
    assert _dials(tree.receive(follow.link, Redirect(candidates=grandkids, reason="full"),
                               now)) == []
    assert tree.parent == 1 and tree.depth == 5
    # The refused places are not dialled again for a while, even when listed free.
    tree.heard(1, now + 1.0)
    assert _dials(tree.handle_timer(now + 1.0)) == []

    # A hostile redirector naming ever new places near the root cannot keep us dialling.
    tree = _tree("me", [Candidate("a", "a", "10.0.0.6", 6000, 4, 1), near])
    tree.set_streamer("root", 1, 0.0)
    tree.connected(1, 0.02)
    _hello(tree, 1, "a")
    tree.receive(1, Accept(path=_path("root", "v", "w", "x", "a"), epoch=1), 0.05)
    tree.heard(1, 5.0)
    dials = _dials(tree.handle_timer(5.0))
    count = 0
    while dials:
        count += 1
        link = dials[0].link
        tree.connected(link, 5.0)
        _hello(tree, link, f"h{count}")
        fake = (Candidate(f"f{count}", "f", "10.0.0.10", 1000 + count, 0, 1),)
        dials = _dials(tree.receive(link, Redirect(candidates=fake, reason="full"), 5.0))
    assert count == MOVE_MAX_REFUSED and tree.parent == 1


def test_demand_flows_up_as_the_max_of_own_and_children_layers() -> None:
    tree = _tree("me", [Candidate("p", "p", "10.0.0.5", 5000, 0, 1)])
    tree.set_layer(360, 0.0)
    tree.set_streamer("p", 1, 0.0)
    join = _sent(tree.connected(1, 0.02))[1]
    assert isinstance(join, JoinRequest) and join.layer == 360
    _hello(tree, 1, "p")
    actions = tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1,
                                     source_width=1920, source_height=1080), 0.05)
    assert LayerDemand(layer=360) in _sent(actions)
    child = tree.inbound(0.1, "10.0.0.7")
    _hello(tree, child, "c")
    assert LayerDemand(layer=720) in _sent(tree.receive(child, JoinRequest(layer=720), 0.1))
    assert LayerDemand(layer=1080) in _sent(tree.receive(child, LayerDemand(layer=1080), 0.2))
    assert _sent(tree.set_layer(480, 0.3)) == []  # the child still needs 1080
    assert LayerDemand(layer=480) in _sent(tree.link_closed(child, "gone", 0.4))


def test_a_stale_epoch_tree_is_refused_and_a_silent_answer_times_out() -> None:
    cands = [Candidate("old", "old", "10.0.0.5", 5000, 0, 1),
             Candidate("slow", "slow", "10.0.0.6", 6000, 0, 1)]
    tree = _tree("me", cands)
    tree.set_streamer("new", 5, 0.0)
    tree.connected(1, 0.02)
    _hello(tree, 1, "old")
    actions = tree.receive(1, Accept(path=(PathEntry("old", "old"),), epoch=4), 0.05)
    [close] = _closes(actions)
    assert close.bye is not None and close.bye.code == ErrorCode.STALE_EPOCH
    assert act.Dial(2, cands[1]) in actions  # on to the next candidate
    tree.connected(2, 0.1)
    assert tree.get_timer() <= 0.1 + TIMING.connect_timeout_s
    timed_out: list[act.Action] = []
    # (The deadline's wake-up is the first in a while: the verdict waits for a re-check.)
    while (due := tree.get_timer()) <= 0.1 + TIMING.connect_timeout_s + RECHECK_S:
        timed_out += tree.handle_timer(due)  # every wake-up on time (a late one is a stall)
    assert [c.reason for c in _closes(timed_out)] == ["join timed out"]
    assert tree.parent is None and tree.get_timer() < 3.0  # a retry is scheduled


def test_a_bye_that_ends_the_stream_is_passed_down_and_not_repaired() -> None:
    tree = _tree("me", [Candidate("p", "p", "10.0.0.5", 5000, 0, 1)])
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    _hello(tree, 1, "p")
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    child = tree.inbound(0.1, "10.0.0.7")
    _hello(tree, child, "c")
    tree.receive(child, JoinRequest(layer=720), 0.1)
    actions = tree.receive(1, Bye(reason="stream ended", code=int(ErrorCode.STREAM_ENDED)),
                           0.2)
    detached = [a for a in actions if isinstance(a, act.ParentDetached)]
    assert detached and detached[0].stream_over
    [close] = _closes(actions)
    assert close.link == child and close.bye is not None
    assert close.bye.code == ErrorCode.STREAM_ENDED
    assert not [a for a in actions if isinstance(a, act.Dial) and a.candidate.id == "p"]


# --- rooms on the virtual network ------------------------------------------------


def _room(n: int, fanout: int = 3, seed: int = 1, stagger_s: float = 0.0) -> tuple[SimNet, Peer]:
    net = SimNet(timing=TIMING, latency_s=RTT_S / 2, seed=seed)
    root = net.add_peer("root", fanout=fanout)
    net.make_root(root)
    for i in range(n):
        net.run_until(net.now + stagger_s)
        peer = net.add_peer(f"p{i}", fanout=fanout)
        net.apply(peer, peer.tree.set_streamer("root", 1, net.now))
    return net, root


def _no_cycles(net: SimNet) -> None:
    for peer in net.peers.values():
        seen = {peer.id}
        node = net.parent_of(peer)
        while node is not None:
            assert node.id not in seen, f"loop through {node.id}"
            seen.add(node.id)
            node = net.parent_of(node)


def _viewers(net: SimNet, root: Peer) -> set[str]:
    return {p.id for p in net.peers.values() if p.healthy and p is not root}


def test_a_join_storm_of_300_settles_into_a_shallow_tree() -> None:
    net, root = _room(300)
    net.run_until(10.0)
    assert net.receiving(root) == _viewers(net, root)
    depth = max(p.tree.depth or 0 for p in net.peers.values())
    assert depth <= math.ceil(math.log(301, 3)) + 2
    assert all(len(p.tree.children) <= 3 for p in net.peers.values())
    joins = sorted(p.joined_at - p.started_at for p in net.peers.values()
                   if p is not root and p.joined_at is not None)
    assert joins[int(len(joins) * 0.95)] < 2.0
    _no_cycles(net)


def test_churn_never_makes_a_loop_and_everyone_alive_ends_up_receiving() -> None:
    net, root = _room(120, seed=7, stagger_s=0.01)
    net.run_until(5.0)
    rng = net.rng
    others = [p for p in net.peers.values() if p is not root]
    for step in range(40):
        victim = rng.choice([p for p in others if p.alive])
        if step % 2:
            net.kill(victim)
        else:
            net.leave(victim)
        fresh = net.add_peer(f"n{step}", fanout=3)
        others.append(fresh)
        net.apply(fresh, fresh.tree.set_streamer("root", 1, net.now))
        net.run_until(net.now + 0.3)
        _no_cycles(net)
    net.run_until(net.now + 5.0)
    _no_cycles(net)
    assert net.receiving(root) == _viewers(net, root)


def test_simultaneous_departures_of_a_fifth_repair_within_a_few_round_trips() -> None:
    net, root = _room(200, seed=3)
    net.run_until(8.0)
    victims = [p for p in net.peers.values() if p is not root and p.tree.children][:40]
    for victim in victims:
        net.kill(victim)
    net.run_until(net.now + 4.0)
    assert net.receiving(root) == _viewers(net, root)
    repairs = sorted(r for p in net.peers.values() for r in p.repairs)
    assert repairs and repairs[int(len(repairs) * 0.95)] < 1.0  # EOF: no timeout involved
    _no_cycles(net)


def test_a_frozen_parent_is_timed_out_and_its_children_move_with_their_subtrees() -> None:
    net, root = _room(60, seed=5)
    net.run_until(6.0)
    frozen = next(p for p in net.peers.values()
                  if p is not root and len(p.tree.children) >= 2
                  and any(net.peers[c].tree.children for c in _child_ids(net, p)))
    kids = _child_ids(net, frozen)
    grandkids = {g for k in kids for g in _child_ids(net, net.peers[k])}
    net.freeze(frozen)
    started = net.now
    net.run_until(started + TIMING.link_timeout_s + 2.0)
    receiving = net.receiving(root)
    assert _viewers(net, root) - {frozen.id} <= receiving
    for kid in kids:
        peer = net.peers[kid]
        assert peer.repairs and max(peer.repairs) < 3 * RTT_S + 0.1  # re-join after detection
        assert net.parent_of(peer) is not frozen
    # The subtrees moved whole: no grandchild lost its parent (one that landed two
    # levels deeper may since have moved up, make before break).
    for grandkid in map(net.peers.__getitem__, grandkids):
        assert grandkid.tree.counters.parents_lost == 0
        assert net.parent_of(grandkid).id in kids or grandkid.tree.counters.moves  # type: ignore[union-attr]


def _child_ids(net: SimNet, peer: Peer) -> set[str]:
    found = set()
    for link in peer.tree.children:
        end = peer.ends.get(link)
        if end is not None and end.other is not None:
            found.add(end.other.peer.id)
    return found


def test_a_network_split_cuts_one_side_off_and_healing_brings_it_back() -> None:
    net, root = _room(80, seed=11)
    net.run_until(6.0)
    cut = {p.id: 1 for p in list(net.peers.values())[41:]}
    net.split(cut)
    net.run_until(net.now + 4.0)
    receiving = net.receiving(root)
    assert not receiving & set(cut)
    assert _viewers(net, root) - set(cut) <= receiving  # the root's side is whole
    _no_cycles(net)
    net.heal()
    for peer in net.peers.values():
        net.apply(peer, peer.tree.directory_changed(net.now))
    net.run_until(net.now + 5.0)
    assert net.receiving(root) == _viewers(net, root)
    _no_cycles(net)


def test_a_graceful_leave_sends_children_to_the_grandparent_first() -> None:
    net, root = _room(12, fanout=2, seed=2)
    net.run_until(4.0)
    leaver = next(p for p in net.peers.values()
                  if p is not root and net.parent_of(p) is not None and p.tree.children)
    grandparent = net.parent_of(leaver)
    kids = _child_ids(net, leaver)
    net.leave(leaver)
    net.run_until(net.now + 2.0)
    assert net.receiving(root) == _viewers(net, root)
    for kid in kids:
        peer = net.peers[kid]
        # The Bye's hint is the grandparent: one dial, or two when a sibling took
        # the free slot first (then the grandparent redirects to it).
        assert peer.repairs and peer.repairs[-1] <= 5 * RTT_S + 0.001
    assert any(net.parent_of(net.peers[k]) is grandparent for k in kids)


def test_the_end_of_the_stream_reaches_every_peer_and_nobody_repairs() -> None:
    net, root = _room(30, seed=4)
    net.run_until(4.0)
    net.apply(root, root.tree.end_root(net.now))
    for peer in net.peers.values():
        net.apply(peer, peer.tree.set_streamer(None, 0, net.now))
    net.run_until(net.now + 3.0)
    assert all(not p.tree.attached for p in net.peers.values())
    assert not any(p.lost_at for p in net.peers.values())


def test_a_full_uplink_sends_the_newest_child_to_a_sibling() -> None:
    root = _root(fanout=3)
    links = []
    for i, port in enumerate((7000, 7001)):
        link = root.inbound(0.0, f"10.0.0.{i + 2}")
        _hello(root, link, f"kid{i}")
        root.receive(link, JoinRequest(layer=720, listen_port=port), 0.1)
        links.append(link)
    actions = root.shed_child(1.0)
    (close,) = _closes(actions)
    assert close.link == links[1] and close.bye is not None
    assert [c.id for c in close.bye.candidates] == ["kid0"]  # where to go instead
    assert root.children == [links[0]]
    assert root.shed_child(2.0) == []  # the last child stays: someone must be fed


def test_codec_and_auto_travel_with_accept_and_demand() -> None:
    root = _tree("root")
    root.become_root(1, StreamInfo(1280, 720, 30.0, "h264"), 0.0)
    link = root.inbound(0.0, "10.0.0.2")
    _hello(root, link, "kid")
    accept = _sent(root.receive(link, JoinRequest(layer=720), 0.1))[0]
    assert isinstance(accept, Accept) and accept.codec == "h264"
    changed = root.receive(link, LayerDemand(layer=720, auto=True), 0.2)
    assert act.ChildLayerChanged(link, 720, True) in changed


def test_after_a_repair_peers_move_up_and_the_depth_stays_near_log_k() -> None:
    net, root = _room(150, seed=9)
    net.run_until(8.0)  # the move checks run at 5 s, 10 s, ... (all peers start at 0)
    bound = math.ceil(math.log(151, 3)) + 2
    # The root's children carry the biggest subtrees; each moves whole.
    for victim in [p for p in net.peers.values() if p.tree.depth == 1]:
        net.kill(victim)
    net.run_until(net.now + 1.5)
    assert net.receiving(root) == _viewers(net, root)
    net.run_until(net.now + 11.0)  # two move checks
    moves = sum(p.tree.counters.moves for p in net.peers.values())
    settled = max(p.tree.depth or 0 for p in net.peers.values() if p.healthy)
    assert moves > 0 and settled <= bound, (moves, settled)
    assert net.receiving(root) == _viewers(net, root)  # make before break: nobody cut off
    _no_cycles(net)


def _layer_at_parent(net: SimNet, peer: Peer) -> int:
    """The layer ``peer``'s parent keeps for it (what it sends that link)."""
    parent = net.parent_of(peer)
    assert parent is not None
    [link] = [c for c in parent.tree.children if parent.tree.peer_of(c)[0] == peer.id]
    return parent.tree.child_layer(link)


def test_no_video_demand_flows_up_and_wanting_children_still_get_their_layer() -> None:
    """Issue 16: a peer not watching (a streamer choosing its source) asks for no video;
    a relay that watches nothing itself still asks for what its children want."""
    timing = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0,
                        video_timeout_s=1.0)
    net = SimNet(timing=timing, latency_s=RTT_S / 2, seed=2)
    root = net.add_peer("root", fanout=1)  # one child: the next peer must go below it
    net.make_root(root)
    relay = net.add_peer("relay", fanout=2, layer=NO_VIDEO)
    net.apply(relay, relay.tree.set_streamer("root", 1, net.now))
    net.run_until(2.0)
    assert net.parent_of(relay) is root and relay.tree.demand() == NO_VIDEO
    assert _layer_at_parent(net, relay) == NO_VIDEO
    # No video is due, so none coming is no silent parent (the simulator sends none).
    net.run_until(6.0)
    assert net.parent_of(relay) is root and relay.tree.counters.silent_parents == 0

    viewer = net.add_peer("viewer", fanout=2, layer=720)
    net.apply(viewer, viewer.tree.set_streamer("root", 1, net.now))
    net.run_until(net.now + 0.5)
    assert net.parent_of(viewer) is relay
    assert relay.tree.layer == NO_VIDEO and relay.tree.demand() == 720
    assert _layer_at_parent(net, viewer) == 720
    assert _layer_at_parent(net, relay) == 720  # max over the subtree reached the root
    net.leave(viewer)
    net.run_until(net.now + 0.5)
    assert _layer_at_parent(net, relay) == NO_VIDEO  # and back down when it left


def test_a_no_video_peer_that_starts_watching_expects_video_again() -> None:
    timing = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0,
                        video_timeout_s=1.0)
    net = SimNet(timing=timing, latency_s=RTT_S / 2, seed=4)
    root = net.add_peer("root", fanout=2)
    net.make_root(root)
    peer = net.add_peer("p", fanout=2, layer=NO_VIDEO)
    net.apply(peer, peer.tree.set_streamer("root", 1, net.now))
    net.run_until(4.0)
    assert peer.tree.counters.silent_parents == 0
    net.apply(peer, peer.tree.set_layer(480, net.now))
    net.run_until(net.now + 0.1)
    assert _layer_at_parent(net, peer) == 480
    # Video is due now and the simulator sends none: the parent counts as silent after
    # the allowance, which started when video became due, not at attach.
    net.run_until(net.now + 0.7)
    assert peer.tree.counters.silent_parents == 0
    net.run_until(net.now + 1.0)
    assert peer.tree.counters.silent_parents == 1


def _sound_at_parent(net: SimNet, peer: Peer) -> bool:
    """Whether ``peer``'s parent sends it sound (its subtree asked for it)."""
    parent = net.parent_of(peer)
    assert parent is not None
    [link] = [c for c in parent.tree.children if parent.tree.peer_of(c)[0] == peer.id]
    return parent.tree.child_wants_sound(link)


def test_sound_demand_flows_up_only_from_subtrees_that_play_or_record() -> None:
    """Issue 10 (scale): a subtree of silent viewers gets no sound; one listener below
    a silent relay makes the relay ask for it, and the ask ends when it goes."""
    net = SimNet(timing=TIMING, latency_s=RTT_S / 2, seed=3)
    root = net.add_peer("root", fanout=1)  # one child: the rest goes below the relay
    net.make_root(root)
    relay = net.add_peer("relay", fanout=2)
    net.apply(relay, relay.tree.set_sound(False, net.now))
    net.apply(relay, relay.tree.set_streamer("root", 1, net.now))
    net.run_until(1.0)
    assert net.parent_of(relay) is root and not relay.tree.sound_demand()
    assert not _sound_at_parent(net, relay)
    silent = net.add_peer("silent", fanout=0)
    net.apply(silent, silent.tree.set_sound(False, net.now))
    net.apply(silent, silent.tree.set_streamer("root", 1, net.now))
    net.run_until(2.0)
    assert net.parent_of(silent) is relay
    assert not _sound_at_parent(net, silent) and not _sound_at_parent(net, relay)
    listener = net.add_peer("listener", fanout=0)  # plays: the default
    net.apply(listener, listener.tree.set_streamer("root", 1, net.now))
    net.run_until(3.0)
    assert net.parent_of(listener) is relay
    # The relay forwards to the one who listens, not to its silent sibling...
    assert _sound_at_parent(net, listener) and not _sound_at_parent(net, silent)
    assert _sound_at_parent(net, relay)  # ...and asked the root for it.
    # It stops playing: nobody below the root wants sound any more.
    net.apply(listener, listener.tree.set_sound(False, net.now))
    net.run_until(3.2)
    assert not _sound_at_parent(net, listener) and not _sound_at_parent(net, relay)
    net.apply(listener, listener.tree.set_sound(True, net.now))
    net.run_until(3.4)
    assert _sound_at_parent(net, relay)
    net.leave(listener)
    net.run_until(4.0)
    assert not _sound_at_parent(net, relay)  # and back off when it left


def test_sound_demand_travels_with_the_join_and_an_older_peer_gets_sound() -> None:
    tree = _tree("me", [Candidate("p", "p", "10.0.0.5", 5000, 0, 1)])
    tree.set_sound(False, 0.0)
    tree.set_streamer("p", 1, 0.0)
    join = _sent(tree.connected(1, 0.02))[1]
    assert isinstance(join, JoinRequest) and join.sound is False
    _hello(tree, 1, "p")
    actions = tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    assert LayerDemand(layer=720, sound=False) in _sent(actions)
    # A child that predates the flag (no "snd" on the wire) asks for sound.
    child = tree.inbound(0.1, "10.0.0.7")
    _hello(tree, child, "old")
    old_join = JoinRequest.from_meta({"layer": 480, "host": None, "port": None}, b"")
    assert old_join.sound is True
    assert LayerDemand(layer=720, sound=True) in _sent(tree.receive(child, old_join, 0.1))
    assert tree.child_wants_sound(child)
    # A child whose subtree watches nothing gets no sound, whatever it asked.
    assert LayerDemand(layer=720, sound=False) in _sent(
        tree.receive(child, LayerDemand(layer=NO_VIDEO, sound=True), 0.2))
    assert not tree.child_wants_sound(child)
    # A sound-only change is no layer change for the relay.
    tree.receive(child, LayerDemand(layer=480, sound=True), 0.3)
    changed = tree.receive(child, LayerDemand(layer=480, sound=False), 0.4)
    assert not any(isinstance(a, act.ChildLayerChanged) for a in changed)
    assert LayerDemand(layer=720, sound=False) in _sent(changed)
    assert not tree.child_wants_sound(child)
    # Not a child (our parent's link, an unknown id): no sound goes there.
    assert not tree.child_wants_sound(1) and not tree.child_wants_sound(99)
