"""``HOST:PORT`` text, IPv6 included: the one parser and printer every address goes through.

An IPv6 address holds colons, so with a port it is written in brackets
(``[2001:db8::1]:7000``, RFC 3986); a bare ``2001:db8::1:7000`` is ambiguous and refused.
Hosts travel unbracketed everywhere else (wire fields, sockets); ``join_host_port``
adds the brackets back for display and for command lines. ``plain_host`` turns the
IPv4-mapped form a dual-stack socket reports (``::ffff:192.0.2.1``) back into the IPv4
address, so one host is always spelt one way (per-address limits, the address peers
are listed at, which IPv4-only peers must be able to dial).
"""

from __future__ import annotations

import ipaddress

from protocol import limits

__all__ = ["AddressError", "join_host_port", "plain_host", "split_host_port"]


class AddressError(ValueError):
    """Text that is not a usable ``HOST:PORT``; the message says what is wrong."""


def split_host_port(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """``"host:7000"``, ``"192.0.2.1:7000"`` or ``"[2001:db8::1]:7000"`` -> (host, port).

    The host comes back without brackets. An empty bracketed host is refused; an empty
    unbracketed one (``":7000"``) is too, since a listener or dialler needs one.

    Args:
        allow_port_zero: accept port 0 ("pick a free one", for listen addresses).

    Raises:
        AddressError: naming the text and what is wrong with it.
    """
    if len(text) > limits.MAX_HOST_CHARS + 8:
        raise AddressError(f"address too long ({len(text)} characters)")
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or not rest.startswith(":"):
            raise AddressError(f"expected [IPV6]:PORT, got {text!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"not an IPv6 address in brackets: {text!r}") from None
        port_text = rest[1:]
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise AddressError(f"expected HOST:PORT, got {text!r}")
        if ":" in host:
            raise AddressError(f"an IPv6 address needs brackets: [{host}]:{port_text}")
        if not host or any(c.isspace() or c in "[]/@#," for c in host):
            raise AddressError(f"expected HOST:PORT, got {text!r}")
    # isdigit() accepts digits of other scripts; the wire and sockets do not.
    if not port_text or not port_text.isascii() or not port_text.isdigit() \
            or len(port_text) > 5:
        raise AddressError(f"port must be a number, got {text!r}")
    port = int(port_text)
    if not (0 if allow_port_zero else 1) <= port <= 65535:
        raise AddressError(f"port {port} out of range in {text!r}")
    return host, port


def join_host_port(host: str, port: int) -> str:
    """(host, port) -> text ``split_host_port`` reads back: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def plain_host(host: str) -> str:
    """An address as one host is always spelt: IPv4-mapped IPv6 becomes IPv4, a scope
    suffix and anything that is not an IP literal are left alone."""
    if host.startswith("::ffff:") or host.startswith("::FFFF:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host
