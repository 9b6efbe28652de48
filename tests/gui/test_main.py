"""``treecast`` without a display says what to do instead of letting Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from peer.gui.__main__ import NO_DISPLAY_MESSAGE, has_display, main


@pytest.mark.parametrize(("env", "platform", "expected"), [
    ({}, "linux", False),
    ({"DISPLAY": ":0"}, "linux", True),
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
    ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
    ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
    ({"DISPLAY": ""}, "linux", False),
    ({}, "win32", True),
    ({}, "darwin", True),
])
def test_has_display(env: dict[str, str], platform: str, expected: bool) -> None:
    assert has_display(env, platform) is expected


def test_main_without_display_prints_hint_and_exits_1(monkeypatch, capsys) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main([]) == 1
    assert capsys.readouterr().err.strip() == NO_DISPLAY_MESSAGE


def test_treecast_process_without_display_never_aborts() -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "peer.gui"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == NO_DISPLAY_MESSAGE
