"""``treecast``: the desktop app.

Checks for a display before Qt is touched: without one, Qt aborts the process with
a platform-plugin error that tells a user nothing. We say what to do instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

NO_DISPLAY_MESSAGE = (
    "treecast: no display found. Use `treecast-peer` for a headless peer "
    "or `make demo` for a local session."
)


def has_display(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt can open a window here.

    An explicit ``QT_QPA_PLATFORM`` of offscreen/xcb/wayland/... is trusted (the
    user asked for it); otherwise X11/Wayland need DISPLAY or WAYLAND_DISPLAY. Windows
    and macOS always have a display.
    """
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin")):
        return True
    if env.get("QT_QPA_PLATFORM", "").strip():
        return True
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit status.

    Args:
        argv: command-line arguments (sys.argv[1:] by default).
    """
    parser = argparse.ArgumentParser(prog="treecast", description="Treecast desktop app")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args, qt_args = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not has_display():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return 1

    # Qt is imported only now: importing it is harmless, but keeping the check above
    # free of Qt makes it impossible for Qt to abort before we can explain.
    from PyQt6.QtWidgets import QApplication

    from peer.gui import theme
    from peer.gui.app import MainWindow

    app = QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName("Treecast")
    app.setApplicationName("Treecast")
    app.setApplicationDisplayName("Treecast")
    theme.apply(app)
    window = MainWindow()
    window.show()
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
