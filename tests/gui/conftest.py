"""GUI test fixtures: fake node, fake LAN/tracker answers, isolated settings, leak check."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Tests import the fakes next to them as a plain module.
sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeLan, FakeNodeFactory, FakeTracker

# Threads the session keeps on purpose (pytest-timeout, Qt's own are not Python threads).
_IGNORED_PREFIXES = ("pytest_timeout",)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts must be gone shortly after it ends."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    while True:
        leaked = [
            t for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(_IGNORED_PREFIXES)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)  # polling for threads to exit, not timing the test
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def settings(tmp_path: Path):
    """QSettings in a temp ini file, so tests never touch the user's settings."""
    from PyQt6.QtCore import QSettings

    return QSettings(str(tmp_path / "treecast.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def video_file(tmp_path: Path) -> str:
    """A real two-second 160x90 video (MJPG avi: every OpenCV build writes it)."""
    import cv2
    import numpy as np

    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (160, 90))
    assert writer.isOpened()
    for index in range(20):
        image = np.full((90, 160, 3), index * 10, np.uint8)
        writer.write(image)
    writer.release()
    return path


@pytest.fixture
def factory() -> FakeNodeFactory:
    return FakeNodeFactory()


@pytest.fixture
def tracker() -> FakeTracker:
    return FakeTracker()


@pytest.fixture
def lan(qapp) -> FakeLan:
    return FakeLan()


@pytest.fixture
def themed(qapp):
    from peer.gui import theme

    theme.apply(qapp)
    return qapp


@pytest.fixture
def window(qtbot, themed, factory, settings, tracker, lan):
    """The main window on the fake node; closed (and its node stopped) afterwards."""
    from peer.gui.app import MainWindow
    from peer.gui.bridge import RoomProbe

    win = MainWindow(
        node_factory=factory, settings=settings,
        probe=RoomProbe(query=tracker, lister=tracker.list_rooms), lan=lan,
    )
    # Not qtbot.addWidget: pytest-qt would delete the window before its node stopped.
    win.start_screen.name_edit.setText("Dana")
    win.show()
    yield win
    if win.isVisible():
        win.close()
        qtbot.waitUntil(lambda: not win.isVisible() and win.bridge is None, timeout=15000)
    win.start_screen.shutdown()
    win.deleteLater()
