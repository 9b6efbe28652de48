"""Moves are make-before-break for the video too: the old parent feeds us until the new
parent's frames continue ours, then the new one takes over and no frame is lost. A
shed child moves the same way, to a place with room.

In memory, with injected times: the splice of two parents' frames (handover.py), the
tree state's incoming parent (take over, give up, the old parent lost meanwhile), a
shed as a move (the parent's side and the child's), and the intake between them with
a real tree state and signed frames.
"""

from __future__ import annotations

from typing import Any

from peer.node.handover import HOLD_FRAMES, Mark, Splice, continues
from peer.node.intake import VideoIntake
from peer.node.stats import StreamStats
from peer.node.tree import actions as act
from peer.node.tree.state import (
    MOVE_ON_MAX_DIALS,
    MOVE_REFUSED_S,
    RECHECK_S,
    SHED_GRACE_S,
    StreamInfo,
    TreeState,
    TreeTiming,
)
from protocol import (
    Accept,
    Bye,
    Candidate,
    Hello,
    JoinRequest,
    PathEntry,
    PathUpdate,
    Redirect,
    VideoFrame,
)
from tests.support.rooms import FixedRoom
from tests.support.signed_stream import FakeStreamer

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
HANDOVER_S = 3.0


def _frame(seq: int, *, keyframe: bool = False, prev: int | None = None, layer: int = 720,
           by: str = "", epoch: int = 1, codec: str = "h264") -> VideoFrame:
    return VideoFrame(epoch, seq, float(seq), 1280, 720, layer, b"x", codec=codec,
                      keyframe=keyframe, prev=seq - 1 if prev is None else prev, by=by)


def _mark(seq: int, layer: int = 720, by: str = "") -> Mark:
    return Mark(1, seq, layer, by)


# --- the splice --------------------------------------------------------------------


def test_a_frame_continues_ours_when_it_refers_to_it_from_the_same_encoder_or_is_a_keyframe(
) -> None:
    assert continues(_frame(11), _mark(10))
    assert continues(_frame(11, keyframe=True), _mark(10, layer=480))  # any layer starts
    assert not continues(_frame(11), _mark(10, layer=480))  # another encoder's P-frame
    assert not continues(_frame(11), _mark(10, by="relay"))  # a transcoder's
    assert not continues(_frame(12, keyframe=True), _mark(10))  # 11 would be lost
    assert not continues(_frame(10, keyframe=True), _mark(10))  # we have it
    jpeg = _frame(11, keyframe=True, prev=-1, codec="mjpeg")
    assert continues(jpeg, _mark(10)) and not continues(jpeg, _mark(9))
    assert continues(_frame(5, keyframe=True), None) and not continues(_frame(5), None)


def test_a_new_path_ahead_waits_for_the_old_one_to_reach_its_keyframe() -> None:
    splice = Splice()
    # We passed 10 from the old parent; the new one's keyframe 13 and 14 come first.
    assert splice.from_new(_frame(13, keyframe=True), _mark(10)) is None
    assert splice.from_new(_frame(14), _mark(10)) is None
    assert splice.after_old(_mark(11)) is None
    taken = splice.after_old(_mark(12))
    assert taken is not None and [f.seq for f in taken] == [13, 14] and splice.held == 0


def test_a_new_path_behind_switches_once_its_stream_is_whole_and_the_same_encoders() -> None:
    splice = Splice()
    # The old parent is ahead: the new one's keyframe 8 is one we have. Its stream is
    # whole from there and of our encoder (layer 720, the streamer's): switch at once.
    assert splice.from_new(_frame(8, keyframe=True), _mark(10)) == []
    # Not so while its frames come from another encoder (a transcoding relay's) ...
    splice.reset()
    assert splice.from_new(_frame(8, keyframe=True, by="relay"), _mark(10)) is None
    # ... or before its stream starts at a keyframe.
    splice.reset()
    assert splice.from_new(_frame(9), _mark(10)) is None
    # A new path just as fast: its keyframe 11 follows our 10 (any encoder's may).
    splice.reset()
    taken = splice.from_new(_frame(11, keyframe=True, by="relay"), _mark(10))
    assert taken is not None and [f.seq for f in taken] == [11]


