"""Lip sync through a relay tree, sound through a relay kill and a video overload.

1. **Sync.** A generated clip (640x360, 30 fps, AAC; a white flash and a 1 kHz beep at
   the start of every second) is streamed through a chain of depth 3: streamer -> r1 ->
   r2 -> leaf (``--max-children 1`` each). The leaf records (``--record leaf.mkv``) and
   plays into a PulseAudio null sink the benchmark starts (``--audio-out``). In the
   recording, every flash (frame brightness) is paired with its beep (audio onset):
   the offsets over the steady window, and every hole between audio packets.
2. **Relay killed.** Then r2 (the leaf's parent) is SIGKILLed: how long until sound
   comes back (the leaf's ``sound_resumed`` gap, and the hole in the recording).
3. **Playout.** The leaf's playout delay (capture on the streamer's clock to the
   speaker) against the audio's transit time: what the jitter buffer adds.
4. **Relay CPU for audio.** r1's and r2's CPU with sound and, in a second run of the
   same tree, without (``--no-audio`` at the streamer); and the forwarding code alone
   (``AudioStation.received`` with fake child queues, in-process), in microseconds per
   packet.
5. **Video-only overload** (needs ``ip netns``): streamer, relay and leaf on hosts of
   their own; the relay's upload (the leaf's only link) is capped with tc tbf at 60 %
   of the video bit rate (a 720p clip with a patch of noise: H.264 near 1 Mbit/s).
   After 10 s to settle, sound at the leaf over the overloaded window: loss, late
   packets, silent blocks (concealed + paused), transit; video frame rate for contrast.
   How the delay moved (blocks stretched / compressed) and, apart from the player's
   own silence, the output device's: underruns (PortAudio's flag), callback stalls
   over 100 ms, device clock jumps.

Run: ``python -m bench.bench_av_sync [--quick] [--seconds 60]``; the overload alone,
three runs of 60 s: ``--phases overload --overload-seconds 60 --overload-runs 3``
(writes bench/results/av_sync_overload.json); ``--burn N`` adds N processes spinning
on the CPU through the overloaded window (the device's own stalls under load).
Writes bench/results/av_sync.json. Needs pulseaudio for the playout figures (skipped
without it) and root + iproute2 for the overload (skipped without them).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    BenchSession,
    CpuMeter,
    bench_session,
    machine,
    require,
    save,
    sigterm_as_exit,
    stats_between,
    table,
)
from peer.node.audio.clip import write_sync_clip
from peer.node.audio.sync import measure
from tests.support.procs import Peer, wait_for

FPS = 30
SIZE = (640, 360)
OVERLOAD_SIZE = (1280, 720)
# A patch of noise in the overload clip: H.264 near 800 kbit/s (the moving bar alone
# encodes to ~100 kbit/s, too thin to overload a link that must still carry the sound).
OVERLOAD_NOISE = (56, 32)
# Sound on the wire: 50 packets/s of ~290 bytes with TLS, TCP/IP and Ethernet headers.
SOUND_WIRE_KBIT = 120
WARMUP_S = 3.0  # recording time before the steady window starts
GAP_LIMIT_S = 0.06  # the bound on holes in the recorded sound
# After the cap, before the overloaded window: the backlog gate measures the new rate
# and the leaf's playout delay learns the new path's slowest packets.
OVERLOAD_SETTLE_S = 10.0


def _audio(peer: Peer) -> dict[str, Any]:
    return (peer.last("stats") or {}).get("audio") or {}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _chain(s: BenchSession, clip: Path, record: Path | None, *, sound: bool,
           play: str | None, prefix: dict[str, list[str]] | None = None,
           listen: dict[str, str] | None = None, tracker: str | None = None,
           r2_play: bool = False, layer: int = 360) -> dict[str, Peer]:
    """streamer -> r1 -> r2 -> leaf, started in order so the chain is exact."""
    prefix = prefix or {}
    listen = listen or {}

    def start(name: str, *args: str) -> Peer:
        return s.start_peer(name, *args, tracker=tracker, prefix=prefix.get(name),
                            listen=listen.get(name, "127.0.0.1:0"))

    root = start("streamer", "--stream", str(clip), "--max-children", "1",
                 *([] if sound else ["--no-audio"]))
    require(wait_for(lambda: root.last("stream_started"), 30), "streamer did not start", s,
            [root])
    peers = {"streamer": root}
    for depth, name in enumerate(("r1", "r2"), start=1):
        playing = ["--audio-out", play] if play is not None and r2_play and name == "r2" \
            else []
        peers[name] = start(name, "--watch", "--max-children", "1", "--resolution",
                            str(layer), *playing)
        require(wait_for(lambda p=peers[name], d=depth: (p.last("joined") or {})
                         .get("depth") == d, 30), f"{name} did not join at depth {depth}",
                s, [peers[name]])
    leaf_args = ["--watch", "--max-children", "0", "--resolution", str(layer)]
    if record is not None:
        leaf_args += ["--record", str(record)]
    if play is not None and not r2_play:
        leaf_args += ["--audio-out", play]
    peers["leaf"] = start("leaf", *leaf_args)
    require(wait_for(lambda: (peers["leaf"].last("joined") or {}).get("depth") == 3, 30),
            "leaf did not join at depth 3", s, [peers["leaf"]])
    return peers


def _stop(peer: Peer, timeout: float = 20.0) -> None:
    """SIGTERM (the peer finishes its recording) and wait for it by its pid."""
    if peer.proc.poll() is None:
        os.kill(peer.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):  # the session ends it then
            peer.proc.wait(timeout)


def sync_and_kill(clip: Path, workdir: Path, seconds: float, play: str | None
                  ) -> dict[str, Any]:
    record = workdir / "leaf.mkv"
    with bench_session() as s:
        s.start_tracker()
        peers = _chain(s, clip, record, sound=True, play=play)
        leaf = peers["leaf"]
        require(wait_for(lambda: _audio(leaf).get("sound"), 30), "no sound at the leaf", s,
                [leaf])
        relays = CpuMeter({n: peers[n].proc.pid for n in ("r1", "r2")}).start()
        t0 = time.time()
        time.sleep(seconds + WARMUP_S)
        t1 = time.time()
        cpu = relays.stop()
        killed_at = time.time()
        s.kill("r2")
        wait_for(lambda: any(e["t"] > killed_at for e in leaf.all("sound_resumed")), 15)
        time.sleep(3.0)
        _stop(leaf)
        steady = stats_between(leaf, t0 + WARMUP_S, t1)
        resumed = [e for e in leaf.all("sound_resumed") if e["t"] > killed_at]
        video_resumed = [e for e in leaf.all("resumed") if e["t"] > killed_at]
    report = measure(str(record))
    # The kill shows as the first long hole after the warm-up; the steady window ends
    # half a second before it.
    kill_gap = next(((at, length) for at, length in report.audio_gaps
                     if at > WARMUP_S and length > GAP_LIMIT_S), None)
    end = kill_gap[0] - 0.5 if kill_gap else report.audio_s
    window = report.steady(WARMUP_S)
    offsets = [o for f, o in zip(window.paired_flashes(), window.offsets, strict=True)
               if f <= end]
    gaps = [g for g in window.audio_gaps if g[0] <= end]
    audio_stats = [e.get("audio") or {} for e in steady]
    return {
        "recorded_s": round(report.audio_s, 2),
        "flashes": len([f for f in window.flashes if f <= end]),
        "pairs": len(offsets),
        "offset_median_abs_ms": _ms(_median([abs(o) for o in offsets])),
        "offset_max_abs_ms": _ms(max((abs(o) for o in offsets), default=None)),
        "offset_mean_ms": _ms(statistics.mean(offsets) if offsets else None),
        "max_gap_steady_ms": _ms(max((g[1] for g in gaps), default=0.0)),
        "gaps_over_60ms_steady": sum(1 for g in gaps if g[1] > GAP_LIMIT_S),
        "kill_gap_recorded_ms": _ms(kill_gap[1]) if kill_gap else None,
        "kill_sound_resumed_ms": resumed[0]["gap_ms"] if resumed else None,
        "kill_packets_lost": resumed[0]["lost"] if resumed else None,
        "kill_video_resumed_ms": video_resumed[0]["gap_ms"] if video_resumed else None,
        "leaf_audio_delay_ms": _median([a["delay_ms"] for a in audio_stats
                                        if a.get("delay_ms") is not None]),
        "leaf_audio_transit_ms": _median([a["transit_ms"] for a in audio_stats
                                          if a.get("transit_ms") is not None]),
        "leaf_device_lead_ms": _median([a["device_lead_ms"] for a in audio_stats
                                        if a.get("device_lead_ms") is not None]),
        "leaf_av_offset_ms": _median([a["av_offset_ms"] for a in audio_stats
                                      if a.get("av_offset_ms") is not None]),
        "leaf_video_latency_ms": _median([e["latency_ms"] for e in steady
                                          if e.get("latency_ms") is not None]),
        "leaf_concealed_steady": _delta(audio_stats, "concealed"),
        "leaf_paused_steady": _delta(audio_stats, "paused"),
        "leaf_late_steady": _delta(audio_stats, "late"),
        "leaf_skipped_steady": _delta(audio_stats, "skipped"),
        **_playout_moves(audio_stats, "steady", prefix="leaf_"),
        "leaf_audio_loss_pct": _median([a.get("loss_pct", 0.0) for a in audio_stats]),
        "leaf_audio_kbps": _median([a.get("kbps", 0.0) for a in audio_stats]),
        "relay_cpu_pct_with_sound": {k: round(v, 2) for k, v in cpu.items()},
    }


def relay_cpu_without_sound(clip: Path, seconds: float) -> dict[str, float]:
    with bench_session() as s:
        s.start_tracker()
        peers = _chain(s, clip, None, sound=False, play=None)
        time.sleep(WARMUP_S)
        meter = CpuMeter({n: peers[n].proc.pid for n in ("r1", "r2")}).start()
        time.sleep(seconds)
        return {k: round(v, 2) for k, v in meter.stop().items()}


def forwarding_cost_us(children: int, packets: int = 5000) -> float:
    """In-process: AudioStation.received for one packet to ``children`` queues."""
    import numpy as np

    from peer.node.audio.config import AudioConfig
    from peer.node.audio.opus import OpusEncoder
    from peer.node.audio.station import AudioStation
    from peer.node.audio.tone import ToneSource
    from protocol import AudioFrame

    class Queue:
        def __init__(self) -> None:
            self.n = 0

        def send_audio(self, data: bytes) -> bool:
            self.n += 1
            return True

    station = AudioStation(AudioConfig(), window_s=5.0, root_offset=lambda: 0.0,
                           on_bad_packet=lambda why: None, on_warning=lambda text: None)
    encoder, tone = OpusEncoder(), ToneSource(30.0)
    payloads = [encoder.encode(tone.read()) for _ in range(50)]
    sinks = [Queue() for _ in range(children)]
    now = time.time()
    frames = [AudioFrame(1, i, now + i * 0.02, payloads[i % 50]) for i in range(packets)]
    start = time.perf_counter()
    for frame in frames:
        station.received(frame, sinks)
    elapsed = time.perf_counter() - start
    assert all(s.n == packets for s in sinks) and np.isfinite(elapsed)
    return elapsed / packets * 1e6


def playout_cost_us(packets: int = 3000) -> float:
    """In-process: one packet through the jitter buffer and the Opus decoder (what a
    playing viewer spends per 20 ms on sound, device callback excluded)."""
    from peer.node.audio.jitter import AudioPacket
    from peer.node.audio.opus import OpusEncoder
    from peer.node.audio.output import AudioPlayer
    from peer.node.audio.tone import ToneSource

    encoder, tone = OpusEncoder(), ToneSource(30.0)
    payloads = [encoder.encode(tone.read()) for _ in range(50)]
    player = AudioPlayer(0.06)
    t0 = 1000.0
    start = time.perf_counter()
    for seq in range(packets):
        player.push(AudioPacket(1, seq, t0 + seq * 0.02, payloads[seq % 50]),
                    now=t0 + seq * 0.02 + 0.005)
        player.pull(t0 + seq * 0.02 + 0.06)
    elapsed = time.perf_counter() - start
    assert player.jitter.counters.played == packets
    return elapsed / packets * 1e6


@contextlib.contextmanager
def _cpu_burners(count: int) -> Iterator[None]:
    """``count`` processes spinning on the CPU (at this process's niceness): a loaded
    machine, so that the device's own stalls under load show in the figures. Each is
    ended by its pid."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def overload(workdir: Path, seconds: float, play: str | None, burn: int = 0
             ) -> dict[str, Any] | None:
    from tests.support.netns import Lan, cap_upload, netns_unavailable

    reason = netns_unavailable()
    if reason is not None:
        return {"skipped": reason}
    # A 720p clip: its H.264 (~1 Mbit/s here) is what a slow uplink struggles with.
    clip = workdir / f"overload-{seconds:g}.mkv"
    if not clip.exists():  # shared by the runs
        write_sync_clip(str(clip), seconds + 30, fps=FPS, width=OVERLOAD_SIZE[0],
                        height=OVERLOAD_SIZE[1], noise=OVERLOAD_NOISE)
    with Lan(4) as lan, bench_session() as s:
        hosts = dict(zip(("tracker", "streamer", "r1", "r2"), lan.hosts, strict=True))
        ns = {name: ["ip", "netns", "exec", h.netns] for name, h in hosts.items()}
        port = s.start_tracker(host=hosts["tracker"].address, prefix=ns["tracker"])
        tracker = f"{hosts['tracker'].address}:{port}"
        # The leaf shares r2's host: the capped link is r1 -> r2 (r1's upload), and r2
        # records what came through it. (Four hosts keep the Lan small.)
        prefix = {"streamer": ns["streamer"], "r1": ns["r1"], "r2": ns["r2"],
                  "leaf": ns["r2"]}
        listen = {n: f"{hosts[n if n != 'leaf' else 'r2'].address}:0" for n in prefix}
        peers = _chain(s, clip, None, sound=True, play=play, prefix=prefix, listen=listen,
                       tracker=tracker, r2_play=True, layer=OVERLOAD_SIZE[1])
        leaf = peers["r2"]
        time.sleep(WARMUP_S)
        t0 = time.time()
        time.sleep(5.0)
        before = stats_between(leaf, t0, time.time())
        video_kbps = _median([(e["video_bytes_in"] - p["video_bytes_in"]) * 8 / 1000
                              / (e["t"] - p["t"]) for p, e in itertools.pairwise(before)])
        require(video_kbps is not None and video_kbps > 0, "no video before the cap", s,
                [leaf])
        assert video_kbps is not None
        # Below the video (60 % of it), well above the sound.
        cap = int(video_kbps * 0.6)
        require(cap >= 2 * SOUND_WIRE_KBIT, f"the video ({video_kbps:.0f} kbit/s) is too "
                "thin to overload a link that still carries the sound", s, [leaf])
        cap_upload(hosts["r1"], cap)
        with _cpu_burners(burn):
            time.sleep(OVERLOAD_SETTLE_S)
            t1 = time.time()
            time.sleep(seconds)
            t2 = time.time()
        window = stats_between(leaf, t1, t2)
        audio = [e.get("audio") or {} for e in window]
        return {
            "video_kbps_before": round(video_kbps, 1),
            "cap_kbit": cap,
            "fps_before": _median([e["fps"] for e in before]),
            "fps_capped": _median([e["fps"] for e in window]),
            "video_loss_pct_capped": _median([e["loss_pct"] for e in window]),
            "audio_kbps_capped": _median([a.get("kbps", 0.0) for a in audio]),
            "audio_loss_pct_capped": _median([a.get("loss_pct", 0.0) for a in audio]),
            "audio_lost_capped": _delta(audio, "lost"),
            "audio_transit_ms_capped": _median([a["transit_ms"] for a in audio
                                                if a.get("transit_ms") is not None]),
            "audio_delay_ms_capped": _median([a["delay_ms"] for a in audio
                                              if a.get("delay_ms") is not None]),
            "device_lead_ms_capped": _median([a["device_lead_ms"] for a in audio
                                              if a.get("device_lead_ms") is not None]),
            "audio_transit_ms_capped_max": max((a["transit_ms"] for a in audio
                                                if a.get("transit_ms") is not None),
                                               default=None),
            "audio_concealed_capped": _delta(audio, "concealed"),
            "audio_paused_capped": _delta(audio, "paused"),
            "audio_silent_blocks_capped": (_delta(audio, "concealed") or 0)
            + (_delta(audio, "paused") or 0),
            "audio_late_capped": _delta(audio, "late"),
            "audio_skipped_capped": _delta(audio, "skipped"),
            **_playout_moves(audio, "capped"),
            "audio_blocks_capped": round(seconds / 0.02),
            "seconds": seconds,
            "audio_dropped_at_r1": _delta([e.get("audio") or {} for e in
                                           stats_between(peers["r1"], t1, t2)], "dropped"),
            "cpu_burners": burn,
        }


