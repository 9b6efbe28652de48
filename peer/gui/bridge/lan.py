"""The start screen's LAN list: Treecast sessions seen with mDNS, as Qt signals."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from peer.gui.bridge._threads import queued
from peer.node.runner import NodeThread

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LanSessionInfo:
    """A room seen on the local network.

    Attributes:
        room: the room's name.
        streamer: who streams there, or None.
        peers: how many peers advertise it.
        tracker: a tracker found on the LAN for it, or None.
    """

    room: str
    streamer: str | None
    peers: int
    tracker: tuple[str, int] | None


def _session_info(session: Any) -> LanSessionInfo:
    tracker = getattr(session, "tracker", None)
    if tracker is not None:
        try:
            host, port = tracker
            tracker = (str(host), int(port))
        except (TypeError, ValueError):
            tracker = None
    streamer = getattr(session, "streamer", None)
    if streamer is None:
        streamer = getattr(session, "streamer_name", None)
    peers = getattr(session, "peers", 0)
    if not isinstance(peers, int):
        peers = len(peers) if hasattr(peers, "__len__") else 0
    return LanSessionInfo(
        room=str(getattr(session, "room", "?")),
        streamer=streamer,
        peers=peers,
        tracker=tracker,
    )


class LanSessions(QObject):
    """Live list of Treecast sessions on the LAN (mDNS), for the start screen.

    Runs ``peer.lan.browser.LanBrowser`` on its own loop thread. When discovery
    is not available (zeroconf missing, no network) the list simply stays empty and
    ``available`` stays False.

    Signals:
        sessions_changed(list): the current list of LanSessionInfo.
    """

    sessions_changed = pyqtSignal(list)
    _sessions_posted = pyqtSignal(list)

    def __init__(
        self,
        browser_factory: Callable[[Callable[[], None]], Any] | None = None,
        parent: QObject | None = None,
    ) -> None:
        """Args:
        browser_factory: on_change -> browser with async start()/close() and
            sessions(); ``LanBrowser`` by default (tests pass a fake).
        parent: Qt parent.
        """
        super().__init__(parent)
        self._factory = browser_factory
        self._runner: NodeThread | None = None
        self._browser: Any = None
        self.available = False
        queued(self._sessions_posted, self._on_sessions)

    def start(self) -> None:
        """Begin browsing (no-op when running, or when discovery is not available)."""
        if self._runner is not None:
            return
        factory = self._factory
        if factory is None:
            try:
                from peer.lan.browser import LanBrowser
            except ImportError:
                log.info("LAN discovery not available")
                return

            def factory(on_change: Callable[[], None]) -> Any:
                return LanBrowser(on_change=on_change)

        make = factory
        self._runner = NodeThread(name="treecast-lan").start()

        async def open_browser() -> None:
            # Built on the loop thread: zeroconf's async API binds to the running loop.
            self._browser = make(self._changed)
            result = self._browser.start()
            if inspect.isawaitable(result):
                await result
            self.available = True
            self._changed()

        future = self._runner.submit(open_browser())
        future.add_done_callback(self._opened)

    def _opened(self, future: concurrent.futures.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            # No multicast, no interface...: the tracker field still works.
            log.warning("LAN discovery failed to start: %s", exc)

    def _changed(self) -> None:
        """on_change of the browser (loop thread): read the list and hop to Qt."""
        browser = self._browser
        if browser is None:
            return
        try:
            sessions = [_session_info(s) for s in browser.sessions()]
        except Exception:
            log.debug("reading LAN sessions failed", exc_info=True)
            return
        with contextlib.suppress(RuntimeError):
            self._sessions_posted.emit(sessions)

    @pyqtSlot(list)
    def _on_sessions(self, sessions: list[LanSessionInfo]) -> None:
        self.sessions_changed.emit(sessions)

    def close(self) -> None:
        """Stop browsing; the discovery thread ends by itself right after (no wait)."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        browser, self._browser = self._browser, None
        self.available = False

        async def close_browser() -> None:
            try:
                if browser is not None:
                    result = browser.close()
                    if inspect.isawaitable(result):
                        # Bounded: a stuck network must not keep the thread alive.
                        await asyncio.wait_for(result, 2.0)
            finally:
                runner.request_stop()

        try:
            runner.submit(close_browser())
        except RuntimeError:  # the loop already ended
            runner.request_stop()
