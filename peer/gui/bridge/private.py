"""The app's private rooms: a room name and passphrase become the node's room id and
secret, off the GUI thread.

The derivation is ``protocol.private_room.private_room``, the same one ``--secret``
uses, so the app and headless peers given the same name and passphrase meet in the
same room. It runs scrypt (about 50 ms, more on a busy machine): on a short-lived
worker thread, so the window keeps painting while a click waits for it.
"""

from __future__ import annotations

import contextlib
import threading

from PyQt6.QtCore import QObject, pyqtSignal, pyqtSlot

from peer.gui.bridge._threads import queued
from peer.gui.bridge.request import PrivateRoom
from peer.node.membership import REFUSED_MESSAGE
from protocol.private_room import PRIVATE_PREFIX, private_room

__all__ = ["PRIVATE_PREFIX", "PRIVATE_ROOM_REFUSED", "PrivateRoomKeys", "derive_private_room"]

# The node's ErrorRaised message when a private room's members refuse our proof.
PRIVATE_ROOM_REFUSED = REFUSED_MESSAGE


def derive_private_room(room: str, passphrase: str) -> PrivateRoom:
    """The private room of ``room`` behind ``passphrase`` (blocks for the stretch).

    Raises:
        ValueError: the passphrase is empty.
    """
    room_id, secret = private_room(room, passphrase)
    return PrivateRoom(room_id, secret)


class PrivateRoomKeys(QObject):
    """Derives private rooms on a worker thread; reports only the latest request.

    Signals:
        derived(int, PrivateRoom): the ticket :meth:`derive` returned, and its room.
        failed(int, str): the ticket, and why there is no room (an empty passphrase).
    """

    derived = pyqtSignal(int, object)
    failed = pyqtSignal(int, str)
    _done_posted = pyqtSignal(int, object, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ticket = 0
        queued(self._done_posted, self._on_done)

    def derive(self, room: str, passphrase: str) -> int:
        """Start deriving; the answer comes as ``derived`` or ``failed``.

        Returns:
            The request's ticket. A later call makes an earlier ticket stale: its
            answer is dropped (the fields changed, the user clicked again).
        """
        self._ticket += 1
        ticket = self._ticket
        # A thread per request: it lives for one stretch and holds nothing after.
        threading.Thread(target=self._work, args=(ticket, room, passphrase),
                         name="treecast-private-room", daemon=True).start()
        return ticket

    def cancel(self) -> None:
        """Drop the answer of the request in flight, if any."""
        self._ticket += 1

    def _work(self, ticket: int, room: str, passphrase: str) -> None:
        try:
            result: PrivateRoom | None = derive_private_room(room, passphrase)
            error = ""
        except ValueError as exc:
            result, error = None, str(exc)
        with contextlib.suppress(RuntimeError):  # the screen went away meanwhile
            self._done_posted.emit(ticket, result, error)

    @pyqtSlot(int, object, str)
    def _on_done(self, ticket: int, result: PrivateRoom | None, error: str) -> None:
        if ticket != self._ticket:
            return
        if result is None:
            self.failed.emit(ticket, error)
        else:
            self.derived.emit(ticket, result)
