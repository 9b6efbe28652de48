"""Codec floor per layer: what one frame costs to resize, encode, decode and transcode.

Two 1080p sources: the built-in test pattern (flat colours, compresses well) and a
natural-ish frame (multi-scale texture plus sensor noise, compresses like a camera).
For every layer the table gives the median over N runs of:

* resize_ms     1080p raw frame -> layer size (INTER_AREA)
* encode_ms     JPEG encode of the layer-size frame (the streamer, per layer)
* kb            JPEG size of that layer
* decode_ms     full decode of that layer's JPEG (a viewer displaying it)
* rdecode_ms    decode of the 1080p JPEG at the reduced scale transcode_down picks
                for this layer (1/2, 1/4, 1/8), "-" when none applies
* fdecode_ms    full decode of the 1080p JPEG (what rdecode_ms saves against)
* transcode_ms  transcode_down(1080p JPEG -> this layer): decode once + resize + encode
* naive_ms      the same without reduced decode: full decode + resize + encode

Then the codec comparison (``compare`` in the JSON): a camera-like clip made here
(bench/clips.py: panning texture, moving objects, fresh sensor noise every frame) at
720p and 1080p, every layer coded with MJPEG q80 and with H.264 (the node's encoder:
libx264 superfast/zerolatency at the layer's rate cap, keyframe backstop only, the
picture converted to 4:2:0 with averaged chroma as the node does):

* mbps          bits per second at the clip's frame rate (keyframe included)
* psnr_db       PSNR of the decoded picture against the layer-size camera frame
* clean_db      PSNR against the same frame without its sensor noise (the scene)
* enc_ms/dec_ms median time per frame to encode / decode (one core)
* key_kb        size of the first (key)frame

Rows ``h264@1/8`` give H.264 exactly 1/8 of MJPEG's bits (the target's own terms);
rows ``h264-ultrafast`` use the preset the node used before ``superfast`` (what the
slower preset costs per frame and gains in PSNR, measured in the same run).

Run: ``python -m bench.bench_codec [--quick] [--runs N] [--compare-only]``.
Writes bench/results/codec.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bench.clips import NOISE_SIGMA, camera_clip_pairs
from peer.node import codec
from peer.node.codec import (
    JPEG_QUALITY,
    decode_jpeg,
    encode_jpeg,
    encode_layers,
    resize,
    transcode_down,
)
from peer.node.codecs.h264 import PRESET, H264Decoder, H264Encoder, layer_bitrate
from peer.node.layers import available_layers, layer_size
from peer.node.media import PatternFrameSource
from protocol.limits import LAYERS

Image = npt.NDArray[np.uint8]
RESULTS = Path(__file__).resolve().parent / "results" / "codec.json"
WIDTH, HEIGHT = 1920, 1080


def natural_frame(width: int, height: int, seed: int = 7) -> Image:
    """Texture at several scales plus sensor noise: JPEG finds it as hard as a camera."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.float32)
    for scale, weight in ((64, 90.0), (16, 45.0), (4, 25.0)):
        small = rng.normal(0, 1, (height // scale + 1, width // scale + 1, 3)).astype(np.float32)
        image += weight * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    image += 128 + rng.normal(0, 4, image.shape).astype(np.float32)  # sensor noise
    return np.clip(image, 0, 255).astype(np.uint8)


def pattern_frame(width: int, height: int) -> Image:
    return PatternFrameSource(width, height, 30.0).read()


def median_ms(func: Callable[[], object], runs: int) -> float:
    func()  # warm up (allocations, lazy init)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def reduced_mode(layer: int) -> tuple[int, int] | None:
    """(factor, imdecode flag) transcode_down uses for this single layer, or None."""
    w, h = layer_size(layer, WIDTH, HEIGHT)
    for factor, flag in codec._REDUCED_MODES:
        if w * factor <= WIDTH and h * factor <= HEIGHT:
            return factor, flag
    return None


def naive_transcode(jpeg: bytes, width: int, height: int) -> bytes:
    """What a relay would do without reduced decoding."""
    return encode_jpeg(resize(decode_jpeg(jpeg), width, height))


def bench_frame(name: str, image: Image, runs: int) -> list[dict[str, Any]]:
    full_jpeg = encode_jpeg(image)
    full_decode = median_ms(lambda: decode_jpeg(full_jpeg), runs)
    buffer = np.frombuffer(full_jpeg, np.uint8)
    rows = []
    for layer in LAYERS:
        w, h = layer_size(layer, WIDTH, HEIGHT)
        scaled = resize(image, w, h)
        jpeg = encode_jpeg(scaled)
        row: dict[str, Any] = {
            "frame": name,
            "layer": layer,
            "width": w,
            "height": h,
            "resize_ms": median_ms(partial(resize, image, w, h), runs) if layer < HEIGHT else 0.0,
            "encode_ms": median_ms(partial(encode_jpeg, scaled), runs),
            "kb": len(jpeg) / 1024,
            "decode_ms": median_ms(partial(decode_jpeg, jpeg), runs),
            "fdecode_ms": full_decode,
            "rdecode_ms": None,
            "reduce": 1,
            "transcode_ms": None,
            "naive_ms": None,
        }
        mode = reduced_mode(layer)
        if mode is not None:
            factor, flag = mode
            row["reduce"] = factor
            row["rdecode_ms"] = median_ms(partial(cv2.imdecode, buffer, flag), runs)
        if layer < HEIGHT:
            row["transcode_ms"] = median_ms(
                partial(transcode_down, full_jpeg, WIDTH, HEIGHT, [layer]), runs
            )
            row["naive_ms"] = median_ms(partial(naive_transcode, full_jpeg, w, h), runs)
        rows.append(row)
    return rows


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        "frame",
        "layer",
        "size",
        "resize_ms",
        "encode_ms",
        "kb",
        "decode_ms",
        "rdecode_ms",
        "fdecode_ms",
        "transcode_ms",
        "naive_ms",
    ]
    print(" ".join(f"{c:>12}" for c in columns))
    for row in rows:
        reduce = f"{fmt(row['rdecode_ms'])} /{row['reduce']}" if row["rdecode_ms"] else "-"
        cells = [
            row["frame"],
            str(row["layer"]),
            f"{row['width']}x{row['height']}",
            fmt(row["resize_ms"]),
            fmt(row["encode_ms"]),
            f"{row['kb']:.1f}",
            fmt(row["decode_ms"]),
            reduce,
            fmt(row["fdecode_ms"]),
            fmt(row["transcode_ms"]),
            fmt(row["naive_ms"]),
        ]
        print(" ".join(f"{c:>12}" for c in cells))


def _mse(a: Image, b: Image) -> float:
    diff = a.astype(np.float32) - b.astype(np.float32)
    return float(np.mean(diff * diff))


def _psnr(mse: float) -> float:
    return 99.0 if mse <= 0 else float(10 * np.log10(255.0**2 / mse))


def compare_codecs(width: int, height: int, frames: int, fps: float,
                   budgets: dict[int, int] | None = None,
                   preset: str | None = None) -> list[dict[str, Any]]:
    """MJPEG q80 against H.264 for every layer of a camera-like clip (one pass).

    ``budgets`` replaces the layer caps with these H.264 rates (bits/s), and the rows
    are then named ``h264@1/8`` (the rate the issue's target allows); ``preset``
    replaces the node's libx264 preset (rows named ``h264-<preset>``).
    """
    layers = available_layers(height)
    sizes = {layer: layer_size(layer, width, height) for layer in layers}
    rates = budgets or {layer: layer_bitrate(layer, fps) for layer in layers}
    h264_name = "h264@1/8" if budgets else f"h264-{preset}" if preset else "h264"
    encoders = {layer: H264Encoder(w, h, fps, rates[layer], preset=preset or PRESET)
                for layer, (w, h) in sizes.items()}
    decoders = {layer: H264Decoder() for layer in layers}
    acc: dict[tuple[str, int], dict[str, list[float]]] = {
        (c, layer): {"bytes": [], "mse": [], "clean": [], "enc": [], "dec": []}
        for c in ("mjpeg", h264_name) for layer in layers}
    for image, clean in camera_clip_pairs(width, height, frames):
        for layer, (w, h) in sizes.items():
            scaled = resize(image, w, h)
            clean_scaled = resize(clean, w, h)
            t0 = time.perf_counter()
            jpeg = encode_jpeg(scaled)
            t1 = time.perf_counter()
            decoded = decode_jpeg(jpeg)
            t2 = time.perf_counter()
            row = acc[("mjpeg", layer)]
            row["bytes"].append(len(jpeg))
            row["mse"].append(_mse(decoded, scaled))
            row["clean"].append(_mse(decoded, clean_scaled))
            row["enc"].append((t1 - t0) * 1000)
            row["dec"].append((t2 - t1) * 1000)
            t0 = time.perf_counter()
            data, _ = encoders[layer].encode(scaled)
            t1 = time.perf_counter()
            picture = decoders[layer].decode(data, w, h)
            t2 = time.perf_counter()
            assert picture is not None
            row = acc[(h264_name, layer)]
            row["bytes"].append(len(data))
            row["mse"].append(_mse(picture.image, scaled))
            row["clean"].append(_mse(picture.image, clean_scaled))
            row["enc"].append((t1 - t0) * 1000)
            row["dec"].append((t2 - t1) * 1000)
    rows = []
    for (name, layer), row in acc.items():
        w, h = sizes[layer]
        rows.append({
            "source": f"{width}x{height}", "codec": name, "layer": layer, "size": f"{w}x{h}",
            "mbps": sum(row["bytes"]) * 8 * fps / len(row["bytes"]) / 1e6,
            "cap_mbps": rates[layer] / 1e6 if name != "mjpeg" else None,
            "psnr_db": _psnr(statistics.fmean(row["mse"])),
            "clean_db": _psnr(statistics.fmean(row["clean"])),
            "enc_ms": statistics.median(row["enc"]),
            "dec_ms": statistics.median(row["dec"]),
            "key_kb": row["bytes"][0] / 1024,
        })
    for layer in layers:
        mjpeg = next(r for r in rows if r["codec"] == "mjpeg" and r["layer"] == layer)
        h264 = next(r for r in rows if r["codec"] == h264_name and r["layer"] == layer)
        h264["bits_vs_mjpeg"] = h264["mbps"] / mjpeg["mbps"]
        h264["psnr_vs_mjpeg_db"] = h264["psnr_db"] - mjpeg["psnr_db"]
        h264["clean_vs_mjpeg_db"] = h264["clean_db"] - mjpeg["clean_db"]
    return rows


def print_compare(rows: list[dict[str, Any]], frames: int, fps: float) -> None:
    print(f"\ncodec comparison: camera-like clip, {frames} frames at {fps:g} fps "
          f"(sensor noise sigma {NOISE_SIGMA:g}; MJPEG q{JPEG_QUALITY} vs H.264 at the layer cap)")
    columns = ["source", "layer", "codec", "mbps", "cap", "psnr_db", "clean_db", "bits_x",
               "dpsnr", "dclean", "enc_ms", "dec_ms", "key_kb"]
    print(" ".join(f"{c:>10}" for c in columns))
    order = {"mjpeg": 0, "h264": 1, "h264@1/8": 2, "h264-ultrafast": 3}
    for r in sorted(rows, key=lambda r: (r["source"], r["layer"], order[r["codec"]])):
        cells = [r["source"], r["layer"], r["codec"], f"{r['mbps']:.2f}",
                 fmt(r["cap_mbps"]), f"{r['psnr_db']:.2f}", f"{r['clean_db']:.2f}",
                 fmt(r.get("bits_vs_mjpeg")), fmt(r.get("psnr_vs_mjpeg_db")),
                 fmt(r.get("clean_vs_mjpeg_db")),
                 f"{r['enc_ms']:.2f}", f"{r['dec_ms']:.2f}", f"{r['key_kb']:.1f}"]
        print(" ".join(f"{c!s:>10}" for c in cells))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few runs (smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames of the camera-like clip per size (default 90, quick 30)")
    parser.add_argument("--compare-only", action="store_true",
                        help="only the codec comparison on the camera-like clip")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 40)

    frames = {
        "pattern": pattern_frame(WIDTH, HEIGHT),
        "natural": natural_frame(WIDTH, HEIGHT),
    }
    rows: list[dict[str, Any]] = []
    extras: dict[str, float] = {}
    if not args.compare_only:
        for name, image in frames.items():
            rows += bench_frame(name, image, runs)
            extras[f"{name}_encode_all_layers_ms"] = median_ms(
                partial(encode_layers, image, LAYERS), runs
            )
        source = PatternFrameSource(WIDTH, HEIGHT, 30.0)
        extras["pattern_1080p_frame_ms"] = median_ms(source.read, runs)

        print(f"codec floor, 1080p source, JPEG quality {JPEG_QUALITY}, median of {runs} runs")
        print_table(rows)
        for key, value in extras.items():
            print(f"{key}: {value:.2f}")

    clip_frames = args.frames or (30 if args.quick else 90)
    clip_fps = 30.0
    compare: list[dict[str, Any]] = []
    for width, height in ((1280, 720), (1920, 1080)):
        clip_rows = compare_codecs(width, height, clip_frames, clip_fps)
        # The target's own terms: H.264 given 1/8 of MJPEG's bits, how close is it?
        budgets = {r["layer"]: round(r["mbps"] * 1e6 / 8)
                   for r in clip_rows if r["codec"] == "mjpeg"}
        eighth = compare_codecs(width, height, clip_frames, clip_fps, budgets)
        # The preset the node used before (what superfast costs in time, gains in dB).
        fastest = compare_codecs(width, height, clip_frames, clip_fps, preset="ultrafast")
        compare += clip_rows + [r for r in eighth + fastest if r["codec"] != "mjpeg"]
    print_compare(compare, clip_frames, clip_fps)

    result = {
        "benchmark": "codec",
        "compare": compare,
        "compare_frames": clip_frames,
        "compare_fps": clip_fps,
        "runs": runs,
        "quick": args.quick,
        "jpeg_quality": JPEG_QUALITY,
        "source": f"{WIDTH}x{HEIGHT}",
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "rows": rows,
        **extras,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
