"""The streamer signs what it streams; relays and viewers verify (issue 13, item 3).

The unit tests check the signatures (protocol/stream_auth.py), which announcements
the tree believes (peer/node/tree/announce.py) and what the media guard lets through
(peer/node/media_auth.py). The attack tests run a real tree in-process over TLS: a
streamer, an honest viewer beside a malicious relay, and a victim below that relay;
the relay is a real node whose outgoing frames the test rewrites. Each attack must
fail for the victim (nothing forged is shown; it leaves the relay and finds the
stream) while the honest viewer keeps playing with < 1 % loss.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest

from peer.node.config import NodeConfig, PatternSource, Timing
from peer.node.directory import StreamerInfo
from peer.node.events import DecodedFrame, Joined, NodeEvent, ParentLost, Stats
from peer.node.media_auth import MediaGuard, MediaSigner
from peer.node.node import Node
from peer.node.playback import PlaybackState
from peer.node.tree import actions as act
from peer.node.tree.state import TreeState, TreeTiming
from protocol import (
    Accept,
    AudioFrame,
    Bye,
    Candidate,
    ErrorCode,
    FrameDecoder,
    Hello,
    JoinRequest,
    PathEntry,
    Playback,
    StreamAnnounce,
    VideoFrame,
    encode,
)
from protocol.errors import FieldError
from protocol.framing import FRAMING_VERSION
from protocol.identity import Identity
from protocol.limits import LAYERS, MAGIC, MAX_DIGEST_CHARS
from protocol.stream_auth import Announcement, SourceProof
from tests.support.rooms import FixedRoom
from tests.support.signed_stream import FakeStreamer
from tests.test_node_links import StandInDirectory

TIMING = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
JPEG = b"\xff\xd8jpeg\x00\xff\xd9"


# --- signatures ------------------------------------------------------------------------


def test_an_announcement_verifies_only_unaltered_and_survives_the_wire() -> None:
    streamer = FakeStreamer(epoch=7)
    ann = streamer.announcement
    assert ann.verifies() and ann.streamer_id == streamer.peer_id
    wire = FrameDecoder()
    wire.receive_data(encode(StreamAnnounce(ann)))
    [decoded] = list(wire)
    assert isinstance(decoded, StreamAnnounce) and decoded.ann == ann and decoded.ann.verifies()
    for change in ({"epoch": 10**9}, {"codec": "h264"}, {"height": 1080}, {"layers": (360, 480)},
                   {"streamer_id": Identity.generate().peer_id}, {"sig": "AAAA"}):
        assert not dataclasses.replace(ann, **change).verifies(), change


def test_a_signature_for_one_purpose_is_worthless_for_another() -> None:
    # The announcement's signature, pasted onto a frame, does not make it the streamer's.
    streamer = FakeStreamer()
    frame = VideoFrame(1, 0, 5.0, 320, 180, 360, JPEG, sig=streamer.announcement.sig)
    guard, refused = _guard(streamer)
    assert not guard.video(frame) and refused


def test_the_signed_fields_are_bounded_at_their_limits() -> None:
    # An announcement names at most every layer there is; a source digest is the
    # base64 of SHA-256 (44 characters): one more of either is refused on decoding.
    ann = FakeStreamer().announcement
    src = SourceProof(1280, 720, 720, "h264", True, -1, "A" * MAX_DIGEST_CHARS, "c2ln")
    frame = VideoFrame(1, 0, 1.0, 640, 360, 360, JPEG, sig="c2ln", by="b" * 52, src=src)
    cases = [(StreamAnnounce(dataclasses.replace(ann, layers=LAYERS)), "layers", LAYERS,
              [*LAYERS, 360]),
             (frame, "src", "A" * MAX_DIGEST_CHARS, "A" * (MAX_DIGEST_CHARS + 1))]
    for message, key, at_limit, over in cases:
        meta = message.to_meta()
        inner = meta["ann"] if key == "layers" else meta["src"]
        field = "layers" if key == "layers" else "dg"
        inner[field] = list(at_limit) if isinstance(at_limit, tuple) else at_limit
        assert _decode(message, meta) is not None
        inner[field] = over
        with pytest.raises(FieldError, match=field):
            _decode(message, meta)


def _decode(message: Any, meta: dict[str, Any]) -> object:
    body = json.dumps(meta).encode()
    payload = message.payload()
    wire = FrameDecoder()
    wire.receive_data(struct.pack("!2sBBII", MAGIC, FRAMING_VERSION, message.KIND, len(body),
                                  len(payload)) + body + payload)
    return next(iter(wire))


# --- which announcements the tree believes --------------------------------------------


def _joining(streamer_id: str, *, signed: bool = True) -> tuple[TreeState, int]:
    """A viewer that dialled a parent and sent its JoinRequest; returns the link."""
    room = FixedRoom([Candidate("p", "p", "10.0.0.2", 7000, depth=1, free_slots=1)],
                     address=("10.0.0.9", 7000))
    tree = TreeState(peer_id="v", name="v", room="lobby", fanout=2, layer=360,
                     room_view=room, timing=TIMING, now=0.0, signed=signed)
    [dial] = [a for a in tree.set_streamer(streamer_id, 1, 0.0) if isinstance(a, act.Dial)]
    tree.connected(dial.link, 0.0)
    tree.receive(dial.link, Hello(peer_id="p", name="p", room="lobby"), 0.1)
    return tree, dial.link


def _closes(actions: list[act.Action]) -> list[act.Close]:
    return [a for a in actions if isinstance(a, act.Close)]


PATH = (PathEntry("s", "s", "10.0.0.1", 7000), PathEntry("p", "p", "10.0.0.2", 7000))


def test_an_accept_is_believed_only_with_the_lock_holders_signed_announcement() -> None:
    streamer = FakeStreamer()
    tree, link = _joining(streamer.peer_id)
    tree.receive(link, streamer.accept(PATH), 0.2)
    assert tree.parent == link and tree.announcement == streamer.announcement
    # Without an announcement, or with one from a key that does not hold the lock, or
    # one the Accept contradicts: withdrawn with FORGED, our epoch untouched.
    mallory = FakeStreamer(epoch=10**9)
    for accept in (Accept(PATH, epoch=10**9, source_width=320, source_height=180),
                   mallory.accept(PATH),
                   dataclasses.replace(streamer.accept(PATH), epoch=10**9),
                   dataclasses.replace(streamer.accept(PATH), source_height=1080)):
        tree, link = _joining(streamer.peer_id)
        [close] = _closes(tree.receive(link, accept, 0.2))
        assert close.bye is not None and close.bye.code == ErrorCode.FORGED
        assert tree.parent is None and tree.epoch == 1 and tree.announcement is None


def test_the_simulator_tree_takes_accepts_without_signatures() -> None:
    tree, link = _joining("s", signed=False)
    tree.receive(link, Accept(PATH, epoch=1, source_width=320, source_height=180), 0.2)
    assert tree.parent == link


def test_a_new_announcement_goes_to_every_child_and_a_forged_one_closes_the_parent() -> None:
    streamer = FakeStreamer()
    tree, link = _joining(streamer.peer_id)
    tree.receive(link, streamer.accept(PATH), 0.2)
    child = tree.inbound(0.3, "10.0.0.5")
    tree.receive(child, Hello(peer_id="c", name="c", room="lobby"), 0.3)
    accepted = tree.receive(child, JoinRequest(layer=360), 0.3)
    [accept] = [a.message for a in accepted if isinstance(a, act.Send)
                and isinstance(a.message, Accept)]
    assert accept.ann == streamer.announcement  # the child gets it in its Accept
    # The streamer resumed with a new epoch: the parent passes the new one down.
    newer = FakeStreamer(epoch=2, identity=streamer.identity).announcement
    tree.set_streamer(streamer.peer_id, 2, 0.4)
    sent = tree.receive(link, StreamAnnounce(newer), 0.5)
    assert [(a.link, a.message) for a in sent if isinstance(a, act.Send)] == \
        [(child, StreamAnnounce(newer))]
    assert tree.announcement == newer and tree.epoch == 2
    # A huge epoch signed by someone else: the parent is left, avoided, epoch kept.
    forged = FakeStreamer(epoch=10**9).announcement
    closes = _closes(tree.receive(link, StreamAnnounce(forged), 0.6))
    assert [c.link for c in closes] == [link]
    assert closes[0].bye is not None and closes[0].bye.code == ErrorCode.FORGED
    assert tree.epoch == 2 and tree.announcement == newer and tree.parent is None
    assert tree.counters.forged_parents == 1


# --- the media guard -------------------------------------------------------------------


def _guard(streamer: FakeStreamer, path: tuple[PathEntry, ...] = PATH,
           ) -> tuple[MediaGuard, list[str]]:
    tree, link = _joining(streamer.peer_id)
    tree.receive(link, streamer.accept(path), 0.2)
    refused: list[str] = []
    return MediaGuard(tree, refused.append), refused


def _frame(seq: int, layer: int = 360, data: bytes = JPEG) -> VideoFrame:
    return VideoFrame(1, seq, 100.0 + seq / 30, 640, layer, layer, data)


def test_the_guard_passes_the_streamers_frames_and_refuses_altered_ones() -> None:
    streamer = FakeStreamer()
    guard, refused = _guard(streamer)
    good = streamer.video(_frame(0))
    assert guard.video(good) and not refused
    for forged in (dataclasses.replace(streamer.video(_frame(1)), data=JPEG + b"x"),
                   dataclasses.replace(streamer.video(_frame(2)), captured_at=0.0),
                   dataclasses.replace(streamer.video(_frame(3)), epoch=10**9),
                   _frame(4),  # unsigned
                   FakeStreamer(identity=Identity.generate()).video(_frame(5))):
        assert not guard.video(forged)
    assert len(refused) == 5 and guard.refused == 5


def test_the_guard_drops_a_replayed_frame_without_leaving_the_parent() -> None:
    streamer = FakeStreamer()
    guard, refused = _guard(streamer)
    frames = [streamer.video(_frame(seq)) for seq in range(5)]
    assert all(guard.video(f) for f in frames)
    assert not guard.video(frames[1]) and not guard.video(frames[4])
    assert guard.replayed == 2 and not refused
    assert guard.video(streamer.video(_frame(5)))


def test_a_transcoded_layer_verifies_by_its_relay_and_its_streamer_signed_source() -> None:
    streamer = FakeStreamer()
    relay = Identity.generate()
    path = (PathEntry(streamer.peer_id, "s"), PathEntry(relay.peer_id, "r"))
    guard, refused = _guard(streamer, path)
    source = streamer.video(_frame(0, 720))
    made = MediaSigner(relay).transcoded(source, _frame(0, 360, b"\xff\xd8small\xff\xd9"))
    assert made.by == relay.peer_id and guard.video(made) and not refused
    # Transcoded again further down: the streamer's source proof travels along.
    second = Identity.generate()
    guard2, _ = _guard(streamer, (*path, PathEntry(second.peer_id, "r2")))
    again = MediaSigner(second).transcoded(made, _frame(0, 360, b"\xff\xd8tiny\xff\xd9"))
    assert again.src == made.src and guard2.video(again)
    # What it refuses: a maker off our path, a source that is not higher, a source the
    # streamer did not sign, pixels altered after the relay signed them.
    stranger = MediaSigner(Identity.generate()).transcoded(source, _frame(1, 360))
    upward = MediaSigner(relay).transcoded(streamer.video(_frame(2, 360)), _frame(2, 720))
    fake_src = MediaSigner(relay).transcoded(
        dataclasses.replace(source, seq=3, data=b"\xff\xd8other\xff\xd9"), _frame(3, 360))
    altered = dataclasses.replace(
        MediaSigner(relay).transcoded(streamer.video(_frame(4, 720)), _frame(4, 360)),
        data=b"\xff\xd8swapped\xff\xd9")
    for forged in (stranger, upward, fake_src, altered):
        assert not guard.video(forged)
    assert len(refused) == 4


def test_sound_must_carry_the_streamers_signature() -> None:
    streamer = FakeStreamer()
    guard, refused = _guard(streamer)
    packet = streamer.audio(AudioFrame(1, 0, 100.0, b"\xfc\x01\x02\x03"))
    assert guard.audio(packet)
    assert not guard.audio(packet)  # a repeat
    assert guard.replayed == 1 and not refused
    assert not guard.audio(dataclasses.replace(
        streamer.audio(AudioFrame(1, 1, 100.02, b"\xfc\x01\x02\x03")), opus=b"\xfc\x09"))
    assert not guard.audio(AudioFrame(1, 2, 100.04, b"\xfc\x01\x02\x03"))  # unsigned
    assert len(refused) == 2


def test_a_pause_must_be_the_streamers_and_newer_than_the_last() -> None:
    # A relay that claims a pause would have its children wait for frames that never
    # come, without leaving it: a forged pause refuses the parent instead.
    streamer = FakeStreamer()
    guard, refused = _guard(streamer)
    state = PlaybackState(sign=streamer.signer.playback)
    paused = state.local(1, True, 12.5, 60.0, at=100.0)
    assert paused.sig and guard.playback(paused)
    resumed = state.local(1, False, 12.5, 60.0, at=100.0)  # same instant: still ordered
    assert resumed.at > paused.at and guard.playback(resumed)
    assert not guard.playback(paused) and guard.replayed == 1 and not refused  # a repeat
    assert not guard.playback(Playback(1, True, 0, None, at=200.0))  # unsigned
    assert not guard.playback(dataclasses.replace(resumed, paused=True, at=300.0))
    assert len(refused) == 2
    assert not guard.playback(dataclasses.replace(paused, epoch=0)) and len(refused) == 2


# --- attacks on a real tree ------------------------------------------------------------


FPS = 10.0
T = 60.0  # generous: a slow shared machine


class Room(StandInDirectory):
    """A room whose streamer is ``streamer_id``; candidates in the given order."""

    def __init__(self, streamer_id: str, candidates: Callable[[], list[Any]],
                 name: str) -> None:
        super().__init__()
        self._streamer_id = streamer_id
        self._candidates = candidates
        self._name = name

    def candidates(self) -> list[Any]:
        return self._candidates()

    def streamer(self) -> StreamerInfo | None:
        return StreamerInfo(self._streamer_id, "streamer", 1)

    def own_name(self) -> str:
        return self._name


class Tree:
    """streamer -> {honest, mallory}; victim -> mallory (streamer as a fallback)."""

    def __init__(self) -> None:
        self.events: dict[str, list[NodeEvent]] = {}
        self.pictures: dict[str, list[DecodedFrame]] = {}
        self.nodes: dict[str, Node] = {}
        self.changed = asyncio.Event()

    def _config(self, name: str, **extra: Any) -> NodeConfig:
        return NodeConfig(name=name, listen_host="127.0.0.1", resolution=360,
                          timing=Timing(link_timeout_s=5.0, stats_interval_s=0.25), **extra)

    async def start(self) -> None:
        # JPEG: mallory's own pictures are then simple to make (any codec is signed
        # the same way: over the frame's bytes).
        streamer = await self._start("streamer", lambda n: StandInDirectory(),
                                     source=PatternSource(640, 360, FPS), codec="mjpeg")
        sid = streamer.peer_id

        def at(name: str) -> Any:
            node = self.nodes[name]
            assert node.listen is not None
            return Candidate(node.peer_id, name, "127.0.0.1", node.listen[1], 0, 1)

        await self._start("honest", lambda n: Room(sid, lambda: [at("streamer")], "honest"))
        await self._start("mallory", lambda n: Room(sid, lambda: [at("streamer")], "mallory"))
        await self.until(lambda: self.joined("mallory") == ["streamer"])
        await self._start("victim", lambda n: Room(
            sid, lambda: [at("mallory"), at("streamer")], "victim"), decode=True)
        await self.until(lambda: self.joined("victim") == ["mallory"]
                         and len(self.pictures["victim"]) >= 5)

    async def _start(self, name: str, directory: Callable[[Node], Any], **extra: Any) -> Node:
        self.events[name], self.pictures[name] = [], []

        def on_event(event: NodeEvent) -> None:
            self.events[name].append(event)
            self.changed.set()

        def on_frame(frame: DecodedFrame) -> None:
            self.pictures[name].append(frame)
            self.changed.set()

        node = Node(self._config(name, **extra), on_event, on_frame,
                    directory_factory=directory)
        self.nodes[name] = node
        await node.start()
        return node

    async def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            await node.stop()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(T):
            while not condition():
                self.changed.clear()
                await self.changed.wait()

    def joined(self, name: str) -> list[str]:
        return [e.parent for e in self.events[name] if isinstance(e, Joined)]

    def lost(self, name: str) -> list[ParentLost]:
        return [e for e in self.events[name] if isinstance(e, ParentLost)]

    def stats(self, name: str) -> Stats:
        return [e for e in self.events[name] if isinstance(e, Stats)][-1]

    def rewrite(self, change: Callable[[VideoFrame], list[VideoFrame]]) -> None:
        """From now on mallory sends ``change(frame)`` instead of each frame: the first
        through its relay as usual, any more straight onto its children's links (its
        own relay would not send a frame twice)."""
        mallory = self.nodes["mallory"]
        relay = mallory._relay
        assert relay is not None
        send = relay.fan_out

        def fan_out(frame: VideoFrame, have: int | None, data: bytes | None = None) -> int:
            first, *more = change(frame)
            sent = send(first, have)
            for extra in more:
                for child in mallory.children:
                    child.send_video(encode(extra))
            return sent

        relay.fan_out = fan_out  # type: ignore[method-assign]


def _red_jpeg(width: int, height: int) -> bytes:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :] = (0, 0, 255)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def _is_red(frame: DecodedFrame) -> bool:
    b, g, r = (float(c) for c in frame.image.reshape(-1, 3).mean(axis=0))
    return r > 200 and g < 50 and b < 50


async def _attack(change: Callable[[Tree], Callable[[VideoFrame], list[VideoFrame]] | None],
                  *, victim_leaves: bool) -> Tree:
    tree = Tree()
    try:
        await tree.start()
        honest_before = tree.stats("honest")
        rewrite = change(tree)
        if rewrite is not None:
            tree.rewrite(rewrite)
        if victim_leaves:
            # It leaves mallory for the streamer and plays on there.
            await tree.until(lambda: tree.joined("victim")[-1:] == ["streamer"])
            shown = len(tree.pictures["victim"])
            await tree.until(lambda: len(tree.pictures["victim"]) >= shown + 2 * FPS)
        else:
            shown = len(tree.pictures["victim"])
            await tree.until(lambda: len(tree.pictures["victim"]) >= shown + 2 * FPS)
        # The honest viewer beside mallory played on: < 1 % loss over the attack.
        await tree.until(lambda: tree.stats("honest").frames >= honest_before.frames + 2 * FPS)
        honest = tree.stats("honest")
        lost = honest.lost - honest_before.lost
        assert lost <= 0.01 * (honest.frames - honest_before.frames), (honest, honest_before)
        assert not tree.lost("honest")
        return tree
    finally:
        await tree.stop()


async def test_a_relay_that_swaps_in_its_own_pictures_is_left_and_none_is_shown() -> None:
    def swap(tree: Tree) -> Callable[[VideoFrame], list[VideoFrame]]:
        def change(frame: VideoFrame) -> list[VideoFrame]:
            return [dataclasses.replace(frame, data=_red_jpeg(frame.width, frame.height))]
        return change

    tree = await _attack(swap, victim_leaves=True)
    assert not any(_is_red(p) for p in tree.pictures["victim"])
    [lost] = tree.lost("victim")
    assert lost.parent == "mallory" and "signature does not verify" in lost.reason
    victim = tree.nodes["victim"]
    assert victim._intake.guard.refused >= 1
    assert tree.stats("victim").forged >= 1  # reported in the stats too
    assert tree.stats("victim").lost >= 1  # the dropped frame shows as loss


@pytest.mark.parametrize("how", ["frame", "announcement"])
async def test_a_relay_that_forges_a_huge_epoch_is_left_and_the_stream_goes_on(
        how: str) -> None:
    def huge(tree: Tree) -> Callable[[VideoFrame], list[VideoFrame]] | None:
        mallory = tree.nodes["mallory"]
        if how == "announcement":
            # Its own key signs an announcement of epoch 10**9 (it cannot sign as the
            # streamer), sent to its children as the stream's news.
            ann = mallory.tree.announcement
            assert ann is not None
            forged = Announcement.make(mallory.identity, epoch=10**9, codec=ann.codec,
                                       width=ann.width, height=ann.height, fps=ann.fps,
                                       layers=ann.layers, started_at=ann.started_at)
            for child in mallory.children:
                child.send(StreamAnnounce(forged))
            return None
        sent = [False]

        def change(frame: VideoFrame) -> list[VideoFrame]:
            if sent[0]:
                return [frame]
            sent[0] = True  # one frame of a huge epoch used to fence off all others
            return [dataclasses.replace(frame, epoch=10**9)]
        return change

    tree = await _attack(huge, victim_leaves=True)
    victim = tree.nodes["victim"]
    assert victim.tree.epoch == tree.nodes["streamer"].tree.epoch == 1
    [lost] = tree.lost("victim")
    assert lost.parent == "mallory"
    assert ("not the announced stream's" in lost.reason if how == "frame"
            else "does not hold the lock" in lost.reason), lost.reason


async def test_a_relay_that_forges_sound_is_left() -> None:
    def forge(tree: Tree) -> None:
        # Mallory speaks in the streamer's stream: a well-formed Opus packet of the
        # live epoch that the streamer never signed.
        for child in tree.nodes["mallory"].children:
            child.send_audio(encode(AudioFrame(1, 10**6, 0.0, b"\xfc\x01\x02\x03")))

    tree = await _attack(lambda tree: forge(tree), victim_leaves=True)
    [lost] = tree.lost("victim")
    assert lost.parent == "mallory" and "sound whose signature" in lost.reason, lost.reason
    assert tree.stats("victim").forged >= 1


async def test_a_replayed_old_frame_is_dropped_and_the_picture_plays_on() -> None:
    def replay(tree: Tree) -> Callable[[VideoFrame], list[VideoFrame]]:
        seen: list[VideoFrame] = []

        def change(frame: VideoFrame) -> list[VideoFrame]:
            seen.append(frame)
            # Each frame, then a genuine one from a second ago (validly signed).
            return [frame, seen[-int(FPS)]] if len(seen) > FPS else [frame]
        return change

    tree = await _attack(replay, victim_leaves=False)
    victim = tree.nodes["victim"]
    assert victim._intake.guard.replayed >= FPS // 2
    assert tree.lost("victim") == [] and tree.joined("victim") == ["mallory"]
    seqs = [p.seq for p in tree.pictures["victim"]]
    assert seqs == sorted(set(seqs)), "no picture shown twice or out of order"


async def test_a_fake_parent_whose_accept_claims_a_huge_epoch_is_never_joined() -> None:
    """The attack at the socket level: a peer that answers a join with an Accept of
    epoch 10**9 (and its own announcement); the viewer withdraws and joins the real
    streamer, its epoch untouched."""
    tree = Tree()
    liar_key = FakeStreamer(epoch=10**9)
    byes: list[Bye] = []

    async def liar(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        while data := await reader.read(65536):
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, JoinRequest):
                    writer.write(encode(Hello(peer_id=liar_key.peer_id, name="liar",
                                              room="lobby")))
                    writer.write(encode(liar_key.accept((PathEntry(liar_key.peer_id,
                                                                   "liar"),))))
                elif isinstance(message, Bye):
                    byes.append(message)

    server = await asyncio.start_server(liar, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        # Plaintext: the liar speaks the raw protocol (TLS has its own tests).
        streamer = await tree._start("streamer", lambda n: StandInDirectory(), tls=False,
                                     source=PatternSource(640, 360, FPS))
        assert streamer.listen is not None
        candidates = [Candidate(liar_key.peer_id, "liar", "127.0.0.1", port, 0, 1),
                      Candidate(streamer.peer_id, "streamer", "127.0.0.1",
                                streamer.listen[1], 0, 1)]
        viewer = await tree._start("viewer", lambda n: Room(
            streamer.peer_id, lambda: candidates, "viewer"), tls=False)
        await tree.until(lambda: tree.joined("viewer") == ["streamer"]
                         and tree.stats("viewer").frames >= FPS if any(
                             isinstance(e, Stats) for e in tree.events["viewer"]) else False)
        assert byes and byes[0].code == ErrorCode.FORGED
        assert "does not hold the lock" in byes[0].reason
        assert viewer.tree.epoch == 1 and viewer.tree.counters.joins == 1
    finally:
        server.close()
        await tree.stop()


async def test_a_new_announcement_travels_down_a_tree_that_stays_attached() -> None:
    """The parent of a relay moves to a new epoch of the same streamer (a resumed
    stream): it announces it on the open link; the relay believes it, passes it to its
    child, and both play the new epoch's frames without re-joining."""
    key = Identity.generate()
    first = FakeStreamer(epoch=1, identity=key)
    second = FakeStreamer(epoch=2, identity=key)
    image = np.full((180, 320, 3), 90, np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok

    async def parent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        port = writer.get_extra_info("sockname")[1]
        while data := await reader.read(65536):
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, JoinRequest):
                    writer.write(encode(Hello(peer_id=key.peer_id, name="root", room="lobby")))
                    writer.write(encode(first.accept((PathEntry(key.peer_id, "root",
                                                                "127.0.0.1", port),))))
                    tasks.add(asyncio.create_task(stream(writer)))

    async def stream(writer: asyncio.StreamWriter) -> None:
        for fake, count in ((first, 3 * int(FPS)), (second, 10**6)):
            if fake is second:
                writer.write(encode(StreamAnnounce(second.announcement)))
            for seq in range(count):
                frame = VideoFrame(fake.announcement.epoch, seq, 1000.0 + seq / FPS, 320, 180,
                                   360, jpeg.tobytes())
                writer.write(encode(fake.video(frame)))
                await writer.drain()
                await asyncio.sleep(1 / FPS)  # the fake source's frame rate

    tasks: set[asyncio.Task[None]] = set()
    server = await asyncio.start_server(parent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tree = Tree()
    try:
        relay = await tree._start("relay", lambda n: Room(key.peer_id, lambda: [
            Candidate(key.peer_id, "root", "127.0.0.1", port, 0, 1)], "relay"), tls=False)
        assert relay.listen is not None
        listen = relay.listen[1]
        child = await tree._start("child", lambda n: Room(key.peer_id, lambda: [
            Candidate(relay.peer_id, "relay", "127.0.0.1", listen, 1, 1)], "child"),
            tls=False)
        await tree.until(lambda: child.tree.epoch == 2 and any(
            isinstance(e, Stats) and e.frames >= 4 * FPS for e in tree.events["child"]))
        assert child.tree.announcement == relay.tree.announcement == second.announcement
        assert tree.joined("relay") == ["root"] and tree.joined("child") == ["relay"]
        assert not tree.lost("relay") and not tree.lost("child")
        assert child._intake.guard.refused == relay._intake.guard.refused == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        await tree.stop()
