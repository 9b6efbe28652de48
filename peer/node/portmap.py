"""Port mapping on the home router (UPnP-IGD), so children can dial a peer behind NAT.

A peer behind a NAT router listens on a port nobody outside can reach. Most home routers
speak UPnP-IGD: on request they forward an outside port to us. ``PortMapper`` finds the
router, asks for ``external port -> our listen port`` (the same port number if it is
free, since then nothing else needs to change), keeps the mapping alive by renewing it
at half its lease, and removes it when the peer stops. The peer then registers with the
tracker under the external port; the tracker lists it at the address the registration
came from (the router's) and its connect-back check decides, as for anyone, whether the
mapping really works.

The client is MiniUPnP's own Python binding (``miniupnpc``): the reference UPnP-IGD
client, small, synchronous, a C extension with wheels. Its calls block (discovery waits
``DISCOVER_MS`` for SSDP answers), so they run in a worker thread.

What a router says is not trusted blindly: an external address that is not a public
IPv4 address (a second NAT in front, a broken router) means the mapping cannot help and
is given up on; a lease shorter than ``MIN_LEASE_S`` is not renewed in a busy loop.

``MappingPlan`` is the sans-IO part (which ports to try, when to renew, what an answer
means); ``PortMapper`` is the thin adapter around the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

from peer.node.natpmp import NatPmpClient

log = logging.getLogger(__name__)

DISCOVER_MS = 1000
"""How long discovery waits for routers to answer (SSDP, on the LAN: milliseconds)."""
LEASE_S = 3600
"""The lease asked for; the router may shorten it or only grant permanent ones."""
MIN_LEASE_S = 60
"""Renewals never come more often than every MIN_LEASE_S / 2."""
PORT_TRIES = 4
"""External ports tried: our own port first, then random high ones."""
DESCRIPTION = "Treecast peer"


class PortMapError(Exception):
    """The router could not or would not map a port; the text says why."""


@dataclass(frozen=True, slots=True)
class PortMapping:
    """A granted mapping: ``external_host:external_port`` reaches our ``internal_port``.

    Attributes:
        lease_s: how long it lasts unless renewed (0: until removed).
    """

    external_host: str
    external_port: int
    internal_host: str
    internal_port: int
    lease_s: int


class MappingPlan:
    """Sans-IO decisions of port mapping, for one listen port."""

    def __init__(self, internal_port: int, rng: random.Random | None = None) -> None:
        if not 1 <= internal_port <= 65535:
            raise ValueError(f"not a port: {internal_port}")
        self.internal_port = internal_port
        self._rng = rng or random.Random()

    def candidates(self) -> list[int]:
        """External ports to ask for, in order: ours first, then random unprivileged ones."""
        ports = [self.internal_port]
        while len(ports) < PORT_TRIES:
            port = self._rng.randint(20000, 60999)
            if port not in ports:
                ports.append(port)
        return ports

    @staticmethod
    def check_external(host: str) -> str:
        """The router's external address, if a mapping on it can help; else raises.

        Raises:
            PortMapError: not an IPv4 address, or a private/reserved one (a second NAT
                sits in front of this router, so its mapping reaches nobody outside).
        """
        try:
            address = ipaddress.IPv4Address(host.strip())
        except ValueError:
            raise PortMapError(f"the router reports no usable external address ({host!r})")\
                from None
        if not address.is_global:
            raise PortMapError(f"the router's external address {address} is not public "
                               "(another NAT in front of it): a mapping would not help")
        return str(address)

    @staticmethod
    def renew_after(mapping: PortMapping) -> float | None:
        """Seconds until the mapping must be renewed; None if it never expires."""
        if mapping.lease_s <= 0:
            return None
        return max(mapping.lease_s, MIN_LEASE_S) / 2


class Igd(Protocol):
    """What ``PortMapper`` needs from a port-mapping client: miniupnpc.UPnP, or
    natpmp.NatPmpClient (whose ``addportmapping`` returns the granted (port, lease))."""

    discoverdelay: int
    lanaddr: str

    def discover(self) -> int: ...
    def selectigd(self) -> Any: ...
    def externalipaddress(self) -> str: ...
    def addportmapping(self, *args: Any) -> Any: ...
    def deleteportmapping(self, *args: Any) -> Any: ...


def _miniupnpc() -> Igd:
    import miniupnpc  # type: ignore[import-not-found,unused-ignore]

    client: Igd = miniupnpc.UPnP()
    return client


class PortMapper:
    """Maps our listen port on the home router, renews it, removes it on ``close``.

    Args:
        internal_port: the port we listen on.
        client_factory: makes the UPnP client (tests pass a fake).
    """

    def __init__(self, internal_port: int, client_factory: Any = _miniupnpc,
                 fallback_factory: Any = NatPmpClient) -> None:
        self.plan = MappingPlan(internal_port)
        self._factory = client_factory
        self._fallback = fallback_factory
        self._client: Igd | None = None
        self.mapping: PortMapping | None = None
        self.error: str | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def open(self) -> PortMapping | None:
        """Find the router and map; None (with ``error`` saying why) if that fails."""
        loop = asyncio.get_running_loop()
        try:
            self.mapping = await loop.run_in_executor(None, self._map)
        except PortMapError as exc:
            self.error = str(exc)
            log.info("no port mapping: %s", exc)
            return None
        log.info("router maps %s:%d -> port %d (lease %d s)", self.mapping.external_host,
                 self.mapping.external_port, self.mapping.internal_port, self.mapping.lease_s)
        if self.plan.renew_after(self.mapping) is not None:
            self._renewer = loop.create_task(self._renew_forever())
        return self.mapping

    async def close(self) -> None:
        """Stop renewing and remove the mapping (best effort: the lease ends it anyway)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        mapping, self.mapping = self.mapping, None
        if mapping is not None and self._client is not None:
            client = self._client
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(
                    None, client.deleteportmapping, mapping.external_port, "TCP")
            except Exception as exc:  # the library raises plain Exception
                log.info("could not remove the port mapping: %s", exc)

    # --- blocking parts, run in a worker thread ------------------------------------------

    def _map(self) -> PortMapping:
        try:
            client, external = self._find(self._factory(), "UPnP")
        except PortMapError as upnp:
            if self._fallback is None:
                raise
            try:
                client, external = self._find(self._fallback(), "NAT-PMP")
            except PortMapError as natpmp:
                raise PortMapError(f"{upnp}; {natpmp}") from None
        self._client = client
        last = "no port tried"
        for port in self.plan.candidates():
            try:
                return self._add(client, external, port, LEASE_S)
            except Exception as exc:
                last = str(exc)
                if "OnlyPermanentLeases" in last or "725" in last:
                    with contextlib.suppress(Exception):
                        return self._add(client, external, port, 0)
        raise PortMapError(f"the router refused to map a port: {last}")

    def _find(self, client: Igd, protocol: str) -> tuple[Igd, str]:
        """Discover the router with ``client``; it and its checked external address."""
        client.discoverdelay = DISCOVER_MS
        try:
            if client.discover() <= 0:
                raise PortMapError(f"no {protocol} router answered on this network")
            client.selectigd()
            return client, self.plan.check_external(client.externalipaddress())
        except PortMapError:
            raise
        except Exception as exc:  # miniupnpc raises plain Exception with the reason
            raise PortMapError(f"the {protocol} router did not answer properly: {exc}") \
                from None

    def _add(self, client: Igd, external: str, port: int, lease_s: int) -> PortMapping:
        granted = client.addportmapping(port, "TCP", client.lanaddr, self.plan.internal_port,
                                        DESCRIPTION, "", lease_s)
        if isinstance(granted, tuple):  # NAT-PMP: the gateway picks port and lease
            port, lease_s = granted
        return PortMapping(external, port, client.lanaddr, self.plan.internal_port, lease_s)

    async def _renew_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while (mapping := self.mapping) is not None and self._client is not None:
            delay = self.plan.renew_after(mapping)
            if delay is None:
                return
            await asyncio.sleep(delay)
            client = self._client
            try:
                self.mapping = await loop.run_in_executor(
                    None, self._add, client, mapping.external_host, mapping.external_port,
                    mapping.lease_s)
            except Exception as exc:
                # Keep trying at the same pace: the old lease still runs for half of it.
                log.warning("could not renew the port mapping: %s", exc)