def test_frames_the_old_parent_delivers_meanwhile_are_not_passed_twice() -> None:
    splice = Splice()
    splice.from_new(_frame(12, keyframe=True), _mark(10))
    splice.from_new(_frame(13), _mark(10))
    splice.from_new(_frame(14), _mark(10))
    # The old parent lost 11 in its own queue and resumes at the same keyframe 12: the
    # held 12 is dropped, and 13 (the same encoder's, referring to 12) continues it.
    taken = splice.after_old(_mark(12))
    assert taken is not None and [f.seq for f in taken] == [13, 14]
    assert splice.duplicates == 1


def test_an_old_parent_that_stopped_is_left_at_the_new_keyframe_after_a_bounded_hold(
) -> None:
    splice = Splice()
    assert splice.from_new(_frame(20, keyframe=True), _mark(10)) is None
    for seq in range(21, 20 + HOLD_FRAMES):
        assert splice.from_new(_frame(seq), _mark(10)) is None
    assert splice.held == HOLD_FRAMES
    taken = splice.from_new(_frame(20 + HOLD_FRAMES), _mark(10))
    assert taken is not None and splice.held == 0
    assert [f.seq for f in taken] == list(range(20, 21 + HOLD_FRAMES))


def test_a_break_in_the_new_parents_stream_drops_what_it_held() -> None:
    splice = Splice()
    splice.from_new(_frame(13, keyframe=True), _mark(10))
    splice.from_new(_frame(15, prev=14), _mark(10))  # 14 was lost in its queue
    assert splice.held == 0
    assert splice.from_new(_frame(16), _mark(10)) is None  # still broken: no keyframe yet
    assert splice.after_old(_mark(15)) is None
    splice.from_new(_frame(17, keyframe=True), _mark(15))
    taken = splice.after_old(_mark(16))
    assert taken is not None and [f.seq for f in taken] == [17]


# --- the tree state ------------------------------------------------------------------


def _path(*ids: str) -> tuple[PathEntry, ...]:
    return tuple(PathEntry(i, i, "10.0.1.1", 5000) for i in ids)


def _moving_tree(handover_s: float = HANDOVER_S) -> tuple[TreeState, int, act.Dial]:
    """A peer at depth 5 (parent on link 1) that dialled a place near the root."""
    near = Candidate("s", "s", "10.0.0.7", 7000, 1, 2)
    tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("a", "a", "10.0.0.6", 6000, 4, 1), near]),
                     timing=TIMING, now=0.0, handover_s=handover_s)
    tree.set_streamer("root", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="a", name="a", room="lobby"), 0.03)
    tree.receive(1, Accept(path=_path("root", "v", "w", "x", "a"), epoch=1), 0.05)
    tree.heard(1, 5.0)
    [dial] = [a for a in tree.handle_timer(5.0) if isinstance(a, act.Dial)]
    tree.connected(dial.link, 5.0)
    tree.receive(dial.link, Hello(peer_id="s", name="s", room="lobby"), 5.0)
    return tree, 1, dial


def test_an_accepted_move_keeps_the_old_parent_until_the_new_one_takes_over() -> None:
    tree, old, dial = _moving_tree()
    actions = tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    assert not [a for a in actions if isinstance(a, act.Close | act.ParentAttached)]
    assert tree.parent == old and tree.incoming == dial.link and tree.depth == 5
    # The new parent is pinged like a parent meanwhile (its liveness: at once, then as
    # any parent), and its path kept current. (Both quiet here: only Pongs heard, so
    # both are probed once silent for half the link timeout.)
    assert act.PingDue(dial.link) in actions
    tree.heard(old, 5.25, answer=True)
    tree.heard(dial.link, 5.25, answer=True)
    pings: set[int] = set()
    while (due := tree.get_timer()) <= 5.25 + TIMING.link_timeout_s / 2:
        pings |= {a.link for a in tree.handle_timer(due) if isinstance(a, act.PingDue)}
    assert pings == {old, dial.link} and tree.incoming == dial.link
    tree.receive(dial.link, PathUpdate(path=_path("root", "q", "s")), 5.3)
    actions = tree.take_over(5.4)
    [close] = [a for a in actions if isinstance(a, act.Close)]
    assert close.link == old and close.bye is not None
    [attached] = [a for a in actions if isinstance(a, act.ParentAttached)]
    assert attached.handed_over and attached.link == dial.link
    assert tree.parent == dial.link and tree.incoming is None and tree.depth == 3
    assert tree.counters.moves == 1


