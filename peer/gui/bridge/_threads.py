"""The one thread-hop helper the bridge's objects share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PyQt6.QtCore import Qt


def queued(signal: Any, slot: Callable[..., None]) -> None:
    """Connect so the slot always runs later in the receiver's (GUI) thread.

    Signals emitted on a node, frame or worker thread reach the GUI this way: the
    receiver lives in the GUI thread, so the call is posted to its event loop.
    """
    signal.connect(slot, Qt.ConnectionType.QueuedConnection)
