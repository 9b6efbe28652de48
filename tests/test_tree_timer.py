"""The tree's timer wakes when something can become due, not at a fixed tick.

``TreeState.get_timer()`` is computed from the state's facts: a parent's death (its
last byte + link_timeout), its next probe (the keepalive, or half the link timeout of
silence), a child's death, deadlines and the rest. These tests drive the state the way
the node does: frames arrive between wake-ups through ``heard`` (no re-arm), the timer
runs at ``get_timer()``. They hold the rules that make a settled leaf cheap without
weakening detection: a quiet parent is probed in time for its Pong, a dead one is found
within link_timeout + one tick of its last byte, a late wake-up is told from a
re-armed one, and a settled leaf wakes about twice a second.
"""

from __future__ import annotations

from peer.node.tree import actions as act
from peer.node.tree.simnet import SimNet
from peer.node.tree.state import RECHECK_S, StreamInfo, TreeState, TreeTiming
from protocol import Accept, Candidate, Hello, JoinRequest, PathEntry
from tests.support.rooms import FixedRoom

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
HALF = TIMING.link_timeout_s / 2
FRAME_S = 0.1  # 10 fps


def _closes(actions: list[act.Action]) -> list[act.Close]:
    return [a for a in actions if isinstance(a, act.Close)]


def _pings(actions: list[act.Action]) -> int:
    return sum(isinstance(a, act.PingDue) for a in actions)


def _leaf(*, slow_pings: bool = True) -> TreeState:
    """A viewer attached at 0.05 to parent "p" on link 1."""
    tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("p", "p", "10.0.0.5", 5000, 0, 1)]),
                     timing=TIMING, now=0.0)
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby", slow_pings=slow_pings), 0.04)
    actions = tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    assert tree.parent == 1 and act.PingDue(1) in actions  # pinged at once
    return tree


def _root_with_a_child_joined_at(t: float) -> tuple[TreeState, int]:
    """A streaming root and the link id of one child that joined at ``t`` and has
    said nothing since."""
    root = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([]), timing=TIMING, now=0.0)
    root.become_root(1, StreamInfo(1280, 720, 30.0), 0.0)
    child = root.inbound(t, "10.0.0.7")
    root.receive(child, Hello(peer_id="c", name="c", room="lobby"), t)
    root.receive(child, JoinRequest(layer=720), t)
    return root, child


def _run(tree: TreeState, until: float, *, frames_until: float = 0.0,
         pong_s: float | None = 0.0) -> tuple[int, list[act.Action]]:
    """The node's loop in virtual time: frames every FRAME_S up to ``frames_until``
    (heard between wake-ups, without re-arming), each Ping answered ``pong_s`` later
    (None: never), wake-ups at ``get_timer()``. Returns (wake-ups, actions)."""
    arrivals: list[tuple[float, bool]] = []  # (when, a Pong) from the parent, unsorted
    frame = FRAME_S
    while frame <= frames_until:
        arrivals.append((frame, False))
        frame = round(frame + FRAME_S, 6)
    wakes, actions = 0, []
    while (due := tree.get_timer()) <= until and tree.parent is not None:
        arrivals.sort()
        while arrivals and arrivals[0][0] <= due:
            at, pong = arrivals.pop(0)
            tree.heard(1, at, answer=pong)
        out = tree.handle_timer(due)
        wakes += 1
        if pong_s is not None and _pings(out):
            arrivals.append((due + pong_s, True))
        actions += out
    return wakes, actions


# --- how often a settled leaf wakes ---------------------------------------------------


def test_a_leaf_fed_10_fps_wakes_about_twice_a_second_and_pings_once() -> None:
    tree = _leaf()
    wakes, actions = _run(tree, 60.0, frames_until=60.0, pong_s=0.02)
    # Was 4 a second (the fixed tick). Now: the quiet probe's check once half the link
    # timeout after the latest frame, with the keepalive Ping riding every other one.
    assert 1.0 <= wakes / 60.0 <= 2.5
    assert 55 <= _pings(actions) <= 70  # one a keepalive, as before
    assert _closes(actions) == []


