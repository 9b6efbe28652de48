"""What the start screen asks for, and how it becomes the node's configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PyQt6.QtCore import QLockFile

from peer.node.audio.config import AudioConfig
from peer.node.config import NodeConfig, SourceSpec
from peer.node.identity_file import default_identity_path
from protocol.limits import LAYERS, NO_VIDEO

# The resolution choice that lets the parent pick what the path carries.
AUTO = "auto"


@dataclass(frozen=True, slots=True)
class PrivateRoom:
    """A private room as the node knows it: what ``private_room.private_room`` derives
    from the room's name and passphrase (the passphrase itself is not kept).

    Attributes:
        room_id: the opaque id the tracker and the links use (``~...``).
        secret: the stretched passphrase members prove on their links.
    """

    room_id: str
    secret: bytes = field(repr=False)  # never in a log line or a test failure


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the start screen asks for, in GUI terms.

    Attributes:
        name: the user's display name.
        room: the room to meet in, as the user named it (shown in the window).
        tracker: (host, port) of the tracker, or None to meet on the LAN only.
        more_trackers: further trackers the node moves to when ``tracker`` fails (the
            rest of an "A:P,B:P" list in the tracker field), as ``--tracker`` does.
        private: the private room behind ``room`` and a passphrase, or None for the
            public room ``room`` (see :class:`~peer.gui.bridge.PrivateRoomKeys`).
        lan: find peers (and a tracker) with mDNS on the local network.
        streaming: True for the streamer view, False to watch.
        resolution: the layer a viewer asks for first, or "auto" (the best its path
            carries, chosen by its parent). The streamer screen watches nothing
            whatever this says (see :func:`make_config`); "Watch instead" uses it.

    Recording is not part of the request: the viewer starts and stops it during the
    session (:meth:`NodeBridge.set_recording`).
    """

    name: str
    room: str
    tracker: tuple[str, int] | None
    lan: bool
    streaming: bool
    resolution: int | str = AUTO
    more_trackers: tuple[tuple[str, int], ...] = ()
    private: PrivateRoom | None = None


def make_config(
    request: SessionRequest,
    source: SourceSpec | None = None,
    identity_path: str | None = None,
) -> NodeConfig:
    """Turn a start-screen request into the node's configuration.

    The app always decodes: the viewer displays (and maybe records) and the streamer
    shows its preview. Recording starts later, from the viewer screen.

    The streamer screen's node is in the room before it goes live (and after it
    stops) but shows nobody else's stream: it asks its parent for ``NO_VIDEO``, so a
    stream that someone else starts meanwhile costs it chat and control only, not
    video and sound it would throw away (issue 16).

    Args:
        request: the start screen's answer.
        source: what to stream from the start (the app goes live later instead).
        identity_path: the key file that keeps our id between runs (see
            :func:`claim_identity`); None: a fresh id for this session.

    Raises:
        ValueError: a field is out of range (the node config checks them).
    """
    if request.streaming:
        resolution, auto = NO_VIDEO, False
    else:
        resolution = max(LAYERS) if request.resolution == AUTO else int(request.resolution)
        auto = request.resolution == AUTO
    private = request.private
    return NodeConfig(
        name=request.name,
        # A private room is met under its opaque id, exactly as ``--secret`` does.
        room=private.room_id if private is not None else request.room,
        room_secret=private.secret if private is not None else None,
        tracker=request.tracker,
        more_trackers=request.more_trackers,
        lan=request.lan,
        source=source,
        resolution=resolution,
        auto_resolution=auto,
        decode=True,
        identity_path=identity_path,
        # A viewer plays the sound (the view sets its remembered volume and mute).
        audio=AudioConfig(play=not request.streaming),
    )


class IdentityClaim:
    """The app's kept key, claimed by one running window at a time.

    The key file is the app's id between runs; two windows using it at once would be
    one peer to the tracker, and the newer registration would push the older one out
    of the room (a streamer would lose its stream). The first window locks the file;
    any other one (a second app, or a second window in the same process) gets
    ``path`` None: a fresh id per session.
    """

    def __init__(self, path: str | None = None) -> None:
        """Args:
        path: the key file; the user's default (``default_identity_path``) if None.
        """
        key = Path(path) if path is not None else default_identity_path()
        self._lock: QLockFile | None = None
        self.path: str | None = None
        try:
            key.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # no config dir: fresh ids, the app still works
        lock = QLockFile(str(key) + ".lock")
        lock.setStaleLockTime(0)  # a crashed app's lock is stale once its pid is gone
        if lock.tryLock(0):
            self._lock, self.path = lock, str(key)

    def release(self) -> None:
        """Let another window use the key (the window closes)."""
        if self._lock is not None:
            self._lock.unlock()
            self._lock = None
