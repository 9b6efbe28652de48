"""Sound through a node: sent with the picture, forwarded on its own queue, bad audio
from a parent ends that one link.

The nodes run in-process with stand-in directories; the other side of each link is a
raw socket speaking the protocol.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
import time

import cv2
import numpy as np

from peer.node.audio.config import AudioConfig
from peer.node.audio.opus import ENCODER_DELAY_S, OpusDecoder, OpusEncoder
from peer.node.audio.station import MAX_LIPSYNC_WAIT_S
from peer.node.config import NodeConfig, PatternSource, Timing
from peer.node.directory import StreamerInfo
from peer.node.events import NodeEvent, ParentLost
from peer.node.link import AUDIO_QUEUE_PACKETS, VIDEO_QUEUE_FRAMES, PeerLink
from peer.node.node import Node
from protocol import (
    AudioFrame,
    Bye,
    Candidate,
    ChatHave,
    FrameDecoder,
    Hello,
    JoinRequest,
    Message,
    MessageType,
    PathEntry,
    VideoFrame,
    encode,
    limits,
)
from protocol.framing import FRAMING_VERSION
from tests.support.links import raw_link_pair
from tests.support.signed_stream import FakeStreamer
from tests.test_node_links import StandInDirectory as _LinksDirectory
from tests.test_node_links import _hello_works

FPS = 15.0


class StandInDirectory(_LinksDirectory):
    """The links tests' stand-in room, with the name a room gives us."""

    def own_name(self) -> str:
        return "me"


async def _streamer(audio: AudioConfig, codec: str = "h264") -> Node:
    config = NodeConfig(name="me", listen_host="127.0.0.1", source=PatternSource(320, 180, FPS),
                        timing=Timing(link_timeout_s=5.0), audio=audio, codec=codec,
                        tls=False)  # the test speaks the raw protocol
    node = Node(config, lambda e: None, directory_factory=lambda n: StandInDirectory())
    await node.start()
    return node


