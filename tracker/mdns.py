"""Advertise a running tracker on the LAN as ``_treecast-trk._tcp.local.``.

Peers started with ``--lan`` look for this service (``peer.lan.browser.find_tracker``)
and use the tracker when they find one. The record follows the same liveness rules as
the peers' records (see the theory of operation in protocol/lan.py): a short TTL,
refreshed by unsolicited announcements, withdrawn with goodbye packets on close, so
peers stop offering a tracker that crashed within about ten seconds.

The advertising itself is ``peer.lan.advertiser.ServiceAdvertiser``: ``peer.lan``
imports only ``protocol`` and zeroconf, so using it does not make the tracker depend
on the peer's node or GUI (tests/test_import_layers.py checks that).

Usage::

    async with TrackerAdvertiser(port):
        await server.serve_forever()
"""

from __future__ import annotations

import logging
import socket

from zeroconf import InterfaceChoice

from peer.lan.addresses import Interfaces, advertise_addresses
from peer.lan.advertiser import ServiceAdvertiser, ServiceRecord
from protocol import limits
from protocol.lan import (
    MAX_LABEL_BYTES,
    RECORD_TTL_S,
    REFRESH_S,
    TRACKER_SERVICE_TYPE,
    truncate_utf8,
)

__all__ = ["TrackerAdvertiser"]

log = logging.getLogger(__name__)


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
                 interfaces: Interfaces = InterfaceChoice.All, *,
                 ttl_s: int = RECORD_TTL_S, refresh_s: float = REFRESH_S) -> None:
        if not 1 <= port <= 65535:
            raise ValueError(f"tracker port {port} outside [1, 65535]")
        self.port = port
        self._record = ServiceRecord(port=port,
                                     properties={"ver": str(limits.PROTOCOL_VERSION)},
                                     host=host)
        self._addresses = advertise_addresses(host, interfaces)  # raises for a bad host
        self._service = ServiceAdvertiser(TRACKER_SERVICE_TYPE, interfaces,
                                          ttl_s=ttl_s, refresh_s=refresh_s)

    @property
    def instance_name(self) -> str | None:
        """The registered service name, once started."""
        return self._service.instance_name

    async def __aenter__(self) -> TrackerAdvertiser:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Register the service (probing for a unique name) and start refreshing.

        Raises:
            ValueError: if called twice.
            zeroconf.NonUniqueNameException: if every name tried was taken.
        """
        host = "".join(ch for ch in socket.gethostname() if ch.isalnum() or ch in "-_")
        # Keep 3 bytes of the DNS label for a "-N" rename suffix.
        label = truncate_utf8(f"Treecast tracker {host or 'host'} {self.port}",
                              MAX_LABEL_BYTES - 3).strip()
        await self._service.start(label, self._record)
        log.info("advertising the tracker on the LAN as %r (%s port %d)",
                 self.instance_name, ", ".join(self._addresses), self.port)

    async def close(self) -> None:
        """Withdraw the record (goodbye packets) and stop. Safe to call twice."""
        await self._service.close()
