"""Treecast's mDNS / DNS-SD records, sans-IO: service types, the peer TXT record and
the tracker-less streamer lock.

Theory of operation
-------------------
Every peer advertises one ``_treecast._tcp.local.`` service. Its TXT record carries who
the peer is and where it sits in the tree (id, name, room, role, depth, free slots,
protocol version, streamer claim time); its SRV and A records say where it listens. A
tracker on the LAN advertises ``_treecast-trk._tcp.local.``. The sockets, zeroconf and
interface addresses live in ``peer/lan/`` (advertiser, browser, address choice); this
module only turns records into values and back, so it is tested without a network.

Liveness. A peer that quits sends goodbye packets (TTL 0) and vanishes from every view
at once. A peer that crashes sends nothing, so liveness rests on short record lifetimes:

* Our records carry a TTL of ``RECORD_TTL_S`` (10 s) instead of the RFC 6762 defaults
  (120 s host, 75 min other), and advertisers re-announce them unsolicited every
  ``REFRESH_S`` (3 s), so two lost announcements in a row are survived.
* A browser counts a service as live only while its SRV, TXT and A records are in its
  cache, unexpired, and refreshed within ``MAX_RECORD_AGE_S``. It re-checks every
  ``SWEEP_S``, so a crashed peer drops out of its view within about 11 s.
* We cannot rely on the PTR record for this: python-zeroconf raises every received PTR
  TTL to at least 1125 s (``_DNS_PTR_MIN_TTL``, to rate-limit its refresh queries), so
  a crashed peer's PTR stays cached for ~19 minutes. The PTR only tells us which names
  to look at; the TXT/SRV/A freshness decides who is live. (Refreshing records by
  periodic announcement is more chatty than RFC 6762 intends, but one ~300-byte packet
  per peer every 3 s is nothing on a LAN, and it is the only way to notice a crash in
  seconds without every browser polling every peer.)

Rooms without a tracker. The streamer lock is best effort and lives in the TXT records:
a streamer advertises ``role=streamer`` with ``claim`` = the wall-clock millisecond at
which it started; ``claim`` is also the stream epoch in LAN mode. The node should:

1. Browse for ``LAN_CLAIM_WAIT_S`` before claiming. If ``lan_streamer(peers(room))``
   is another live peer, refuse with ``LockDeniedError(holder.name)``.
2. Otherwise advertise itself as streamer with ``claim`` = now in ms.
3. On every change of the view, recompute ``lan_streamer(peers(room))``. Two streamers
   that started at once both see each other as soon as the other's record lands
   (records are multicast the moment they change); ``streamer_wins`` is deterministic
   (earlier claim, then lower id), so both agree and the loser steps down (advertises
   itself as a viewer) within a second of seeing the winner.

Since the winner is the EARLIER claim, LAN epochs do not grow with each takeover the way
tracker epochs do: viewers should accept frames whose epoch equals the current LAN
streamer's claim, not "the newest epoch seen".

A browser sees its own process's advertisements too (multicast loops back): callers
filter out their own id.

Signed records. Anyone on the LAN can multicast our service type, so every peer
record carries ``sig``: its id's Ed25519 signature over every other TXT entry and the
SRV port (``record_bytes``). A record that does not verify against the id it names is
malformed and ignored, so nobody can advertise in another peer's name (step a streamer
down, or list a victim's address under a live peer's id). The A record is not covered:
an advertiser fills in its addresses per interface; a forged address only leads a
dialer to a TLS handshake that fails the id check.

Signatures do not stop a stranger from claiming a room with a key of its own and a
claim time in the past. ``claim_is_backdated`` lets a peer that already watches a
streamer ignore a claim that first appears long after the time it states (an honest
claim is multicast the moment it is made); a peer that arrives later cannot tell, and
there is no arbiter without a tracker (README, "What Treecast protects against").
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from protocol import limits
from protocol.fields import control_chars
from protocol.identity import SIGNATURE_BYTES, Identity, verify
from protocol.records import Candidate

__all__ = [
    "CLAIM_SLACK_MS",
    "LAN_CLAIM_WAIT_S",
    "MAX_LABEL_BYTES",
    "MAX_RECORD_AGE_S",
    "RECORD_TTL_S",
    "REFRESH_S",
    "ROLES",
    "SERVICE_TYPE",
    "SWEEP_S",
    "TRACKER_SERVICE_TYPE",
    "LanPeer",
    "MalformedRecordError",
    "Role",
    "claim_is_backdated",
    "decode_txt",
    "encode_txt",
    "instance_label",
    "lan_streamer",
    "parse_txt",
    "record_bytes",
    "streamer_wins",
    "truncate_utf8",
]

SERVICE_TYPE = "_treecast._tcp.local."
# Not "_treecast-tracker": RFC 6335 5.1 caps service names at 15 characters, and
# python-zeroconf (like Bonjour) refuses to register a longer one.
TRACKER_SERVICE_TYPE = "_treecast-trk._tcp.local."

# Lifetime of our SRV/TXT/A records (and PTR, though python-zeroconf receivers stretch
# that one to 1125 s). Short so that a crashed peer disappears in seconds, not minutes.
RECORD_TTL_S = 10
# Unsolicited re-announcement period: a third of the TTL, so records survive two lost
# multicast packets in a row before they expire.
REFRESH_S = 3.0
# A record not refreshed for this long is stale even if its TTL says otherwise (a
# foreign responder could announce with the 75-minute default).
MAX_RECORD_AGE_S = float(RECORD_TTL_S)
# How often a browser re-reads its cache to notice expired records.
SWEEP_S = 1.0
# How long a would-be streamer browses before claiming a tracker-less room: peers answer
# a browser's first query within ~0.1-0.5 s; 1.5 s leaves room for a loaded machine.
LAN_CLAIM_WAIT_S = 1.5
# Claim times are milliseconds since the epoch; bounded like the wire's epoch field.
MAX_CLAIM_MS = 2**53
# The header's version field is one byte.
MAX_VERSION = 255
# A DNS label (the service instance name) is at most 63 bytes (RFC 1035 2.3.4).
MAX_LABEL_BYTES = 63
# One TXT string is length-prefixed by a single byte (RFC 6763 6.1).
MAX_TXT_ITEM_BYTES = 255
# Domain separation for the record signature (see protocol/identity.py).
LAN_RECORD_CONTEXT = b"treecast-lan-record\0"
# An honest claim reaches every browser within a second or two of being made (records
# are multicast on change); one first seen later than this after its stated time was
# made up, if the browser was already watching the room.
CLAIM_SLACK_MS = 10_000
# Browsers re-read every record once a second: remember recent verdicts so a room of
# a few hundred peers costs no Ed25519 work at steady state.
_VERIFIED_CACHE = 1024

Role = Literal["streamer", "viewer"]
ROLES: tuple[Role, ...] = ("streamer", "viewer")

# Digits only: int() would also take " 7", "+7", "1_0" and non-ASCII digits.
_UINT = re.compile(rb"[0-9]{1,16}")


class MalformedRecordError(ValueError):
    """A TXT record is missing a key or a value does not parse or is out of range.

    Anything on the LAN may advertise our service type, so browsers ignore such a
    record (logging it at debug level); it never ends discovery.
    """


def _check_text(field: str, value: str, max_chars: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    if not allow_empty and not value:
        raise ValueError(f"{field} is empty")
    if len(value) > max_chars:
        raise ValueError(f"{field} has {len(value)} characters, limit is {max_chars}")
    if control_chars(value):
        raise ValueError(f"{field} contains control characters")


def _check_int(field: str, value: int, lo: int, hi: int) -> None:
    # bool is an int subclass but never a valid count or port
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{field} must be an integer")
    if not lo <= value <= hi:
        raise ValueError(f"{field} {value} outside [{lo}, {hi}]")


@dataclass(frozen=True, slots=True)
class LanPeer:
    """A peer as its mDNS record describes it.

    Attributes:
        id: the peer's unique id (the node's ``peer_id``).
        name: display name.
        room: the room it is in.
        role: ``"streamer"`` or ``"viewer"``.
        depth: hops from the streamer (0 for the streamer), None while not attached.
        free_slots: children it can still accept.
        version: the highest protocol version it speaks.
        host: the address to dial. When advertising, "" or a wildcard lets the
            advertiser pick the host's addresses; a browser fills in the advertised one.
        port: where it accepts children.
        claim: a streamer's claim time in ms since the epoch (also its stream epoch in
            LAN mode); 0 for viewers.
        parent_id: its parent's id, if attached (for tree views).
        layer: the layer (frame height) it asks its parent for, if any.

    Raises:
        ValueError: on construction, if a field is out of range or inconsistent (a
            streamer has depth 0 and a claim; a viewer has no claim and is never at
            depth 0).
    """

    id: str
    name: str
    room: str
    role: Role
    depth: int | None
    free_slots: int
    version: int
    host: str
    port: int
    claim: int = 0
    parent_id: str | None = None
    layer: int | None = None

    def __post_init__(self) -> None:
        _check_text("id", self.id, limits.MAX_ID_CHARS)
        _check_text("name", self.name, limits.MAX_NAME_CHARS)
        _check_text("room", self.room, limits.MAX_ROOM_CHARS)
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        if self.depth is not None:
            _check_int("depth", self.depth, 0, limits.MAX_PATH_LEN)
        _check_int("free_slots", self.free_slots, 0, limits.MAX_FREE_SLOTS)
        _check_int("version", self.version, 1, MAX_VERSION)
        _check_text("host", self.host, limits.MAX_HOST_CHARS, allow_empty=True)
        _check_int("port", self.port, 1, 65535)
        _check_int("claim", self.claim, 0, MAX_CLAIM_MS)
        if self.parent_id is not None:
            _check_text("parent_id", self.parent_id, limits.MAX_ID_CHARS)
        if self.layer is not None:
            _check_int("layer", self.layer, 1, limits.MAX_DIMENSION_PX)
        if self.role == "streamer":
            if self.depth != 0:
                raise ValueError("a streamer is the root: depth must be 0")
            if self.claim < 1:
                raise ValueError("a streamer must carry its claim time")
        else:
            if self.depth == 0:
                raise ValueError("only the streamer is at depth 0")
            if self.claim != 0:
                raise ValueError("a viewer has no claim")

    def candidate(self) -> Candidate | None:
        """This peer as a join candidate, or None while it is not in the tree."""
        if self.depth is None or not self.host:
            return None
        return Candidate(id=self.id, name=self.name, host=self.host, port=self.port,
                         depth=self.depth, free_slots=self.free_slots)


# --- TXT encoding -------------------------------------------------------------------


def _unsigned_txt(peer: LanPeer) -> dict[str, str]:
    txt = {
        "id": peer.id,
        "name": peer.name,
        "room": peer.room,
        "role": peer.role,
        "depth": "-" if peer.depth is None else str(peer.depth),
        "slots": str(peer.free_slots),
        "ver": str(peer.version),
        "claim": str(peer.claim),
    }
    if peer.parent_id is not None:
        txt["parent"] = peer.parent_id
    if peer.layer is not None:
        txt["layer"] = str(peer.layer)
    return txt


def _canonical(txt: dict[bytes, bytes], port: int) -> bytes:
    # Sorted and length-prefixed, so no two records share signed bytes whatever their
    # values contain, and the order of strings on the wire does not matter.
    parts = [f"{port}".encode()]
    for key in sorted(txt):
        if key != b"sig":
            parts.append(len(key).to_bytes(2, "big") + key +
                         len(txt[key]).to_bytes(2, "big") + txt[key])
    return b"".join(parts)


def record_bytes(peer: LanPeer) -> bytes:
    """What a peer record's ``sig`` signs: its TXT entries (but ``sig``) and SRV port."""
    txt = {k.encode(): v.encode() for k, v in _unsigned_txt(peer).items()}
    return _canonical(txt, peer.port)


