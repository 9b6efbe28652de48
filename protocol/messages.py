"""One frozen dataclass per wire message, with strict decoding of its metadata.

Each message has a ``KIND`` (its wire code), ``to_meta()`` giving a JSON-able dict and a
``from_meta(meta, payload)`` classmethod that validates every field: type, range and
length. Unknown fields are ignored (newer peers may add some); unknown kinds decode to
``Unknown`` so a receiver can skip them on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from protocol import h264, limits, opus
from protocol.errors import FieldError
from protocol.fields import (
    CODEC_NAMES,
    MAX_JSON_INT,
    Meta,
    check_len,
    check_text,
    read_bool,
    read_codec,
    read_demand,
    read_float,
    read_int,
    read_layer,
    read_list,
    read_nested,
    read_object,
    read_opt_float,
    read_opt_int,
    read_opt_layer,
    read_opt_port,
    read_opt_str,
    read_sound_demand,
    read_str,
    read_versions,
)
from protocol.records import Candidate, PathEntry, PeerInfo, RoomStatus, RoomSummary, TreeLevel
from protocol.stream_auth import Announcement, SourceProof

__all__ = [
    "Accept",
    "AudioFrame",
    "Bye",
    "Chat",
    "ChatHave",
    "DenyReason",
    "Error",
    "FramePart",
    "Heartbeat",
    "Hello",
    "JoinRequest",
    "KeyframeRequest",
    "LayerDemand",
    "LinkProof",
    "Message",
    "MessageType",
    "PathUpdate",
    "PeerList",
    "Ping",
    "Playback",
    "Pong",
    "PunchRequest",
    "PunchStart",
    "Redirect",
    "Register",
    "RoomList",
    "RoomListQuery",
    "RoomQuery",
    "StatusQuery",
    "StreamAnnounce",
    "StreamClaim",
    "StreamDenied",
    "StreamGranted",
    "StreamRelease",
    "StreamerChanged",
    "TrackerStatus",
    "Unknown",
    "VideoFrame",
    "message_class",
]


class MessageType(IntEnum):
    """Wire codes. Peer-to-peer kinds below 32, tracker kinds from 32."""

    HELLO = 1
    JOIN_REQUEST = 2
    ACCEPT = 3
    REDIRECT = 4
    VIDEO_FRAME = 5
    LAYER_DEMAND = 6
    CHAT = 7
    CHAT_HAVE = 8
    PING = 9
    PONG = 10
    BYE = 11
    ERROR = 12
    PATH_UPDATE = 13
    PLAYBACK = 14
    KEYFRAME_REQUEST = 15
    STREAM_ANNOUNCE = 16
    AUDIO_FRAME = 20
    FRAME_PART = 21
    LINK_PROOF = 30
    REGISTER = 32
    PEER_LIST = 33
    HEARTBEAT = 34
    STREAM_CLAIM = 35
    STREAM_GRANTED = 36
    STREAM_DENIED = 37
    STREAM_RELEASE = 38
    STREAMER_CHANGED = 39
    ROOM_QUERY = 40
    ROOM_LIST_QUERY = 41
    ROOM_LIST = 42
    STATUS_QUERY = 43
    TRACKER_STATUS = 44
    PUNCH_REQUEST = 45
    PUNCH_START = 46


@dataclass(frozen=True, slots=True)
class _Base:
    KIND: ClassVar[MessageType]

    def to_meta(self) -> Meta:
        return {}

    def payload(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class Hello(_Base):
    """First message on every peer link, both ways: who I am, what I speak."""

    KIND: ClassVar[MessageType] = MessageType.HELLO
    peer_id: str
    name: str
    room: str
    versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS
    # In a private room: proof of the room's passphrase (protocol/private_room.py).
    member: str = ""
    # This build reassembles FramePart messages, so large video may come to it split
    # (peer/node/link.py). A Hello without the key (an older build) decodes as False
    # and is sent whole messages only.
    parts: bool = True
    # This build keeps a child that pings only every keepalive while video flows (it
    # times a child out after a few seconds, peer/node/tree/state.py). A Hello
    # without the key (an older build drops a child silent for one second) decodes as
    # False and is pinged every tick as before.
    slow_pings: bool = True

    def to_meta(self) -> Meta:
        check_len("name", self.name, limits.MAX_NAME_CHARS)
        meta: Meta = {"id": self.peer_id, "name": self.name, "room": self.room,
                      "versions": list(self.versions)}
        if self.member:
            meta["member"] = self.member
        if self.parts:
            meta["parts"] = True
        if self.slow_pings:
            meta["slow_pings"] = True
        return meta

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Hello:
        return cls(
            peer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS),
            room=read_str(meta, "room", limits.MAX_ROOM_CHARS),
            versions=read_versions(meta),
            member=(read_str(meta, "member", limits.MAX_SIGNATURE_CHARS)
                    if "member" in meta else ""),
            parts=read_bool(meta, "parts") if "parts" in meta else False,
            slow_pings=read_bool(meta, "slow_pings") if "slow_pings" in meta else False,
        )


@dataclass(frozen=True, slots=True)
class JoinRequest(_Base):
    """Ask to become a child; ``layer`` is the height this subtree needs, ``sound``
    whether anyone in it plays, records or relays sound (see LayerDemand)."""

    KIND: ClassVar[MessageType] = MessageType.JOIN_REQUEST
    layer: int
    listen_host: str | None = None
    listen_port: int | None = None
    sound: bool = True

    def to_meta(self) -> Meta:
        return {"layer": self.layer, "host": self.listen_host, "port": self.listen_port,
                "snd": self.sound}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> JoinRequest:
        return cls(
            layer=read_demand(meta),
            listen_host=read_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            listen_port=read_opt_port(meta),
            sound=read_sound_demand(meta),
        )


@dataclass(frozen=True, slots=True)
class Accept(_Base):
    """You are my child. ``path`` runs from the root to me (the new parent)."""

    KIND: ClassVar[MessageType] = MessageType.ACCEPT
    path: tuple[PathEntry, ...]
    epoch: int
    source_width: int = 0
    source_height: int = 0
    fps: float = 30.0
    # The stream's video codec: the joiner checks it can decode it before watching.
    codec: str = "mjpeg"
    # The streamer's signed announcement (protocol/stream_auth.py): the joiner believes
    # the epoch, codec and size above only when they match it and it verifies.
    ann: Announcement | None = None

    def to_meta(self) -> Meta:
        meta: Meta = {"path": [p.to_meta() for p in self.path], "epoch": self.epoch,
                      "sw": self.source_width, "sh": self.source_height, "fps": self.fps,
                      "cd": self.codec}
        if self.ann is not None:
            meta["ann"] = self.ann.to_meta()
        return meta

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Accept:
        path = read_nested(meta, "path", limits.MAX_PATH_LEN, PathEntry.from_meta)
        if not path:
            raise FieldError("path", "empty")
        return cls(path=path, epoch=read_int(meta, "epoch"),
                   source_width=read_int(meta, "sw", 0, limits.MAX_DIMENSION_PX),
                   source_height=read_int(meta, "sh", 0, limits.MAX_DIMENSION_PX),
                   fps=_fps(meta), codec=read_codec(meta),
                   ann=read_object(meta, "ann", Announcement.from_meta)
                   if meta.get("ann") is not None else None)


@dataclass(frozen=True, slots=True)
class StreamAnnounce(_Base):
    """The stream changed while this link stayed up (our parent re-attached to a new
    epoch): the streamer's signed announcement, passed down the tree. Refused from
    children, like all media."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_ANNOUNCE
    ann: Announcement

    def to_meta(self) -> Meta:
        return {"ann": self.ann.to_meta()}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamAnnounce:
        return cls(ann=read_object(meta, "ann", Announcement.from_meta))


