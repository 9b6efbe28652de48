"""What the start screen asks for, and how it becomes the node's configuration."""

from __future__ import annotations

from dataclasses import dataclass

from peer.node.config import NodeConfig, SourceSpec
from peer.node.identity_file import default_identity_path


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the start screen asks for, in GUI terms.

    Attributes:
        name: the user's display name.
        room: the room to meet in.
        tracker: (host, port) of the tracker, or None to meet on the LAN only.
        lan: find peers (and a tracker) with mDNS on the local network.
        streaming: True for the streamer view, False to watch.
        resolution: the layer a viewer asks for first.

    Recording is not part of the request: the viewer starts and stops it during the
    session (:meth:`NodeBridge.set_recording`).
    """

    name: str
    room: str
    tracker: tuple[str, int] | None
    lan: bool
    streaming: bool
    resolution: int = 720


def make_config(request: SessionRequest, source: SourceSpec | None = None) -> NodeConfig:
    """Turn a start-screen request into the node's configuration.

    The app always decodes: the viewer displays (and maybe records) and the streamer
    shows its preview. Recording starts later, from the viewer screen.

    Raises:
        ValueError: a field is out of range (the node config checks them).
    """
    return NodeConfig(
        name=request.name,
        room=request.room,
        tracker=request.tracker,
        lan=request.lan,
        source=source,
        resolution=request.resolution,
        decode=True,
        # The app keeps its key (its id) between runs.
        identity_path=str(default_identity_path()),
    )
