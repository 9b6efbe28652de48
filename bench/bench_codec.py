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

Run: ``python -m bench.bench_codec [--quick] [--runs N]``. Writes bench/results/codec.json.
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

from peer.node import codec
from peer.node.codec import (
    JPEG_QUALITY,
    decode_jpeg,
    encode_jpeg,
    encode_layers,
    resize,
    transcode_down,
)
from peer.node.layers import layer_size
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


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few runs (smoke test)")
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    args = parser.parse_args(argv)
    runs = args.runs or (5 if args.quick else 40)

    frames = {
        "pattern": pattern_frame(WIDTH, HEIGHT),
        "natural": natural_frame(WIDTH, HEIGHT),
    }
    rows: list[dict[str, Any]] = []
    extras: dict[str, float] = {}
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

    result = {
        "benchmark": "codec",
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
