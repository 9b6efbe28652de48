"""What the streamer signs, and how a receiver checks it (issue 13, item 3).

Theory of operation
-------------------
A relay used to be able to swap in its own pictures, or send one frame with a huge
epoch that made its children fence off every genuine frame for good. Now the stream is
signed by the key of the peer holding the tracker's lock (its id *is* that key):

* ``Announcement``: streamer id, epoch, codec, source size and rate, the layers the
  source offers, start time; signed by the streamer. It rides in every ``Accept`` and,
  when it changes while a link stays up, in a ``StreamAnnounce`` from the parent. A
  receiver adopts it only when the signature verifies *and* its streamer is the lock
  holder the directory reports: an epoch from a neighbour is believed only inside it.
* ``VideoFrame.sig``: the streamer's signature of the frame's header fields and the
  SHA-256 of its bytes (``frame_bytes``). Every frame is signed on its own, so a
  frame verifies no matter which others a drop-oldest queue threw away, and no frame
  waits for a later one: verification adds no delay.
* A transcoded frame (a relay made a lower layer) cannot carry the streamer's
  signature. It carries the relay's (``by``, ``sig``) and ``src``: the streamer-signed
  header of the frame it was made from (``SourceProof``: that frame's size, layer,
  codec, chain fields, digest and the streamer's signature; epoch, seq and capture
  time are shared with the output). A receiver checks both signatures and that the
  source layer is higher. It *cannot* check that the pixels are a rendition of that
  source: a transcoding relay is trusted for its pictures (docs/ARCHITECTURE.md).
* ``AudioFrame.sig``: the streamer's signature of epoch, seq, capture time and the
  Opus bytes (a packet is ~100 bytes: no digest needed).
* ``Playback.sig``: the streamer's signature of a pause/seek notice with its time
  ``at`` (a relay could otherwise claim a pause, and its children would neither
  expect frames nor leave it for sending none).

Signatures are Ed25519 (``protocol.identity``), domain-separated per purpose, base64
on the wire like chat's. Public keys are parsed once per id (``_public_key``, a small
bounded cache): at 80 verifications a second per relay the parse would otherwise cost
as much as the check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from protocol import limits
from protocol.errors import FieldError
from protocol.fields import (
    Meta,
    read_bool,
    read_codec,
    read_float,
    read_int,
    read_layer,
    read_list,
    read_str,
)
from protocol.identity import Identity, IdentityError, public_key_of, verify_key

__all__ = [
    "ANNOUNCE_CONTEXT",
    "AUDIO_CONTEXT",
    "PLAYBACK_CONTEXT",
    "TRANSCODE_CONTEXT",
    "VIDEO_CONTEXT",
    "Announcement",
    "SourceProof",
    "announcement_problem",
    "audio_bytes",
    "frame_bytes",
    "playback_bytes",
    "sign_b64",
    "verify_b64",
]

ANNOUNCE_CONTEXT = b"treecast-announce\0"
VIDEO_CONTEXT = b"treecast-video\0"
TRANSCODE_CONTEXT = b"treecast-transcode\0"
AUDIO_CONTEXT = b"treecast-audio\0"
PLAYBACK_CONTEXT = b"treecast-playback\0"
DIGEST_BYTES = 32


def frame_bytes(epoch: int, seq: int, captured_at: float, width: int, height: int,
                layer: int, codec: str, keyframe: bool, prev: int, digest: bytes) -> bytes:
    """What a video frame's signature covers: its header fields and its data's digest.

    Text, not struct: epochs and seqs are JSON integers of any size, and ``repr`` of a
    float survives the JSON round trip exactly, so both sides build the same bytes.
    """
    head = f"{epoch} {seq} {captured_at!r} {width} {height} {layer} {codec} " \
           f"{int(keyframe)} {prev}"
    return head.encode("ascii") + b"\0" + digest


def audio_bytes(epoch: int, seq: int, captured_at: float, opus: bytes) -> bytes:
    """What a sound packet's signature covers (the packet is small: no digest)."""
    return f"{epoch} {seq} {captured_at!r}".encode("ascii") + b"\0" + opus


def playback_bytes(epoch: int, paused: bool, position_ms: int, duration_ms: int | None,
                   at: float) -> bytes:
    """What a pause/seek notice's signature covers (``at`` orders them)."""
    return f"{epoch} {int(paused)} {position_ms} {duration_ms} {at!r}".encode("ascii")


def digest(data: bytes) -> bytes:
    """The digest a frame signature covers instead of the (large) frame bytes."""
    return hashlib.sha256(data).digest()


def sign_b64(identity: Identity, context: bytes, data: bytes) -> str:
    """``identity``'s signature of ``data`` for ``context``, base64 for the wire."""
    return base64.b64encode(identity.sign(context, data)).decode("ascii")


@lru_cache(maxsize=256)
def _public_key(peer_id: str) -> bytes | None:
    # Bounded: a relay sees the streamer and a few transcoding relays; 256 ids of
    # forged traffic cost at most 256 small keys.
    try:
        return public_key_of(peer_id)
    except IdentityError:
        return None


def _b64(text: str, size: int) -> bytes | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


