"""What a session in a private room says when the passphrase leads nowhere.

A private room's id comes from its name and passphrase, so a mistyped passphrase does
not knock on a closed door: it opens another, empty room. Nobody can refuse it, the
tracker cannot tell (it never sees passphrases), and the viewer would sit at "Waiting
for someone to stream…" for ever. So a viewer that is still alone in a private room a
few seconds after joining is told, in words, that nobody there has its passphrase.
A streamer alone in its room is normal (its viewers come later): it is not told.

The other way a passphrase fails: the room's id held with another secret (the node
reports each member's refusal once, as ``PRIVATE_ROOM_REFUSED``): the same advice.
"""

from __future__ import annotations

from PyQt6.QtCore import QObject, QTimer, pyqtSlot

from peer.gui.bridge import (
    PRIVATE_ROOM_REFUSED,
    ErrorRaised,
    NodeBridge,
    SessionRequest,
    TreeChanged,
)
from peer.gui.widgets import Banner

# The tracker answers a registration with the room's peers within a second on any
# network that works at all; LAN peers answer mDNS within a couple. After this, a
# room with nobody else in it is empty.
ALONE_AFTER_MS = 6000


def alone_text(room: str) -> str:
    """What a viewer alone in a private room reads."""
    return (f"Nobody else is in the private room “{room}”: nobody here has your "
            "passphrase. If someone invited you, check the room name and passphrase "
            "with them (both must match exactly; another passphrase is another, empty "
            "room). Or keep waiting here for others to join.")


def refused_text(room: str) -> str:
    """What a viewer whose proof the room's members refused reads."""
    return (f"Nobody in the private room “{room}” accepted your passphrase. Check the "
            "room name and passphrase with the people in it, then join again.")


class PrivateRoomNotice(QObject):
    """Watches a private-room session and puts the advice in its banner.

    Args:
        bridge: the session's node bridge.
        request: the session's request (nothing happens for a public room).
        banner: where the advice goes (a warning, with Back and Dismiss).
        alone_after_ms: how long a viewer may be alone before it is told.
    """

    def __init__(self, bridge: NodeBridge, request: SessionRequest, banner: Banner,
                 alone_after_ms: int = ALONE_AFTER_MS) -> None:
        super().__init__(banner)
        self._request = request
        self._banner = banner
        self._shown = ""  # the advice on the banner now, if it is ours
        self._others = False  # someone else has been in the room with us
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(alone_after_ms)
        self._timer.timeout.connect(self._on_alone)
        if request.private is not None and not request.streaming:
            bridge.started.connect(self._on_started)
            bridge.tree_changed.connect(self._on_tree)

    def handles(self, event: ErrorRaised) -> bool:
        """Show ``event`` here when it is the node's private-room refusal."""
        if self._request.private is None or event.message != PRIVATE_ROOM_REFUSED:
            return False
        self._show(refused_text(self._request.room))
        return True

    def stop(self) -> None:
        """The session is leaving: no more advice."""
        self._timer.stop()

    @pyqtSlot()
    def _on_started(self) -> None:
        if not self._others:  # the room's list may have come before "started"
            self._timer.start()

    @pyqtSlot(object)
    def _on_tree(self, tree: TreeChanged) -> None:
        if tree.room_size > 1 or any(peer.id != tree.self_id for peer in tree.peers):
            self._others = True
            self._timer.stop()
            if self._shown and self._banner.text() == self._shown:
                self._banner.clear()  # they came after all
            self._shown = ""

    @pyqtSlot()
    def _on_alone(self) -> None:
        if not self._others:
            self._show(alone_text(self._request.room))

    def _show(self, text: str) -> None:
        if self._banner.level == "error":
            return  # a stopped node or a failed join says more, and offers a step
        self._shown = text
        self._banner.show_message("warning", text,
                                  [("back", "Change passphrase"), ("dismiss", "Dismiss")])
