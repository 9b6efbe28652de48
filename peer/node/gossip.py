"""Chat on the tree's links: what the node does with the ChatRouter's verdicts.

A line we write goes to our parent and children; a line we receive is shown once and
passed to every tree link but the one it came from (``ChatRouter`` decides what is
new, signed and within the sender's rate). When a tree link comes up both sides
offer what they hold (``ChatHave``) and send what the other lacks: a late joiner gets
the recent history, a re-attached subtree what it missed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from peer.node.chat import ChatRouter
from peer.node.events import ChatReceived, NodeEvent
from peer.node.link import PeerLink
from protocol import Chat, ChatHave, encode


class ChatGossip:
    """Sends, receives and backfills chat.

    Args:
        router: the sans-IO chat rules (seen-cache, signatures, rates, history).
        tree_links: our parent and children now, except a given link.
        emit: reports ChatReceived events.
    """

    def __init__(self, router: ChatRouter,
                 tree_links: Callable[[PeerLink | None], list[PeerLink]],
                 emit: Callable[[NodeEvent], None]) -> None:
        self._router = router
        self._tree_links = tree_links
        self._emit = emit

    def send(self, text: str) -> None:
        """Our own line (ValueError when empty or too long)."""
        message = self._router.compose(text, time.time())
        self._show(message, own=True)
        data = encode(message)
        for link in self._tree_links(None):
            link.send_bytes(data)

    def received(self, link: PeerLink, message: Chat) -> None:
        """A neighbour's Chat: show it and pass it on if it is new and acceptable."""
        if link.peer_id is None:
            return
        verdict = self._router.receive(message, link.peer_id, time.time())
        if verdict.refusal is not None:
            link.send(verdict.refusal)
        if not verdict.deliver:
            return
        self._show(message, own=False)
        data = encode(message)
        for other in self._tree_links(link):
            other.send_bytes(data)

    def offered(self, link: PeerLink, have: ChatHave) -> None:
        """A neighbour listed what it holds: send what it lacks."""
        for missing in self._router.missing_for(have):
            link.send(missing)

    def link_up(self, link: PeerLink, peer_id: str) -> None:
        """A tree link came up: offer what we hold."""
        link.send(self._router.open_link(peer_id, time.time()))

    def link_gone(self, peer_id: str) -> None:
        self._router.forget_link(peer_id)

    def _show(self, message: Chat, *, own: bool) -> None:
        self._emit(ChatReceived(id=message.msg_id, origin_id=message.origin_id,
                                sender=message.origin_name, text=message.text,
                                sent_at=message.sent_at, own=own))
