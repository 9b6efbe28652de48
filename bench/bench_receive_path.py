"""The receive path of one video frame, in process: microseconds of CPU per frame.

What a viewer does for every frame its parent sends, minus the socket and TLS: the
link's receive step (``PeerLink.receive``: framing, rate limit, picture-size check),
the dispatch, the intake (epoch fence, the streamer's Ed25519 signature, replay
check, statistics) and the relay's forward (no children: a leaf; ``--children N``:
a relay queueing the received wire bytes for N children). The stream is the
viewer-cost benchmark's: 640x360 H.264 at 10 fps (x264, keyframe every few seconds),
signed by a stand-in streamer; the same frames go round the path again and again
(a new epoch each round, so none is refused as a replay).

It also times the parts alone: decoding the framing and fields
(``FrameDecoder``) and the media guard's checks (``MediaGuard.video``: digest and
signature). The median of ``--repeats`` runs of ``--frames`` frames each is printed.

Run: ``python -m bench.bench_receive_path [--frames 2000] [--repeats 5] [--children 0]``.
Writes bench/results/receive_path.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, save, table
from peer.node.codecs.h264 import H264Encoder
from peer.node.codecs.rates import layer_bitrate
from peer.node.dispatch import MessageDispatch
from peer.node.intake import VideoIntake
from peer.node.link import PeerLink
from peer.node.linktable import LinkTable
from peer.node.media_auth import MediaGuard
from peer.node.relay import Relay
from peer.node.stats import StreamStats
from peer.node.tree.state import StreamInfo, TreeState, TreeTiming
from protocol import Candidate, FrameDecoder, Hello, PathEntry, VideoFrame, encode
from protocol.framing import PARENT_INBOX
from protocol.ratelimit import TokenBucket
from tests.support.rooms import FixedRoom
from tests.support.signed_stream import FakeStreamer

WIDTH, HEIGHT, FPS, LAYER = 640, 360, 10.0, 360
STREAM_FRAMES = 60  # distinct encoded frames (one keyframe among them, as in 6 s of video)


def encoded_frames(count: int) -> list[tuple[bytes, bool]]:
    """``count`` H.264 frames of a moving test picture with a little noise."""
    encoder = H264Encoder(WIDTH, HEIGHT, FPS, layer_bitrate(LAYER, FPS))
    rng = np.random.default_rng(1)
    base = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    base[..., 0] = np.linspace(0, 200, WIDTH, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(0, 200, HEIGHT, dtype=np.uint8)[:, None]
    out = []
    for i in range(count):
        image = base.copy()
        left = (i * 11) % (WIDTH - 90)
        image[120:210, left:left + 90] = 255
        image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
        out.append(encoder.encode(image))
    return out


class _Writer:
    """Enough of an ``asyncio.StreamWriter`` for a link that never writes."""

    transport = None

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 9) if name == "peername" else None

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _Sink:
    """A child's queue that takes everything (a relay's fan-out, without sockets)."""

    queued_frames = 0
    queued_bytes = 0

    def send_video(self, data: bytes, budget_bytes: int | None = None) -> bool:
        return True

    def clear_video(self) -> int:
        return 0


class _Display:
    wants_pictures = False
    recording = None


class _Driver:
    def __init__(self, tree: TreeState) -> None:
        self.tree = tree

    def apply(self, actions: object) -> None:
        pass


class Viewer:
    """A viewer's receive path as the node wires it, its parent on link 1."""

    def __init__(self, streamer: FakeStreamer, children: int) -> None:
        timing = TreeTiming(ping_interval_s=0.25, link_timeout_s=1.0, connect_timeout_s=2.0)
        room = FixedRoom([Candidate("p", "p", "10.0.0.6", 6000, 1, 1)])
        self.tree = tree = TreeState(peer_id="me", name="me", room="lobby", fanout=4,
                                     layer=LAYER, room_view=room, timing=timing, now=0.0,
                                     signed=True)
        tree.set_streamer(streamer.peer_id, streamer.announcement.epoch, 0.0)
        tree.connected(1, 0.0)
        tree.receive(1, Hello(peer_id="p", name="p", room="lobby"), 0.0)
        tree.receive(1, streamer.accept((PathEntry(streamer.peer_id, "s", "10.0.0.5", 5000),
                                         PathEntry("p", "p", "10.0.0.6", 6000))), 0.0)
        assert tree.parent == 1, "the stand-in parent was not accepted"
        self.refused: list[str] = []
        self.links = LinkTable(tree)
        self.relay = Relay(None, clamp=tree.clamp, is_live=tree.is_live_epoch,  # type: ignore[arg-type]
                           on_picture=lambda frame, image: None)
        for i in range(children):
            self.relay.add_child(i, _Sink(), LAYER)
        self.stats = StreamStats(5.0)
        self.intake = VideoIntake(tree, self.relay, _Display(), self.stats,  # type: ignore[arg-type]
                                  root_offset=lambda: 0.0, emit=lambda event: None,
                                  refuse=self.refused.append)
        self.dispatch = MessageDispatch(_Driver(tree), self.links, intake=self.intake,  # type: ignore[arg-type]
                                        audio=None, chat=None, relay=self.relay,  # type: ignore[arg-type]
                                        playback=None, emit=lambda event: None)  # type: ignore[arg-type]

    def read(self, chunks: list[bytes]) -> None:
        """Hand one link ``chunks``, one per call as its transport would (one TCP
        wake-up per frame)."""
        link = PeerLink(None, _Writer(), on_message=self.dispatch,  # type: ignore[arg-type]
                        on_close=lambda link, reason: None, outbound=True)
        # The rate limit stays in the path, at a rate this loop cannot reach.
        link._bucket = TokenBucket(1e9, 10**9, time.monotonic())
        self.links.add(1, link)
        for data in chunks:
            link.receive(data)
        self.links.remove(link)
        assert not self.refused and "protocol error" not in link.close_reason, (
            self.refused, link.close_reason)