def test_a_new_parent_whose_video_never_continues_ours_is_given_up_and_we_stay() -> None:
    tree, old, dial = _moving_tree()
    tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    assert tree.get_timer() <= 5.05 + HANDOVER_S
    for t in (5.25, 5.5, 5.75, 6.0, 6.25, 6.5, 6.75, 7.0, 7.25, 7.5, 7.75, 8.0):
        tree.heard(old, t)
        tree.heard(dial.link, t)
        tree.handle_timer(t)
    actions = tree.handle_timer(5.05 + HANDOVER_S)
    [close] = [a for a in actions if isinstance(a, act.Close)]
    assert close.link == dial.link
    assert tree.parent == old and tree.incoming is None and tree.depth == 5
    assert tree.take_over(8.1) == []
    # That place is not dialled for a move again for a while.
    tree.heard(old, 8.1 + MOVE_REFUSED_S / 2)
    assert not [a for a in tree.handle_timer(8.1 + MOVE_REFUSED_S / 2)
                if isinstance(a, act.Dial)]


def test_the_old_parent_lost_during_a_move_hands_over_at_once() -> None:
    tree, old, dial = _moving_tree()
    tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    actions = tree.receive(old, Bye(reason="leaving"), 5.2)
    kinds = [type(a) for a in actions if isinstance(a, act.ParentDetached | act.ParentAttached)]
    assert kinds == [act.ParentDetached, act.ParentAttached]
    [attached] = [a for a in actions if isinstance(a, act.ParentAttached)]
    assert not attached.handed_over  # its media starts at its keyframe
    assert not [a for a in actions if isinstance(a, act.Dial)]  # no repair round
    assert tree.parent == dial.link and tree.incoming is None and tree.depth == 2


def test_a_new_parent_that_turns_out_to_be_below_us_is_given_up() -> None:
    tree, old, dial = _moving_tree()
    tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    actions = tree.receive(dial.link, PathUpdate(path=_path("root", "me", "s")), 5.1)
    assert [a.link for a in actions if isinstance(a, act.Close)] == [dial.link]
    assert tree.parent == old and tree.incoming is None


def test_becoming_the_streamer_during_a_move_closes_both_parents() -> None:
    tree, old, dial = _moving_tree()
    tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    actions = tree.become_root(2, StreamInfo(1280, 720, 30.0), 5.1)
    assert {old, dial.link} <= {a.link for a in actions if isinstance(a, act.Close)}
    assert tree.parent is None and tree.incoming is None and tree.is_root


def test_without_a_handover_time_a_move_switches_at_accept_as_in_the_simulator() -> None:
    tree, _old, dial = _moving_tree(handover_s=0.0)
    tree.receive(dial.link, Accept(path=_path("root", "s"), epoch=1), 5.05)
    assert tree.parent == dial.link and tree.incoming is None


# --- shedding: the child moves on, to a place with room ------------------------------


class _RootRoom(FixedRoom):
    """A fixed room that also knows the root's grandchildren (``below``)."""

    def __init__(self, offers: list[Candidate], below: set[str]) -> None:
        super().__init__(offers)
        self.below = below

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        return set(children) | (self.below if peer_id == "root" else set())