def _fps(meta: Meta) -> float:
    # Older peers may omit it; 30 is what most sources run at.
    if meta.get("fps") is None:
        return 30.0
    fps = read_float(meta, "fps")
    if not 0.0 < fps <= 1000.0:
        raise FieldError("fps", f"{fps} outside (0, 1000]")
    return fps


@dataclass(frozen=True, slots=True)
class PathUpdate(_Base):
    """My path to the root changed (I re-attached); ``path`` ends with me.

    ``repairing``: I lost my parent (or my parent says it is repairing) and I am
    finding a new one; ``path`` is then the last one I had. My children keep me
    without video for a bounded while (see TreeState's "Repair notices"); my next
    PathUpdate without it says I am back. Sent only when true; a peer that predates
    the field ignores it and sees an unchanged path (absent: False).
    """

    KIND: ClassVar[MessageType] = MessageType.PATH_UPDATE
    path: tuple[PathEntry, ...]
    repairing: bool = False

    def to_meta(self) -> Meta:
        meta: Meta = {"path": [p.to_meta() for p in self.path]}
        if self.repairing:
            meta["repairing"] = True
        return meta

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PathUpdate:
        path = read_nested(meta, "path", limits.MAX_PATH_LEN, PathEntry.from_meta)
        if not path:
            raise FieldError("path", "empty")
        repairing = False if meta.get("repairing") is None else read_bool(meta, "repairing")
        return cls(path=path, repairing=repairing)


@dataclass(frozen=True, slots=True)
class Playback(_Base):
    """The streamer paused, resumed or moved in its file; relayed down the whole tree.

    A paused stream sends no frames: this tells viewers why (and where in the file
    it stands) so they show "Paused" instead of a frozen picture. ``epoch`` ties it
    to one stream: a late copy from an older stream is ignored. ``at``: when the
    streamer changed it (its clock), so a repeat of an older one is recognised;
    ``sig``: the streamer's signature (protocol/stream_auth.py): a relay cannot claim
    a pause to silence its subtree.
    """

    KIND: ClassVar[MessageType] = MessageType.PLAYBACK
    epoch: int
    paused: bool
    position_ms: int
    duration_ms: int | None = None
    at: float = 0.0
    sig: str = ""

    def to_meta(self) -> Meta:
        meta: Meta = {"epoch": self.epoch, "paused": self.paused, "pos": self.position_ms,
                      "dur": self.duration_ms}
        if self.at:
            meta["at"] = self.at
        if self.sig:
            meta["sig"] = self.sig
        return meta

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Playback:
        return cls(
            epoch=read_int(meta, "epoch"),
            paused=read_bool(meta, "paused"),
            position_ms=read_int(meta, "pos", 0, limits.MAX_MEDIA_MS),
            duration_ms=read_opt_int(meta, "dur", 0, limits.MAX_MEDIA_MS),
            at=read_float(meta, "at") if "at" in meta else 0.0,
            sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS) if "sig" in meta else "",
        )


