"""Advertise a running tracker on the LAN as ``_treecast-trk._tcp.local.``.

Peers started with ``--lan`` look for this service (peer/node/discovery.py,
``find_tracker``) and use the tracker when they find one. The record follows the same
liveness rules as the peers' records (see the theory of operation in discovery.py):
a short TTL, refreshed by unsolicited announcements, withdrawn with goodbye packets on
close, so peers stop offering a tracker that crashed within about ten seconds.

The tracker may only import ``protocol``, so this module repeats the few lines of
registration logic it shares with ``peer.node.discovery.LanAdvertiser`` rather than
importing the peer package. ``tests/test_discovery.py`` checks the constants agree.

Usage::

    async with TrackerAdvertiser(port):
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, NonUniqueNameException

# zeroconf re-exports this without listing it in __all__.
from zeroconf._utils.net import InterfacesType
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from protocol import limits

__all__ = ["RECORD_TTL_S", "REFRESH_S", "SERVICE_TYPE", "TrackerAdvertiser"]

log = logging.getLogger(__name__)

# Not "_treecast-tracker": RFC 6335 5.1 caps service names at 15 characters, and
# python-zeroconf (like Bonjour) refuses to register a longer one.
SERVICE_TYPE = "_treecast-trk._tcp.local."
# Same lifetime and refresh period as peer records: a crashed tracker drops out of
# every browser within ~10 s (see peer/node/discovery.py for the reasoning).
RECORD_TTL_S = 10
REFRESH_S = 3.0
# A DNS label is at most 63 bytes (RFC 1035 2.3.4); keep 3 for a "-N" suffix.
MAX_LABEL_BYTES = 60
# Names tried when ours is taken (two trackers on one host and port cannot both run, so
# a clash means a stale record of a restarted tracker).
MAX_RENAMES = 8


def _addresses(host: str | None, interfaces: InterfacesType) -> list[str]:
    """A given IPv4 address, the listed interfaces, or every non-loopback IPv4 address."""
    if host and host not in ("0.0.0.0", "::"):
        ipaddress.IPv4Address(host)  # raises ValueError for names and IPv6
        return [host]
    if not isinstance(interfaces, InterfaceChoice):
        listed = []
        for entry in interfaces:
            with contextlib.suppress(ValueError):
                if isinstance(entry, str) and not ipaddress.IPv4Address(entry).is_unspecified:
                    listed.append(entry)
        if listed:
            return listed
    found = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                address = ipaddress.IPv4Address(ip.ip)
                if not address.is_loopback and not address.is_link_local:
                    found.add(str(address))
    return sorted(found) or ["127.0.0.1"]


class TrackerAdvertiser:
    """Advertises one tracker's port over mDNS while it runs.

    Args:
        port: the tracker's TCP port (the bound one, not 0).
        host: the address to advertise; None or a wildcard advertises every non-loopback
            IPv4 address of this host.
        interfaces: zeroconf interfaces (``["127.0.0.1"]`` in loopback tests).
        ttl_s: record TTL.
        refresh_s: re-announcement period (under a third of ``ttl_s``).

    Raises:
        ValueError: if ``port`` is out of range or ``host`` is not an IPv4 literal.
    """

    def __init__(self, port: int, host: str | None = None,
                 interfaces: InterfacesType = InterfaceChoice.All, *,
                 ttl_s: int = RECORD_TTL_S, refresh_s: float = REFRESH_S) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"tracker port {port} outside [1, 65535]")
        self.port = port
        self._addresses = _addresses(host, interfaces)
        self._interfaces = interfaces
        self._ttl_s = ttl_s
        self._refresh_s = refresh_s
        self._aiozc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._announcing: Awaitable[object] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def instance_name(self) -> str | None:
        """The registered service name, once started."""
        return self._info.name if self._info else None

    async def __aenter__(self) -> TrackerAdvertiser:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Register the service (probing for a unique name) and start refreshing.

        Raises:
            zeroconf.NonUniqueNameException: if ``MAX_RENAMES`` names were all taken.
        """
        if self._aiozc is not None:
            raise ValueError("TrackerAdvertiser.start called twice")
        self._aiozc = AsyncZeroconf(interfaces=self._interfaces)
        host = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-_")
        base = f"Treecast tracker {host or 'host'} {self.port}"
        base = base.encode()[:MAX_LABEL_BYTES].decode("utf-8", errors="ignore").strip()
        try:
            for attempt in range(1, MAX_RENAMES + 1):
                label = base if attempt == 1 else f"{base}-{attempt}"
                info = self._make_info(label)
                try:
                    self._announcing = await self._aiozc.async_register_service(info)
                except NonUniqueNameException:
                    log.info("mDNS name %r is taken; trying another", label)
                    if attempt == MAX_RENAMES:
                        raise
                    continue
                self._info = info
                break
        except BaseException:
            await self.close()
            raise
        self._task = asyncio.create_task(self._refresh(), name="tracker-mdns")
        log.info("advertising the tracker on the LAN as %r (%s port %d)",
                 self.instance_name, ", ".join(self._addresses), self.port)

    def _make_info(self, label: str) -> AsyncServiceInfo:
        return AsyncServiceInfo(
            SERVICE_TYPE, f"{label}.{SERVICE_TYPE}", port=self.port,
            properties={"ver": str(limits.PROTOCOL_VERSION)},
            parsed_addresses=self._addresses, host_ttl=self._ttl_s, other_ttl=self._ttl_s)

    async def close(self) -> None:
        """Withdraw the record (goodbye packets) and stop. Safe to call twice."""
        for pending in (self._task, self._announcing):
            if isinstance(pending, asyncio.Future):
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending
        self._task = self._announcing = None
        aiozc, self._aiozc = self._aiozc, None
        if aiozc is None:
            return
        try:
            if self._info is not None:
                await (await aiozc.async_unregister_service(self._info))
        except ZeroconfError as exc:
            log.debug("mDNS unregister failed: %s", exc)
        finally:
            await aiozc.async_close()

    async def _refresh(self) -> None:
        """Re-announce every refresh_s so browsers keep the short-lived record."""
        assert self._aiozc is not None and self._info is not None
        if self._announcing is not None:
            await self._announcing
        zc = self._aiozc.zeroconf
        while True:
            await asyncio.sleep(self._refresh_s)
            zc.async_send(zc.generate_service_broadcast(self._info, None))
