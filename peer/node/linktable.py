"""The node's open links, by the tree state's link ids (and back).

``TreeState`` speaks of links by integer id; the asyncio side holds ``PeerLink``s.
``LinkTable`` is the one map between them, and answers the questions the media and
chat ask of the tree's links: which link is the parent, which are the children, who
chat travels to, the root's clock as seen through the parent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from peer.node.link import PeerLink
from peer.node.tree.state import TreeState
from protocol import Bye, ErrorCode, Message, limits

log = logging.getLogger(__name__)


class LinkTable:
    """Open links by tree link id.

    Args:
        tree: the tree state whose ids the table uses.
    """

    def __init__(self, tree: TreeState) -> None:
        self._tree = tree
        self._links: dict[int, PeerLink] = {}
        self._ids: dict[PeerLink, int] = {}

    def add(self, link_id: int, link: PeerLink) -> None:
        self._links[link_id] = link
        self._ids[link] = link_id

    def remove(self, link: PeerLink) -> int | None:
        """Forget a closed link; its id (None when it never had one)."""
        link_id = self._ids.pop(link, None)
        if link_id is not None:
            del self._links[link_id]
        return link_id

    def get(self, link_id: int) -> PeerLink | None:
        return self._links.get(link_id)

    def id_of(self, link: PeerLink) -> int | None:
        return self._ids.get(link)

    def __iter__(self) -> Iterator[PeerLink]:
        return iter(list(self._ids))

    @property
    def parent(self) -> PeerLink | None:
        parent = self._tree.parent
        return self._links.get(parent) if parent is not None else None

    @property
    def children(self) -> list[PeerLink]:
        return [self._links[c] for c in self._tree.children if c in self._links]

    def sound_children(self) -> list[PeerLink]:
        """The children whose subtree asked for sound and watches (the tree's demand:
        a subtree of silent viewers, or one that asked for ``NO_VIDEO``, gets none)."""
        return [link for link in self.children
                if self._tree.child_wants_sound(self._ids[link])]

    def neighbours(self, but: PeerLink | None = None) -> list[PeerLink]:
        """Parent and children, open, except ``but`` (chat travels on these)."""
        ids = self._tree.children
        if self._tree.parent is not None:
            ids = [*ids, self._tree.parent]
        return [link for i in ids if (link := self._links.get(i)) is not None
                and link is not but and not link.closed]

    def to_parent(self, message: Message) -> None:
        """Send ``message`` to the parent, if we have one."""
        parent = self.parent
        if parent is not None:
            parent.send(message)

    def drop_parent(self, reason: str, code: ErrorCode) -> None:
        """The parent sent what we refuse (video or sound that does not decode): that
        link goes with ``reason`` and the tree repairs."""
        parent = self.parent
        log.warning("closing the link to %s: %s", self._tree.parent_name, reason)
        if parent is not None:
            parent.close(reason, Bye(reason=reason[:limits.MAX_REASON_CHARS], code=int(code)))

    def root_offset(self) -> float | None:
        """The root's clock minus ours (0 at the root, None while unknown): what the
        parent says of the root's clock plus our estimate of the parent's."""
        if self._tree.is_root:
            return 0.0
        parent = self.parent
        if parent is None or parent.root_offset is None or parent.clock.offset is None:
            return None
        return parent.root_offset + parent.clock.offset