@dataclass(frozen=True, slots=True)
class Redirect(_Base):
    """I cannot take you; try these instead (usually my children)."""

    KIND: ClassVar[MessageType] = MessageType.REDIRECT
    candidates: tuple[Candidate, ...]
    reason: str = "full"

    def to_meta(self) -> Meta:
        return {"candidates": [c.to_meta() for c in self.candidates], "reason": self.reason}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Redirect:
        return cls(candidates=read_nested(meta, "candidates", limits.MAX_CANDIDATES,
                                      Candidate.from_meta),
                   reason=read_str(meta, "reason", limits.MAX_REASON_CHARS, text=True))


@dataclass(frozen=True, slots=True)
class VideoFrame(_Base):
    """One coded frame of one layer. ``captured_at`` is on the root's clock (seconds).

    ``codec`` names the coding of ``data`` ("h264": one access unit in Annex B form;
    "mjpeg": one JPEG). ``keyframe``: a decoder can start here (every JPEG; an H.264
    IDR with its SPS and PPS). ``prev``: the ``seq`` of the frame before this one from
    the same encoder (-1: none), so a receiver knows whether it holds what this frame
    refers to. Frames from peers that predate codecs carry none of the three and are
    JPEG keyframes. An h264 payload is structure-checked here (protocol.h264): its
    SPS must give the declared size and its keyframe flag must be true.

    ``sig``: the streamer's signature (protocol/stream_auth.py), or, on a layer a relay
    transcoded, that relay's (``by`` names it) with ``src``, the streamer-signed
    header of the frame it was made from.
    """

    KIND: ClassVar[MessageType] = MessageType.VIDEO_FRAME
    epoch: int
    seq: int
    captured_at: float
    width: int
    height: int
    layer: int
    data: bytes = field(repr=False)
    codec: str = "mjpeg"
    keyframe: bool = True
    prev: int = -1
    sig: str = ""
    by: str = ""
    src: SourceProof | None = None
    # The exact bytes this frame was decoded from (set by the decoder, never sent as a
    # field): a relay forwards those instead of encoding the frame again. Not an init
    # argument, so ``dataclasses.replace`` (a re-signed frame) starts without it.
    wire: bytes | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def jpeg(self) -> bytes:
        """The payload under its pre-codec name (callers are moving to ``data``)."""
        return self.data

    def to_meta(self) -> Meta:
        meta: Meta = {"e": self.epoch, "s": self.seq, "c": self.captured_at,
                      "w": self.width, "h": self.height, "layer": self.layer,
                      "cd": self.codec, "kf": self.keyframe}
        if self.prev >= 0:
            meta["p"] = self.prev
        if self.sig:
            meta["sig"] = self.sig
        if self.by:
            meta["by"] = self.by
        if self.src is not None:
            meta["src"] = self.src.to_meta()
        return meta

    def payload(self) -> bytes:
        return self.data

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> VideoFrame:
        frame = _plain_video(cls, meta, payload)
        if frame is None:
            frame = cls._read(meta, payload)
        if frame.codec == "h264":
            _check_h264(frame)
        return frame

    @classmethod
    def _read(cls, meta: Meta, payload: bytes) -> VideoFrame:
        """Every field through its reader: the rules, and the error naming the field."""
        if not payload:
            raise FieldError("payload", "video frame without picture data")
        frame = cls(
            epoch=read_int(meta, "e"),
            seq=read_int(meta, "s"),
            captured_at=read_float(meta, "c"),
            width=read_int(meta, "w", 1, limits.MAX_DIMENSION_PX),
            height=read_int(meta, "h", 1, limits.MAX_DIMENSION_PX),
            layer=read_layer(meta),
            data=payload,
            codec=read_codec(meta),
            # A frame that names its codec says whether it is a keyframe; one that does
            # not is from a peer before codecs: a JPEG, so a keyframe.
            keyframe=True if meta.get("cd") is None else read_bool(meta, "kf"),
            prev=-1 if meta.get("p") is None else read_int(meta, "p"),
            sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS) if "sig" in meta else "",
            by=read_str(meta, "by", limits.MAX_ID_CHARS) if "by" in meta else "",
            src=read_object(meta, "src", SourceProof.from_meta)
            if meta.get("src") is not None else None,
        )
        if frame.prev >= frame.seq:
            raise FieldError("p", f"previous frame {frame.prev} is not before {frame.seq}")
        return frame


_LAYER_SET = frozenset(limits.LAYERS)


def _plain_video(cls: type[VideoFrame], meta: Meta, payload: bytes) -> VideoFrame | None:
    """A frame whose fields all have the form every current peer sends, checked in one
    pass (10-20 times a second on every link carrying video); None for anything else.

    It accepts a strict subset of what ``VideoFrame._read`` accepts (same types, ranges
    and lengths; a float time, a named codec, text that is printable ASCII, no ``src``):
    whatever it does not accept goes through ``_read``, which refuses it with the
    field's reason or accepts it (tests/test_protocol_video.py compares the two).
    """
    get = meta.get
    epoch, seq, captured_at = get("e"), get("s"), get("c")
    width, height, layer = get("w"), get("h"), get("layer")
    codec, keyframe, prev = get("cd"), get("kf"), get("p", -1)
    sig, by = get("sig", ""), get("by", "")
    if not (payload
            and type(epoch) is int and 0 <= epoch <= MAX_JSON_INT
            and type(seq) is int and 0 <= seq <= MAX_JSON_INT
            and type(captured_at) is float and math.isfinite(captured_at)
            and type(width) is int and 1 <= width <= limits.MAX_DIMENSION_PX
            and type(height) is int and 1 <= height <= limits.MAX_DIMENSION_PX
            and type(layer) is int and layer in _LAYER_SET
            and type(codec) is str and codec in CODEC_NAMES
            and type(keyframe) is bool
            and type(prev) is int and ((prev == -1 and "p" not in meta) or 0 <= prev < seq)
            and type(sig) is str and len(sig) <= limits.MAX_SIGNATURE_CHARS
            and sig.isascii() and sig.isprintable()
            and type(by) is str and len(by) <= limits.MAX_ID_CHARS
            and by.isascii() and by.isprintable()
            and get("src") is None):
        return None
    return cls(epoch, seq, captured_at, width, height, layer, payload, codec, keyframe,
               prev, sig, by)


