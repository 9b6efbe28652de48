"""NAT-PMP (peer/node/natpmp.py): the codec against good, hostile and broken answers,
and a real mapping on a NAT-PMP-only router (miniupnpd) in the NAT lab."""

from __future__ import annotations

import struct
import subprocess

import pytest

from peer.node.natpmp import (
    NatPmpError,
    default_gateway,
    encode_map_request,
    parse_external_response,
    parse_map_response,
)
from tests.support import netns
from tests.support.natlab import Kind, NatLab, natlab_unavailable


def _map_answer(internal: int, external: int, lifetime: int, result: int = 0,
                opcode: int = 130) -> bytes:
    return struct.pack("!BBHIHHI", 0, opcode, result, 1234, internal, external, lifetime)


def test_map_request_layout() -> None:
    assert encode_map_request(5000, 5000, 3600) == bytes.fromhex(
        "0002" "0000" "1388" "1388" "00000e10")


def test_a_granted_mapping_is_read() -> None:
    assert parse_map_response(_map_answer(5000, 40000, 1800), 5000) == (40000, 1800)
    answer = struct.pack("!BBHI4s", 0, 128, 0, 1, bytes([11, 0, 113, 2]))
    assert parse_external_response(answer) == "11.0.113.2"


@pytest.mark.parametrize(("answer", "why"), [
    (b"", "answer of 0 bytes"),
    (_map_answer(5000, 40000, 60)[:15], "expected 16"),
    (_map_answer(5000, 40000, 60, opcode=129), "unexpected answer"),
    (b"\x01" + _map_answer(5000, 40000, 60)[1:], "unexpected answer"),
    (_map_answer(5000, 40000, 60, result=2), "refused"),
    (_map_answer(6000, 40000, 60), "asked for 5000"),
    (_map_answer(5000, 0, 60), "granted port 0"),
])
def test_a_bad_answer_is_an_error_not_a_mapping(answer: bytes, why: str) -> None:
    with pytest.raises(NatPmpError, match=why):
        parse_map_response(answer, 5000)


def test_default_gateway_from_the_route_table() -> None:
    table = ("Iface\tDestination\tGateway \tFlags\n"
             "eth0\t0001A8C0\t00000000\t0001\n"
             "eth0\t00000000\t0101A8C0\t0003\n")
    assert default_gateway(table) == "192.168.1.1"
    assert default_gateway(table.splitlines()[0] + "\n") is None


_why = natlab_unavailable((Kind.PUBLIC, Kind.NATPMP))


@pytest.mark.netns
@pytest.mark.skipif(_why is not None, reason=str(_why))
def test_a_nat_pmp_only_router_maps_and_unmaps_through_port_mapper() -> None:
    code = """
import asyncio, socket
from peer.node.portmap import PortMapper

def no_upnp():
    class Nothing:
        discoverdelay = 0
        lanaddr = ""
        def discover(self): return 0
    return Nothing()

async def main():
    mapper = PortMapper(7300, client_factory=no_upnp)
    mapping = await mapper.open()
    print(mapping.external_host, mapping.external_port, mapping.lease_s, flush=True)
    input()
    await mapper.close()
    print("removed", flush=True)

asyncio.run(main())
"""
    with NatLab((Kind.PUBLIC, Kind.NATPMP)) as lab:
        home = lab.hosts[1]
        proc = netns.python(home, "-c", code, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdin is not None
        host, port, lease = proc.stdout.readline().decode().split()
        assert host == home.wan_address and int(lease) > 0, netns.stderr_tail(proc)
        assert f"dport {port} dnat" in lab.router_mappings(home)
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        assert proc.stdout.readline().decode().strip() == "removed"
        assert "dnat" not in lab.router_mappings(home)
        assert proc.wait(timeout=10) == 0
