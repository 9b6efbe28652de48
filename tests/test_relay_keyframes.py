"""The relay's per-child decisions for an inter-frame codec (fake sinks, no sockets)."""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor

from peer.node.codecs.h264 import VBV_BUFFER_S, layer_bitrate
from peer.node.relay import VIDEO_QUEUE_VBV, Relay
from protocol import VideoFrame, encode, limits
from protocol.framing import FRAMING_VERSION, HEADER, FrameDecoder


class Sink:
    """A child's queue: holds ``capacity`` frames, drops the oldest beyond."""

    def __init__(self, capacity: int = 3) -> None:
        self.capacity = capacity
        self.queue: list[bytes] = []
        self.delivered: list[bytes] = []

    def send_video(self, data: bytes, budget_bytes: int | None = None) -> bool:
        dropped = len(self.queue) >= self.capacity
        if dropped:
            self.queue.pop(0)
        self.queue.append(data)
        return not dropped

    @property
    def queued_frames(self) -> int:
        return len(self.queue)

    @property
    def queued_bytes(self) -> int:
        return sum(len(d) for d in self.queue)

    def clear_video(self) -> int:
        n = len(self.queue)
        self.queue.clear()
        return n

    def drain(self) -> None:
        self.delivered += self.queue
        self.queue.clear()


def frame(layer: int, seq: int, prev: int, keyframe: bool) -> VideoFrame:
    # The relay never looks inside the payload: a codec the wire does not check.
    return VideoFrame(1, seq, 0.0, 16, 16, layer, bytes([seq % 256]), codec="test",
                      keyframe=keyframe, prev=prev)


def make_relay(asked: list[int], clock: list[float]) -> Relay:
    return Relay(ThreadPoolExecutor(1), clamp=lambda layer: layer, is_live=lambda e: True,
                 on_picture=lambda f, i: None, request_keyframe=asked.append,
                 now=lambda: clock[0])


def test_a_new_child_starts_at_a_keyframe_and_the_root_forces_one() -> None:
    asked: list[int] = []
    relay = make_relay(asked, [0.0])
    sink = Sink()
    relay.add_child("kid", sink, 720)
    assert relay.fan_out(frame(720, 10, 9, False), None) == 0  # mid-chain: not for it
    assert relay.keyframes_due({720}, 0.0) == {720}  # ... so the root forces one
    assert relay.fan_out(frame(720, 11, 10, True), None) == 1
    assert relay.fan_out(frame(720, 12, 11, False), None) == 1
    assert relay.fan_out(frame(720, 14, 13, False), None) == 0  # 13 never came: broken
    assert asked == []  # the root asks nobody


def test_a_relay_asks_its_parent_for_the_layer_it_forwards_at_most_every_quarter_second(
) -> None:
    asked: list[int] = []
    clock = [0.0]
    relay = make_relay(asked, clock)
    relay.add_child("kid", Sink(), 720)
    for seq in range(1, 10):
        clock[0] = seq * 0.033
        relay.fan_out(frame(720, seq, seq - 1, False), 720)
    assert asked == [720, 720]  # t=0.033 and t=0.297: rate-limited upstream


def test_a_drop_clears_the_queue_and_waits_for_the_next_keyframe() -> None:
    relay = make_relay([], [0.0])
    sink = Sink(capacity=3)
    relay.add_child("kid", sink, 480)
    relay.fan_out(frame(480, 1, -1, True), None)
    for seq in range(2, 5):  # the child reads nothing: the fourth frame drops the first
        relay.fan_out(frame(480, seq, seq - 1, False), None)
    assert sink.queue == []  # nothing left that could decode
    assert relay.child_layer("kid") is None
    assert relay.fan_out(frame(480, 5, 4, False), None) == 0
    assert relay.throttle.pending(480)
    assert relay.fan_out(frame(480, 6, 5, True), None) == 1
    assert relay.child_layer("kid") == 480