def _check_h264(frame: VideoFrame) -> None:
    try:
        unit = h264.parse_access_unit(frame.data)
    except ValueError as exc:
        raise FieldError("payload", str(exc)) from None
    if unit.keyframe != frame.keyframe:
        raise FieldError("kf", f"says {frame.keyframe} but the H.264 frame "
                               f"{'is' if unit.keyframe else 'is not'} a keyframe")
    if unit.size is not None and unit.size != (frame.width, frame.height):
        raise FieldError("payload", f"H.264 picture is {unit.size[0]}x{unit.size[1]}, "
                                    f"the frame says {frame.width}x{frame.height}")


@dataclass(frozen=True, slots=True)
class LinkProof(_Base):
    """First message of the side that dialled, on every TLS link (peer or tracker).

    ``proof`` is the dialler's signature, by the key its ``peer_id`` names, of the
    public key the other side presented in the TLS handshake (see peer/trust/tls.py):
    it proves the dialler holds its id's key, and it is worthless on any other link.
    """

    KIND: ClassVar[MessageType] = MessageType.LINK_PROOF
    peer_id: str
    proof: str

    def to_meta(self) -> Meta:
        return {"id": self.peer_id, "proof": self.proof}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> LinkProof:
        return cls(peer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
                   proof=read_str(meta, "proof", limits.MAX_SIGNATURE_CHARS))


@dataclass(frozen=True, slots=True)
class KeyframeRequest(_Base):
    """Send me a keyframe of ``layer`` soon (I joined, switched parent or lost frames).

    Only a child asks its parent; the producer of that layer serves requests at most
    once per interval per layer (peer.node.codecs.keyframes), so a storm of them costs
    no more than a trickle.
    """

    KIND: ClassVar[MessageType] = MessageType.KEYFRAME_REQUEST
    layer: int

    def to_meta(self) -> Meta:
        return {"layer": self.layer}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> KeyframeRequest:
        return cls(layer=read_layer(meta))


@dataclass(frozen=True, slots=True)
class AudioFrame(_Base):
    """20 ms of Opus at 48 kHz. ``captured_at`` is on the root's clock: when the first
    sample this packet decodes to was captured (the same clock as VideoFrame's).
    ``sig``: the streamer's signature (protocol/stream_auth.py)."""

    KIND: ClassVar[MessageType] = MessageType.AUDIO_FRAME
    epoch: int
    seq: int
    captured_at: float
    opus: bytes = field(repr=False)
    sig: str = ""

    def to_meta(self) -> Meta:
        meta: Meta = {"e": self.epoch, "s": self.seq, "c": self.captured_at}
        if self.sig:
            meta["sig"] = self.sig
        return meta

    def payload(self) -> bytes:
        return self.opus

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> AudioFrame:
        try:
            duration_us = opus.packet_duration_us(payload)
        except ValueError as exc:
            raise FieldError("payload", f"not an Opus packet: {exc}") from exc
        if duration_us != limits.AUDIO_FRAME_US:
            raise FieldError("payload", f"Opus packet of {duration_us} us, expected "
                                  f"{limits.AUDIO_FRAME_US}")
        return cls(epoch=read_int(meta, "e"), seq=read_int(meta, "s"),
                   captured_at=read_float(meta, "c"), opus=payload,
                   sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS)
                   if "sig" in meta else "")


@dataclass(frozen=True, slots=True)
class FramePart(_Base):
    """One piece of a large encoded message (its exact wire bytes, header included),
    so that sound and control can pass between the pieces (peer/node/link.py,
    protocol/parts.py). ``offset`` is where ``data`` starts in the whole message,
    ``total`` the whole message's length in bytes."""

    KIND: ClassVar[MessageType] = MessageType.FRAME_PART
    offset: int
    total: int
    data: bytes = field(repr=False)

    def to_meta(self) -> Meta:
        return {"o": self.offset, "t": self.total}

    def payload(self) -> bytes:
        return self.data

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> FramePart:
        total = read_int(meta, "t", 1, limits.MAX_PARTS_TOTAL_BYTES)
        offset = read_int(meta, "o", 0, total - 1)
        if not payload:
            raise FieldError("payload", "an empty part")
        if offset + len(payload) > total:
            raise FieldError("payload", f"part at {offset} of {len(payload)} bytes "
                                        f"runs past the declared total {total}")
        return cls(offset=offset, total=total, data=payload)