async def _join(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(encode(Hello(peer_id="kid", name="kid", room="lobby")) +
                 encode(JoinRequest(layer=360)))
    await writer.drain()
    return reader, writer


async def _collect(reader: asyncio.StreamReader, video: int, timeout: float = 30
                   ) -> tuple[list[VideoFrame], list[AudioFrame]]:
    """Read until ``video`` video frames came; everything else is dropped."""
    decoder = FrameDecoder()
    frames: list[VideoFrame] = []
    sound: list[AudioFrame] = []
    async with asyncio.timeout(timeout):
        while len(frames) < video:
            data = await reader.read(65536)
            assert data, "closed early"
            decoder.receive_data(data)
            for message in decoder:
                if isinstance(message, VideoFrame):
                    frames.append(message)
                elif isinstance(message, AudioFrame):
                    sound.append(message)
    return frames, sound


async def test_the_pattern_streams_its_beep_stamped_with_the_flash_frames_time() -> None:
    node = await _streamer(AudioConfig(), codec="mjpeg")  # each frame decodes alone
    try:
        assert node.listen is not None
        reader, writer = await _join(node.listen[1])
        frames, sound = await _collect(reader, video=int(2.2 * FPS))
        writer.close()
    finally:
        await node.stop()
    assert len(sound) >= 2.0 / 0.02 * 0.8
    assert [a.seq for a in sound] == list(range(sound[0].seq, sound[0].seq + len(sound)))
    assert {a.epoch for a in sound} == {1}
    # Sound and picture share the capture clock: the first packet is stamped with the
    # first frame's capture time, less the encoder's look-ahead...
    first_video = min(frames, key=lambda f: f.seq)
    first_audio = min(sound, key=lambda a: a.seq)
    assert first_video.seq == 0 and first_audio.seq == 0
    assert abs(first_audio.captured_at + ENCODER_DELAY_S - first_video.captured_at) < 1e-6
    # ...and each beep is heard at its flash frame's capture time (on the root's clock:
    # a packet's stamp plus where in its 20 ms the onset falls).
    decoder = OpusDecoder()
    onsets, last_loud = [], -1.0
    for packet in sorted(sound, key=lambda a: a.seq):
        pcm = decoder.decode(packet.opus)
        for index in np.flatnonzero(np.abs(pcm[:, 0].astype(np.int32)) > 3000):
            at = packet.captured_at + index / 48_000
            if at - last_loud > 0.3:
                onsets.append(at)
            last_loud = at
    flashes = [f.captured_at for f in frames
               if cv2.imdecode(np.frombuffer(f.data, np.uint8), cv2.IMREAD_GRAYSCALE)
               .mean() > 200]
    assert len(flashes) >= 2
    for flash in flashes[1:]:  # the first frame pays the pattern's warm-up
        nearest = min(onsets, key=lambda t: abs(t - flash))
        assert abs(nearest - flash) < 0.04, (flash, onsets)


async def test_no_audio_streams_the_picture_only() -> None:
    node = await _streamer(AudioConfig(enabled=False))
    try:
        assert node.listen is not None
        reader, writer = await _join(node.listen[1])
        frames, sound = await _collect(reader, video=int(FPS))
        writer.close()
    finally:
        await node.stop()
    assert len(frames) == int(FPS) and sound == []


class FakeParentDirectory(StandInDirectory):
    """A room whose streamer is a raw socket at ``port`` holding ``streamer_id``'s key."""

    def __init__(self, port: int, streamer_id: str) -> None:
        super().__init__()
        self.port = port
        self.streamer_id = streamer_id

    def candidates(self) -> list[Candidate]:
        return [Candidate(self.streamer_id, "fake", "127.0.0.1", self.port, 0, 1)]

    def streamer(self) -> StreamerInfo | None:
        return StreamerInfo(self.streamer_id, "fake", 1)


async def test_garbage_audio_from_the_parent_ends_that_link_with_a_reason() -> None:
    received: asyncio.Queue[Message] = asyncio.Queue()
    good = OpusEncoder().encode(np.zeros((960, 2), np.int16))
    fake = FakeStreamer()  # it signs like the streamer: only the payload is bad

    async def fake_parent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        port = writer.get_extra_info("sockname")[1]
        while True:
            data = await reader.read(65536)
            if not data:
                return
            decoder.receive_data(data)
            for message in decoder:
                await received.put(message)
                if isinstance(message, JoinRequest):
                    writer.write(encode(Hello(peer_id=fake.peer_id, name="fake",
                                              room="lobby")))
                    writer.write(encode(fake.accept((PathEntry(fake.peer_id, "fake",
                                                               "127.0.0.1", port),))))
                elif isinstance(message, ChatHave):  # sent once it took us as parent
                    writer.write(encode(fake.audio(AudioFrame(1, 0, 1.0, good))))
                    # A well-framed AudioFrame whose payload is not an Opus packet
                    # (frame-count code 3 announcing zero frames).
                    meta = json.dumps({"e": 1, "s": 1, "c": 1.02}).encode()
                    garbage = bytes([0xFF, 0x00, 0x00])
                    writer.write(struct.pack("!2sBBII", limits.MAGIC, FRAMING_VERSION,
                                             MessageType.AUDIO_FRAME, len(meta),
                                             len(garbage)) + meta + garbage)
                    await writer.drain()

    server = await asyncio.start_server(fake_parent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events: list[NodeEvent] = []
    config = NodeConfig(name="viewer", listen_host="127.0.0.1",
                        timing=Timing(link_timeout_s=5.0),
                        tls=False)  # the test's fake parent speaks the raw protocol
    node = Node(config, events.append,
                directory_factory=lambda n: FakeParentDirectory(port, fake.peer_id))
    await node.start()
    try:
        async with asyncio.timeout(30):
            while True:
                message = await received.get()
                if isinstance(message, Bye):
                    break
        assert "not an Opus packet" in message.reason
        async with asyncio.timeout(10):
            while not any(isinstance(e, ParentLost) for e in events):
                await asyncio.sleep(0.01)  # waiting on the node's event, not timing
        lost = next(e for e in events if isinstance(e, ParentLost))
        assert lost.reason.startswith("protocol error: field 'payload': not an Opus packet")
        assert node.listen is not None
        await _hello_works(node.listen[1])  # the node itself is fine
    finally:
        await node.stop()
        server.close()
        await server.wait_closed()


async def _link_pair() -> tuple[PeerLink, asyncio.StreamReader, asyncio.StreamWriter,
                                asyncio.Server]:
    pair = await raw_link_pair()
    return pair.link, pair.far_reader, pair.far_writer, pair.server


async def test_sound_goes_before_a_video_backlog_and_video_drops_never_drop_it() -> None:
    link, far_reader, far_writer, server = await _link_pair()
    try:
        video = encode(VideoFrame(1, 0, 1.0, 16, 16, 360, b"\xff\xd8" + b"j" * 1000))
        packet = OpusEncoder().encode(np.zeros((960, 2), np.int16))
        # Before the writer runs: a video backlog (some dropped), then sound.
        for _ in range(VIDEO_QUEUE_FRAMES + 4):
            link.send_video(video)
        for seq in range(AUDIO_QUEUE_PACKETS):
            assert link.send_audio(encode(AudioFrame(1, seq, 1.0, packet)))
        link.start()
        decoder = FrameDecoder()
        kinds: list[str] = []
        async with asyncio.timeout(10):
            while len(kinds) < AUDIO_QUEUE_PACKETS + VIDEO_QUEUE_FRAMES:
                decoder.receive_data(await far_reader.read(65536))
                kinds += [type(m).__name__ for m in decoder]
        assert kinds == ["AudioFrame"] * AUDIO_QUEUE_PACKETS + \
            ["VideoFrame"] * VIDEO_QUEUE_FRAMES
        assert link.counters.frames_dropped == 4 and link.counters.audio_dropped == 0
    finally:
        link.close("done")
        await link.wait_closed()
        far_writer.close()
        server.close()
        await server.wait_closed()


async def test_the_audio_queue_is_bounded_drop_oldest() -> None:
    link, _, far_writer, server = await _link_pair()
    try:
        packet = OpusEncoder().encode(np.zeros((960, 2), np.int16))
        results = [link.send_audio(encode(AudioFrame(1, seq, 1.0, packet)))
                   for seq in range(AUDIO_QUEUE_PACKETS + 5)]
        assert results == [True] * AUDIO_QUEUE_PACKETS + [False] * 5
        assert link.counters.audio_dropped == 5
    finally:
        link.close("done")
        await link.wait_closed()
        far_writer.close()
        server.close()
        await server.wait_closed()


def test_audio_config_refuses_nonsense() -> None:
    import pytest

    with pytest.raises(ValueError, match="volume"):
        AudioConfig(volume=1.5)
    with pytest.raises(ValueError, match="audio track"):
        AudioConfig(track=-1)
    assert dataclasses.replace(AudioConfig(), play=True).play
    assert limits.MAX_AUDIO_PAYLOAD_BYTES >= 1275


class StreamerDirectory(StandInDirectory):
    """A room whose streamer is the in-process node ``streamer_id`` at ``port``."""

    def __init__(self, port: int, streamer_id: str) -> None:
        super().__init__()
        self.port = port
        self.streamer_id = streamer_id

    def candidates(self) -> list[Candidate]:
        return [Candidate(self.streamer_id, "me", "127.0.0.1", self.port, 0, 1)]

    def streamer(self) -> StreamerInfo | None:
        return StreamerInfo(self.streamer_id, "me", 1)


@dataclasses.dataclass(frozen=True)
class _SteadySound:
    """A stretch of stats events that all report one sound delay, and the pictures
    shown while that delay held."""

    delay_ms: float
    av_offset_ms: float
    picture_ages_ms: list[float]


def _steady_sound(stats: list[tuple[float, NodeEvent]], shown: list[tuple[float, float]],
                  pictures: int) -> _SteadySound | None:
    """The latest stretch of stats with one sound delay (<= the longest a picture waits)
    that saw ``pictures`` pictures shown, or None while there is none yet.

    A picture counts when it was shown at least ``MAX_LIPSYNC_WAIT_S`` after the
    stretch began (it was decoded, and its wait chosen, under the same delay). The
    delay moves when the path's transit does (a loaded machine): pictures shown under
    another delay are not compared with this one.
    """
    events = [(t, e.audio) for t, e in stats if e.KIND == "stats" and e.audio is not None]
    if not events or events[-1][1].av_offset_ms is None or not events[-1][1].sound:
        return None
    end_t, last = events[-1]
    if last.delay_ms is None or last.delay_ms > MAX_LIPSYNC_WAIT_S * 1000:
        return None
    start_t = end_t
    for t, audio in reversed(events):
        if audio.delay_ms != last.delay_ms or not audio.sound:
            break
        start_t = t
    ages = [(at - captured) * 1000 for at, captured in list(shown)
            if start_t + MAX_LIPSYNC_WAIT_S <= at <= end_t]
    if len(ages) < pictures:
        return None
    return _SteadySound(last.delay_ms, last.av_offset_ms, ages)


async def test_a_playing_viewer_holds_each_picture_until_its_sound_is_heard(
        pulse_null_sink: str) -> None:
    streamer = await _streamer(AudioConfig())
    shown: list[tuple[float, float]] = []  # (when handed to the display, captured_at)
    stats: list[tuple[float, NodeEvent]] = []  # (when reported, event)
    assert streamer.listen is not None
    port = streamer.listen[1]
    config = NodeConfig(name="viewer", listen_host="127.0.0.1", resolution=360,
                        timing=Timing(link_timeout_s=5.0, stats_interval_s=0.5),
                        audio=AudioConfig(play=True, output_device=pulse_null_sink),
                        tls=False)  # its streamer (above) speaks plaintext
    viewer = Node(config, lambda e: stats.append((time.time(), e)),
                  lambda f: shown.append((time.time(), f.captured_at)),
                  directory_factory=lambda n: StreamerDirectory(port, streamer.peer_id))
    await viewer.start()
    try:
        # The stats' av offset is over the last 60 pictures shown: the stretch must
        # hold that many, all under the delay it reports.
        async with asyncio.timeout(120):
            while (steady := _steady_sound(stats, shown, 60)) is None:
                await asyncio.sleep(0.05)  # waiting for the stats to say so, not timing
        # Same machine, same clock: a picture's age when shown is its display delay.
        ages = sorted(steady.picture_ages_ms)
        median_age = ages[len(ages) // 2]
        # Held until its sound is heard: well past the ~5 ms it takes to arrive and
        # decode, close to the sound's delay (generous bound: a shared test machine).
        assert abs(median_age - steady.delay_ms) < 45, (median_age, steady)
        assert abs(steady.av_offset_ms) < 45, steady
    finally:
        await viewer.stop()
        await streamer.stop()