def test_a_keyframe_supersedes_what_waits_in_the_queue_only_beyond_the_budget() -> None:
    relay = make_relay([], [0.0])
    sink = Sink(capacity=10)
    relay.add_child("kid", sink, 480)
    relay.fan_out(frame(480, 1, -1, True), None)
    relay.fan_out(frame(480, 2, 1, False), None)
    relay.fan_out(frame(480, 3, -1, True), None)
    assert len(sink.queue) == 3  # small: everything queued still goes, nothing lost
    # A keyframe that does not fit behind the queue (two VBV buffers of 480p's cap)
    # supersedes it: only the newest keyframe is left to send.
    budget = round(layer_bitrate(480, 30.0) / 8 * VIDEO_QUEUE_VBV * VBV_BUFFER_S)
    big = dataclasses.replace(frame(480, 4, -1, True), data=b"k" * budget)
    relay.fan_out(big, None)
    assert len(sink.queue) == 1 and sink.queue[0] == encode(big)


def test_layer_switch_is_make_before_break() -> None:
    relay = make_relay([], [0.0])
    sink = Sink(capacity=10)
    relay.add_child("kid", sink, 720)
    relay.fan_out(frame(720, 1, -1, True), None)
    relay.set_child_layer("kid", 480)
    assert relay.layers(None) == {480, 720}  # both made until the switch
    assert relay.fan_out(frame(720, 2, 1, False), None) == 1  # old chain flows on
    assert relay.fan_out(frame(480, 2, -1, True), None) == 1  # the switch
    assert relay.child_layer("kid") == 480
    assert relay.layers(None) == {480}
    assert relay.fan_out(frame(720, 3, 2, False), None) == 0
    assert relay.fan_out(frame(480, 3, 2, False), None) == 1


def test_an_auto_child_moves_down_when_its_queue_backs_up() -> None:
    clock = [0.0]
    relay = make_relay([], clock)
    sink = Sink(capacity=3)
    relay.add_child("kid", sink, 720, auto=True)
    relay.fan_out(frame(720, 1, -1, True), None)
    for seq in range(2, 6):  # a thin path: the queue fills and drops
        relay.fan_out(frame(720, seq, seq - 1, False), None)
    clock[0] = 0.1
    relay.observe(clock[0])
    assert relay.layers(None) == {480}
    relay.fan_out(frame(480, 6, -1, True), None)
    assert relay.child_layer("kid") == 480


def test_jpegs_stand_alone_a_drop_loses_one_frame_only() -> None:
    relay = make_relay([], [0.0])
    sink = Sink(capacity=3)
    relay.add_child("kid", sink, 480)
    for seq in range(1, 6):
        relay.fan_out(VideoFrame(1, seq, 0.0, 16, 16, 480, b"\xff\xd8", codec="mjpeg"), None)
    assert len(sink.queue) == 3  # the newest three: nothing cleared, two dropped
    assert relay.child_layer("kid") == 480


def _received(message: VideoFrame, extra: dict[str, object]) -> tuple[VideoFrame, bytes]:
    """``message`` as a parent's bytes (with ``extra`` metadata a re-encoding would
    drop, so the test tells forwarded bytes from re-encoded ones), decoded."""
    meta = json.dumps({**message.to_meta(), **extra}, separators=(",", ":")).encode()
    raw = HEADER.pack(limits.MAGIC, FRAMING_VERSION, message.KIND, len(meta),
                      len(message.data)) + meta + message.data
    decoder = FrameDecoder()
    decoder.receive_data(raw)
    decoded = decoder.next_message()
    assert isinstance(decoded, VideoFrame)
    return decoded, raw


def test_a_relay_forwards_the_bytes_it_received_untouched() -> None:
    relay = make_relay([], [0.0])
    sink = Sink()
    relay.add_child("kid", sink, 720)
    received, raw = _received(dataclasses.replace(
        frame(720, 1, -1, True), codec="mjpeg"), {"future": 1})
    assert received.wire == raw and encode(received) != raw
    assert relay.forward(received, picture=False)
    assert sink.queue == [raw]  # as read: not encoded again


def test_a_changed_frame_is_encoded_again() -> None:
    received, _ = _received(dataclasses.replace(
        frame(720, 1, -1, True), codec="mjpeg"), {})
    resigned = dataclasses.replace(received, sig="x")
    assert resigned.wire is None  # the relay encodes it; the old bytes are not its own
    relay = make_relay([], [0.0])
    sink = Sink()
    relay.add_child("kid", sink, 720)
    relay.fan_out(resigned, 720, resigned.wire)
    assert sink.queue == [encode(resigned)]