@dataclass(frozen=True, slots=True)
class LayerDemand(_Base):
    """The largest layer my subtree needs from you (max of mine and my children's),
    and whether it wants sound."""

    KIND: ClassVar[MessageType] = MessageType.LAYER_DEMAND
    layer: int
    # The subtree takes less than ``layer`` when the path cannot carry it (the
    # viewer chose "auto"): the parent picks from the child's send backlog.
    auto: bool = False
    # Someone in the subtree plays, records or relays sound to one who does. A subtree
    # of silent viewers (headless, not recording) gets none: 50 packets a second it
    # would only count. A peer that predates the field asks for sound (absent: True).
    sound: bool = True

    def to_meta(self) -> Meta:
        return {"layer": self.layer, "auto": self.auto, "snd": self.sound}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> LayerDemand:
        auto = False if meta.get("auto") is None else read_bool(meta, "auto")
        return cls(layer=read_demand(meta), auto=auto, sound=read_sound_demand(meta))


@dataclass(frozen=True, slots=True)
class Chat(_Base):
    """A chat line; ``msg_id`` is ``origin_id:counter`` and unique in the room.

    ``sig`` is the author's signature of the other fields (base64; see
    peer/node/chat.py): receivers drop a line whose signature does not verify
    against ``origin_id``, which is the author's public key.
    """

    KIND: ClassVar[MessageType] = MessageType.CHAT
    msg_id: str
    origin_id: str
    origin_name: str
    sent_at: float
    text: str
    sig: str = ""

    def to_meta(self) -> Meta:
        check_len("chat text", self.text, limits.MAX_CHAT_CHARS)
        return {"id": self.msg_id, "oid": self.origin_id, "from": self.origin_name,
                "t": self.sent_at, "text": self.text, "sig": self.sig}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Chat:
        return cls(
            msg_id=read_str(meta, "id", 2 * limits.MAX_ID_CHARS, allow_empty=False),
            origin_id=read_str(meta, "oid", limits.MAX_ID_CHARS, allow_empty=False),
            origin_name=read_str(meta, "from", limits.MAX_NAME_CHARS),
            sent_at=read_float(meta, "t"),
            text=read_str(meta, "text", limits.MAX_CHAT_CHARS, text=True),
            # Absent from older peers: such a line is unsigned and will be dropped.
            sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS) if "sig" in meta else "",
        )


@dataclass(frozen=True, slots=True)
class ChatHave(_Base):
    """Backfill offer: the chat ids I hold. The other side sends what I lack."""

    KIND: ClassVar[MessageType] = MessageType.CHAT_HAVE
    msg_ids: tuple[str, ...]

    def to_meta(self) -> Meta:
        return {"ids": list(self.msg_ids)}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> ChatHave:
        ids = read_list(meta, "ids", limits.MAX_CHAT_IDS)
        if not all(isinstance(i, str) and 0 < len(i) <= 2 * limits.MAX_ID_CHARS for i in ids):
            raise FieldError("ids", "expected a list of chat ids")
        for i in ids:
            check_text("ids", i)  # type: ignore[arg-type]
        return cls(msg_ids=tuple(ids))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Ping(_Base):
    """Clock probe: ``t0`` is the sender's clock when sent."""

    KIND: ClassVar[MessageType] = MessageType.PING
    t0: float

    def to_meta(self) -> Meta:
        return {"t0": self.t0}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Ping:
        return cls(t0=read_float(meta, "t0"))


@dataclass(frozen=True, slots=True)
class Pong(_Base):
    """Clock answer (NTP style): echo ``t0``, my receive ``t1`` and send ``t2`` times,
    and ``root_offset``: root clock minus my clock, as I estimate it."""

    KIND: ClassVar[MessageType] = MessageType.PONG
    t0: float
    t1: float
    t2: float
    root_offset: float | None = None

    def to_meta(self) -> Meta:
        return {"t0": self.t0, "t1": self.t1, "t2": self.t2, "ro": self.root_offset}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Pong:
        ro = read_opt_float(meta, "ro")
        return cls(t0=read_float(meta, "t0"), t1=read_float(meta, "t1"), t2=read_float(meta, "t2"),
                   root_offset=ro)


@dataclass(frozen=True, slots=True)
class Bye(_Base):
    """I am closing this link, and why. ``candidates`` tell children where to go."""

    KIND: ClassVar[MessageType] = MessageType.BYE
    reason: str
    candidates: tuple[Candidate, ...] = ()
    code: int = 0

    def to_meta(self) -> Meta:
        return {"reason": self.reason[: limits.MAX_REASON_CHARS],
                "candidates": [c.to_meta() for c in self.candidates], "code": self.code}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Bye:
        return cls(reason=read_str(meta, "reason", limits.MAX_REASON_CHARS, text=True),
                   candidates=read_nested(meta, "candidates", limits.MAX_CANDIDATES,
                                      Candidate.from_meta),
                   code=read_int(meta, "code", 0, 255))


@dataclass(frozen=True, slots=True)
class Error(_Base):
    """A refusal that does not necessarily close the link (e.g. rate limited chat)."""

    KIND: ClassVar[MessageType] = MessageType.ERROR
    code: int
    reason: str

    def to_meta(self) -> Meta:
        return {"code": self.code, "reason": self.reason[: limits.MAX_REASON_CHARS]}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Error:
        return cls(code=read_int(meta, "code", 0, 255),
                   reason=read_str(meta, "reason", limits.MAX_REASON_CHARS, text=True))


