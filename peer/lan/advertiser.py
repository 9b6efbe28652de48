"""Advertise a service over mDNS and keep its short-lived record fresh.

``ServiceAdvertiser`` registers one service instance (probing for a unique name),
re-announces it unsolicited every ``REFRESH_S`` so browsers keep a record whose TTL is
only ``RECORD_TTL_S``, pushes updates as they come (the latest wins) and withdraws the
record with goodbye packets on close. ``LanAdvertiser`` uses it for a peer's record
(``protocol.lan.LanPeer``); the tracker uses it for its own (tracker/mdns.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, NonUniqueNameException
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from peer.lan.addresses import Interfaces, advertise_addresses
from protocol.identity import Identity
from protocol.lan import (
    RECORD_TTL_S,
    REFRESH_S,
    SERVICE_TYPE,
    LanPeer,
    encode_txt,
    instance_label,
)

__all__ = ["MAX_RENAMES", "LanAdvertiser", "ServiceAdvertiser", "ServiceRecord"]

log = logging.getLogger(__name__)

# Names tried when ours is taken. Only a stale record can collide (a peer restarted with
# the same id, a tracker restarted on the same host and port while its old record is
# still live): take the next "-N" suffix rather than fail.
MAX_RENAMES = 8


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """What one service instance says about itself.

    Attributes:
        port: the SRV port.
        properties: the TXT key -> value strings.
        host: an IPv4 address to advertise; None, "" or a wildcard advertises this
            host's addresses (re-read at every update, so a DHCP renewal is picked up).
    """

    port: int
    properties: dict[str, str] = field(hash=False)
    host: str | None = None


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


class ServiceAdvertiser:
    """Advertises one instance of ``service_type`` and keeps its record fresh.

    Args:
        service_type: e.g. ``protocol.lan.SERVICE_TYPE``.
        interfaces: zeroconf interfaces (``["127.0.0.1"]`` in loopback tests).
        aiozc: share an existing AsyncZeroconf (left open on close); None makes one.
        ttl_s: record TTL; tests shorten it to see crash expiry quickly.
        refresh_s: re-announcement period (keep it under a third of ``ttl_s``).
    """

    def __init__(self, service_type: str, interfaces: Interfaces = InterfaceChoice.All, *,
                 aiozc: AsyncZeroconf | None = None, ttl_s: int = RECORD_TTL_S,
                 refresh_s: float = REFRESH_S) -> None:
        self._type = service_type
        self._interfaces = interfaces
        self._aiozc = aiozc
        self._owns_zc = aiozc is None
        self._ttl_s = ttl_s
        self._refresh_s = refresh_s
        self._info: AsyncServiceInfo | None = None
        self._announced: ServiceRecord | None = None
        self._wanted: ServiceRecord | None = None
        self._announcing: Awaitable[object] | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def instance_name(self) -> str | None:
        """The registered service name (with a ``-N`` suffix after a collision)."""
        return self._info.name if self._info else None

    @property
    def started(self) -> bool:
        """Whether ``start`` succeeded."""
        return self._announced is not None

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called (or ``start`` failed)."""
        return self._closed

    async def start(self, label: str, record: ServiceRecord) -> None:
        """Probe for a unique name, register, and start refreshing.

        Args:
            label: the instance name to try first (a DNS label, at most 60 bytes so a
                ``-N`` suffix fits).
            record: what to advertise.

        Raises:
            ValueError: if the host is not an IPv4 literal, or ``start`` was called
                twice.
            zeroconf.NonUniqueNameException: if ``MAX_RENAMES`` names were all taken.
        """
        if self._info is not None or self._closed:
            raise ValueError(f"{self._type} advertiser: start called twice")
        advertise_addresses(record.host, self._interfaces)  # validate before the network
        if self._aiozc is None:
            self._aiozc = AsyncZeroconf(interfaces=self._interfaces)
        try:
            self._info, self._announcing = await self._register(self._aiozc, label, record)
        except BaseException:
            await self.close()
            raise
        self._announced = self._wanted = record
        self._task = asyncio.create_task(self._run(), name=f"mdns-advertiser {label}")

    async def _register(self, aiozc: AsyncZeroconf, base: str,
                        record: ServiceRecord) -> tuple[AsyncServiceInfo, Awaitable[object]]:
        for attempt in range(1, MAX_RENAMES):
            label = base if attempt == 1 else f"{base}-{attempt}"
            info = self._make_info(label, record)
            try:
                return info, await aiozc.async_register_service(info)
            except NonUniqueNameException:
                log.info("mDNS name %r is taken; trying another", label)
        info = self._make_info(f"{base}-{MAX_RENAMES}", record)
        return info, await aiozc.async_register_service(info)

    def update(self, record: ServiceRecord) -> None:
        """Advertise new values for the same instance, without waiting for the network.

        The refresh task announces the record right away; the latest update wins (a
        newer one cancels the repeats of an older one). After ``close`` this does
        nothing.

        Raises:
            ValueError: if not started yet, or the host is not an IPv4 literal.
        """
        if self._closed:
            return
        if self._announced is None:
            raise ValueError(f"{self._type} advertiser: update before start")
        advertise_addresses(record.host, self._interfaces)
        self._wanted = record
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

    def _make_info(self, label: str, record: ServiceRecord) -> AsyncServiceInfo:
        name = f"{label}.{self._type}"
        return AsyncServiceInfo(
            self._type, name, port=record.port, properties=record.properties,
            # The host name for the A records; zeroconf's default, but an update needs
            # it set explicitly.
            server=name,
            # Re-read each time: an update after a DHCP renewal picks up the new address.
            parsed_addresses=advertise_addresses(record.host, self._interfaces),
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
                    label = self._info.name[: -len(self._type) - 1]
                    info = self._make_info(label, wanted)
                    self._announcing = await self._aiozc.async_update_service(info)
                    self._info, self._announced = info, wanted
                elif _done(self._announcing):
                    # A running announcement series is refresh enough.
                    zc.async_send(zc.generate_service_broadcast(self._info, None))
            except Exception:
                # Keep advertising: one failed announcement must not silence us for good.
                log.exception("mDNS announcement failed")


def _record(peer: LanPeer, identity: Identity) -> ServiceRecord:
    return ServiceRecord(port=peer.port, properties=encode_txt(peer, identity),
                         host=peer.host)


class LanAdvertiser:
    """Advertises one peer as ``_treecast._tcp.local.`` and keeps its record fresh.

    Args:
        interfaces: zeroconf interfaces (``["127.0.0.1"]`` in loopback tests).
        identity: the peer's key pair, which signs every record it advertises.
        aiozc: share an existing AsyncZeroconf (left open on close); None makes one.
        ttl_s: record TTL; tests shorten it to see crash expiry quickly.
        refresh_s: re-announcement period (keep it under a third of ``ttl_s``).
    """

    def __init__(self, interfaces: Interfaces = InterfaceChoice.All, *,
                 identity: Identity, aiozc: AsyncZeroconf | None = None,
                 ttl_s: int = RECORD_TTL_S, refresh_s: float = REFRESH_S) -> None:
        self._service = ServiceAdvertiser(SERVICE_TYPE, interfaces, aiozc=aiozc,
                                          ttl_s=ttl_s, refresh_s=refresh_s)
        self._identity = identity
        self._peer_id: str | None = None

    @property
    def instance_name(self) -> str | None:
        """The registered service name (with a ``-N`` suffix after a collision)."""
        return self._service.instance_name

    async def start(self, peer: LanPeer) -> None:
        """Probe for a unique name, register, and start refreshing.

        Args:
            peer: what to advertise; its host may be "" to advertise our addresses.

        Raises:
            ValueError: if the peer's host is not an IPv4 literal, a TXT entry is too
                long, or ``start`` was called twice.
            zeroconf.NonUniqueNameException: if ``MAX_RENAMES`` names were all taken.
        """
        await self._service.start(instance_label(peer.name, peer.id),
                                  _record(peer, self._identity))
        self._peer_id = peer.id

    def update(self, peer: LanPeer) -> None:
        """Advertise new values (depth, free slots, role, ...) for the same peer.

        Does not wait for the network (see ``ServiceAdvertiser.update``), so it is
        safe to call from synchronous code in the event loop's thread. After
        ``close`` this does nothing, so a late position change of a node that is
        shutting down is harmless.

        Args:
            peer: the new record; its id must be the one given to ``start``.

        Raises:
            ValueError: if not started yet, the id changed (close and start a new
                advertiser instead), or the host is not an IPv4 literal.
        """
        if self._service.closed:
            return
        if self._peer_id is None:
            raise ValueError("LanAdvertiser.update before start")
        if peer.id != self._peer_id:
            raise ValueError("the peer id cannot change; start a new advertiser")
        self._service.update(_record(peer, self._identity))

    async def close(self) -> None:
        """Withdraw the record (goodbye packets) and stop. Safe to call twice."""
        await self._service.close()