def verify_b64(peer_id: str, sig: str, context: bytes, data: bytes) -> bool:
    """Whether ``sig`` (base64) is ``peer_id``'s signature of ``data`` for ``context``.

    Never raises for remote input: a malformed id or signature is simply not valid.
    """
    key = _public_key(peer_id)
    raw = _b64(sig, 64)
    if key is None or raw is None:
        return False
    return verify_key(key, raw, context, data)


@dataclass(frozen=True, slots=True)
class Announcement:
    """The streamer's signed description of its stream.

    ``layers``: the layer heights the source offers (a viewer may ask for any of
    them); ``started_at``: when the stream started, on the streamer's clock.
    """

    streamer_id: str
    epoch: int
    codec: str
    width: int
    height: int
    fps: float
    layers: tuple[int, ...]
    started_at: float
    sig: str = ""

    def signed_bytes(self) -> bytes:
        """Every field but the signature, in one fixed encoding."""
        return json.dumps([self.streamer_id, self.epoch, self.codec, self.width,
                           self.height, self.fps, list(self.layers), self.started_at],
                          separators=(",", ":")).encode("utf-8")

    @classmethod
    def make(cls, identity: Identity, *, epoch: int, codec: str, width: int, height: int,
             fps: float, layers: tuple[int, ...], started_at: float) -> Announcement:
        """The announcement of ``identity``'s stream, signed."""
        unsigned = cls(identity.peer_id, epoch, codec, width, height, fps, layers,
                       started_at)
        return cls(unsigned.streamer_id, epoch, codec, width, height, fps, layers,
                   started_at, sign_b64(identity, ANNOUNCE_CONTEXT, unsigned.signed_bytes()))

    def verifies(self) -> bool:
        """Whether the signature is the named streamer's."""
        return verify_b64(self.streamer_id, self.sig, ANNOUNCE_CONTEXT, self.signed_bytes())

    def to_meta(self) -> Meta:
        return {"id": self.streamer_id, "e": self.epoch, "cd": self.codec,
                "w": self.width, "h": self.height, "fps": self.fps,
                "layers": list(self.layers), "t": self.started_at, "sig": self.sig}

    @classmethod
    def from_meta(cls, meta: Meta) -> Announcement:
        raw_layers = read_list(meta, "layers", len(limits.LAYERS))
        layers = tuple(read_layer({"layer": v}, "layer") for v in raw_layers)
        fps = read_float(meta, "fps")
        if not 0.0 < fps <= 1000.0:
            raise FieldError("fps", f"{fps} outside (0, 1000]")
        return cls(
            streamer_id=read_str(meta, "id", limits.MAX_ID_CHARS, allow_empty=False),
            epoch=read_int(meta, "e"),
            codec=read_codec(meta),
            width=read_int(meta, "w", 0, limits.MAX_DIMENSION_PX),
            height=read_int(meta, "h", 0, limits.MAX_DIMENSION_PX),
            fps=fps,
            layers=layers,
            started_at=read_float(meta, "t"),
            sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS),
        )


def announcement_problem(ann: Announcement | None, streamer_id: str | None) -> str | None:
    """Why ``ann`` may not be believed for the stream of ``streamer_id`` (the lock
    holder the directory reports), or None when it may."""
    if ann is None:
        return "no signed stream announcement"
    if streamer_id is None:
        return "a stream announcement while no streamer holds the lock"
    if ann.streamer_id != streamer_id:
        return "a stream announcement from a peer that does not hold the lock"
    if not ann.verifies():
        return "a stream announcement whose signature does not verify"
    return None


@dataclass(frozen=True, slots=True)
class SourceProof:
    """The streamer-signed header of the frame a transcoded frame was made from.

    Epoch, seq and capture time are the transcoded frame's own (a relay keeps them);
    the rest are the source frame's, with its digest and the streamer's signature.
    """

    width: int
    height: int
    layer: int
    codec: str
    keyframe: bool
    prev: int
    digest: str
    sig: str

    def signed_bytes(self, epoch: int, seq: int, captured_at: float) -> bytes | None:
        """What the streamer signed for the source frame (None: malformed digest)."""
        raw = _b64(self.digest, DIGEST_BYTES)
        if raw is None:
            return None
        return frame_bytes(epoch, seq, captured_at, self.width, self.height, self.layer,
                           self.codec, self.keyframe, self.prev, raw)

    def to_meta(self) -> Meta:
        return {"w": self.width, "h": self.height, "layer": self.layer, "cd": self.codec,
                "kf": self.keyframe, "p": self.prev, "dg": self.digest, "sig": self.sig}

    @classmethod
    def from_meta(cls, meta: Meta) -> SourceProof:
        return cls(
            width=read_int(meta, "w", 1, limits.MAX_DIMENSION_PX),
            height=read_int(meta, "h", 1, limits.MAX_DIMENSION_PX),
            layer=read_layer(meta),
            codec=read_codec(meta),
            keyframe=read_bool(meta, "kf"),
            prev=read_int(meta, "p", -1),
            digest=read_str(meta, "dg", limits.MAX_DIGEST_CHARS),
            sig=read_str(meta, "sig", limits.MAX_SIGNATURE_CHARS),
        )