# --- tracker messages -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Register(_Base):
    """Join a room at the tracker. ``host``/``port`` is where I accept children.

    A peer that re-registers (its tracker restarted, or it moved to another tracker)
    says where it already sits in the tree (``depth``, ``free_slots``, ``parent_id``,
    ``layer``, as in Heartbeat), so the tracker rebuilds the room from the
    re-registrations at once instead of from the next heartbeats.

    ``relay``: a ``--relay`` peer (watches nothing, forwards with a high fan-out, meant
    for a public host); the tracker offers such peers first as join candidates. Only a
    preference: the tracker's connect-back and the free slots still decide, so
    claiming it gains a peer nothing it could not get by claiming free slots.
    """

    KIND: ClassVar[MessageType] = MessageType.REGISTER
    peer_id: str
    name: str
    room: str
    host: str | None
    port: int | None
    versions: tuple[int, ...] = limits.SUPPORTED_VERSIONS
    depth: int | None = None
    free_slots: int = 0
    parent_id: str | None = None
    layer: int | None = None
    relay: bool = False

    def to_meta(self) -> Meta:
        check_len("name", self.name, limits.MAX_NAME_CHARS)
        check_len("room", self.room, limits.MAX_ROOM_CHARS)
        return {"id": self.peer_id, "name": self.name, "room": self.room,
                "host": self.host, "port": self.port, "versions": list(self.versions),
                "depth": self.depth, "free": self.free_slots, "parent": self.parent_id,
                "layer": self.layer, "relay": self.relay}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Register:
        return cls(
            peer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS, allow_empty=False),
            room=read_str(meta, "room", limits.MAX_ROOM_CHARS, allow_empty=False),
            host=read_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=read_opt_port(meta),
            versions=read_versions(meta),
            # Older peers send no position: a fresh registration.
            depth=read_opt_int(meta, "depth", 0, limits.MAX_PATH_LEN),
            free_slots=read_opt_int(meta, "free", 0, limits.MAX_FREE_SLOTS) or 0,
            parent_id=read_opt_str(meta, "parent", limits.MAX_ID_CHARS),
            layer=read_opt_layer(meta),
            # Older peers do not say: not a relay.
            relay=meta.get("relay") is not None and read_bool(meta, "relay"),
        )


@dataclass(frozen=True, slots=True)
class PeerList(_Base):
    """The room as the tracker sees it, sent on register and whenever it changes.

    A small room is listed whole (``peers`` is everyone, ``total == len(peers)``). A
    room larger than one list can carry is sent in a bounded form: ``peers`` holds the
    receiver, the streamer and a few join candidates chosen for the receiver, ``total``
    the room's size and ``levels`` the tree in aggregate (peers and free slots per
    depth), so a list's size and the tracker's work per peer do not grow with the room.
    ``your_id``/``your_name`` are set in the reply to Register: the id and the display
    name the tracker registered (a name already taken in the room gets a suffix).
    """

    KIND: ClassVar[MessageType] = MessageType.PEER_LIST
    room: str
    peers: tuple[PeerInfo, ...]
    streamer_id: str | None = None
    streamer_name: str | None = None
    epoch: int = 0
    your_id: str | None = None
    total: int = 0
    levels: tuple[TreeLevel, ...] = ()
    your_name: str | None = None

    @property
    def room_size(self) -> int:
        """Peers in the room (an older tracker sends no total: its list is complete)."""
        return max(self.total, len(self.peers))

    @property
    def complete(self) -> bool:
        """Whether ``peers`` lists the whole room."""
        return self.room_size == len(self.peers)

    def to_meta(self) -> Meta:
        return {"room": self.room, "peers": [p.to_meta() for p in self.peers],
                "streamer_id": self.streamer_id, "streamer_name": self.streamer_name,
                "epoch": self.epoch, "you": self.your_id, "total": self.total,
                "levels": [level.to_meta() for level in self.levels],
                "you_name": self.your_name}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PeerList:
        levels: tuple[TreeLevel, ...] = ()
        if meta.get("levels") is not None:
            levels = read_nested(meta, "levels", limits.MAX_PATH_LEN + 1, TreeLevel.from_meta)
        return cls(
            room=read_str(meta, "room", limits.MAX_ROOM_CHARS),
            peers=read_nested(meta, "peers", limits.MAX_ROOM_PEERS, PeerInfo.from_meta),
            streamer_id=read_opt_str(meta, "streamer_id", limits.MAX_ID_CHARS),
            streamer_name=read_opt_str(meta, "streamer_name", limits.MAX_NAME_CHARS),
            epoch=read_int(meta, "epoch"),
            your_id=read_opt_str(meta, "you", limits.MAX_ID_CHARS),
            # Older trackers send neither: their list is the whole room.
            total=read_opt_int(meta, "total", 0, limits.MAX_TRACKER_ROOM_PEERS) or 0,
            levels=levels,
            your_name=read_opt_str(meta, "you_name", limits.MAX_NAME_CHARS),
        )


@dataclass(frozen=True, slots=True)
class Heartbeat(_Base):
    """I am alive (renews my registration and, if I stream, my lease), and where I
    sit in the tree (for everyone's tree view). ``depth`` None: not in the tree yet.
    ``sent_at`` is the sender's own clock; the tracker echoes it in StreamGranted."""

    KIND: ClassVar[MessageType] = MessageType.HEARTBEAT
    depth: int | None = None
    free_slots: int = 0
    parent_id: str | None = None
    layer: int | None = None
    sent_at: float | None = None

    def to_meta(self) -> Meta:
        return {"depth": self.depth, "free": self.free_slots, "parent": self.parent_id,
                "layer": self.layer, "t": self.sent_at}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> Heartbeat:
        depth = read_opt_int(meta, "depth", 0, limits.MAX_PATH_LEN)
        return cls(depth=depth, free_slots=read_int(meta, "free", 0, limits.MAX_FREE_SLOTS),
                   parent_id=read_opt_str(meta, "parent", limits.MAX_ID_CHARS),
                   layer=read_opt_layer(meta),
                   sent_at=read_opt_float(meta, "t"))


