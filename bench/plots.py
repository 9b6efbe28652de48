"""Plots for docs/PERFORMANCE.md from bench/results/*.json (matplotlib, no display).

* docs/bench-latency-depth.png: latency p50/p95 per depth, forwarding untouched and with
  one transcoding hop (bench_latency).
* docs/bench-tree-vs-star.png: the streamer's upload vs N, tree and star
  (bench_tree_vs_star).
* docs/bench-capped.png: latency p95 vs N on upload-capped hosts (bench_capped).

Run: ``python -m bench.plots`` (``bench.run_all`` calls it after a full run).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.common import RESULTS_DIR

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def _note(data: dict[str, Any]) -> str:
    return f"{data.get('date', '')}, {data.get('cpus')} CPUs" + (
        " (quick run)" if data.get("quick") else "")


def latency_per_depth(out: Path) -> Path | None:
    data = _load("latency")
    if not data or not data.get("chains"):
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {"untouched": "tab:blue", "transcode": "tab:orange", "quick": "tab:green"}
    for name, chain in data["chains"].items():
        rows = chain["rows"]
        depths = [r["depth"] for r in rows]
        color = styles.get(name, "tab:gray")
        layers = "-".join(str(x) for x in chain["layers"])
        ax.plot(depths, [r["p50_ms"] for r in rows], "o-", color=color,
                label=f"{name} ({layers}) p50")
        ax.plot(depths, [r["p95_ms"] for r in rows], "s--", color=color, alpha=0.6,
                label=f"{name} p95")
    g2g = data.get("glass_to_glass")
    if g2g:
        ax.errorbar([g2g["depth"] + 0.08], [g2g["decoded_p50_ms"]],
                    yerr=[[0], [g2g["decoded_p95_ms"] - g2g["decoded_p50_ms"]]],
                    fmt="D", color="tab:red", capsize=4,
                    label="glass to glass, 720 (decoded) p50..p95")
    ax.set_xlabel("depth (hops from the streamer)")
    ax.set_ylabel("capture to receive latency (ms)")
    ax.set_title(f"Latency per depth, {data['source']} test pattern at {data['fps']:g} fps, "
                 "loopback", fontsize=10)
    ax.set_xticks(sorted({r["depth"] for c in data["chains"].values() for r in c["rows"]}))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    fig.text(0.99, 0.01, _note(data), ha="right", fontsize=7, color="gray")
    fig.tight_layout()
    path = out / "bench-latency-depth.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tree_vs_star(out: Path) -> Path | None:
    data = _load("tree_vs_star")
    if not data or not data.get("runs"):
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for topology, color in (("tree", "tab:green"), ("star", "tab:red")):
        runs = sorted((r for r in data["runs"] if r["topology"] == topology),
                      key=lambda r: r["n"])
        ns = [r["n"] for r in runs]
        ax.plot(ns, [r["streamer_kbps_out"] / 1000 for r in runs], "o-", color=color,
                label=f"{topology}: streamer upload")
        for r in runs:
            ax.annotate(f"{r['streamer_kbps_out'] / 1000:.0f}", (r["n"],
                        r["streamer_kbps_out"] / 1000), textcoords="offset points",
                        xytext=(4, 4), fontsize=8, color=color)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks([r["n"] for r in data["runs"]])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("viewers N")
    ax.set_ylabel("streamer upload (Mbit/s)")
    ax.set_title(f"Tree vs star: streamer upload, {data['source']} at {data['fps']:g} fps, "
                 "loopback", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.text(0.99, 0.01, _note(data), ha="right", fontsize=7, color="gray")
    fig.tight_layout()
    path = out / "bench-tree-vs-star.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def capped(out: Path) -> Path | None:
    data = _load("capped")
    if not data or not data.get("rows"):
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    for topology, color in (("tree", "tab:green"), ("star", "tab:red")):
        rows = sorted((r for r in data["rows"] if r["topology"] == topology),
                      key=lambda r: r["n"])
        ns = [r["n"] for r in rows]
        ax1.plot(ns, [r["true_p95_ms_median"] for r in rows], "o-", color=color,
                 label=f"{topology} p95 (median viewer)")
        ax1.plot(ns, [r["true_p95_ms_max"] for r in rows], "s--", color=color, alpha=0.5,
                 label=f"{topology} p95 (worst viewer)")
        ax2.plot(ns, [100 * (r.get("received_per_produced") or 0) for r in rows], "o-",
                 color=color, label=topology)
    cap = data["cap_kbit"] / data["stream_kbit"]
    for ax in (ax1, ax2):
        ax.axvline(cap, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("viewers N")
        ax.grid(alpha=0.3, which="both")
    ax1.set_yscale("log")
    ax1.set_ylabel("latency p95 (ms)")
    ax1.legend(fontsize=7)
    ax2.set_ylabel("frames received in the window / produced (%)")
    ax2.set_ylim(0, 105)
    ax2.legend(fontsize=8)
    fig.suptitle(f"Upload capped at {cap:.0f}x the stream ({data['cap_kbit']} kbit/s) on every "
                 "host, streamer included", fontsize=10)
    fig.text(0.99, 0.01, _note(data), ha="right", fontsize=7, color="gray")
    fig.tight_layout()
    path = out / "bench-capped.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    out = DOCS
    out.mkdir(parents=True, exist_ok=True)
    made = [p for p in (latency_per_depth(out), tree_vs_star(out), capped(out)) if p]
    for path in made:
        print(f"wrote {path}")
    return made


if __name__ == "__main__":
    main(sys.argv[1:])