# How the playout moved its delay (stretching) and what the output device did on its
# own, counted apart: a device underrun is silence the device made, not the player.
PLAYOUT_MOVES = ("stretched", "compressed")
DEVICE_TROUBLE = ("device_underruns", "device_stalls", "device_jumps_ahead",
                  "device_jumps_back")


def _playout_moves(audio_stats: list[dict[str, Any]], window: str, prefix: str = ""
                   ) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for key in PLAYOUT_MOVES:
        out[f"{prefix}audio_{key}_{window}"] = _delta(audio_stats, key)
    for key in DEVICE_TROUBLE:
        out[f"{prefix}{key}_{window}"] = _delta(audio_stats, key)
    return out


def _delta(audio_stats: list[dict[str, Any]], key: str) -> int | None:
    values = [a[key] for a in audio_stats if key in a]
    return values[-1] - values[0] if len(values) >= 2 else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 s windows")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady window")
    parser.add_argument("--keep", metavar="DIR", help="keep the clip and recording here")
    parser.add_argument("--phases", default="sync,cpu,overload",
                        help="comma-separated subset of sync,cpu,overload")
    parser.add_argument("--overload-seconds", type=float, default=20.0,
                        help="overloaded window per run (default 20 s)")
    parser.add_argument("--overload-runs", type=int, default=1,
                        help="overload runs (each on a fresh tree)")
    parser.add_argument("--burn", type=int, default=0, metavar="N",
                        help="N processes spinning on the CPU through the overloaded "
                        "window (a loaded machine; default none)")
    args = parser.parse_args()
    sigterm_as_exit()
    seconds = 20.0 if args.quick else args.seconds
    result: dict[str, Any] = {"machine": machine(), "seconds": seconds,
                              "clip": {"size": SIZE, "fps": FPS, "audio": "aac"}}
    with tempfile.TemporaryDirectory(prefix="treecast-avsync-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        clip = workdir / "sync.mkv"
        from tests.support.pulse import PulseUnavailable, null_sink

        phases = set(args.phases.split(","))
        if phases & {"sync", "cpu"}:
            write_sync_clip(str(clip), seconds + 40, fps=FPS, width=SIZE[0],
                            height=SIZE[1])
        if "sync" in phases:
            try:
                with null_sink(workdir) as device:
                    result["sync"] = sync_and_kill(clip, workdir, seconds, device)
            except PulseUnavailable as exc:
                print(f"no playout figures: {exc}")
                result["sync"] = sync_and_kill(clip, workdir, seconds, None)
        if "cpu" in phases:
            result["relay_cpu_pct_without_sound"] = relay_cpu_without_sound(
                clip, min(seconds, 20.0))
            result["forwarding_us_per_packet"] = {
                str(n): round(forwarding_cost_us(n), 2) for n in (1, 3)}
            result["playout_us_per_packet"] = round(playout_cost_us(), 2)
        if "overload" in phases:
            runs = []
            for _ in range(max(1, args.overload_runs)):
                try:
                    with null_sink(workdir) as device:
                        runs.append(overload(workdir, args.overload_seconds, device,
                                             args.burn))
                except PulseUnavailable:
                    runs.append(overload(workdir, args.overload_seconds, None, args.burn))
                print("overload:", runs[-1])
            result["overload"] = runs[0]
            if len(runs) > 1:
                result["overload_runs"] = runs
    report(result)
    # An overload-only run does not replace the committed lip-sync figures.
    save("av_sync_overload" if phases == {"overload"} else "av_sync", result)


def report(result: dict[str, Any]) -> None:
    sync = result.get("sync")
    if sync is None:
        print("overload:", result.get("overload"))
        return
    print(table(["pairs", "median |off| ms", "max |off| ms", "max gap ms", "gaps>60",
                 "kill: sound back ms", "kill: picture back ms", "kill: hole ms"],
                [[sync["pairs"], sync["offset_median_abs_ms"], sync["offset_max_abs_ms"],
                  sync["max_gap_steady_ms"], sync["gaps_over_60ms_steady"],
                  sync["kill_sound_resumed_ms"], sync["kill_video_resumed_ms"],
                  sync["kill_gap_recorded_ms"]]],
                ["d", ".1f", ".1f", ".1f", "d", ".1f", ".1f", ".1f"]))
    print(table(["audio delay ms", "audio transit ms", "A/V offset ms", "video latency ms",
                 "concealed", "paused", "late", "stretched", "compressed",
                 "device underruns"],
                [[sync["leaf_audio_delay_ms"], sync["leaf_audio_transit_ms"],
                  sync["leaf_av_offset_ms"], sync["leaf_video_latency_ms"],
                  sync["leaf_concealed_steady"], sync["leaf_paused_steady"],
                  sync["leaf_late_steady"], sync["leaf_audio_stretched_steady"],
                  sync["leaf_audio_compressed_steady"], sync["leaf_device_underruns_steady"]]],
                [".1f", ".1f", ".1f", ".1f", "d", "d", "d", "d", "d", "d"]))
    with_sound = sync["relay_cpu_pct_with_sound"]
    without = result.get("relay_cpu_pct_without_sound", {})
    print(table(["relay", "CPU % with sound", "CPU % without"],
                [[n, with_sound.get(n), without.get(n)] for n in ("r1", "r2")],
                ["s", ".2f", ".2f"]))
    print("forwarding, us per packet (children: us):", result.get("forwarding_us_per_packet"))
    print("jitter buffer + Opus decode, us per packet:", result.get("playout_us_per_packet"))
    if result.get("overload"):
        print("overload:", result["overload"])


if __name__ == "__main__":
    main()
