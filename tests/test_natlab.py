"""The NAT lab behaves like the routers it stands for (tests/support/natlab.py).

Each router kind is checked from the outside: which address and port a public server
sees for a home host's connections, and whether anything gets in unasked.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.support import netns
from tests.support.natlab import Kind, LabHost, NatLab, natlab_unavailable

KINDS = (Kind.PUBLIC, Kind.CONE, Kind.SYMMETRIC, Kind.UPNP)
_why = natlab_unavailable(KINDS)
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_why is not None, reason=str(_why))]

# Prints "ready" once listening, then for each connection the peer's address as seen here.
ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(); print("ready", flush=True)
while True:
    c, a = s.accept(); c.sendall(("%s:%d" % a).encode()); c.close()
"""


def seen_from(host: LabHost, target: str, port: int, source_port: int) -> str:
    """Connect from ``host``'s ``source_port`` to target:port; what did the server see?"""
    code = ("import socket; s = socket.socket(); "
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('0.0.0.0', {source_port})); s.settimeout(5); "
            f"s.connect(('{target}', {port})); print(s.recv(100).decode())")
    proc = netns.python(host, "-c", code, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, netns.stderr_tail(proc)
    return str(out.decode().strip())


def can_connect(host: LabHost, target: str, port: int) -> bool:
    code = ("import socket, sys; s = socket.socket(); s.settimeout(3)\n"
            f"try: s.connect(('{target}', {port}))\n"
            "except OSError: sys.exit(1)")
    proc = netns.python(host, "-c", code)
    return proc.wait(timeout=20) == 0


def serve(host: LabHost, port: int) -> None:
    proc = netns.python(host, "-c", ECHO_SERVER, str(port), stdout=subprocess.PIPE)
    assert netns.JsonLines(proc).next_text(lambda t: t == "ready", timeout=20)


@pytest.fixture(scope="module")
def lab() -> Iterator[NatLab]:
    with NatLab(KINDS) as made:
        serve(made.hosts[0], 7000)
        yield made


def test_cone_nat_keeps_the_source_port(lab: NatLab) -> None:
    public, cone = lab.hosts[0], lab.hosts[1]
    assert seen_from(cone, public.address, 7000, 41001) == f"{cone.wan_address}:41001"


def test_symmetric_nat_picks_a_new_port(lab: NatLab) -> None:
    public, sym = lab.hosts[0], lab.hosts[2]
    seen = {seen_from(sym, public.address, 7000, 41002) for _ in range(3)}
    assert all(s.startswith(f"{sym.wan_address}:") for s in seen)
    # --random-fully: a random port per connection; three alike by chance is ~1 in 4e9.
    assert len(seen) > 1, seen


def test_nothing_gets_in_unasked(lab: NatLab) -> None:
    public = lab.hosts[0]
    for home in lab.hosts[1:]:
        serve(home, 7100)
        assert can_connect(home, "127.0.0.1", 7100)
        assert not can_connect(public, home.wan_address, 7100), home.kind


def test_upnp_router_forwards_a_mapped_port(lab: NatLab) -> None:
    public, home = lab.hosts[0], lab.hosts[3]
    serve(home, 7200)
    assert not can_connect(public, home.wan_address, 7200)
    code = ("import miniupnpc; u = miniupnpc.UPnP(); u.discoverdelay = 2000\n"
            "assert u.discover() > 0; u.selectigd()\n"
            "print(u.externalipaddress())\n"
            "u.addportmapping(7200, 'TCP', u.lanaddr, 7200, 'natlab test', '')")
    proc = netns.python(home, "-c", code, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, netns.stderr_tail(proc)
    assert out.decode().strip() == home.wan_address
    assert "7200" in lab.router_mappings(home)
    assert can_connect(public, home.wan_address, 7200)
