"""Run every benchmark: ``python -m bench.run_all [--quick] [--only NAME ...]``.

Each benchmark prints its table and writes bench/results/<name>.json; a failing one is
reported and the others still run (exit status 1 if any failed). A full run also
redraws the plots in docs/ (``bench.plots``). Every process a benchmark starts is
ended by it, also on failure, Ctrl-C or SIGTERM.

Full run: under 10 minutes on a 2-core machine; ``--quick`` (shorter windows, fewer
peers and events, smoke-test figures): under 2 minutes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench.common import machine, sigterm_as_exit

BENCHMARKS = [
    ("codec", "bench.bench_codec"),
    ("latency", "bench.bench_latency"),
    ("tree_vs_star", "bench.bench_tree_vs_star"),
    ("capped", "bench.bench_capped"),
    ("scale", "bench.bench_scale"),
    ("repair", "bench.bench_repair"),
    ("overhead", "bench.bench_overhead"),
    ("relay_cpu", "bench.bench_relay_cpu"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the short smoke-test run")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        choices=[name for name, _ in BENCHMARKS])
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    sigterm_as_exit()
    info = machine()
    print(f"treecast benchmarks{' (quick)' if args.quick else ''}: {info['cpus']} CPUs, "
          f"load average {info['loadavg_at_start']}, {info['date']}", flush=True)
    began = time.monotonic()
    outcomes: list[tuple[str, str, float]] = []
    for name, module_name in BENCHMARKS:
        if args.only and name not in args.only:
            continue
        print(f"\n=== {name} ===", flush=True)
        start = time.monotonic()
        try:
            module = importlib.import_module(module_name)
            module.main(["--quick"] if args.quick else [])
            status = "ok"
        except KeyboardInterrupt:
            print(f"\ninterrupted during {name}", file=sys.stderr)
            return 130
        except Exception as exc:
            traceback.print_exc()
            status = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
        outcomes.append((name, status, time.monotonic() - start))
        sys.stdout.flush()
    if not args.quick and not args.no_plots and not args.only:
        from bench import plots

        plots.main([])
    print("\n=== summary ===")
    for name, status, seconds in outcomes:
        print(f"{name:<14} {seconds:6.1f} s  {status}")
    print(f"{'total':<14} {time.monotonic() - began:6.1f} s")
    return 0 if all(status == "ok" for _, status, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
