"""Which interfaces to run mDNS on, which of our addresses to advertise, and which of
a peer's advertised addresses to dial.

A multi-homed host (LAN, Docker bridge, VPN) has several IPv4 addresses. We advertise
all of them (unless told one), and a browser picks the address that lies in one of its
own networks, so each side dials the one route that works.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Sequence

import ifaddr
from zeroconf import InterfaceChoice

from protocol.fields import is_wildcard_host

__all__ = [
    "Interfaces",
    "advertise_addresses",
    "interfaces_for",
    "ipv4",
    "local_ipv4",
    "pick_host",
]

# What zeroconf accepts as ``interfaces``: every interface, or a list of addresses.
# (A subset of zeroconf's own InterfacesType, which it does not export.)
Interfaces = InterfaceChoice | Sequence[str]


def interfaces_for(listen_host: str) -> Interfaces:
    """mDNS on the address we are bound to, or on every interface for a wildcard.

    Args:
        listen_host: the address a server listens on ("0.0.0.0", "::", "" or one IP).

    Returns:
        ``InterfaceChoice.All`` for a wildcard, else ``[listen_host]`` (tests that
        bind to 127.0.0.1 keep their mDNS traffic on loopback).
    """
    return InterfaceChoice.All if is_wildcard_host(listen_host) else [listen_host]


def ipv4(text: str) -> ipaddress.IPv4Address | None:
    """``text`` as an IPv4 address, or None if it is not an IPv4 literal."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def local_ipv4() -> list[ipaddress.IPv4Interface]:
    """This host's IPv4 addresses with their networks."""
    found: list[ipaddress.IPv4Interface] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                with contextlib.suppress(ValueError):
                    found.append(ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}"))
    return found


def advertise_addresses(host: str | None = None,
                        interfaces: Interfaces = InterfaceChoice.All) -> list[str]:
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
    if host is not None and not is_wildcard_host(host):
        if ipv4(host) is None:
            raise ValueError(f"advertised host must be an IPv4 address, not {host!r}")
        return [host]
    if not isinstance(interfaces, InterfaceChoice):
        listed = [i for i in interfaces
                  if isinstance(i, str) and (a := ipv4(i)) is not None and not a.is_unspecified]
        if listed:
            return listed
    found = sorted({str(i.ip) for i in local_ipv4()
                    if not i.ip.is_loopback and not i.ip.is_link_local})
    return found or ["127.0.0.1"]


def pick_host(addresses: list[str], local: list[ipaddress.IPv4Interface]) -> str:
    """Of a peer's advertised addresses, the one most likely reachable from here.

    Args:
        addresses: what its A records say (at least one).
        local: our own interfaces (``local_ipv4()``).

    Returns:
        An address in a network we are on ourselves; else the first non-loopback
        one; else the first.
    """
    parsed = [(a, ip) for a in addresses if (ip := ipv4(a)) is not None]
    for text, ip in parsed:
        if not ip.is_loopback and any(ip in iface.network for iface in local):
            return text
    for text, ip in parsed:
        if not ip.is_loopback:
            return text
    return addresses[0]
