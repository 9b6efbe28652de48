"""Who forwards to whom: the relay tree view and the streamer's viewers table."""

from __future__ import annotations

from typing import Any

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, pyqtSlot
from PyQt6.QtGui import QBrush, QColor, QFont
from PyQt6.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from peer.gui import theme
from peer.gui.bridge import TreeChanged, TreePeer
from peer.gui.theme import Colors

_Index = QModelIndex | QPersistentModelIndex


def layer_text(layer: int | None) -> str:
    """"720p" for a layer, a dash when unknown."""
    return "—" if layer is None else f"{layer}p"


def delivered_layer(asked: int | None, available: tuple[int, ...]) -> int | None:
    """The layer a viewer really receives: what it asked for, but not above the source.

    The streamer serves the best layer not above the asked one that the source has
    (the smallest when even that is above the source).
    """
    if asked is None or not available:
        return asked
    fitting = [layer for layer in available if layer <= asked]
    return max(fitting) if fitting else min(available)


def layer_cell(asked: int | None, available: tuple[int, ...]) -> tuple[str, str]:
    """(text, tooltip) for a peer's resolution: what it gets, and what it asked for."""
    got = delivered_layer(asked, available)
    if got == asked:
        return layer_text(got), f"receives {layer_text(got)}" if got is not None else ""
    return layer_text(got), f"receives {layer_text(got)} (asked for {layer_text(asked)})"


def reach_tip(reachable: bool | None, own: bool) -> str:
    """The tooltip's words on how others can connect to a peer (issue 15)."""
    if reachable is None:
        return ""
    if reachable:
        return " · others can connect to it"
    if own:
        return ("\n⇡ Your network accepts no incoming connections (a router without "
                "port forwarding): you connect out to others, and only peers that accept "
                "connections can get the stream through you. Turning on UPnP on your "
                "router helps.")
    return " · ⇡ nobody can connect to it (behind a router): it connects out"


PUNCHED_TIP = (" · ⇄ joined its parent by hole punching: both are behind routers, and "
               "they connected to each other at the same moment through both")


def unlisted_rows(tree: TreeChanged) -> list[tuple[str, int | None, int]]:
    """(text, depth, count) for the peers a large room's listing leaves out.

    Above a few hundred peers the tracker lists only some of them, plus how many sit
    at each depth; the view shows the rest as "N more peers at depth d" instead of a
    partial tree that would pass for the whole room. One row per depth that has
    unlisted peers (depth None: not in the tree yet); when the tracker gives no
    per-depth counts, one row for the difference from the room's size.
    """
    listed: dict[int | None, int] = {}
    for peer in tree.peers:
        depth = 0 if peer.role == "streamer" else peer.depth
        listed[depth] = listed.get(depth, 0) + 1
    rows: list[tuple[str, int | None, int]] = []
    for level in tree.levels:
        more = level.peers - listed.get(level.depth, 0)
        if more <= 0:
            continue
        what = "peer" if more == 1 else "peers"
        where = "not in the tree yet" if level.depth is None else f"at depth {level.depth}"
        rows.append((f"{more} more {what} {where}", level.depth, more))
    if not rows and tree.room_size > len(tree.peers):
        more = tree.room_size - len(tree.peers)
        rows.append((f"{more} more {'peer' if more == 1 else 'peers'}", None, more))
    return rows


def _role_order(peer: TreePeer) -> tuple[int, str]:
    # The streamer on top, then peers by name, so the view does not jump around.
    return (0 if peer.role == "streamer" else 1, peer.name.lower())


