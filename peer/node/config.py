"""What a node is told to do: identity, where to meet, what to stream or watch."""

from __future__ import annotations

from dataclasses import dataclass, field

from peer.node.audio.config import AudioConfig
from protocol import limits
from protocol.addresses import AddressError, split_host_port
from protocol.private_room import is_private


@dataclass(frozen=True, slots=True)
class FileSource:
    """A video file (anything OpenCV decodes), paced at its own frame rate."""

    path: str
    loop: bool = False


@dataclass(frozen=True, slots=True)
class PatternSource:
    """The built-in moving test pattern (frame number and capture time drawn on it)."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0


@dataclass(frozen=True, slots=True)
class CameraSource:
    """A camera by OpenCV index."""

    index: int = 0


@dataclass(frozen=True, slots=True)
class ScreenSource:
    """A monitor, shared (mss numbering: 1 is the first monitor, 0 all of them)."""

    monitor: int = 1
    fps: float = 15.0  # = peer.node.screen.DEFAULT_SCREEN_FPS (no capture code imported here)


SourceSpec = FileSource | PatternSource | CameraSource | ScreenSource


@dataclass(frozen=True, slots=True)
class Timing:
    """Timers of the node. Tests shorten them; defaults suit real networks."""

    ping_interval_s: float = 0.25  # the tree's tick: a quiet parent is pinged this often
    link_timeout_s: float = 1.0  # silence after which a parent is dead
    # A parent that sends no video this long while the stream is live is failed.
    video_timeout_s: float = 2.0
    keepalive_s: float = 1.0  # a child pings at least this often (clock probe too)
    child_timeout_s: float = 4.0  # silence after which a child is dead
    tracker_heartbeat_s: float = 1.0
    connect_timeout_s: float = 2.0
    stats_interval_s: float = 1.0
    stats_window_s: float = 5.0


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything a node needs to run.

    Attributes:
        name: display name (at most limits.MAX_NAME_CHARS).
        room: the room to join.
        tracker: tracker address, or None to find one by mDNS / run tracker-less (lan).
        more_trackers: further trackers to move to when the first fails (``--tracker
            A:P,B:P``): see ``parse_trackers``.
        lan: use zeroconf discovery (advertise self, find peers and trackers).
        listen_host / listen_port: where children connect (port 0 picks one).
        advertise_host: the address others should dial; None lets the tracker fill it in.
        max_children: fan-out; None picks the default for the role.
        source: what to stream; None means watch.
        resolution: the layer (frame height) this peer wants to see; with
            ``auto_resolution`` the highest it wants. ``limits.NO_VIDEO`` (0): none at
            all, the parent sends chat and control only (a streamer still choosing
            its source); a streamer's own stream is unaffected.
        auto_resolution: let the parent pick the layer the path carries (``auto``),
            at most ``resolution``.
        codec: the video codec when this peer streams ("h264" or "mjpeg").
        record_path: write what is received to this video file.
        port_mapping: ask the home router (UPnP-IGD) to forward a port to our listener
            and register under it (``--upnp``; off by default: it multicasts SSDP).
        relay: a ``--relay`` peer (a public host that only forwards): said at
            registration, so the tracker offers it to joiners first.
        decode: decode received frames (display or record); relays that only forward
            and viewers that neither display nor record leave frames encoded.
        identity_path: the key file that keeps this peer's id between runs (made
            if missing); None makes a fresh key pair, and so a fresh id, every run.
        tls: every link (peers, tracker) is TLS 1.3 bound to the ids' keys. False
            only for protocol tests and overhead measurements on a trusted host.
        room_secret: a private room's secret (``private_room.stretch`` of its
            passphrase); ``room`` is then its opaque id (``private_room.room_id``).
            Only peers that hold it can link with us. Needs ``tls``.
        tracker_fingerprint: the tracker's key fingerprint as the user gave it
            (``HOST:PORT#FINGERPRINT``); None trusts it on first use.
        known_trackers_path: the tracker pin file; None: the user's config dir.
        audio: sound settings (source track, microphone, playback).
    """

    name: str
    room: str = "lobby"
    tracker: tuple[str, int] | None = None
    more_trackers: tuple[tuple[str, int], ...] = ()
    lan: bool = False
    listen_host: str = "::"  # dual-stack (peer/lan/listen.py)
    listen_port: int = 0
    advertise_host: str | None = None
    max_children: int | None = None
    source: SourceSpec | None = None
    resolution: int = 720
    auto_resolution: bool = False
    codec: str = "h264"
    record_path: str | None = None
    decode: bool = False
    port_mapping: bool = False
    relay: bool = False
    identity_path: str | None = None
    tls: bool = True
    room_secret: bytes | None = None
    tracker_fingerprint: str | None = None
    known_trackers_path: str | None = None
    timing: Timing = field(default_factory=Timing)
    audio: AudioConfig = field(default_factory=AudioConfig)

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > limits.MAX_NAME_CHARS:
            raise ValueError(f"name must be 1-{limits.MAX_NAME_CHARS} characters")
        if not self.room or len(self.room) > limits.MAX_ROOM_CHARS:
            raise ValueError(f"room must be 1-{limits.MAX_ROOM_CHARS} characters")
        if self.room_secret is not None and not self.tls:
            raise ValueError("a private room needs TLS (drop --no-tls)")
        if is_private(self.room) and self.room_secret is None:
            raise ValueError(f"room names cannot start with {self.room[0]!r} "
                             "(private rooms are joined with --secret)")
        if self.resolution not in limits.LAYERS and self.resolution != limits.NO_VIDEO:
            raise ValueError(f"resolution must be one of {limits.LAYERS} or "
                             f"{limits.NO_VIDEO} (no video)")
        if self.resolution == limits.NO_VIDEO and self.auto_resolution:
            raise ValueError("auto resolution needs a layer to aim for, not no video")
        if self.codec not in ("h264", "mjpeg"):
            raise ValueError("codec must be h264 or mjpeg")
        if self.max_children is not None and not 0 <= self.max_children <= 64:
            raise ValueError("max_children must be between 0 and 64")

    @property
    def streaming(self) -> bool:
        return self.source is not None

    @property
    def fanout(self) -> int:
        """Children this peer accepts: the streamer's upload is children x stream."""
        if self.max_children is not None:
            return self.max_children
        return 4 if self.streaming else 3


def parse_trackers(text: str) -> tuple[tuple[str, int], ...]:
    """Parse one tracker address or a comma-separated list of them: ``HOST:PORT``,
    ``[V6]:PORT``, ``A:P,B:P``. The first is used first; a peer moves to the next one
    when its tracker fails. Used by ``treecast-peer --tracker`` and the app's field.

    Raises:
        ValueError: an empty list, or an item that is not ``HOST:PORT`` (names it).
    """
    found: list[tuple[str, int]] = []
    for item in text.split(","):
        try:
            address = split_host_port(item.strip())
        except AddressError as exc:
            raise ValueError(f"expected HOST:PORT, got {item.strip()!r} ({exc})") from None
        if address not in found:
            found.append(address)
    if not found:
        raise ValueError("no tracker address given")
    return tuple(found)
