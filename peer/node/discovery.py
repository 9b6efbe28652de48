"""LAN discovery over mDNS / DNS-SD (python-zeroconf, async API).

Theory of operation
-------------------
Every peer advertises one ``_treecast._tcp.local.`` service. Its TXT record carries who
the peer is and where it sits in the tree (id, name, room, role, depth, free slots,
protocol version, streamer claim time); its SRV and A records say where it listens. A
tracker on the LAN advertises ``_treecast-trk._tcp.local.`` (see tracker/mdns.py).
``LanBrowser`` browses both types and keeps a view of who is there, calling
``on_change`` whenever that view changes.

Liveness. A peer that quits sends goodbye packets (TTL 0) and vanishes from every view
at once. A peer that crashes sends nothing, so liveness rests on short record lifetimes:

* Our records carry a TTL of ``RECORD_TTL_S`` (10 s) instead of the RFC 6762 defaults
  (120 s host, 75 min other), and ``LanAdvertiser`` re-announces them unsolicited every
  ``REFRESH_S`` (3 s), so two lost announcements in a row are survived.
* A browser counts a service as live only while its SRV, TXT and A records are in its
  cache, unexpired, and refreshed within ``MAX_RECORD_AGE_S``. It re-checks every
  ``SWEEP_S``, so a crashed peer drops out of ``peers()`` within about 11 s.
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
3. On every ``on_change``, recompute ``lan_streamer(peers(room))``. Two streamers that
   started at once both see each other as soon as the other's record lands (records are
   multicast the moment they change); ``streamer_wins`` is deterministic (earlier claim,
   then lower id), so both agree and the loser steps down (``update`` to viewer) within
   a second of seeing the winner.

Since the winner is the EARLIER claim, LAN epochs do not grow with each takeover the way
tracker epochs do: viewers should accept frames whose epoch equals the current LAN
streamer's claim, not "the newest epoch seen".

A browser sees its own process's advertisements too (multicast loops back): callers
filter out their own id.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import (
    InterfaceChoice,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
    current_time_millis,
)

# zeroconf re-exports these without listing them in __all__; import them from where they
# are defined so that mypy --strict accepts them.
from zeroconf._dns import DNSAddress, DNSRecord, DNSService, DNSText
from zeroconf._utils.net import InterfacesType
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from protocol import limits
from protocol.records import Candidate

__all__ = [
    "LAN_CLAIM_WAIT_S",
    "MAX_RECORD_AGE_S",
    "RECORD_TTL_S",
    "REFRESH_S",
    "SERVICE_TYPE",
    "SWEEP_S",
    "TRACKER_SERVICE_TYPE",
    "LanAdvertiser",
    "LanBrowser",
    "LanPeer",
    "LanSession",
    "advertise_addresses",
    "decode_txt",
    "encode_txt",
    "find_tracker",
    "format_sessions",
    "lan_streamer",
    "list_lan",
    "parse_txt",
    "streamer_wins",
]

log = logging.getLogger(__name__)

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
# How long to ask for a service's SRV/TXT/A records when its PTR arrived alone.
RESOLVE_TIMEOUT_MS = 3000
# Services a browser tracks at once: a room holds MAX_ROOM_PEERS, a LAN a few rooms.
# Beyond this, names are ignored, so a flood of fake services cannot grow our memory.
MAX_LAN_SERVICES = 4 * limits.MAX_ROOM_PEERS
# Concurrent resolve queries; more would only add to a flood.
MAX_RESOLVES = 16
# Free slots and claim bounds match what the wire messages accept (PeerInfo, epoch).
MAX_FREE_SLOTS = 1024
MAX_CLAIM_MS = 2**53
# The header's version field is one byte.
MAX_VERSION = 255
# A DNS label (the service instance name) is at most 63 bytes (RFC 1035 2.3.4).
MAX_LABEL_BYTES = 63
# One TXT string is length-prefixed by a single byte (RFC 6763 6.1).
MAX_TXT_ITEM_BYTES = 255
# Renames tried when our instance name is taken (only possible with a reused peer id).
MAX_RENAMES = 8

# Record type and class codes (RFC 1035 3.2.2, RFC 2782).
_TYPE_A = 1
_TYPE_TXT = 16
_TYPE_SRV = 33
_CLASS_IN = 1

Role = Literal["streamer", "viewer"]
ROLES: tuple[Role, ...] = ("streamer", "viewer")

# C0/C1 controls break one-line displays (the --list table, the GUI lists) and logs.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Digits only: int() would also take " 7", "+7", "1_0" and non-ASCII digits.
_UINT = re.compile(rb"[0-9]{1,16}")


class _MalformedError(ValueError):
    """A TXT field is missing or does not parse; only ever logged at debug level."""


def _check_text(field: str, value: str, max_chars: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string")
    if not allow_empty and not value:
        raise ValueError(f"{field} is empty")
    if len(value) > max_chars:
        raise ValueError(f"{field} has {len(value)} characters, limit is {max_chars}")
    if _CONTROL.search(value):
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
        _check_int("free_slots", self.free_slots, 0, MAX_FREE_SLOTS)
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


@dataclass(frozen=True, slots=True)
class LanSession:
    """One room seen on the LAN, for the start screen and ``treecast-peer --list``.

    Attributes:
        room: the room name.
        streamer: the streamer's display name, None if nobody streams.
        peers: how many peers advertise this room (the streamer included).
        tracker: a tracker found on the LAN, None if there is none (tracker-less room).
    """

    room: str
    streamer: str | None
    peers: int
    tracker: tuple[str, int] | None


# --- TXT encoding -------------------------------------------------------------------


def encode_txt(peer: LanPeer) -> dict[str, str]:
    """The TXT properties that advertise ``peer`` (host and port go in SRV/A records).

    Args:
        peer: the peer to describe.

    Returns:
        key -> value strings. ``depth`` is ``-`` while not attached; ``parent`` and
        ``layer`` are left out when None.

    Raises:
        ValueError: if one ``key=value`` string would exceed 255 bytes (only possible
            with a non-ASCII id near its 64-character limit).
    """
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
    for key, value in txt.items():
        if len(key.encode()) + 1 + len(value.encode()) > MAX_TXT_ITEM_BYTES:
            raise ValueError(f"TXT entry {key!r} is longer than {MAX_TXT_ITEM_BYTES} bytes")
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
        raise _MalformedError(f"{key.decode()}: missing or without a value")
    if not isinstance(value, bytes):
        raise _MalformedError(f"{key.decode()}: not bytes")
    return value


def _text_field(props: dict[bytes, bytes | None], key: bytes) -> str:
    try:
        return _field(props, key).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _MalformedError(f"{key.decode()}: not UTF-8") from exc


def _uint_field(props: dict[bytes, bytes | None], key: bytes) -> int:
    raw = _field(props, key)
    if not _UINT.fullmatch(raw):
        raise _MalformedError(f"{key.decode()}: not a non-negative integer")
    return int(raw)


def decode_txt(properties: dict[bytes, bytes | None], host: str, port: int) -> LanPeer | None:
    """Read a peer from its TXT properties and address, strictly.

    Anything on the LAN may advertise our service type, so a malformed record (missing
    key, bad number, oversize or binary text, unknown role, inconsistent fields) is
    logged at debug level and ignored: this never raises.

    Args:
        properties: TXT key -> value (as ``parse_txt`` or python-zeroconf give them).
        host: the address from the A record.
        port: the port from the SRV record.

    Returns:
        The peer, or None if the record is malformed.
    """
    try:
        props: dict[bytes, bytes | None] = {}
        for key, value in properties.items():
            if not isinstance(key, bytes):
                raise _MalformedError("non-bytes key")
            props.setdefault(key.lower(), value)
        role = _text_field(props, b"role")
        if role not in ROLES:
            raise _MalformedError(f"role: unknown {role[:16]!r}")
        raw_depth = _field(props, b"depth")
        depth = None if raw_depth == b"-" else _uint_field(props, b"depth")
        parent_id = _text_field(props, b"parent") if b"parent" in props else None
        layer = _uint_field(props, b"layer") if b"layer" in props else None
        return LanPeer(
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
    except (ValueError, TypeError, AttributeError) as exc:
        # ValueError covers _MalformedError and LanPeer's own range checks.
        log.debug("ignoring malformed %s record from %s:%s: %s", SERVICE_TYPE, host, port, exc)
        return None


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


# --- addresses and names ------------------------------------------------------------


def _ipv4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _local_ipv4() -> list[ipaddress.IPv4Interface]:
    """This host's IPv4 addresses with their networks."""
    found: list[ipaddress.IPv4Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    found.append(ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}"))
    return found


def advertise_addresses(host: str | None = None,
                        interfaces: InterfacesType = InterfaceChoice.All) -> list[str]:
    """The IPv4 addresses to put in our A records.

    Args:
        host: an explicit address (e.g. ``--advertise``); "", None or a wildcard picks.
        interfaces: the zeroconf interface choice; a list of addresses (as in tests on
            ``["127.0.0.1"]``) is advertised as given.

    Returns:
        ``[host]`` if given; else the listed interface addresses; else every
        non-loopback IPv4 address of this host; 127.0.0.1 if there is none.

    Raises:
        ValueError: if ``host`` is given but is not an IPv4 address literal.
    """
    if host and host not in ("0.0.0.0", "::"):
        if _ipv4(host) is None:
            raise ValueError(f"advertised host must be an IPv4 address, not {host!r}")
        return [host]
    if not isinstance(interfaces, InterfaceChoice):
        listed = [i for i in interfaces
                  if isinstance(i, str) and (a := _ipv4(i)) is not None and not a.is_unspecified]
        if listed:
            return listed
    found = sorted({str(i.ip) for i in _local_ipv4()
                    if not i.ip.is_loopback and not i.ip.is_link_local})
    return found or ["127.0.0.1"]


def _pick_host(addresses: list[str], local: list[ipaddress.IPv4Interface]) -> str:
    """Of a peer's advertised addresses, the one most likely reachable from here.

    A multi-homed peer advertises all its addresses (LAN, Docker bridge, VPN); the one in
    a network we are on ourselves is the one to dial.
    """
    parsed = [(a, ip) for a in addresses if (ip := _ipv4(a)) is not None]
    for text, ip in parsed:
        if not ip.is_loopback and any(ip in iface.network for iface in local):
            return text
    for text, ip in parsed:
        if not ip.is_loopback:
            return text
    return addresses[0]


def _truncate_utf8(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode("utf-8", errors="ignore")


def instance_label(name: str, peer_id: str) -> str:
    """A readable, unique service instance name: display name plus peer id.

    Display names may repeat (two "Alice"s); the id makes the label unique. Characters
    other than letters, digits, space, ``-`` and ``_`` are dropped (dots would read as
    DNS label separators in some tools).
    """
    safe = "".join(ch for ch in name if ch.isalnum() or ch in " -_").strip()[:20] or "peer"
    # Keep room for a "-N" rename suffix.
    return _truncate_utf8(f"{safe} {peer_id}", MAX_LABEL_BYTES - 3).strip()


# --- advertiser ---------------------------------------------------------------------


def _done(pending: Awaitable[object] | None) -> bool:
    return not isinstance(pending, asyncio.Future) or pending.done()


async def _cancel(pending: Awaitable[object] | None) -> None:
    """Cancel a task (ours, or zeroconf's announcement series) and wait for it to end.

    The CancelledError of ``pending`` is swallowed, but never one aimed at the caller:
    the refresh task cancels the previous announcement series on every update, and if
    ``close`` cancelled the refresh task right then, swallowing that would keep it
    running and ``close`` (and with it a node's stop) waiting for it forever.
    """
    if isinstance(pending, asyncio.Future) and not pending.done():
        pending.cancel()
        try:
            await pending
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise


class LanAdvertiser:
    """Advertises one peer as ``_treecast._tcp.local.`` and keeps its record fresh.

    Args:
        interfaces: zeroconf interfaces (``["127.0.0.1"]`` in loopback tests).
        aiozc: share an existing AsyncZeroconf (left open on close); None makes one.
        ttl_s: record TTL; tests shorten it to see crash expiry quickly.
        refresh_s: re-announcement period (keep it under a third of ``ttl_s``).
    """

    def __init__(self, interfaces: InterfacesType = InterfaceChoice.All, *,
                 aiozc: AsyncZeroconf | None = None, ttl_s: int = RECORD_TTL_S,
                 refresh_s: float = REFRESH_S) -> None:
        self._interfaces = interfaces
        self._aiozc = aiozc
        self._owns_zc = aiozc is None
        self._ttl_s = ttl_s
        self._refresh_s = refresh_s
        self._info: AsyncServiceInfo | None = None
        self._announced: LanPeer | None = None
        self._wanted: LanPeer | None = None
        self._announcing: Awaitable[object] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def instance_name(self) -> str | None:
        """The registered service name (with a ``-N`` suffix after a collision)."""
        return self._info.name if self._info else None

    async def start(self, peer: LanPeer) -> None:
        """Probe for a unique name, register, and start refreshing.

        Args:
            peer: what to advertise; its host may be "" to advertise our addresses.

        Raises:
            ValueError: if the peer's host is not an IPv4 literal, or ``start`` was
                called twice.
            zeroconf.NonUniqueNameException: if ``MAX_RENAMES`` names were all taken.
        """
        if self._info is not None or self._closed:
            raise ValueError("LanAdvertiser.start called twice")
        advertise_addresses(peer.host, self._interfaces)  # validate before the network
        txt = encode_txt(peer)
        if self._aiozc is None:
            self._aiozc = AsyncZeroconf(interfaces=self._interfaces)
        try:
            self._info, self._announcing = await self._register(self._aiozc, peer, txt)
        except BaseException:
            await self.close()
            raise
        self._announced = self._wanted = peer
        self._task = asyncio.create_task(self._run(), name="lan-advertiser")

    async def _register(self, aiozc: AsyncZeroconf, peer: LanPeer,
                        txt: dict[str, str]) -> tuple[AsyncServiceInfo, Awaitable[object]]:
        base = instance_label(peer.name, peer.id)
        for attempt in range(1, MAX_RENAMES):
            label = base if attempt == 1 else f"{base}-{attempt}"
            info = self._make_info(label, peer, txt)
            try:
                return info, await aiozc.async_register_service(info)
            except NonUniqueNameException:
                # Only a reused peer id can collide (e.g. a restart while the old
                # record is still live): take the next suffix rather than fail.
                log.info("mDNS name %r is taken; trying another", label)
        info = self._make_info(f"{base}-{MAX_RENAMES}", peer, txt)
        return info, await aiozc.async_register_service(info)

    async def update(self, peer: LanPeer) -> None:
        """Advertise new values (depth, free slots, role, ...) for the same peer.

        Does not wait for the network: the refresh task announces the record right
        away; the latest update wins (a newer one cancels the repeats of an older one).
        After ``close`` this does nothing, so a late position change of a node that is
        shutting down is harmless.

        Args:
            peer: the new record; its id must be the one given to ``start``.

        Raises:
            ValueError: if not started yet, the id changed (close and start a new
                advertiser instead), or the host is not an IPv4 literal.
        """
        if self._closed:
            return
        if self._announced is None:
            raise ValueError("LanAdvertiser.update before start")
        if peer.id != self._announced.id:
            raise ValueError("the peer id cannot change; start a new advertiser")
        advertise_addresses(peer.host, self._interfaces)
        encode_txt(peer)
        self._wanted = peer
        self._wake.set()

    async def close(self) -> None:
        """Withdraw the record (goodbye packets) and stop. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await _cancel(self._task)
        await _cancel(self._announcing)
        aiozc = self._aiozc
        if aiozc is None:
            return
        try:
            if self._info is not None:
                goodbyes = await aiozc.async_unregister_service(self._info)
                await goodbyes
        except ZeroconfError as exc:  # e.g. NotRunningException if the zc died first
            log.debug("mDNS unregister failed: %s", exc)
        finally:
            if self._owns_zc:
                await aiozc.async_close()

    def _make_info(self, label: str, peer: LanPeer, txt: dict[str, str]) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE, f"{label}.{SERVICE_TYPE}", port=peer.port, properties=txt,
            # The host name for the A records; zeroconf's default, but an update needs
            # it set explicitly.
            server=f"{label}.{SERVICE_TYPE}",
            # Re-read each time: an update after a DHCP renewal picks up the new address.
            parsed_addresses=advertise_addresses(peer.host, self._interfaces),
            host_ttl=self._ttl_s, other_ttl=self._ttl_s)

    async def _run(self) -> None:
        """Push updates as they come and refresh the record every refresh_s."""
        assert self._aiozc is not None and self._info is not None
        zc = self._aiozc.zeroconf
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_s):
                    await self._wake.wait()
            self._wake.clear()
            wanted = self._wanted
            assert wanted is not None
            try:
                if wanted != self._announced:
                    # Latest wins: stop repeating the previous record, or its remaining
                    # repeats would overwrite the new one in every cache.
                    await _cancel(self._announcing)
                    label = self._info.name[: -len(SERVICE_TYPE) - 1]
                    info = self._make_info(label, wanted, encode_txt(wanted))
                    self._announcing = await self._aiozc.async_update_service(info)
                    self._info, self._announced = info, wanted
                elif _done(self._announcing):
                    # A running announcement series is refresh enough.
                    zc.async_send(zc.generate_service_broadcast(self._info, None))
            except Exception:
                # Keep advertising: one failed announcement must not silence us for good.
                log.exception("mDNS announcement failed")


# --- browser ------------------------------------------------------------------------


def _expiry_ms(record: DNSRecord) -> float:
    return record.created + record.ttl * 1000.0


@dataclass(frozen=True, slots=True)
class _Seen:
    peer: LanPeer
    expires_ms: float


class LanBrowser:
    """Watches the LAN for Treecast peers and trackers.

    Args:
        interfaces: zeroconf interfaces (``["127.0.0.1"]`` in loopback tests).
        on_change: called (in the event loop) whenever ``peers()`` or ``trackers()``
            would return something different. It must not block.
        aiozc: share an existing AsyncZeroconf (left open on close); None makes one.
        sweep_s: how often to re-check record freshness.
        max_age_s: records not refreshed for this long count as gone.
    """

    def __init__(self, interfaces: InterfacesType = InterfaceChoice.All,
                 on_change: Callable[[], None] | None = None, *,
                 aiozc: AsyncZeroconf | None = None, sweep_s: float = SWEEP_S,
                 max_age_s: float = MAX_RECORD_AGE_S) -> None:
        self._interfaces = interfaces
        self._on_change = on_change
        self._aiozc = aiozc
        self._owns_zc = aiozc is None
        self._sweep_s = sweep_s
        self._max_age_ms = max_age_s * 1000
        self._names: dict[str, str] = {}  # service name -> service type
        self._peers: dict[str, LanPeer] = {}  # peer id -> freshest record
        self._trackers: list[tuple[str, int]] = []
        self._resolving: dict[str, asyncio.Task[None]] = {}
        self._local: list[ipaddress.IPv4Interface] = []
        self._browser: AsyncServiceBrowser | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False

    async def __aenter__(self) -> LanBrowser:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start browsing both service types."""
        self._local = _local_ipv4()
        if self._aiozc is None:
            self._aiozc = AsyncZeroconf(interfaces=self._interfaces)
        self._browser = AsyncServiceBrowser(
            self._aiozc.zeroconf, [SERVICE_TYPE, TRACKER_SERVICE_TYPE],
            handlers=[self._on_service_state_change])
        self._sweeper = asyncio.create_task(self._sweep(), name="lan-browser-sweep")

    async def close(self) -> None:
        """Stop browsing. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in (self._sweeper, *self._resolving.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._aiozc is not None and self._owns_zc:
            await self._aiozc.async_close()

    def peers(self, room: str | None = None) -> list[LanPeer]:
        """Live peers, optionally of one room: attached shallowest first, then by name.

        Args:
            room: only this room's peers; None for all rooms.

        Returns:
            One record per peer id (the freshest if a restarted peer left two).
        """
        found = [p for p in self._peers.values() if room is None or p.room == room]
        return sorted(found, key=lambda p: (p.depth is None, p.depth or 0, p.name, p.id))

    def trackers(self) -> list[tuple[str, int]]:
        """Trackers advertised on the LAN, as (host, port), sorted."""
        return list(self._trackers)

    def sessions(self) -> list[LanSession]:
        """Rooms seen on the LAN with their streamer and size, sorted by room."""
        tracker = self._trackers[0] if self._trackers else None
        rooms: dict[str, list[LanPeer]] = {}
        for peer in self._peers.values():
            rooms.setdefault(peer.room, []).append(peer)
        sessions = []
        for room, members in sorted(rooms.items()):
            streamer = lan_streamer(members)
            sessions.append(LanSession(room=room, streamer=streamer.name if streamer else None,
                                       peers=len(members), tracker=tracker))
        return sessions

    # -- zeroconf callbacks and cache reading --

    def _on_service_state_change(self, zeroconf: Zeroconf, service_type: str, name: str,
                                 state_change: ServiceStateChange) -> None:
        if self._closed:
            return
        if state_change is ServiceStateChange.Removed:
            self._names.pop(name, None)
            task = self._resolving.pop(name, None)
            if task is not None:
                task.cancel()
        elif name in self._names or len(self._names) < MAX_LAN_SERVICES:
            self._names[name] = service_type
            if (self._read(name, service_type, current_time_millis()) is None
                    and name not in self._resolving and len(self._resolving) < MAX_RESOLVES):
                self._resolving[name] = asyncio.create_task(self._resolve(service_type, name))
        else:
            log.debug("ignoring %s: already tracking %d services", name, MAX_LAN_SERVICES)
        self._refresh()

    async def _resolve(self, service_type: str, name: str) -> None:
        """Ask for a service's SRV/TXT/A records when its PTR arrived without them."""
        assert self._aiozc is not None
        try:
            info = AsyncServiceInfo(service_type, name)
            await info.async_request(self._aiozc.zeroconf, RESOLVE_TIMEOUT_MS)
        except ZeroconfError as exc:
            log.debug("cannot resolve %s: %s", name, exc)
        finally:
            self._resolving.pop(name, None)
        self._refresh()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_s)
            self._refresh()

    def _fresh(self, records: list[DNSRecord], now_ms: float) -> list[DNSRecord]:
        return [r for r in records
                if not r.is_expired(now_ms) and now_ms - r.created <= self._max_age_ms]

    def _read(self, name: str, service_type: str,
              now_ms: float) -> tuple[str, int, bytes, float] | None:
        """(host, port, TXT data, TXT expiry) of a live service, from our cache."""
        assert self._aiozc is not None
        cache = self._aiozc.zeroconf.cache
        # Right after a change the old record lingers for 1 s (RFC 6762 10.2 cache flush:
        # zeroconf re-stamps it created=now, ttl=1). The current one expires last.
        srv = [r for r in self._fresh(cache.async_all_by_details(name, _TYPE_SRV, _CLASS_IN),
                                      now_ms) if isinstance(r, DNSService)]
        txt = [r for r in self._fresh(cache.async_all_by_details(name, _TYPE_TXT, _CLASS_IN),
                                      now_ms) if isinstance(r, DNSText)]
        if not srv or not txt:
            return None
        service = max(srv, key=_expiry_ms)
        text = max(txt, key=_expiry_ms)
        addresses = [
            str(ipaddress.IPv4Address(r.address))
            for r in self._fresh(cache.async_all_by_details(service.server, _TYPE_A, _CLASS_IN),
                                 now_ms)
            if isinstance(r, DNSAddress) and len(r.address) == 4
        ]
        if not addresses or not 1 <= service.port <= 65535:
            return None
        return _pick_host(addresses, self._local), service.port, text.text, _expiry_ms(text)

    def _refresh(self) -> None:
        """Rebuild the view from the cache; tell on_change if it changed."""
        if self._closed or self._aiozc is None:
            return
        now_ms = current_time_millis()
        seen: dict[str, _Seen] = {}
        trackers: set[tuple[str, int]] = set()
        for name, service_type in self._names.items():
            read = self._read(name, service_type, now_ms)
            if read is None:
                continue
            host, port, text, expires_ms = read
            if service_type == TRACKER_SERVICE_TYPE:
                trackers.add((host, port))
                continue
            props = parse_txt(text)
            peer = decode_txt(props, host, port) if props is not None else None
            if peer is None:
                continue
            old = seen.get(peer.id)
            if old is None or expires_ms > old.expires_ms:
                seen[peer.id] = _Seen(peer, expires_ms)
        peers = {peer_id: s.peer for peer_id, s in seen.items()}
        tracker_list = sorted(trackers)
        if peers == self._peers and tracker_list == self._trackers:
            return
        self._peers, self._trackers = peers, tracker_list
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:  # a broken callback must not stop discovery
                log.exception("LanBrowser on_change callback failed")


# --- one-shot helpers ---------------------------------------------------------------


async def find_tracker(timeout: float,
                       interfaces: InterfacesType = InterfaceChoice.All) -> tuple[str, int] | None:
    """Look for a tracker on the LAN.

    Args:
        timeout: seconds to wait for one to answer.
        interfaces: zeroconf interfaces.

    Returns:
        The first tracker's (host, port) (lowest address if several answer at once), or
        None if none answered in time.
    """
    changed = asyncio.Event()
    async with LanBrowser(interfaces, on_change=changed.set) as browser:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not browser.trackers():
                    await changed.wait()
                    changed.clear()
        trackers = browser.trackers()
        return trackers[0] if trackers else None


async def list_lan(timeout: float = 2.0,
                   interfaces: InterfacesType = InterfaceChoice.All) -> list[LanSession]:
    """Survey the LAN for Treecast rooms (``treecast-peer --list``).

    Args:
        timeout: seconds to listen; peers answer the first query within ~0.5 s.
        interfaces: zeroconf interfaces.

    Returns:
        The sessions seen, sorted by room.
    """
    async with LanBrowser(interfaces) as browser:
        await asyncio.sleep(timeout)
        return browser.sessions()


def format_sessions(sessions: list[LanSession]) -> str:
    """A plain-text table of sessions for the terminal.

    Args:
        sessions: what ``list_lan`` found.

    Returns:
        The table (no trailing newline), or a sentence saying nothing was found.
    """
    if not sessions:
        return "No Treecast sessions found on the LAN."
    rows = [("ROOM", "STREAMER", "PEERS", "TRACKER")]
    for s in sessions:
        tracker = f"{s.tracker[0]}:{s.tracker[1]}" if s.tracker else "none (LAN only)"
        rows.append((s.room, s.streamer or "-", str(s.peers), tracker))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}" for r in rows)
