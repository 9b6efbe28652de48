"""The layering rules, enforced: each package imports with what it must not use blocked.

protocol/ is sans-IO (no sockets, asyncio, Qt, OpenCV); the tracker needs no media or
Qt and nothing of the peer but its LAN package; peer/lan/ (shared by tracker and peer)
needs neither the node nor the GUI; the node never imports Qt. Each check runs in a
fresh interpreter.
"""

from __future__ import annotations

import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    path = ROOT / package.replace(".", "/")
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules([str(path)])]


@pytest.mark.parametrize(("package", "blocked"), [
    ("protocol", ["socket", "asyncio", "threading", "PyQt6", "cv2", "numpy", "zeroconf"]),
    ("tracker", ["PyQt6", "cv2", "numpy", "peer.node", "peer.gui"]),
    ("peer.lan", ["PyQt6", "cv2", "numpy", "peer.node", "peer.gui"]),
    # The harness benchmarks import: no pytest (benchmarks do not need it), no bench.
    ("tests.support", ["pytest", "bench", "PyQt6"]),
    ("peer.trust", ["PyQt6", "cv2", "numpy", "peer.node", "peer.gui"]),
    ("peer.node", ["PyQt6"]),
    # The tree protocol is sans-IO: no sockets, event loop, threads or clock.
    ("peer.node.tree", ["socket", "asyncio", "threading", "time", "selectors", "PyQt6",
                        "cv2", "numpy", "zeroconf"]),
])
def test_package_imports_without_what_it_must_not_use(package: str, blocked: list[str]) -> None:
    modules = [m for m in _modules(package) if not m.endswith("__main__")]
    code = "\n".join([
        "import sys",
        *(f"sys.modules[{name!r}] = None" for name in blocked),
        *(f"import {module}" for module in modules),
    ])
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_headless_peer_starts_without_media_libraries() -> None:
    """``treecast-peer`` imports OpenCV, numpy and PyAV only when it streams, shows,
    records, plays or transcodes (their import is most of a viewer's start-up CPU:
    docs/PERFORMANCE.md, section 5); tests/test_headless_imports.py runs such viewers."""
    code = "\n".join([
        "import sys",
        *(f"sys.modules[{name!r}] = None" for name in ("cv2", "numpy", "av", "PyQt6")),
        "import peer.node.cli",
    ])
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_only_one_module_imports_private_zeroconf_modules() -> None:
    allowed = {ROOT / "peer" / "lan" / "zeroconf_internals.py"}
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("protocol", "tracker", "peer", "bench", "tests")
        for path in (ROOT / package).rglob("*.py")
        if path not in allowed and re.search(r"^\s*(from|import) zeroconf\._",
                                             path.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []



def test_tests_and_benchmarks_share_helpers_in_one_direction() -> None:
    """bench/ imports the shared harness from tests.support; the harness and the tests
    never import bench. Only tests of the benchmarks themselves (test_bench_*.py) may."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if not path.name.startswith("test_bench_")
        and re.search(r"^\s*(from|import) bench\b", path.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []
