"""NAT-PMP (RFC 6886) port mapping: the Apple protocol many routers (and miniupnpd)
speak besides UPnP-IGD. Tried when no UPnP router answers.

No Python client for it is maintained (``py-natpmp`` last changed in 2023), and the
protocol is two fixed-size UDP messages, so it is here: ``encode_*`` / ``parse_*`` are
the sans-IO codec (every answer is checked: size, version, opcode, result, ports), and
``NatPmpClient`` is a small blocking client with the shape ``PortMapper`` expects (it
runs in a worker thread). The router is the default gateway (``/proc/net/route``).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

NATPMP_PORT = 5351
# RFC 6886 3.1 starts at 250 ms and doubles up to 9 times; three tries (1.75 s in all)
# bound the wait at a peer's start when nothing answers.
RETRY_DELAYS_S = (0.25, 0.5, 1.0)
OP_EXTERNAL, OP_MAP_TCP = 0, 2
_RESULTS = {1: "unsupported version", 2: "not authorized/refused", 3: "network failure",
            4: "out of resources", 5: "unsupported opcode"}


class NatPmpError(Exception):
    """The gateway did not answer, or answered with an error or garbage."""


def encode_external_request() -> bytes:
    return struct.pack("!BB", 0, OP_EXTERNAL)


def encode_map_request(internal_port: int, external_port: int, lifetime_s: int) -> bytes:
    """Map (or with lifetime 0 and external port 0: delete) a TCP port."""
    return struct.pack("!BBHHHI", 0, OP_MAP_TCP, 0, internal_port, external_port, lifetime_s)


def _check_header(data: bytes, size: int, opcode: int) -> None:
    if len(data) < size:
        raise NatPmpError(f"answer of {len(data)} bytes, expected {size}")
    version, op, result = struct.unpack_from("!BBH", data)
    if version != 0 or op != 128 + opcode:
        raise NatPmpError(f"unexpected answer (version {version}, opcode {op})")
    if result != 0:
        raise NatPmpError(f"the gateway says: {_RESULTS.get(result, f'error {result}')}")


def parse_external_response(data: bytes) -> str:
    """The gateway's external IPv4 address."""
    _check_header(data, 12, OP_EXTERNAL)
    return str(ipaddress.IPv4Address(data[8:12]))


def parse_map_response(data: bytes, internal_port: int) -> tuple[int, int]:
    """(external port, lifetime in s) the gateway granted for ``internal_port``."""
    _check_header(data, 16, OP_MAP_TCP)
    internal, external, lifetime = struct.unpack_from("!HHI", data, 8)
    if internal != internal_port:
        raise NatPmpError(f"answer for port {internal}, asked for {internal_port}")
    if lifetime and not 1 <= external <= 65535:
        raise NatPmpError(f"the gateway granted port {external}")
    return external, lifetime


def default_gateway(route_table: str | None = None) -> str | None:
    """The IPv4 default gateway from ``/proc/net/route`` (None if there is none)."""
    if route_table is None:
        try:
            route_table = Path("/proc/net/route").read_text()
        except OSError:
            return None
    for line in route_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "00000000" and fields[2] != "00000000":
            return str(ipaddress.IPv4Address(struct.pack("<I", int(fields[2], 16))))
    return None


class NatPmpClient:
    """Blocking NAT-PMP client with the ``Igd`` shape ``PortMapper`` uses."""

    def __init__(self, gateway: str | None = None) -> None:
        self.discoverdelay = 0
        self.lanaddr = ""
        self._gateway = gateway
        self._internal_of: dict[int, int] = {}  # external port -> ours (delete needs it)

    def _ask(self, request: bytes) -> bytes:
        if self._gateway is None:
            raise NatPmpError("no default gateway")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((self._gateway, NATPMP_PORT))
            self.lanaddr = sock.getsockname()[0]
            for delay in RETRY_DELAYS_S:
                sock.send(request)
                sock.settimeout(delay)
                try:
                    return sock.recv(64)
                except TimeoutError:
                    continue
                except OSError as exc:  # ICMP port unreachable: nobody listens there
                    raise NatPmpError(f"no NAT-PMP at {self._gateway}: {exc}") from None
        raise NatPmpError(f"no NAT-PMP answer from {self._gateway}")

    def discover(self) -> int:
        if self._gateway is None:
            self._gateway = default_gateway()
        return 0 if self._gateway is None else 1

    def selectigd(self) -> str:
        return f"nat-pmp://{self._gateway}"

    def externalipaddress(self) -> str:
        return parse_external_response(self._ask(encode_external_request()))

    def addportmapping(self, external_port: int, protocol: str, internal_host: str,
                       internal_port: int, description: str, remote: str,
                       lease_s: int) -> tuple[int, int]:
        # NAT-PMP has no permanent leases: "0" (UPnP's "forever") becomes a long one.
        granted = parse_map_response(
            self._ask(encode_map_request(internal_port, external_port, lease_s or 7200)),
            internal_port)
        self._internal_of[granted[0]] = internal_port
        return granted

    def deleteportmapping(self, external_port: int, protocol: str) -> None:
        port = self._internal_of.pop(external_port, external_port)
        parse_map_response(self._ask(encode_map_request(port, 0, 0)), port)