def test_a_leaf_below_a_quiet_parent_wakes_about_twice_a_second() -> None:
    # Nothing but Pongs (a paused room): a probe each half link timeout, counted from
    # the Ping its Pong answers (not from the Pong: that would cost a second wake-up
    # per probe, one armed before the Pong came and one after).
    tree = _leaf()
    wakes, actions = _run(tree, 60.0, pong_s=0.05)
    assert wakes / 60.0 <= 2.5 and _closes(actions) == []
    assert 60.0 / HALF - 2 <= _pings(actions) <= 60.0 / HALF + 2


def test_a_leaf_below_an_older_parent_still_pings_every_tick() -> None:
    # A parent without slow_pings drops a child silent for link_timeout: same as ever.
    tree = _leaf(slow_pings=False)
    wakes, actions = _run(tree, 20.0, frames_until=20.0, pong_s=0.02)
    assert _pings(actions) >= 20.0 / TIMING.ping_interval_s - 1
    assert wakes <= 20.0 / TIMING.ping_interval_s + 2 and _closes(actions) == []


def test_a_leaf_in_a_simulated_room_wakes_about_twice_a_second() -> None:
    net = SimNet(timing=TreeTiming(), latency_s=0.01, seed=3)
    root = net.add_peer("root", fanout=3)
    net.make_root(root)
    for i in range(12):
        peer = net.add_peer(f"p{i}", fanout=3)
        net.apply(peer, peer.tree.set_streamer("root", 1, net.now))
    net.run_until(8.0)
    leaves = [p for p in net.peers.values() if p is not root and not p.tree.children]
    assert leaves and net.receiving(root) == {p.id for p in net.peers.values()
                                              if p is not root}
    woke = dict.fromkeys((p.id for p in leaves), 0)
    for leaf in leaves:
        def counting(now: float, tree: TreeState = leaf.tree, handle=leaf.tree.handle_timer,
                     who: str = leaf.id) -> list[act.Action]:
            woke[who] += 1
            return handle(now)
        leaf.tree.handle_timer = counting  # type: ignore[method-assign]
    net.run_until(38.0)
    for who, n in woke.items():
        assert 1.0 <= n / 30.0 <= 2.1, (who, n)


# --- detection is not weakened ----------------------------------------------------------


def test_a_quiet_parent_is_probed_in_time_for_its_pong() -> None:
    # Frames until 5 s, then a paused room: only Pongs. One that comes just within
    # half the link timeout keeps the parent for good ...
    tree = _leaf()
    _, actions = _run(tree, 30.0, frames_until=5.0, pong_s=HALF - 0.01)
    assert _closes(actions) == [] and tree.parent == 1
    # ... because the probe goes out once the parent has been silent for half the link
    # timeout: its Pong has the other half.
    quiet = _leaf()
    _run(quiet, 5.0, frames_until=5.0, pong_s=None)
    last = quiet._links[1].last_heard
    probes = []
    while quiet.parent is not None:
        due = quiet.get_timer()
        if _pings(quiet.handle_timer(due)):
            probes.append(due)
    assert last + HALF in probes


def test_a_dead_parent_is_found_within_link_timeout_and_a_tick_of_its_last_byte() -> None:
    for frames_until in (10.0, 0.0):  # it fed us video, or it was quiet (Pongs only)
        tree = _leaf()
        _run(tree, 10.0, frames_until=frames_until, pong_s=0.02)
        last = tree._links[1].last_heard
        actions: list[act.Action] = []
        found = last
        while tree.parent is not None:  # from here on it neither sends nor answers
            found = tree.get_timer()
            actions += tree.handle_timer(found)
        [close] = _closes(actions)
        assert "no heartbeat" in close.reason
        assert last + TIMING.link_timeout_s <= found \
            <= last + TIMING.link_timeout_s + TIMING.ping_interval_s
        assert found <= last + TIMING.link_timeout_s + RECHECK_S  # exact, no tick's wait


def test_a_silent_child_is_found_at_its_timeout_by_a_root_that_rarely_wakes() -> None:
    root, child = _root_with_a_child_joined_at(0.1)
    wakes, closes = 0, []
    while root.children:
        due = root.get_timer()
        closes += _closes(root.handle_timer(due))
        wakes += 1
    [close] = closes
    assert close.link == child and "no heartbeat" in close.reason
    assert 0.1 + TIMING.child_timeout_s <= due <= 0.1 + TIMING.child_timeout_s + RECHECK_S
    assert wakes <= 3  # its death and the re-check (nothing else was due)


