"""Asking a tracker about rooms from the start screen, off the GUI thread."""

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
from peer.node.errors import NodeError

log = logging.getLogger(__name__)

# A tracker answers a room query in milliseconds on a LAN; a few seconds covers a
# slow WAN without leaving the start screen stale for long.
ROOM_QUERY_TIMEOUT_S = 3.0




@dataclass(frozen=True, slots=True)
class RoomStatus:
    """Who streams in a room, as the tracker says.

    Attributes:
        host / port / room: what was asked.
        streamer: the streamer's name, or None when nobody streams.
        peers: peers in the room.
        error: why the tracker could not be asked, or None.
    """

    host: str
    port: int
    room: str
    streamer: str | None = None
    peers: int = 0
    error: str | None = None


def _query_room_blocking(host: str, port: int, room: str) -> RoomStatus:
    try:
        from peer.node.tracker_client import query_room
    except ImportError:
        return RoomStatus(host, port, room, error="unavailable")
    try:
        result: Any = query_room(host, port, room, ROOM_QUERY_TIMEOUT_S)
        if inspect.isawaitable(result):
            # Either flavour of API works: an async one runs on a private loop here.
            async def wait() -> Any:
                return await result

            result = asyncio.run(wait())
    except (NodeError, OSError, TimeoutError) as exc:
        return RoomStatus(host, port, room, error=str(exc) or type(exc).__name__)
    except Exception as exc:  # a misbehaving tracker must not break the start screen
        log.warning("room query failed", exc_info=True)
        return RoomStatus(host, port, room, error=str(exc) or type(exc).__name__)
    streamer = getattr(result, "streamer_name", None) or None
    if streamer is None and getattr(result, "streamer_id", None):
        streamer = "someone"
    # A tracker tells strangers only the room's size, not who is in it.
    size = getattr(result, "room_size", None)
    return RoomStatus(host, port, room, streamer=streamer,
                      peers=size if isinstance(size, int) else len(result.peers))


@dataclass(frozen=True, slots=True)
class RoomListing:
    """A tracker's rooms, busiest first, as its room list says.

    Attributes:
        host / port: the tracker asked.
        rooms: (room, streamer or None, peers) of each listed room.
        total: rooms the tracker holds (more than listed when it has many).
        error: why the tracker could not be asked, or None.
    """

    host: str
    port: int
    rooms: tuple[tuple[str, str | None, int], ...] = ()
    total: int = 0
    error: str | None = None


def _list_rooms_blocking(host: str, port: int) -> RoomListing:
    from peer.node.tracker_client import query_rooms

    try:
        answer = asyncio.run(query_rooms(host, port, ROOM_QUERY_TIMEOUT_S))
    except (NodeError, OSError, TimeoutError) as exc:
        return RoomListing(host, port, error=str(exc) or type(exc).__name__)
    except Exception as exc:  # a misbehaving tracker must not break the start screen
        log.warning("room list query failed", exc_info=True)
        return RoomListing(host, port, error=str(exc) or type(exc).__name__)
    rooms = tuple((r.room, r.streamer_name, r.peers) for r in answer.rooms)
    return RoomListing(host, port, rooms, answer.total)


class RoomProbe(QObject):
    """Asks a tracker who streams in a room, and which rooms it has, on a worker thread.

    Only the answer to the latest question of each kind is reported: typing an
    address fires many questions and the start screen only cares about the last one.

    Signals:
        room_checked(RoomStatus): the answer to the latest :meth:`check`.
        rooms_listed(RoomListing): the answer to the latest :meth:`list_rooms`.
    """

    room_checked = pyqtSignal(object)
    rooms_listed = pyqtSignal(object)
    _answer_posted = pyqtSignal(int, object)
    _listing_posted = pyqtSignal(int, object)

    def __init__(
        self,
        query: Callable[[str, int, str], RoomStatus] | None = None,
        parent: QObject | None = None,
        lister: Callable[[str, int], RoomListing] | None = None,
    ) -> None:
        """Args:
        query: blocking (host, port, room) -> RoomStatus; the tracker client by
            default, tests pass a fake.
        parent: Qt parent.
        lister: blocking (host, port) -> RoomListing; the tracker client by default.
        """
        super().__init__(parent)
        self._query = query or _query_room_blocking
        self._lister = lister or _list_rooms_blocking
        self._listing_generation = 0
        self._generation = 0
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        queued(self._answer_posted, self._on_answer)
        queued(self._listing_posted, self._on_listing)

    def _worker(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="treecast-room-query"
            )
        return self._pool

    def list_rooms(self, host: str, port: int) -> None:
        """Ask the tracker for its rooms; an earlier list question is dropped."""
        self._listing_generation += 1
        generation = self._listing_generation
        lister = self._lister

        def run() -> None:
            listing = lister(host, port)
            with contextlib.suppress(RuntimeError):
                self._listing_posted.emit(generation, listing)

        self._worker().submit(run)

    @pyqtSlot(int, object)
    def _on_listing(self, generation: int, listing: RoomListing) -> None:
        if generation == self._listing_generation:
            self.rooms_listed.emit(listing)

    def check(self, host: str, port: int, room: str) -> None:
        """Ask (again); any answer to an earlier question is dropped."""
        self._generation += 1
        generation = self._generation

        def run() -> None:
            status = self._query(host, port, room)
            with contextlib.suppress(RuntimeError):
                self._answer_posted.emit(generation, status)

        self._worker().submit(run)

    def cancel(self) -> None:
        """Forget pending questions (their answers will be ignored)."""
        self._generation += 1
        self._listing_generation += 1

    def close(self) -> None:
        """Stop the worker thread (after its current question, at most a timeout)."""
        self.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    @pyqtSlot(int, object)
    def _on_answer(self, generation: int, status: RoomStatus) -> None:
        if generation == self._generation:
            self.room_checked.emit(status)