class RelayTreeView(QTreeWidget):
    """The room's relay tree: each peer under the peer that forwards to it.

    Peers whose parent is unknown (joining, or orphaned and re-joining) are shown at
    the top level, after the streamer. Our own peer is highlighted. In a large room
    (the tracker lists only part of it) the unlisted peers are aggregate rows, "N more
    peers at depth d", after the tree (``unlisted_rows``).
    """

    COLUMNS = ("Peer", "Resolution", "Depth")

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(parent)
        self.setColumnCount(len(self.COLUMNS))
        self.setHeaderLabels(list(self.COLUMNS))
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(False)
        self.setSelectionMode(QTreeWidget.SelectionMode.NoSelection)
        self.setAccessibleName("Relay tree")
        header = self.header()
        if header is not None:
            header.setStretchLastSection(False)
            # Whole names, with a scroll bar when the panel is narrow: a cut name
            # cannot be told apart from another.
            header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
            header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
            header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
            header.setMinimumSectionSize(48)
        self.self_id = ""
        self.items: dict[str, QTreeWidgetItem] = {}
        self.aggregates: list[QTreeWidgetItem] = []  # "N more peers at depth d" rows
        self.available: tuple[int, ...] = ()
        self._tree: TreeChanged | None = None
        theme.notifier.changed.connect(self._restyle)

    @pyqtSlot(object)
    def _restyle(self, _palette: object) -> None:
        if self._tree is not None:
            self.set_tree(self._tree)  # the streamer and our own row carry colours

    @pyqtSlot(tuple)
    def set_available_layers(self, layers: tuple[int, ...]) -> None:
        """The layers the source has: a viewer gets at most the best of these."""
        self.available = tuple(layers)
        if self._tree is not None:
            self.set_tree(self._tree)

    @pyqtSlot(object)
    def set_tree(self, tree: TreeChanged) -> None:
        """Rebuild the view from a TreeChanged event."""
        self._tree = tree
        self.self_id = tree.self_id
        self.clear()
        self.items = {}
        by_id = {peer.id: peer for peer in tree.peers}
        children: dict[str | None, list[TreePeer]] = {}
        for peer in tree.peers:
            parent = peer.parent_id if peer.parent_id in by_id else None
            children.setdefault(parent, []).append(peer)

        def add(peer: TreePeer, under: QTreeWidgetItem | None) -> None:
            item = self._item(peer)
            if under is None:
                self.addTopLevelItem(item)
            else:
                under.addChild(item)
            self.items[peer.id] = item
            for child in sorted(children.get(peer.id, []), key=_role_order):
                if child.id not in self.items:  # a cycle in stale data must not loop
                    add(child, item)

        for peer in sorted(children.get(None, []), key=_role_order):
            add(peer, None)
        # Peers only reachable through a cycle (inconsistent snapshot): show them anyway.
        for peer in sorted(tree.peers, key=_role_order):
            if peer.id not in self.items:
                add(peer, None)
        self.aggregates = []
        for text, depth, count in unlisted_rows(tree):
            item = QTreeWidgetItem([text, "", "—" if depth is None else str(depth)])
            item.setToolTip(0, f"The room has {tree.room_size} peers; the tracker lists "
                               f"{len(tree.peers)} of them by name.")
            item.setData(0, Qt.ItemDataRole.UserRole, count)  # how many it stands for
            item.setForeground(0, QBrush(QColor(Colors.MUTED)))
            font = QFont(self.font())
            font.setItalic(True)
            item.setFont(0, font)
            self.addTopLevelItem(item)
            self.aggregates.append(item)
        self.expandAll()

    def _item(self, peer: TreePeer) -> QTreeWidgetItem:
        own = peer.id == self.self_id
        name = f"{peer.name} (you)" if own else peer.name
        streamer = peer.role == "streamer"
        if streamer:
            name = f"● {name}"
        depth = "0" if streamer else ("—" if peer.depth is None else str(peer.depth))
        # The streamer sends every layer its subtree needs: its own layer means nothing.
        layer, layer_tip = ("source", "") if streamer else layer_cell(peer.layer, self.available)
        if peer.reachable is False:
            name = f"{name} ⇡"  # outbound-only: it dials out, nobody can dial it
        if peer.punched:
            name = f"{name} ⇄"  # its parent link was punched through both routers
        item = QTreeWidgetItem([name, layer, depth])
        item.setToolTip(0, f"{peer.name} · {peer.role} · id {peer.id}"
                        + reach_tip(peer.reachable, own)
                        + (PUNCHED_TIP if peer.punched else ""))
        item.setToolTip(1, layer_tip)
        if streamer:
            item.setForeground(0, QBrush(QColor(Colors.LIVE)))
        if own:
            font = QFont(self.font())
            font.setBold(True)
            for column in range(len(self.COLUMNS)):
                item.setFont(column, font)
                item.setBackground(column, QBrush(QColor(Colors.SURFACE_2)))
            item.setForeground(0, QBrush(QColor(Colors.OWN)))
        return item


class PeerTableModel(QAbstractTableModel):
    """The streamer's viewers: who, at what resolution, and through whom."""

    HEADERS = ("Viewer", "Resolution", "Through")

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(parent)
        self._rows: list[tuple[str, str, str]] = []
        self._tips: list[str] = []
        self._self_id = ""
        self.available: tuple[int, ...] = ()

    @pyqtSlot(tuple)
    def set_available_layers(self, layers: tuple[int, ...]) -> None:
        """The layers the source has (call set_tree again to apply)."""
        self.available = tuple(layers)

    @pyqtSlot(object)
    def set_tree(self, tree: TreeChanged) -> None:
        """Take the viewers (everyone but us and the streamer) from a TreeChanged."""
        names = {peer.id: peer.name for peer in tree.peers}
        rows = []
        tips = []
        for peer in sorted(tree.peers, key=_role_order):
            if peer.id == tree.self_id or peer.role == "streamer":
                continue
            if peer.parent_id is None:
                via = "joining…"
            elif peer.parent_id == tree.self_id:
                via = "you (direct)"
            else:
                via = names.get(peer.parent_id, peer.parent_id)
            layer, tip = layer_cell(peer.layer, self.available)
            rows.append((peer.name, layer, via))
            tips.append(tip)
        self.beginResetModel()
        self._rows = rows
        self._tips = tips
        self._self_id = tree.self_id
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 (Qt API)
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tips[index.row()] if index.column() == 1 else (
                self._rows[index.row()][index.column()])
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.HEADERS)
        ):
            return self.HEADERS[section]
        return None

    def rows(self) -> list[tuple[str, str, str]]:
        """The table's content (for tests and the viewers count)."""
        return list(self._rows)