def _parent_of_three(room: list[Candidate], handover_s: float = HANDOVER_S,
                     below: frozenset[str] = frozenset()) -> tuple[TreeState, list[int]]:
    """A root with children a, b and c (c the newest), in ``room``; ``below``: the
    root's descendants under them."""
    tree = TreeState(peer_id="root", name="root", room="lobby", fanout=3, layer=720,
                     room_view=_RootRoom(room, set(below)), timing=TIMING, now=0.0,
                     handover_s=handover_s)
    tree.become_root(1, StreamInfo(1280, 720, 30.0), 0.0)
    kids = []
    for i, name in enumerate("abc"):
        link = tree.inbound(0.0, f"10.0.0.{i + 2}")
        tree.receive(link, Hello(peer_id=name, name=name, room="lobby"), 0.1)
        tree.receive(link, JoinRequest(layer=720, listen_port=7000 + i), 0.1)
        kids.append(link)
    return tree, kids


def test_a_shed_child_is_asked_to_move_on_to_siblings_with_room_and_fed_meanwhile() -> None:
    # The room lists sibling a as full, b with room, a's child a1 and x elsewhere with
    # room: x first (its stream does not come through our full uplink).
    room = [Candidate("a", "a", "10.0.0.2", 7000, 1, 0),
            Candidate("b", "b", "10.0.0.3", 7001, 1, 1),
            Candidate("a1", "a1", "10.0.0.8", 7008, 2, 1),  # below us (a's child)
            Candidate("x", "x", "10.0.0.9", 7009, 2, 2)]
    tree, (a, b, c) = _parent_of_three(room, below=frozenset({"a1"}))
    actions = tree.shed_child(1.0)
    assert not [x for x in actions if isinstance(x, act.Close)]
    [ask] = [x for x in actions if isinstance(x, act.Send)]
    assert ask.link == c and isinstance(ask.message, Redirect)
    assert [h.id for h in ask.message.candidates] == ["b", "x", "a1"]
    assert tree.children == [a, b, c]  # still ours, still fed
    assert tree.shed_child(1.5) == []  # one at a time: the others stay
    # It moved on (its Bye) before the grace: nothing more to do.
    tree.receive(c, Bye(reason="moved on as asked"), 1.6)
    assert tree.children == [a, b]
    assert not [x for x in tree.handle_timer(1.0 + SHED_GRACE_S) if isinstance(x, act.Close)]


def test_a_shed_child_still_there_after_the_grace_is_closed_with_the_same_places() -> None:
    tree, (a, b, c) = _parent_of_three([])
    tree.shed_child(1.0)
    assert tree.get_timer() <= 1.0 + SHED_GRACE_S
    closes: list[act.Close] = []
    # (every wake-up on time; the verdict waits for a re-check after a quiet while)
    while (due := tree.get_timer()) <= 1.0 + SHED_GRACE_S + RECHECK_S:
        for child in (a, b, c):
            tree.heard(child, due)
        closes += [x for x in tree.handle_timer(due) if isinstance(x, act.Close)]
    [close] = closes
    assert close.link == c and close.bye is not None
    assert [h.id for h in close.bye.candidates] == ["a", "b"]  # unlisted: may have room
    assert tree.children == [a, b]


def test_without_a_handover_time_a_shed_closes_at_once_as_in_the_simulator() -> None:
    tree, (a, b, c) = _parent_of_three([], handover_s=0.0)
    [close] = [x for x in tree.shed_child(1.0) if isinstance(x, act.Close)]
    assert close.link == c and tree.children == [a, b]


def _shed_child() -> tuple[TreeState, int]:
    """A viewer at depth 1 (its parent, the root, on link 1)."""
    tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("root", "root", "10.0.0.1", 5000, 0, 1)]),
                     timing=TIMING, now=0.0, handover_s=HANDOVER_S)
    tree.set_streamer("root", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="root", name="root", room="lobby"), 0.03)
    tree.receive(1, Accept(path=_path("root"), epoch=1), 0.05)
    return tree, 1