# --- stalls: a late wake-up, not a re-armed one ---------------------------------------


def test_a_re_check_that_runs_a_little_late_is_no_stall() -> None:
    # A root with one mute child. The child's wake-up comes 0.1 s late (a busy loop,
    # not a stall) and, the first in a while, waits for a re-check; that runs 50 ms
    # late. Against the time it was armed for that is no stall (the child's own due
    # time is 0.15 s past by then, which must not count): the child is judged.
    root, child = _root_with_a_child_joined_at(0.1)
    due = root.get_timer()
    assert due == 0.1 + TIMING.child_timeout_s
    assert _closes(root.handle_timer(due + 0.1)) == []  # waits for the re-check
    recheck = root.get_timer()
    assert recheck == due + 0.1 + RECHECK_S
    [close] = _closes(root.handle_timer(recheck + 0.05))
    assert close.link == child


def test_frames_between_wake_ups_move_the_timer_on_without_a_re_arm() -> None:
    # The driver does not re-arm for each frame: the wake-up it set comes, finds the
    # probe moved on, and is on time (no stall excused, nothing judged wrongly).
    tree = _leaf()
    armed = tree.get_timer()
    frame = 0.1
    while frame < armed:
        tree.heard(1, frame)
        frame = round(frame + FRAME_S, 6)
    assert _closes(tree.handle_timer(armed)) == []
    assert tree.get_timer() > armed
    # The same wake-up after a stall (late by more than half a tick) excuses the
    # silence instead: the parent's frames are still unread, it is judged later.
    stalled = _leaf()
    armed = stalled.get_timer()
    late = stalled.handle_timer(armed + 2.0)
    assert _closes(late) == [] and act.PingDue(1) in late  # probed, not failed
    assert stalled.get_timer() >= armed + 2.0 + TIMING.link_timeout_s / 2


def test_a_stall_that_ends_just_after_a_due_time_does_not_fail_a_quiet_parent() -> None:
    # A quiet parent (Pongs only) is probed; its Pong arrives 10 ms later, but our
    # loop stalls before reading it and runs again just after the parent's death was
    # due: only 50 ms late, no stall by lateness. The verdict waits for a re-check,
    # by when the reader has parsed the Pong: the parent stays.
    tree = _leaf()
    _run(tree, 5.0, pong_s=0.02)
    while not _pings(tree.handle_timer(probe := tree.get_timer())):
        pass
    death = tree.get_timer()
    assert death == probe + HALF  # the next probe or its death, whichever first
    assert _closes(tree.handle_timer(death + 0.05)) == []
    tree.heard(1, death + 0.05, answer=True)  # the reader, after our late wake-up
    recheck = tree.get_timer()
    out = tree.handle_timer(recheck)
    assert _closes(out) == [] and tree.parent == 1
    if _pings(out):
        tree.heard(1, recheck + 0.02, answer=True)
    _, actions = _run(tree, 20.0, pong_s=0.02)
    assert _closes(actions) == []


def test_a_stream_that_comes_back_starts_the_video_allowance_afresh() -> None:
    # The directory said nobody streams for a while (no video due, none came), then
    # the streamer is back: the no-video allowance counts from then, so the timer is
    # not armed for a moment already past (which would look like our own stall) and
    # the parent gets the whole allowance to feed us.
    timing = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0,
                        video_timeout_s=2.0)
    tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("p", "p", "10.0.0.5", 5000, 0, 1)]),
                     timing=timing, now=0.0)
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.04)
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), 0.05)
    tree.set_streamer(None, 1, 0.5)
    t = 0.5
    while (t := tree.get_timer()) <= 10.0:
        tree.heard(1, t, answer=True)  # it answers every probe at once: alive
        assert _closes(tree.handle_timer(t)) == []
    tree.set_streamer("p", 1, 10.0)
    assert tree.get_timer() >= 10.0
    closes: list[act.Close] = []
    while not closes:
        t = tree.get_timer()
        tree.heard(1, t, answer=True)
        closes = _closes(tree.handle_timer(t))
    assert closes[0].reason == "no video for 2 s"
    assert 12.0 <= t <= 12.0 + RECHECK_S