def rounds(streamer: FakeStreamer, stream: list[tuple[bytes, bool]], frames: int,
           epoch: int) -> list[bytes]:
    """``frames`` signed wire messages of ``epoch``, cycling through ``stream``."""
    out = []
    first = next(i for i, (_, key) in enumerate(stream) if key)
    for seq in range(frames):
        data, key = stream[(first + seq) % len(stream)]
        frame = VideoFrame(epoch, seq, 1000.0 + seq / FPS, WIDTH, HEIGHT, LAYER, data,
                           codec="h264", keyframe=key, prev=seq - 1 if seq else -1)
        out.append(encode(streamer.video(frame)))
    return out


def per_frame_us(run: Callable[[], None], frames: int, repeats: int) -> float:
    """Median over ``repeats`` of the CPU time of ``run`` divided by ``frames``, in us."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append((time.process_time() - start) / frames * 1e6)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--children", type=int, default=0,
                        help="children the viewer relays to (0: a leaf)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    info = machine()
    stream = encoded_frames(STREAM_FRAMES)
    streamer = FakeStreamer(epoch=1, stream=StreamInfo(WIDTH, HEIGHT, FPS, "h264"))
    # One continuous stream, a slice of it per run: the guard's replay check, the
    # statistics and the relay's chain all see every frame as the next one.
    wire = rounds(streamer, stream, args.frames * args.repeats, 1)
    slices = iter(range(0, len(wire), args.frames))
    viewer = Viewer(streamer, args.children)

    def full() -> None:
        start = next(slices)
        viewer.read(wire[start:start + args.frames])

    def decode() -> None:
        decoder = FrameDecoder(PARENT_INBOX)
        for data in wire[:args.frames]:
            decoder.receive_data(data)
            decoder.next_message()

    frames_in = []
    decoder = FrameDecoder(PARENT_INBOX)
    for data in wire:
        decoder.receive_data(data)
        message = decoder.next_message()
        assert isinstance(message, VideoFrame)
        frames_in.append(message)
    guard = MediaGuard(viewer.tree, lambda why: None)
    guard_slices = iter(range(0, len(wire), args.frames))

    def check() -> None:
        start = next(guard_slices)
        for frame in frames_in[start:start + args.frames]:
            assert guard.video(frame)

    sizes = [len(w) for w in wire]
    result = {
        "frames": args.frames, "repeats": args.repeats, "children": args.children,
        "mean_frame_bytes": round(statistics.fmean(sizes)),
        "full_us": per_frame_us(full, args.frames, args.repeats),
        "decode_us": per_frame_us(decode, args.frames, args.repeats),
        "guard_us": per_frame_us(check, args.frames, args.repeats),
        "machine": info,
    }
    print(table(["path", "us per frame"],
                [["link receive + dispatch + intake + relay", result["full_us"]],
                 ["  of which framing and fields (FrameDecoder)", result["decode_us"]],
                 ["  of which digest + signature (MediaGuard)", result["guard_us"]]],
                ["s", ".1f"]))
    print(f"{args.frames} frames of {result['mean_frame_bytes']} bytes on average, "
          f"{args.children} children; load average {info['loadavg_at_start']}")
    save("receive_path", result, args.out)
    return result


if __name__ == "__main__":
    main()