@dataclass(frozen=True, slots=True)
class StreamClaim(_Base):
    """Ask for the room's streamer lock. ``sent_at``: as in Heartbeat.

    A holder that lost its tracker link (a tracker restart, a failover, a freeze)
    re-claims its lock with ``resume_epoch`` (the epoch it streams under) and
    ``token`` (the secret its grant carried, proof that it is that holder): it keeps
    its epoch if nobody took the lock meanwhile, and is denied otherwise.
    """

    KIND: ClassVar[MessageType] = MessageType.STREAM_CLAIM
    sent_at: float | None = None
    resume_epoch: int | None = None
    token: str | None = None

    def to_meta(self) -> Meta:
        return {"t": self.sent_at, "resume": self.resume_epoch, "token": self.token}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamClaim:
        return cls(sent_at=read_opt_float(meta, "t"),
                   resume_epoch=read_opt_int(meta, "resume", 1),
                   token=read_opt_str(meta, "token", limits.MAX_ID_CHARS))


@dataclass(frozen=True, slots=True)
class StreamGranted(_Base):
    """You hold the lock; ``epoch`` is the fencing token, renew within ``lease_s``.

    ``request_sent_at`` echoes the ``sent_at`` of the claim or heartbeat this answers.
    The tracker's lease runs from when it *received* that request, which is after it
    was sent, so ``request_sent_at + lease_s`` on the holder's clock never outlives
    the tracker's lease, whatever the network delay.
    """

    KIND: ClassVar[MessageType] = MessageType.STREAM_GRANTED
    epoch: int
    lease_s: float
    request_sent_at: float | None = None
    token: str | None = None  # the holder's proof for a later resume (StreamClaim)

    def to_meta(self) -> Meta:
        return {"epoch": self.epoch, "lease": self.lease_s, "rt": self.request_sent_at,
                "token": self.token}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamGranted:
        lease = read_float(meta, "lease")
        if lease <= 0:
            raise FieldError("lease", "must be positive")
        return cls(epoch=read_int(meta, "epoch", 1), lease_s=lease,
                   request_sent_at=read_opt_float(meta, "rt"),
                   token=read_opt_str(meta, "token", limits.MAX_ID_CHARS))


class DenyReason(IntEnum):
    """Why a stream claim was refused (the peer words it for its user)."""

    HELD = 0  # the holder named in the answer streams
    RECOVERING = 1  # a restarted tracker waits for the previous streamer to resume
    NO_STORE = 2  # the trackers' shared store does not answer: nobody can grant now
    SUPERSEDED = 3  # a resume of an epoch a newer stream has replaced


@dataclass(frozen=True, slots=True)
class StreamDenied(_Base):
    """The lock is not yours: someone else streams, or it cannot be granted now."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_DENIED
    holder_id: str
    holder_name: str
    reason: DenyReason = DenyReason.HELD

    def to_meta(self) -> Meta:
        return {"holder_id": self.holder_id, "holder": self.holder_name,
                "why": int(self.reason)}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamDenied:
        return cls(holder_id=read_str(meta, "holder_id", limits.MAX_ID_CHARS),
                   holder_name=read_str(meta, "holder", limits.MAX_NAME_CHARS),
                   reason=DenyReason(read_int(meta, "why", 0, max(DenyReason))))


@dataclass(frozen=True, slots=True)
class StreamRelease(_Base):
    """I stop streaming; the lock is free."""

    KIND: ClassVar[MessageType] = MessageType.STREAM_RELEASE

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamRelease:
        return cls()


@dataclass(frozen=True, slots=True)
class StreamerChanged(_Base):
    """The room's streamer changed (None: nobody streams). Sent to everyone."""

    KIND: ClassVar[MessageType] = MessageType.STREAMER_CHANGED
    streamer_id: str | None
    streamer_name: str | None
    epoch: int
    host: str | None = None
    port: int | None = None

    def to_meta(self) -> Meta:
        return {"id": self.streamer_id, "name": self.streamer_name, "epoch": self.epoch,
                "host": self.host, "port": self.port}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StreamerChanged:
        return cls(
            streamer_id=read_opt_str(meta, "id", limits.MAX_ID_CHARS),
            streamer_name=read_opt_str(meta, "name", limits.MAX_NAME_CHARS),
            epoch=read_int(meta, "epoch"),
            host=read_opt_str(meta, "host", limits.MAX_HOST_CHARS),
            port=read_opt_port(meta),
        )


@dataclass(frozen=True, slots=True)
class RoomQuery(_Base):
    """Look at a room without joining it (the start screen); answered by a PeerList."""

    KIND: ClassVar[MessageType] = MessageType.ROOM_QUERY
    room: str

    def to_meta(self) -> Meta:
        return {"room": self.room}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> RoomQuery:
        return cls(room=read_str(meta, "room", limits.MAX_ROOM_CHARS, allow_empty=False))


@dataclass(frozen=True, slots=True)
class RoomListQuery(_Base):
    """Which rooms are there? (the start screen's room browser); answered by RoomList."""

    KIND: ClassVar[MessageType] = MessageType.ROOM_LIST_QUERY

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> RoomListQuery:
        return cls()


@dataclass(frozen=True, slots=True)
class StatusQuery(_Base):
    """An operator asks a tracker how it is (``treecast-tracker --status``)."""

    KIND: ClassVar[MessageType] = MessageType.STATUS_QUERY

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> StatusQuery:
        return cls()


