"""A parent that answers pings but forwards no video is a failed parent (issue 13).

The attacker (or a broken relay) keeps its child's link alive with heartbeats and
sends nothing else: the child must count it as lost and move elsewhere after a short
silence, but never while the room is paused, and without making a whole tree churn
when the source itself stalls (the allowance doubles after each silent parent).
"""

from __future__ import annotations

from peer.node.tree import actions as act
from peer.node.tree.state import TreeState, TreeTiming
from protocol import Accept, Candidate, Hello, PathEntry
from tests.support.rooms import FixedRoom
from tests.test_tree_state import _closes

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0,
                    video_timeout_s=2.0)


def _attached(now: float = 0.05) -> TreeState:
    tree = TreeState(peer_id="me", name="me", room="lobby", fanout=2, layer=720,
                     room_view=FixedRoom([Candidate("p", "p", "10.0.0.5", 5000, 0, 1),
                                          Candidate("q", "q", "10.0.0.6", 5000, 0, 1)]),
                     timing=TIMING, now=0.0)
    tree.set_streamer("p", 1, 0.0)
    tree.connected(1, 0.02)
    tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.03)
    tree.receive(1, Accept(path=(PathEntry("p", "p"),), epoch=1), now)
    assert tree.parent == 1
    return tree


def _run(tree: TreeState, until: float, *, video: bool = False,
         start: float = 0.25) -> list[act.Action]:
    """Advance time in ping steps; the parent answers every ping (it is alive)."""
    actions: list[act.Action] = []
    t = start
    while t <= until:
        parent = tree.parent
        if parent is not None:
            tree.heard(parent, t)  # its pongs: not a dead link
            if video:
                tree.video_arrived(t)
        actions += tree.handle_timer(t)
        t = round(t + TIMING.ping_interval_s, 6)
    return actions


def test_a_parent_that_pings_but_sends_no_video_is_left_after_the_silence() -> None:
    tree = _attached()
    early = _run(tree, 2.0)
    assert not _closes(early) and tree.parent == 1  # within the allowance
    actions = _run(tree, 2.5, start=2.25)
    [close] = _closes(actions)
    assert close.link == 1 and close.reason == "no video for 2 s"
    assert close.bye is not None and "no video" in close.bye.reason
    assert any(isinstance(a, act.ParentDetached) for a in actions)  # repair follows
    assert tree.parent is None and tree.counters.silent_parents == 1


def test_a_parent_that_sends_video_is_kept() -> None:
    tree = _attached()
    assert not _closes(_run(tree, 10.0, video=True))
    assert tree.parent == 1


def test_a_paused_room_is_not_a_silent_parent() -> None:
    tree = _attached()
    tree.set_video_paused(True, 0.5)
    assert not _closes(_run(tree, 10.0)) and tree.parent == 1
    tree.set_video_paused(False, 10.0)  # resumed: the allowance starts again
    assert not _closes(_run(tree, 11.75, start=10.25))
    assert _closes(_run(tree, 12.5, start=12.0))


def test_silent_parents_in_a_row_get_a_growing_allowance() -> None:
    # A stalled source makes every parent silent: each next one gets twice as long,
    # so the tree does not churn every two seconds; video resets it.
    tree = _attached()
    assert tree._video_timeout == 2.0
    _run(tree, 2.5)
    assert tree.counters.silent_parents == 1 and tree._video_timeout == 4.0
    tree.video_arrived(3.0)
    assert tree._video_timeout == 2.0


# --- a real node against a relay that pings but forwards nothing --------------------


async def test_a_viewer_leaves_a_parent_that_forwards_nothing_and_finds_the_stream() -> None:
    import asyncio

    from peer.node.config import NodeConfig, PatternSource, Timing
    from peer.node.directory import StreamerInfo
    from peer.node.events import Joined, NodeEvent, ParentLost, Stats
    from peer.node.node import Node
    from protocol import FrameDecoder, JoinRequest, Ping, Pong, encode
    from tests.test_node_links import StandInDirectory, _node

    streamer, _ = await _node(PatternSource(320, 180, 10.0))
    assert streamer.listen is not None

    async def silent_relay(reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        # Joins anyone, answers every ping, sends no video: the attack of issue 13.
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, JoinRequest):
                    # It passes on the streamer's genuine signed announcement (any
                    # member of the tree has it), so the join itself is believed.
                    ann = streamer.tree.announcement
                    assert ann is not None
                    writer.write(encode(Hello(peer_id="liar", name="liar", room="lobby")))
                    writer.write(encode(Accept(
                        path=(PathEntry(streamer.peer_id, "me"), PathEntry("liar", "liar")),
                        epoch=ann.epoch, source_width=ann.width, source_height=ann.height,
                        fps=ann.fps, codec=ann.codec, ann=ann)))
                elif isinstance(message, Ping):
                    writer.write(encode(Pong(t0=message.t0, t1=0.0, t2=0.0)))

    liar = await asyncio.start_server(silent_relay, "127.0.0.1", 0)
    liar_port = liar.sockets[0].getsockname()[1]
    real_port = streamer.listen[1]

    class Room(StandInDirectory):
        def candidates(self) -> list[Candidate]:
            return [Candidate("liar", "liar", "127.0.0.1", liar_port, 1, 1),
                    Candidate(streamer.peer_id, "me", "127.0.0.1", real_port, 0, 1)]

        def streamer(self) -> StreamerInfo | None:
            return StreamerInfo(streamer.peer_id, "me", 1)

        def own_name(self) -> str:
            return "viewer"

    events: list[NodeEvent] = []
    viewer = Node(NodeConfig(name="viewer", listen_host="127.0.0.1", tls=False,
                             timing=Timing(link_timeout_s=5.0, video_timeout_s=1.0)),
                  events.append, directory_factory=lambda n: Room())
    await viewer.start()
    try:
        async with asyncio.timeout(30):
            while not any(isinstance(e, Stats) and e.frames >= 10 and e.parent == "me"
                          for e in events):
                await asyncio.sleep(0.05)
        joins = [e.parent for e in events if isinstance(e, Joined)]
        lost = [e for e in events if isinstance(e, ParentLost)]
        assert joins[:1] == ["liar"] and "me" in joins
        assert lost and lost[0].parent == "liar" and "no video" in lost[0].reason
    finally:
        await viewer.stop()
        await streamer.stop()
        liar.close()