def test_a_child_asked_to_move_on_dials_the_places_named_and_hands_over_a_level_deeper(
) -> None:
    tree, parent = _shed_child()
    places = (Candidate("b", "b", "10.0.0.3", 7001, 1, 1),
              Candidate("x", "x", "10.0.0.9", 7009, 2, 2))
    [dial] = [x for x in tree.receive(parent, Redirect(candidates=places, reason="full"), 1.0)
              if isinstance(x, act.Dial)]
    assert dial.candidate.id == "b" and tree.parent == parent
    # b is full by now: its children come next, before x.
    tree.connected(dial.link, 1.0)
    tree.receive(dial.link, Hello(peer_id="b", name="b", room="lobby"), 1.0)
    kids = (Candidate("b1", "b1", "10.0.0.4", 7004, 2, 1),)
    [follow] = [x for x in tree.receive(dial.link, Redirect(candidates=kids, reason="full"), 1.1)
                if isinstance(x, act.Dial)]
    assert follow.candidate.id == "b1"
    tree.connected(follow.link, 1.1)
    tree.receive(follow.link, Hello(peer_id="b1", name="b1", room="lobby"), 1.1)
    # Two levels deeper than we were: a move up would withdraw; a move on does not.
    tree.receive(follow.link, Accept(path=_path("root", "b", "b1"), epoch=1), 1.2)
    assert tree.incoming == follow.link and tree.parent == parent
    actions = tree.take_over(1.4)
    [close] = [x for x in actions if isinstance(x, act.Close)]
    assert close.link == parent and close.bye is not None
    assert close.bye.reason == "moved on as asked"
    assert tree.parent == follow.link and tree.depth == 3


def test_a_new_parent_that_asks_us_to_move_on_in_turn_is_given_up_for_its_places() -> None:
    tree, parent = _shed_child()
    places = (Candidate("b", "b", "10.0.0.3", 7001, 1, 1),)
    [dial] = [x for x in tree.receive(parent, Redirect(candidates=places, reason="full"), 1.0)
              if isinstance(x, act.Dial)]
    tree.connected(dial.link, 1.0)
    tree.receive(dial.link, Hello(peer_id="b", name="b", room="lobby"), 1.0)
    tree.receive(dial.link, Accept(path=_path("root", "b"), epoch=1), 1.1)
    assert tree.incoming == dial.link
    # b's join keyframe showed it cannot carry us either: it asks us on.
    kids = (Candidate("b1", "b1", "10.0.0.4", 7004, 2, 1),)
    actions = tree.receive(dial.link, Redirect(candidates=kids, reason="full"), 1.3)
    assert [x.link for x in actions if isinstance(x, act.Close)] == [dial.link]
    [follow] = [x for x in actions if isinstance(x, act.Dial)]
    assert follow.candidate.id == "b1" and tree.incoming is None and tree.parent == parent


def test_a_parents_requests_to_move_on_are_bounded() -> None:
    tree, parent = _shed_child()
    # A parent naming ever new places that all redirect: at most MOVE_ON_MAX_DIALS dials.
    fake = tuple(Candidate(f"f{i}", "f", "10.0.0.10", 1000 + i, 1, 1) for i in range(3))
    dials = [x for x in tree.receive(parent, Redirect(candidates=fake, reason="full"), 1.0)
             if isinstance(x, act.Dial)]
    count = 0
    while dials:
        count += 1
        link = dials[0].link
        tree.connected(link, 1.0)
        tree.receive(link, Hello(peer_id=f"h{count}", name="h", room="lobby"), 1.0)
        more = (Candidate(f"g{count}", "g", "10.0.0.11", 2000 + count, 1, 1),)
        dials = [x for x in tree.receive(link, Redirect(candidates=more, reason="full"), 1.0)
                 if isinstance(x, act.Dial)]
    assert count == MOVE_ON_MAX_DIALS and tree.parent == parent
    # And asking again at once is ignored (at most every few seconds).
    assert tree.receive(parent, Redirect(candidates=fake, reason="full"), 1.5) == []


# --- the intake: a moving viewer loses no frame ---------------------------------------


class _Relay:
    """Records what the intake passes on (the relay's own path is tested elsewhere)."""

    def __init__(self) -> None:
        self.forwarded: list[int] = []

    def forward(self, frame: VideoFrame, *, picture: bool, recording: Any) -> bool:
        self.forwarded.append(frame.seq)
        return True


class _Display:
    wants_pictures = False
    recording = None


