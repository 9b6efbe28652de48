"""What trust costs: TLS + signature checks vs plaintext, on one relayed 720p30 stream.

A chain streamer (1280x720 test pattern, 30 fps) -> relay (720) -> leaf (720), once
with TLS on every link (the default) and once with ``--no-tls`` everywhere. For each:
the relay's CPU in % of one core over a steady window (utime + stime from /proc), the
join time of the relay and of the leaf (``joined`` minus ``ready`` in their events:
tracker registration, dial, TLS handshake, proof, Hello, Accept), the latency p50 at
the relay (depth 1) and at the leaf (depth 2) and so the added latency of one hop.
The difference between the two runs is the cost of TLS. Both runs sign and verify
the stream (issue 13: there is no unsigned mode to compare against), so the cost of
that part is measured on its own, in this process: ``MediaGuard`` checking 720p30
H.264 frames (encoded here from the test pattern) and 50 Opus-sized sound packets a
second, as a relay does for each stream it receives, in CPU time per second of
stream; also the streamer's signing and the check of a transcoded frame. Extra CPU
per relayed stream = TLS cost + that check.

Run: ``python -m bench.bench_trust [--quick] [--seconds S]``.
Writes bench/results/trust.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    CpuMeter,
    bench_session,
    machine,
    median_of,
    require,
    save,
    sigterm_as_exit,
    start_streamer,
    stats_between,
    streaming,
    table,
)
from peer.node.codecs.bank import EncoderBank
from peer.node.codecs.base import VideoCodec
from peer.node.config import PatternSource
from peer.node.media import open_source
from peer.node.media_auth import MediaGuard, MediaSigner
from peer.node.tree.actions import Dial
from peer.node.tree.state import StreamInfo, TreeState, TreeTiming
from protocol import Accept, AudioFrame, Candidate, Hello, PathEntry, VideoFrame
from protocol.identity import Identity
from tests.support.procs import wait_for
from tests.support.rooms import FixedRoom

SIZE, FPS, LAYER = "1280x720", 30.0, 720
WARMUP_S = 3.0


def _join_ms(peer: Any) -> float | None:
    ready, joined = peer.last("ready"), peer.last("joined")
    if not ready or not joined:
        return None
    return (joined["t"] - ready["t"]) * 1000


def run(tls: bool, seconds: float, quick: bool) -> dict[str, Any]:
    plain = [] if tls else ["--no-tls"]
    with bench_session() as s:
        s.start_tracker(*plain)
        streamer = start_streamer(s, SIZE, FPS, "--max-children", "1", *plain)
        relay = s.start_peer("relay", "--watch", "--resolution", str(LAYER),
                             "--max-children", "1", *plain)
        require(wait_for(lambda: streaming(relay), 30), "the relay gets no frames", s, [relay])
        leaf = s.start_peer("leaf", "--watch", "--resolution", str(LAYER),
                            "--max-children", "0", *plain)
        require(wait_for(lambda: streaming(leaf), 30), "the leaf gets no frames", s, [leaf])
        require((leaf.last("joined") or {}).get("parent") == "relay",
                "the leaf did not attach to the relay")
        time.sleep(1.5 if quick else WARMUP_S)
        meter = CpuMeter({"relay": relay.proc.pid, "streamer": streamer.proc.pid,
                          "leaf": leaf.proc.pid}).start()
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        cpu = meter.stop()
        time.sleep(1.1)
        relay_window = stats_between(relay, t0, t1)
        leaf_window = stats_between(leaf, t0, t1)
        relay_latency = median_of(relay_window, "latency_ms")
        leaf_latency = median_of(leaf_window, "latency_ms")
        return {
            "tls": tls,
            "relay_cpu_pct": cpu.get("relay"),
            "streamer_cpu_pct": cpu.get("streamer"),
            "leaf_cpu_pct": cpu.get("leaf"),
            "relay_fps": median_of(relay_window, "fps"),
            "relay_kbps_in": median_of(relay_window, "kbps_in"),
            "relay_join_ms": _join_ms(relay),
            "leaf_join_ms": _join_ms(leaf),
            "relay_latency_ms": relay_latency,
            "leaf_latency_ms": leaf_latency,
            "hop_ms": (None if relay_latency is None or leaf_latency is None
                       else leaf_latency - relay_latency),
            "leaf_loss_pct": median_of(leaf_window, "loss_pct"),
        }


AUDIO_PPS = 50  # 20 ms Opus packets
OPUS_BYTES = 160  # ~64 kbit/s stereo


def media_auth_cost(seconds: float) -> dict[str, Any]:
    """CPU per second of one 720p30 stream (plus sound) for signing and checking it."""
    width, height = (int(v) for v in SIZE.split("x"))
    source = open_source(PatternSource(width, height, FPS))
    bank = EncoderBank(VideoCodec.H264, FPS)
    encoded = []
    try:
        for seq in range(int(FPS)):  # one second of distinct pictures, then reused
            image = source.read()
            assert image is not None
            encoded.append(bank.encode(image, [LAYER], keyframes=[LAYER] if seq == 0 else (),
                                       seq=seq)[LAYER])
    finally:
        source.close()
        bank.close()
    streamer, relay = Identity.generate(), Identity.generate()
    stream = StreamInfo(width, height, FPS, "h264")
    signer = MediaSigner(streamer)
    ann = signer.announcement(1, stream, time.time())
    # A viewer attached below the relay, the way the node's tree gets there.
    only_the_relay = FixedRoom([Candidate(relay.peer_id, "relay", "127.0.0.1", 7000, depth=1,
                                          free_slots=1)])
    tree = TreeState(peer_id="viewer", name="viewer", room="bench", fanout=1, layer=LAYER,
                     room_view=only_the_relay,
                     timing=TreeTiming(1.0, 5.0, 2.0), now=0.0, signed=True)
    [dial] = [a for a in tree.set_streamer(streamer.peer_id, 1, 0.0) if isinstance(a, Dial)]
    tree.connected(dial.link, 0.0)
    tree.receive(dial.link, Hello(peer_id=relay.peer_id, name="relay", room="bench"), 0.0)
    tree.receive(dial.link, Accept(
        path=(PathEntry(streamer.peer_id, "s"), PathEntry(relay.peer_id, "r")), epoch=1,
        source_width=width, source_height=height, fps=FPS, codec="h264", ann=ann), 0.0)
    assert tree.announcement == ann
    frames_n, packets_n = int(seconds * FPS), int(seconds * AUDIO_PPS)
    unsigned = [VideoFrame(1, i, 1000.0 + i / FPS, e.width, e.height, LAYER, e.data,
                           codec="h264", keyframe=e.keyframe, prev=i - 1)
                for i, e in ((i, encoded[i % len(encoded)]) for i in range(frames_n))]
    opus = bytes(range(256))[:OPUS_BYTES]
    sound = [AudioFrame(1, i, 1000.0 + i / AUDIO_PPS, opus) for i in range(packets_n)]

    def cpu(work: Any) -> float:
        start = time.process_time()
        result = work()
        spent = time.process_time() - start
        assert result is not False
        return spent

    signed_video: list[VideoFrame] = []
    signed_audio: list[AudioFrame] = []
    sign_s = cpu(lambda: signed_video.extend(signer.video(f) for f in unsigned)) \
        + cpu(lambda: signed_audio.extend(signer.audio(a) for a in sound))
    guard = MediaGuard(tree, lambda why: None)
    video_s = cpu(lambda: all(guard.video(f) for f in signed_video))
    audio_s = cpu(lambda: all(guard.audio(a) for a in signed_audio))
    # A transcoded 360p layer made from each frame: the relay's and the source's check.
    small = VideoFrame(1, 0, 0.0, 640, 360, 360, encoded[1].data[: len(encoded[1].data) // 4],
                       codec="h264", keyframe=False, prev=-1)
    made = [MediaSigner(relay).transcoded(f, dataclasses.replace(
        small, seq=f.seq, captured_at=f.captured_at)) for f in signed_video]
    guard = MediaGuard(tree, lambda why: None)
    transcoded_s = cpu(lambda: all(guard.video(f) for f in made))
    assert guard.refused == 0
    mean_kb = sum(len(f.data) for f in signed_video) / len(signed_video) / 1000
    return {
        "seconds_of_stream": seconds,
        "frame_kb": round(mean_kb, 1),
        "verify_video_cpu_pct": 100 * video_s / seconds,
        "verify_audio_cpu_pct": 100 * audio_s / seconds,
        "verify_cpu_pct": 100 * (video_s + audio_s) / seconds,
        "verify_per_frame_us": 1e6 * video_s / frames_n,
        "verify_per_packet_us": 1e6 * audio_s / packets_n,
        "verify_transcoded_cpu_pct": 100 * transcoded_s / seconds,
        "streamer_sign_cpu_pct": 100 * sign_s / seconds,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    seconds = args.seconds or (4.0 if args.quick else 15.0)
    # Keys and tracker pins of these runs stay out of the user's config dir.
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="treecast-bench-trust-")
    auth = media_auth_cost(3.0 if args.quick else 20.0)
    runs = [run(tls, seconds, args.quick) for tls in (True, False)]
    rows = [[("TLS + checks" if r["tls"] else "plaintext"), r["relay_cpu_pct"],
             r["relay_fps"], r["relay_kbps_in"], r["relay_join_ms"], r["leaf_join_ms"],
             r["relay_latency_ms"], r["leaf_latency_ms"], r["hop_ms"], r["leaf_loss_pct"]]
            for r in runs]
    secure, plain = runs
    diff = {key: (None if secure[key] is None or plain[key] is None
                  else secure[key] - plain[key])
            for key in ("relay_cpu_pct", "relay_join_ms", "leaf_join_ms", "hop_ms")}
    rows.append(["cost (TLS - plain)", diff["relay_cpu_pct"], None, None,
                 diff["relay_join_ms"], diff["leaf_join_ms"], None, None, diff["hop_ms"],
                 None])
    text = table(["links", "relay CPU %", "fps", "kbit/s in", "relay join ms",
                  "leaf join ms", "latency d1 ms", "latency d2 ms", "hop ms", "leaf loss %"],
                 rows, ["s", ".1f", ".1f", ".0f", ".0f", ".0f", ".1f", ".1f", ".2f", ".2f"])
    tls_cpu = diff["relay_cpu_pct"]
    total = None if tls_cpu is None else tls_cpu + auth["verify_cpu_pct"]
    auth_text = table(
        ["per relayed stream", "% of a core", "per message us"],
        [["check 720p30 video", auth["verify_video_cpu_pct"], auth["verify_per_frame_us"]],
         ["check 50/s sound", auth["verify_audio_cpu_pct"], auth["verify_per_packet_us"]],
         ["check a transcoded 360p30", auth["verify_transcoded_cpu_pct"], None],
         ["streamer: sign video + sound", auth["streamer_sign_cpu_pct"], None],
         ["TLS (process runs above)", tls_cpu, None],
         ["extra CPU: TLS + checks", total, None]],
        ["s", ".2f", ".0f"])
    result: dict[str, Any] = {"quick": args.quick, "seconds": seconds, "source": SIZE,
                              "fps": FPS, **machine(), "runs": runs, "cost": diff,
                              "media_auth": auth, "extra_cpu_pct": total,
                              "table": text, "auth_table": auth_text}
    print(f"\ntrust cost: streamer -> relay -> leaf, {SIZE} at {FPS:g} fps "
          f"(loopback, {seconds:g} s window per run; both runs sign and check the stream)")
    print(text)
    print(f"\nsigned stream: {auth['frame_kb']:.1f} kB frames, "
          f"{auth['seconds_of_stream']:g} s of stream checked in this process")
    print(auth_text)
    save("trust", result, args.out)
    return result


if __name__ == "__main__":
    main()