def encode_txt(peer: LanPeer, identity: Identity) -> dict[str, str]:
    """The signed TXT properties that advertise ``peer`` (host and port go in SRV/A).

    Args:
        peer: the peer to describe.
        identity: the peer's key pair; its id must be ``peer.id``.

    Returns:
        key -> value strings. ``depth`` is ``-`` while not attached; ``parent`` and
        ``layer`` are left out when None; ``sig`` is the record signature.

    Raises:
        ValueError: if ``identity`` is not the peer's, or one ``key=value`` string
            would exceed 255 bytes (only with a non-ASCII name near its limit).
    """
    if identity.peer_id != peer.id:
        raise ValueError("a peer record is signed by the peer it describes")
    txt = _unsigned_txt(peer)
    for key, value in txt.items():
        if len(key.encode()) + 1 + len(value.encode()) > MAX_TXT_ITEM_BYTES:
            raise ValueError(f"TXT entry {key!r} is longer than {MAX_TXT_ITEM_BYTES} bytes")
    signature = identity.sign(LAN_RECORD_CONTEXT, record_bytes(peer))
    txt["sig"] = base64.b64encode(signature).decode("ascii")
    return txt


def parse_txt(text: bytes) -> dict[bytes, bytes | None] | None:
    """Split raw TXT record data into properties (RFC 6763 section 6).

    Keys are lower-cased (they are case-insensitive); the first occurrence of a key
    wins and strings without a key are skipped, both as section 6.4 requires. A key
    without ``=`` maps to None.

    Args:
        text: the TXT RDATA: length-prefixed strings.

    Returns:
        The properties, or None if a string runs past the end (a truncated record).
    """
    props: dict[bytes, bytes | None] = {}
    pos = 0
    while pos < len(text):
        end = pos + 1 + text[pos]
        if end > len(text):
            return None
        key, sep, value = text[pos + 1 : end].partition(b"=")
        pos = end
        if key:
            props.setdefault(key.lower(), value if sep else None)
    return props


