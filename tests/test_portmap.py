"""Port mapping decisions and the adapter, against a fake router (portmap.py).

The real router (miniupnpd in the NAT lab) is exercised in tests/test_nat_e2e.py.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from peer.node.portmap import (
    MIN_LEASE_S,
    PORT_TRIES,
    MappingPlan,
    PortMapError,
    PortMapper,
    PortMapping,
)
from peer.node.reachability import Reachability, classify


class FakeIgd:
    """A UPnP router as miniupnpc shows it; ``taken`` ports are refused."""

    def __init__(self, external: str = "11.0.113.7", devices: int = 1,
                 taken: frozenset[int] = frozenset()) -> None:
        self.discoverdelay = 0
        self.lanaddr = "192.168.1.2"
        self._external = external
        self._devices = devices
        self._taken = taken
        self.mapped: dict[int, tuple[Any, ...]] = {}
        self.adds = 0

    def discover(self) -> int:
        return self._devices

    def selectigd(self) -> str:
        if not self._devices:
            raise Exception("No UPnP device discovered")
        return "http://192.168.1.1:5000/ctl/IPConn"

    def externalipaddress(self) -> str:
        return self._external

    def addportmapping(self, *args: Any) -> bool:
        self.adds += 1
        if args[0] in self._taken:
            raise Exception("ConflictInMappingEntry")
        self.mapped[args[0]] = args
        return True

    def deleteportmapping(self, port: int, proto: str) -> bool:
        del self.mapped[port]
        return True


def test_own_port_first_then_distinct_random_ones() -> None:
    ports = MappingPlan(5000, random.Random(1)).candidates()
    assert ports[0] == 5000 and len(set(ports)) == PORT_TRIES
    assert all(1024 < p < 65536 for p in ports)


@pytest.mark.parametrize("bad", ["", "garbage", "192.168.0.1", "10.1.2.3", "100.64.0.1",
                                 "0.0.0.0", "203.0.113.9", "::1"])
def test_an_external_address_that_cannot_help_is_refused(bad: str) -> None:
    # A hostile or double-NATed router: its answer must not be advertised.
    with pytest.raises(PortMapError):
        MappingPlan.check_external(bad)


def test_renewal_at_half_lease_never_busy() -> None:
    assert MappingPlan.renew_after(PortMapping("11.0.0.1", 1, "l", 1, 3600)) == 1800
    assert MappingPlan.renew_after(PortMapping("11.0.0.1", 1, "l", 1, 1)) == MIN_LEASE_S / 2
    assert MappingPlan.renew_after(PortMapping("11.0.0.1", 1, "l", 1, 0)) is None


def test_maps_own_port_and_removes_it_on_close() -> None:
    igd = FakeIgd()

    async def run() -> None:
        mapper = PortMapper(5000, lambda: igd, fallback_factory=None)
        mapping = await mapper.open()
        assert mapping == PortMapping("11.0.113.7", 5000, "192.168.1.2", 5000, 3600)
        assert igd.mapped[5000][:4] == (5000, "TCP", "192.168.1.2", 5000)
        await mapper.close()
        assert igd.mapped == {} and mapper.mapping is None

    asyncio.run(run())


def test_a_taken_port_moves_to_another() -> None:
    igd = FakeIgd(taken=frozenset({5000}))

    async def run() -> None:
        mapper = PortMapper(5000, lambda: igd, fallback_factory=None)
        mapping = await mapper.open()
        assert mapping is not None and mapping.external_port != 5000
        assert igd.mapped[mapping.external_port][3] == 5000
        await mapper.close()

    asyncio.run(run())


@pytest.mark.parametrize(("igd", "why"), [
    (FakeIgd(devices=0), "no UPnP router answered"),
    (FakeIgd(external="192.168.100.1"), "not public"),
])
def test_no_mapping_says_why(igd: FakeIgd, why: str) -> None:
    async def run() -> None:
        mapper = PortMapper(5000, lambda: igd, fallback_factory=None)
        assert await mapper.open() is None
        assert mapper.error is not None and why in mapper.error
        await mapper.close()  # nothing to remove, no error

    asyncio.run(run())
    assert igd.mapped == {}


def test_a_router_refusing_every_port_is_tried_a_bounded_number_of_times() -> None:
    igd = FakeIgd(taken=frozenset(range(65536)))

    async def run() -> None:
        mapper = PortMapper(5000, lambda: igd, fallback_factory=None)
        assert await mapper.open() is None
        assert mapper.error is not None and "refused" in mapper.error

    asyncio.run(run())
    assert igd.adds == PORT_TRIES


def test_reachability_words() -> None:
    assert classify(None, False) is Reachability.CHECKING
    assert classify(False, True) is Reachability.OUTBOUND_ONLY
    assert classify(True, True) is Reachability.MAPPED
    assert classify(True, False) is Reachability.DIRECT
    assert Reachability.OUTBOUND_ONLY == "outbound-only"
    # Undialable and fed by a --relay peer: the relay fallback serves it.
    assert classify(False, False, parent_is_relay=True) is Reachability.VIA_RELAY
    assert Reachability.VIA_RELAY == "via-relay"
    # A dialable peer under a relay is still as reachable as it is.
    assert classify(True, False, parent_is_relay=True) is Reachability.DIRECT
    assert classify(None, False, parent_is_relay=True) is Reachability.CHECKING
