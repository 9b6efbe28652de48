"""Where the GUI meets the node: the only part of ``peer.gui`` that imports ``peer.node``.

One module per job:

* :mod:`.node_bridge`: ``NodeBridge``, the node on its own thread as Qt signals/slots.
* :mod:`.actions`: ``Action`` and ``FailureKind``, what the GUI asks and why it failed.
* :mod:`.frames`: decoded frames to ``QImage`` off the GUI thread, latest wins.
* :mod:`.request`: ``SessionRequest`` (the start screen's answer) and its ``NodeConfig``.
* :mod:`.private`: a private room's id and secret from its name and passphrase.
* :mod:`.rooms`: asking a tracker about a room from the start screen.
* :mod:`.lan`: the sessions seen on the local network.
* :mod:`.preview`: trying a source (and showing its first picture) before going live.

The views import everything from here (event classes and source specs included), so
the GUI depends on one adapter, not on the node's internals.
"""

from __future__ import annotations

from peer.gui.bridge.actions import Action, FailureKind, failure_kind
from peer.gui.bridge.frames import LatestFrame, frame_to_qimage
from peer.gui.bridge.lan import LanSessionInfo, LanSessions
from peer.gui.bridge.node_bridge import STOP_GRACE_MS, NodeBridge, NodeFactory, NodeLike
from peer.gui.bridge.preview import SourceInfo, SourcePreview
from peer.gui.bridge.private import (
    PRIVATE_PREFIX,
    PRIVATE_ROOM_REFUSED,
    PrivateRoomKeys,
    derive_private_room,
)
from peer.gui.bridge.request import (
    AUTO,
    IdentityClaim,
    PrivateRoom,
    SessionRequest,
    make_config,
)
from peer.gui.bridge.rooms import RoomListing, RoomProbe, RoomStatus
from peer.node.config import (
    CameraSource,
    FileSource,
    PatternSource,
    ScreenSource,
    SourceSpec,
    parse_trackers,
)
from peer.node.errors import NodeError
from peer.node.events import (
    ChatReceived,
    ErrorRaised,
    Joined,
    LockDenied,
    ParentLost,
    PlaybackChanged,
    Ready,
    Resumed,
    SourceProgress,
    Stats,
    Stopped,
    StreamEnded,
    StreamEndReason,
    StreamStarted,
    TreeChanged,
    TreePeer,
)
from protocol import limits

LAYERS = limits.LAYERS
MAX_NAME_CHARS = limits.MAX_NAME_CHARS
MAX_ROOM_CHARS = limits.MAX_ROOM_CHARS
MAX_CHAT_CHARS = limits.MAX_CHAT_CHARS

__all__ = [
    "AUTO",
    "LAYERS",
    "MAX_CHAT_CHARS",
    "MAX_NAME_CHARS",
    "MAX_ROOM_CHARS",
    "PRIVATE_PREFIX",
    "PRIVATE_ROOM_REFUSED",
    "STOP_GRACE_MS",
    "Action",
    "CameraSource",
    "ChatReceived",
    "ErrorRaised",
    "FailureKind",
    "FileSource",
    "IdentityClaim",
    "Joined",
    "LanSessionInfo",
    "LanSessions",
    "LatestFrame",
    "LockDenied",
    "NodeBridge",
    "NodeError",
    "NodeFactory",
    "NodeLike",
    "ParentLost",
    "PatternSource",
    "PlaybackChanged",
    "PrivateRoom",
    "PrivateRoomKeys",
    "Ready",
    "Resumed",
    "RoomListing",
    "RoomProbe",
    "RoomStatus",
    "ScreenSource",
    "SessionRequest",
    "SourceInfo",
    "SourcePreview",
    "SourceProgress",
    "SourceSpec",
    "Stats",
    "Stopped",
    "StreamEndReason",
    "StreamEnded",
    "StreamStarted",
    "TreeChanged",
    "TreePeer",
    "derive_private_room",
    "failure_kind",
    "frame_to_qimage",
    "make_config",
    "parse_trackers",
]