class _Node:
    """A viewer's tree state and intake, wired as the node wires them."""

    def __init__(self) -> None:
        self.streamer = FakeStreamer(stream=StreamInfo(1280, 720, 30.0, "h264"))
        self.now = 0.0
        near = Candidate("s", "s", "10.0.0.7", 7000, 1, 2)
        room = FixedRoom([Candidate("a", "a", "10.0.0.6", 6000, 4, 1), near])
        self.tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                              room_view=room, timing=TIMING, now=0.0, signed=True,
                              handover_s=HANDOVER_S)
        self.relay = _Relay()
        self.closed: list[int] = []
        self.refused: list[str] = []
        self.intake = VideoIntake(
            self.tree, self.relay, _Display(), StreamStats(5.0),  # type: ignore[arg-type]
            root_offset=lambda: None, emit=lambda event: None,
            refuse=lambda why: self.apply(self.tree.refuse_parent(why, self.now)),
            take_over=lambda: self.apply(self.tree.take_over(self.now)),
            refuse_incoming=lambda why: (self.refused.append(why),
                                         self.apply(self.tree.refuse_incoming(why, self.now))),
            monotonic=lambda: self.now)
        tree = self.tree
        tree.set_streamer(self.streamer.peer_id, 1, 0.0)
        tree.connected(1, 0.02)
        tree.receive(1, Hello(peer_id="a", name="a", room="lobby"), 0.03)
        ids = ("v", "w", "x", "a")
        tree.receive(1, self.streamer.accept(_path(self.streamer.peer_id, *ids)), 0.05)
        self.old = 1

    def apply(self, actions: list[act.Action]) -> None:
        self.closed += [a.link for a in actions if isinstance(a, act.Close)]

    def move(self) -> int:
        tree = self.tree
        self.now = 5.0
        tree.heard(self.old, 5.0)
        [dial] = [a for a in tree.handle_timer(5.0) if isinstance(a, act.Dial)]
        tree.connected(dial.link, 5.0)
        tree.receive(dial.link, Hello(peer_id="s", name="s", room="lobby"), 5.0)
        tree.receive(dial.link, self.streamer.accept(_path(self.streamer.peer_id, "s")), 5.05)
        assert tree.incoming == dial.link
        return dial.link

    def send(self, link: int, seq: int, *, keyframe: bool = False) -> None:
        frame = VideoFrame(1, seq, float(seq), 1280, 720, 720, b"frame %d" % seq,
                           codec="h264", keyframe=keyframe, prev=seq - 1 if seq else -1)
        self.intake.frame(link, self.streamer.video(frame))


def test_a_moving_viewer_passes_every_frame_once_in_order_whichever_path_is_ahead() -> None:
    for new_ahead_by in (3, 0, -2):
        node = _Node()
        node.send(node.old, 0, keyframe=True)
        for seq in range(1, 10):
            node.send(node.old, seq)
        new = node.move()
        # Both parents send 10..40; the new parent starts at its keyframe 20, and is
        # ``new_ahead_by`` frames ahead of the old one (negative: behind).
        old_seq, new_seq = 10, 20
        while old_seq <= 40 or new_seq <= 40:
            if new_seq <= 40 and (new_seq - new_ahead_by <= old_seq or old_seq > 40):
                node.send(new, new_seq, keyframe=new_seq == 20)
                new_seq += 1
            elif old_seq <= 40 and node.tree.parent == node.old:
                node.send(node.old, old_seq)
                old_seq += 1
            else:
                old_seq = 41  # the old link is closed: it sends no more
        assert node.relay.forwarded == list(range(41)), new_ahead_by
        assert node.tree.parent == new and node.closed == [node.old]


def test_forged_frames_from_the_new_parent_give_it_up_and_we_stay() -> None:
    node = _Node()
    node.send(node.old, 0, keyframe=True)
    new = node.move()
    forged = VideoFrame(1, 1, 1.0, 1280, 720, 720, b"forged", codec="h264", keyframe=True,
                        prev=0, sig="AAAA")
    node.intake.frame(new, forged)
    assert node.refused and node.closed == [new]
    assert node.tree.parent == node.old and node.tree.incoming is None
    node.send(node.old, 1)
    assert node.relay.forwarded == [0, 1]