def _field(props: dict[bytes, bytes | None], key: bytes) -> bytes:
    value = props.get(key)
    if value is None:
        raise MalformedRecordError(f"{key.decode()}: missing or without a value")
    if not isinstance(value, bytes):
        raise MalformedRecordError(f"{key.decode()}: not bytes")
    return value


def _text_field(props: dict[bytes, bytes | None], key: bytes) -> str:
    try:
        return _field(props, key).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRecordError(f"{key.decode()}: not UTF-8") from exc


def _uint_field(props: dict[bytes, bytes | None], key: bytes) -> int:
    raw = _field(props, key)
    if not _UINT.fullmatch(raw):
        raise MalformedRecordError(f"{key.decode()}: not a non-negative integer")
    return int(raw)


def decode_txt(properties: dict[bytes, bytes | None], host: str, port: int) -> LanPeer:
    """Read a peer from its TXT properties and address, strictly.

    Args:
        properties: TXT key -> value (as ``parse_txt`` or python-zeroconf give them).
        host: the address from the A record.
        port: the port from the SRV record.

    Returns:
        The peer.

    Raises:
        MalformedRecordError: on a missing key, bad number, oversize or binary text,
            unknown role or inconsistent fields; nothing else, whatever the input.
    """
    try:
        props: dict[bytes, bytes | None] = {}
        for key, value in properties.items():
            if not isinstance(key, bytes):
                raise MalformedRecordError("non-bytes key")
            props.setdefault(key.lower(), value)
        role = _text_field(props, b"role")
        if role not in ROLES:
            raise MalformedRecordError(f"role: unknown {role[:16]!r}")
        raw_depth = _field(props, b"depth")
        depth = None if raw_depth == b"-" else _uint_field(props, b"depth")
        parent_id = _text_field(props, b"parent") if b"parent" in props else None
        layer = _uint_field(props, b"layer") if b"layer" in props else None
        peer = LanPeer(
            id=_text_field(props, b"id"),
            name=_text_field(props, b"name"),
            room=_text_field(props, b"room"),
            role="streamer" if role == "streamer" else "viewer",
            depth=depth,
            free_slots=_uint_field(props, b"slots"),
            version=_uint_field(props, b"ver"),
            host=host,
            port=port,
            claim=_uint_field(props, b"claim"),
            parent_id=parent_id,
            layer=layer,
        )
        _check_signature(props, peer)
        return peer
    except MalformedRecordError:
        raise
    except (ValueError, TypeError, AttributeError) as exc:
        # LanPeer's own range checks, and whatever a non-bytes value trips over.
        raise MalformedRecordError(str(exc)) from exc


