"""Watch the LAN for Treecast peers and trackers (python-zeroconf, async API).

``LanBrowser`` browses both service types and keeps a view of who is there, calling
``on_change`` whenever that view changes. It decides liveness from the freshness of the
SRV, TXT and A records in zeroconf's cache, never from the PTR record (see the theory
of operation in protocol/lan.py for why). ``find_tracker`` and ``list_lan`` are the
one-shot uses: the node's ``--lan`` start and ``treecast-peer --list``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass

from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, ServiceStateChange, Zeroconf, current_time_millis
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from peer.lan.addresses import Interfaces, local_ipv4, pick_host
from peer.lan.zeroconf_internals import DNSAddress, DNSRecord, DNSService, DNSText
from protocol import limits
from protocol.lan import (
    MAX_RECORD_AGE_S,
    SERVICE_TYPE,
    SWEEP_S,
    TRACKER_SERVICE_TYPE,
    LanPeer,
    MalformedRecordError,
    decode_txt,
    lan_streamer,
    parse_txt,
)

__all__ = [
    "LanBrowser",
    "LanSession",
    "find_tracker",
    "format_sessions",
    "list_lan",
    "read_peer_record",
]

log = logging.getLogger(__name__)

# How long to ask for a service's SRV/TXT/A records when its PTR arrived alone.
RESOLVE_TIMEOUT_MS = 3000
# Services a browser tracks at once: a room holds MAX_ROOM_PEERS, a LAN a few rooms.
# Beyond this, names are ignored, so a flood of fake services cannot grow our memory.
MAX_LAN_SERVICES = 4 * limits.MAX_ROOM_PEERS
# Concurrent resolve queries; more would only add to a flood.
MAX_RESOLVES = 16

# Record type and class codes (RFC 1035 3.2.2, RFC 2782).
_TYPE_A = 1
_TYPE_TXT = 16
_TYPE_SRV = 33
_CLASS_IN = 1


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


def read_peer_record(text: bytes, host: str, port: int) -> LanPeer | None:
    """A peer from its raw TXT RDATA and address, or None (logged at debug level) if
    the record is malformed: anything on the LAN may advertise our service type.

    Args:
        text: the TXT record's RDATA (length-prefixed strings).
        host: the address from the A record.
        port: the port from the SRV record.
    """
    props = parse_txt(text)
    try:
        if props is None:
            raise MalformedRecordError("a TXT string runs past the end of the record")
        return decode_txt(props, host, port)
    except MalformedRecordError as exc:
        log.debug("ignoring malformed %s record from %s:%s: %s", SERVICE_TYPE, host, port, exc)
        return None


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

    def __init__(self, interfaces: Interfaces = InterfaceChoice.All,
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
        self._local = local_ipv4()
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
        return pick_host(addresses, self._local), service.port, text.text, _expiry_ms(text)

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
            peer = read_peer_record(text, host, port)
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
                       interfaces: Interfaces = InterfaceChoice.All) -> tuple[str, int] | None:
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
                   interfaces: Interfaces = InterfaceChoice.All) -> list[LanSession]:
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
