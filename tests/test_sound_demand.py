"""Sound goes only where it is used: real processes on loopback.

A headless viewer that neither plays nor records sound asks its parent for none (the
demand flag of JoinRequest / LayerDemand, see peer/node/tree/state.py): fifty packets
a second it would only count are most of a silent viewer's CPU. A sibling that plays
(``--audio-out``) still gets every packet. The streamer encodes and signs sound only
while a child asks for it, and starts again on the picture's time line when one does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from peer.node.audio.config import AudioConfig
from peer.node.audio.format import FRAME_S
from peer.node.audio.opus import ENCODER_DELAY_S
from peer.node.audio.station import AudioStation
from peer.node.config import PatternSource
from protocol import AudioFrame, FrameDecoder
from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow


def _audio(peer: Peer) -> dict[str, Any]:
    return (peer.last("stats") or {}).get("audio") or {}


def _stats_after(peer: Peer, t: float) -> list[dict[str, Any]]:
    return [e for e in peer.all("stats") if e["t"] > t]


class _Child:
    """A child link's audio queue: keeps what it is sent."""

    def __init__(self) -> None:
        self.frames: list[AudioFrame] = []
        self._decoder = FrameDecoder()

    def send_audio(self, data: bytes) -> bool:
        self._decoder.receive_data(data)
        while (message := self._decoder.next_message()) is not None:
            assert isinstance(message, AudioFrame)
            self.frames.append(message)
        return True


async def test_the_streamer_encodes_sound_only_while_a_child_asks_for_it() -> None:
    loop = asyncio.get_running_loop()
    station = AudioStation(AudioConfig(), window_s=5.0, root_offset=lambda: 0.0,
                           on_bad_packet=lambda reason: None, on_warning=lambda text: None)
    station.open_output(loop)  # headless: no device, but the loop is known
    signed: list[int] = []

    def sign(frame: AudioFrame) -> AudioFrame:
        signed.append(frame.seq)
        return frame

    children: list[_Child] = []
    station.start_stream(station.open_source(PatternSource(320, 180, 10.0)),
                         loop_source=False, children=lambda: children, epoch=lambda: 1,
                         sign=sign)
    anchor = time.time()

    async def streaming_until(done: Callable[[], bool]) -> None:
        # The picture keeps moving (the capture holds while it does not), on one time
        # line; this waits for the capture's progress, it times nothing.
        async with asyncio.timeout(20):
            while not done():
                now = time.time()
                station.video_released(now, now - anchor)
                await asyncio.sleep(0.02)

    def capture_skipped() -> int:
        return station._capture.skipped if station._capture is not None else 0

    try:
        # Nobody asks: blocks are read on schedule and counted, none is encoded or signed.
        await streaming_until(lambda: capture_skipped() >= 10)
        assert signed == []
        assert station.snapshot().sound  # the stream has sound; nobody listens yet
        listener = _Child()
        children.append(listener)
        await streaming_until(lambda: len(listener.frames) >= 5)
        seqs = [f.seq for f in listener.frames]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        # Numbered by the time line: the silent blocks count, and each packet carries
        # the time of its block on the picture's clock (lip sync survives the silence).
        assert seqs[0] >= 10
        for frame in listener.frames:
            assert frame.captured_at == pytest.approx(
                anchor + frame.seq * FRAME_S - ENCODER_DELAY_S, abs=0.005)
        assert signed == seqs[:len(signed)]
        # The listener leaves: the streamer stops signing (a packet already encoded is
        # dropped unsigned), and the capture counts on.
        children.clear()
        stopped_at, skipped = len(signed), capture_skipped()
        await streaming_until(lambda: capture_skipped() >= skipped + 10)
        assert len(signed) == stopped_at
    finally:
        station.close()


def test_a_silent_leaf_gets_no_sound_while_a_playing_sibling_does(
        pulse_null_sink: str) -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--max-children", "3")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        leaves = {
            "quiet": s.start_peer("quiet", "--watch", "--no-audio", "--max-children", "0"),
            "plain": s.start_peer("plain", "--watch", "--max-children", "0"),
            "listener": s.start_peer("listener", "--watch", "--max-children", "0",
                                     "--audio-out", pulse_null_sink),
        }
        for peer in leaves.values():
            assert wait_for(lambda p=peer: (p.last("joined") or {}).get("depth") == 1, 30), \
                (peer.name, peer.events[-5:])
        listener = leaves["listener"]
        assert wait_for(lambda: _audio(listener).get("kbps", 0) > 10, 30), _audio(listener)
        since = time.time()
        # Three more stats ticks of everyone: the playing leaf keeps its sound, the
        # others see video and never a packet of sound.
        assert wait_for(lambda: all(len(_stats_after(p, since)) >= 3
                                    for p in leaves.values()), 30)
        assert all(e["audio"]["sound"] and e["audio"]["loss_pct"] == 0.0
                   for e in _stats_after(listener, since)), _audio(listener)
        for name in ("quiet", "plain"):
            stats = leaves[name].all("stats")
            assert stats and stats[-1].get("fps", 0) > 0, (name, stats[-1:])
            assert all(not (e.get("audio") or {}).get("sound")
                       and (e.get("audio") or {}).get("kbps", 0) == 0 for e in stats), \
                (name, [e.get("audio") for e in stats])
        assert _audio(root)["sound"]  # the root still sends (to the listener)


def test_the_streamer_sends_no_sound_until_a_listener_joins(pulse_null_sink: str) -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x180", "--fps", "10",
                            "--max-children", "3")
        assert wait_for(lambda: root.last("stream_started"), 30), root.events
        quiet = s.start_peer("quiet", "--watch", "--max-children", "0")
        assert wait_for(lambda: (quiet.last("joined") or {}).get("depth") == 1, 30), \
            quiet.events[-5:]
        since = time.time()
        assert wait_for(lambda: len(_stats_after(root, since)) >= 3, 30)
        # A silent viewer only: the streamer has sound and encodes none of it.
        assert all((e.get("audio") or {}).get("kbps", 0) == 0
                   and (e.get("audio") or {}).get("sound")
                   for e in _stats_after(root, since)), [e.get("audio") for e in root.all("stats")]
        listener = s.start_peer("listener", "--watch", "--max-children", "0",
                                "--audio-out", pulse_null_sink)
        assert wait_for(lambda: _audio(listener).get("kbps", 0) > 10, 30), _audio(listener)
        since = time.time()
        assert wait_for(lambda: len(_stats_after(listener, since)) >= 3, 30)
        assert all(e["audio"]["sound"] and e["audio"]["loss_pct"] == 0.0
                   for e in _stats_after(listener, since)), _audio(listener)
        assert _audio(root).get("kbps", 0) > 10