def _check_signature(props: dict[bytes, bytes | None], peer: LanPeer) -> None:
    try:
        signature = base64.b64decode(_field(props, b"sig"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedRecordError("sig: not base64") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise MalformedRecordError("sig: not a signature")
    # Re-encode from the parsed peer: the signed bytes are the canonical form, so
    # unknown extra keys or a different string order change nothing.
    if not _verified(peer.id, signature, record_bytes(peer)):
        raise MalformedRecordError(f"sig: not signed by {peer.id[:12]}...")


@functools.lru_cache(maxsize=_VERIFIED_CACHE)
def _verified(peer_id: str, signature: bytes, signed: bytes) -> bool:
    return verify(peer_id, signature, LAN_RECORD_CONTEXT, signed)


# --- the tracker-less streamer lock -------------------------------------------------


def streamer_wins(a: LanPeer, b: LanPeer) -> bool:
    """Whether streamer ``a`` keeps the room against streamer ``b``.

    Deterministic, so both sides reach the same verdict from the same two records: the
    earlier claim wins; equal claims fall back to the lower id. A peer never loses to
    itself (equal keys -> True).

    Args:
        a: one streamer's record.
        b: the other's.

    Returns:
        True if ``a`` should keep streaming, False if it should step down.
    """
    return (a.claim, a.id) <= (b.claim, b.id)


def claim_is_backdated(claim_ms: int, first_seen_ms: float) -> bool:
    """Whether a streamer claim first seen at ``first_seen_ms`` (wall clock) states a
    time too far before that to be honest (see ``CLAIM_SLACK_MS``).

    Only meaningful to a browser that was already watching the room when the record
    appeared: everything looks old to one that has just started.
    """
    return first_seen_ms - claim_ms > CLAIM_SLACK_MS


def lan_streamer(peers: Iterable[LanPeer]) -> LanPeer | None:
    """The streamer who holds a room: the winner among its streamer records.

    Args:
        peers: the room's peers (e.g. ``LanBrowser.peers(room)``).

    Returns:
        The winning streamer, or None if nobody streams.
    """
    winner: LanPeer | None = None
    for peer in peers:
        if peer.role == "streamer" and (winner is None or not streamer_wins(winner, peer)):
            winner = peer
    return winner


# --- service instance names ---------------------------------------------------------


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode()[:max_bytes].decode("utf-8", errors="ignore")


def instance_label(name: str, peer_id: str) -> str:
    """A readable, unique service instance name: display name plus peer id.

    Display names may repeat (two "Alice"s); the id makes the label unique. Characters
    other than letters, digits, space, ``-`` and ``_`` are dropped (dots would read as
    DNS label separators in some tools).
    """
    safe = "".join(ch for ch in name if ch.isalnum() or ch in " -_").strip()[:20] or "peer"
    # Keep room for a "-N" rename suffix.
    return truncate_utf8(f"{safe} {peer_id}", MAX_LABEL_BYTES - 3).strip()
