"""Automatic quality: a viewer on ``--resolution auto`` whose path gets capped.

Three network namespaces: tracker, streamer, viewer. The streamer plays a camera-like
720p30 clip (bench/clips.py; H.264 at its 720p cap, ~2.2 Mbit/s) to one viewer that
watches with ``--resolution auto``. The streamer's upload is the viewer's incoming
path: after a free phase it is capped with tc tbf at ``--cap-kbit`` (1500), later the
cap is lifted. From the viewer's stats (``layer``: what it receives, once a second)
and its per-frame arrivals:

* settle_s: from the cap to the last layer change before the layer holds (lower
  than 720) for the rest of the capped phase;
* loss_after_settle: frames lost (sequence gaps) after settling, over frames produced;
* back_s: from lifting the cap to receiving 720 again.

Targets (issue 11): settles on a lower layer within 3 s, < 1 % loss after settling,
back to 720p within 10 s of the cap being lifted.

Needs root and iproute2 (``ip netns``, ``tc``). Run: ``python -m bench.bench_auto``.
Writes bench/results/auto.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.clips import write_clip_file
from bench.common import (
    bench_session,
    machine,
    require,
    save,
    sigterm_as_exit,
    stats_between,
    streaming,
    table,
)
from tests.support.procs import wait_for


def ns(host: Any) -> list[str]:
    return ["ip", "netns", "exec", host.netns]


def layer_timeline(viewer: Any, t0: float, t1: float) -> list[tuple[float, int]]:
    return [(e["t"], e.get("layer")) for e in stats_between(viewer, t0, t1)
            if e.get("layer") is not None]


def run(cap_kbit: int, free_s: float, capped_s: float, after_s: float) -> dict[str, Any]:
    from tests.support.netns import Lan, cap_upload, uncap_upload

    with tempfile.TemporaryDirectory(prefix="treecast-auto-") as tmp:
        clip = write_clip_file(os.path.join(tmp, "clip.avi"), 1280, 720, 10.0)
        with Lan(3) as lan, bench_session() as s:
            tracker_host, streamer_host, viewer_host = lan.hosts
            port = s.start_tracker(host=tracker_host.address, prefix=ns(tracker_host))
            tracker = f"{tracker_host.address}:{port}"
            streamer = s.start_peer("streamer", "--stream", clip, "--loop", "--max-children",
                                    "1", tracker=tracker, listen=f"{streamer_host.address}:0",
                                    prefix=ns(streamer_host))
            require(wait_for(lambda: streamer.last("stream_started"), 30),
                    "streamer did not start", s, [streamer])
            viewer = s.start_peer("viewer", "--watch", "--resolution", "auto",
                                  "--max-children", "0", tracker=tracker,
                                  listen=f"{viewer_host.address}:0", prefix=ns(viewer_host),
                                  module="bench.probe")
            require(wait_for(lambda: streaming(viewer), 30), "viewer does not stream", s,
                    [viewer])
            time.sleep(free_s)
            capped_at = time.time()
            cap_upload(streamer_host, cap_kbit)
            time.sleep(capped_s)
            lifted_at = time.time()
            uncap_upload(streamer_host)
            time.sleep(after_s)
            end = time.time()
            time.sleep(1.2)
            before = layer_timeline(viewer, capped_at - free_s, capped_at)
            during = layer_timeline(viewer, capped_at, lifted_at)
            after = layer_timeline(viewer, lifted_at, end)
    settled_at = None
    if during and during[-1][1] < 720:
        final = during[-1][1]
        settled_at = during[-1][0]
        for t, layer in reversed(during):
            if layer != final:
                break
            settled_at = t
    loss = None
    if settled_at is not None:
        window = stats_between(viewer, settled_at, lifted_at)
        if len(window) >= 2:
            lost = window[-1]["lost"] - window[0]["lost"]
            frames = window[-1]["frames"] - window[0]["frames"]
            loss = lost / (lost + frames) if lost + frames else None
    back_at = next((t for t, layer in after if layer == 720), None)
    return {
        "cap_kbit": cap_kbit, "free_s": free_s, "capped_s": capped_s, "after_s": after_s,
        "layer_before": before[-1][1] if before else None,
        "timeline": [(round(t - capped_at, 2), layer) for t, layer in before + during + after],
        "settled_layer": during[-1][1] if during else None,
        "settle_s": None if settled_at is None else settled_at - capped_at,
        "loss_after_settle": loss,
        "back_s": None if back_at is None else back_at - lifted_at,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cap-kbit", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sigterm_as_exit()
    result: dict[str, Any] = {"quick": args.quick, **machine()}
    from tests.support.netns import netns_unavailable

    reason = netns_unavailable()
    if reason is not None:
        print(f"automatic quality: skipped: {reason}")
        result["skipped"] = reason
        save("auto", result, args.out)
        return result
    capped = 10.0 if args.quick else 20.0
    result.update(run(args.cap_kbit, 6.0, capped, 14.0))
    loss = result["loss_after_settle"]
    text = table(["cap kbit/s", "before", "settled on", "settle s", "loss after %", "back s"], [
        [result["cap_kbit"], result["layer_before"], result["settled_layer"],
         result["settle_s"], None if loss is None else 100 * loss, result["back_s"]]],
        ["d", "", "", ".1f", ".2f", ".1f"])
    result["table"] = text
    print("\nautomatic quality: one auto viewer, its incoming path capped then freed")
    print(text)
    print("layer timeline (s from the cap, layer):", result["timeline"])
    save("auto", result, args.out)
    return result


if __name__ == "__main__":
    main()