@dataclass(frozen=True, slots=True)
class RoomList(_Base):
    """The tracker's rooms, busiest first, at most MAX_LISTED_ROOMS; ``total`` counts all."""

    KIND: ClassVar[MessageType] = MessageType.ROOM_LIST
    rooms: tuple[RoomSummary, ...]
    total: int = 0

    def to_meta(self) -> Meta:
        return {"rooms": [r.to_meta() for r in self.rooms], "total": self.total}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> RoomList:
        rooms = read_nested(meta, "rooms", limits.MAX_LISTED_ROOMS, RoomSummary.from_meta)
        total = read_int(meta, "total", 0, limits.MAX_ROOM_COUNT)
        return cls(rooms=rooms, total=max(total, len(rooms)))


@dataclass(frozen=True, slots=True)
class TrackerStatus(_Base):
    """A tracker's answer to StatusQuery: its store's health and its largest rooms.

    ``rooms`` lists at most ``limits.MAX_STATUS_ROOMS`` rooms, largest first;
    ``rooms_total`` says how many there are.
    """

    KIND: ClassVar[MessageType] = MessageType.TRACKER_STATUS
    tracker_id: str
    store: str
    store_ok: bool
    connections: int
    rooms: tuple[RoomStatus, ...]
    rooms_total: int

    def to_meta(self) -> Meta:
        return {"tracker": self.tracker_id, "store": self.store, "ok": self.store_ok,
                "conns": self.connections, "rooms": [r.to_meta() for r in self.rooms],
                "rooms_total": self.rooms_total}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> TrackerStatus:
        return cls(
            tracker_id=read_str(meta, "tracker", limits.MAX_ID_CHARS),
            store=read_str(meta, "store", limits.MAX_REASON_CHARS, text=True),
            store_ok=read_bool(meta, "ok"),
            connections=read_int(meta, "conns"),
            rooms=read_nested(meta, "rooms", limits.MAX_STATUS_ROOMS, RoomStatus.from_meta),
            rooms_total=read_int(meta, "rooms_total"),
        )


@dataclass(frozen=True, slots=True)
class PunchRequest(_Base):
    """Ask the tracker to coordinate a TCP hole punch with ``peer_id`` (issue 15).

    From a peer nobody can dial to another such peer in its room that could be its
    parent; the tracker answers both with ``PunchStart`` or refuses with ``Error``.
    """

    KIND: ClassVar[MessageType] = MessageType.PUNCH_REQUEST
    peer_id: str

    def to_meta(self) -> Meta:
        return {"id": self.peer_id}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PunchRequest:
        return cls(peer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False))


@dataclass(frozen=True, slots=True)
class PunchStart(_Base):
    """The tracker to both sides of a hole punch: dial ``host:port`` (the other's
    address as the tracker sees it) from your listening port ``start_in_ms`` from now.

    ``requester``: True for the peer that asked (it will be the child), False for the
    one asked (the parent: it dials as for a connection reversal).
    """

    KIND: ClassVar[MessageType] = MessageType.PUNCH_START
    peer_id: str
    name: str
    host: str
    port: int
    start_in_ms: int
    requester: bool

    def to_meta(self) -> Meta:
        return {"id": self.peer_id, "name": self.name, "host": self.host,
                "port": self.port, "start_in_ms": self.start_in_ms,
                "requester": self.requester}

    @classmethod
    def from_meta(cls, meta: Meta, payload: bytes) -> PunchStart:
        return cls(
            peer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            name=read_str(meta, "name", limits.MAX_NAME_CHARS),
            host=read_str(meta, "host", limits.MAX_HOST_CHARS, allow_empty=False),
            port=read_int(meta, "port", 1, 65535),
            start_in_ms=read_int(meta, "start_in_ms", 0, limits.MAX_PUNCH_DELAY_MS),
            requester=read_bool(meta, "requester"),
        )


@dataclass(frozen=True, slots=True)
class Unknown:
    """A kind this build does not know; receivers skip it (forward compatibility)."""

    kind: int
    meta: Meta
    payload: bytes = field(repr=False)


Message = (
    Hello | JoinRequest | Accept | PathUpdate | Playback | Redirect | VideoFrame
    | KeyframeRequest | AudioFrame | FramePart | LayerDemand | Chat
    | ChatHave | Ping | Pong | Bye | Error | Register | PeerList | Heartbeat | StreamClaim
    | StreamGranted | StreamDenied | StreamRelease | StreamerChanged | RoomQuery
    | RoomListQuery | RoomList
    | StatusQuery | TrackerStatus | LinkProof | PunchRequest | PunchStart
    | StreamAnnounce
)

_CLASSES: dict[int, type[_Base]] = {
    cls.KIND: cls
    for cls in (
        Hello, JoinRequest, Accept, PathUpdate, Playback, Redirect, VideoFrame,
        KeyframeRequest, AudioFrame, FramePart, LayerDemand, Chat,
        ChatHave, Ping, Pong, Bye, Error, Register, PeerList, Heartbeat, StreamClaim,
        StreamGranted, StreamDenied, StreamRelease, StreamerChanged, RoomQuery,
        RoomListQuery, RoomList,
        StatusQuery, TrackerStatus, LinkProof, PunchRequest, PunchStart,
        StreamAnnounce,
    )
}


def message_class(kind: int) -> type[_Base] | None:
    """The class for a wire code, or None for kinds this build does not know."""
    return _CLASSES.get(kind)
