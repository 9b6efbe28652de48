"""A small internet in network namespaces: public hosts, and homes behind NAT routers.

Layout of one ``NatLab`` (``tag`` as in netns.py, e.g. ``tc4242n0``)::

    netns <tag>br:  br0, the "internet" bridge
      |-- h0 == eth0 in <tag>h0   public host   198.51.100.1   (tracker, relay peer ...)
      |-- h1 == eth0 in <tag>r1   router WAN    203.0.113.2 (cone, symmetric)
      |                                          11.0.113.2  (upnp, see below)
      |          eth1 in <tag>r1   router LAN    192.168.1.1
      |            == eth0 in <tag>h1  home host 192.168.1.2, default via .1
      ...

Every internet interface has a default route straight onto the bridge (``dev eth0``),
so the public range and the UPnP routers' range reach each other without a router in
between. Nothing is created in the root namespace; no traffic can leave the lab.

Router kinds (``Kind``):
    cone:      iptables MASQUERADE. Linux keeps the source port when it is free, so a
               home host's outgoing connections all leave from the same port as it used
               inside ("port-preserving"); nothing from outside gets in unasked.
    symmetric: MASQUERADE --random-fully: a random outside port for every connection,
               so the port one server sees says nothing about the next one.
    upnp:      cone plus miniupnpd (UPnP-IGD and NAT-PMP) on the LAN side. miniupnpd
               refuses to map anything when its WAN address is private or reserved
               (documentation ranges included), so these routers get a WAN address
               from 11.0.113.0/24 instead; it exists only inside the lab.
    natpmp:    the same with UPnP-IGD switched off: NAT-PMP only.

Processes run in a home host go out through its router, exactly like at home.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from tests.support import netns
from tests.support.netns import Host, Lan, NetnsError, _run, netns_unavailable

PUBLIC_NET = "198.51.100"   # RFC 5737 TEST-NET-2: public hosts
NAT_WAN_NET = "203.0.113"   # RFC 5737 TEST-NET-3: WAN side of plain NAT routers
UPNP_WAN_NET = "11.0.113"   # not reserved (miniupnpd insists), lab-only
MINIUPNPD = "/usr/sbin/miniupnpd"
IGD_START_TIMEOUT_S = 15.0


class Kind(Enum):
    """What stands between a host and the internet."""

    PUBLIC = "public"
    CONE = "cone"
    SYMMETRIC = "symmetric"
    UPNP = "upnp"
    NATPMP = "natpmp"


@dataclass(eq=False)
class LabHost(Host):
    """A host of the lab.

    Attributes:
        kind: public, or the kind of NAT router in front of it.
        wan_address: the address the internet sees it at (its own if public, else the
            router's).
        router_netns: the router's namespace (None for public hosts).
    """

    kind: Kind = Kind.PUBLIC
    wan_address: str = ""
    router_netns: str | None = None


def natlab_unavailable(kinds: list[Kind] | tuple[Kind, ...] = ()) -> str | None:
    """Why a lab with these router kinds cannot be built here, or None if it can."""
    reason = netns_unavailable()
    if reason is not None:
        return reason
    if any(k is not Kind.PUBLIC for k in kinds) and shutil.which("iptables") is None:
        return "`iptables` is not installed (apt-get install iptables)"
    mapping = Kind.UPNP in kinds or Kind.NATPMP in kinds
    if mapping and not Path(MINIUPNPD).exists():
        return "`miniupnpd` is not installed (apt-get install miniupnpd)"
    if mapping and shutil.which("nft") is None:
        return "`nft` is not installed (apt-get install nftables)"
    return None


class NatLab(Lan):
    """Public hosts and NATed homes on one "internet" bridge; always cleans up.

    Args:
        kinds: one entry per host, in order (``hosts[i]`` has ``kinds[i]``).
        drop_unsolicited: routers drop unasked-for connection attempts silently (as
            most home routers do) instead of refusing them with a TCP reset.

    Attributes:
        hosts: the hosts (``LabHost``); run processes in them with netns.python() etc.
    """

    hosts: list[LabHost]  # type: ignore[assignment]

    def __init__(self, kinds: list[Kind] | tuple[Kind, ...], *,
                 drop_unsolicited: bool = False) -> None:
        self._kinds = list(kinds)
        self._drop = drop_unsolicited
        super().__init__(len(self._kinds))

    def _build(self, n: int, subnet: str) -> None:
        br = self.bridge_netns
        self._add_netns(br)
        _run(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", br, "link", "set", "br0", "up"])
        for i, kind in enumerate(self._kinds):
            self.hosts.append(self._add_host(i, kind))
        for host in self.hosts:
            if host.kind in (Kind.UPNP, Kind.NATPMP):
                self._start_igd(host)

    def _plug(self, index: int, netns: str, address: str) -> None:
        """Put ``netns``'s eth0 on the internet bridge at ``address``."""
        br = self.bridge_netns
        _run(["ip", "-n", br, "link", "add", f"h{index}", "type", "veth",
              "peer", "name", "eth0", "netns", netns])
        _run(["ip", "-n", br, "link", "set", f"h{index}", "master", "br0", "up"])
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0"])
        _run(["ip", "-n", netns, "link", "set", "eth0", "up"])
        _run(["ip", "-n", netns, "route", "add", "default", "dev", "eth0"])

    def _add_host(self, i: int, kind: Kind) -> LabHost:
        netns = f"{self.tag}h{i}"
        self._add_netns(netns)
        if kind is Kind.PUBLIC:
            address = f"{PUBLIC_NET}.{i + 1}"
            self._plug(i, netns, address)
            return LabHost(netns=netns, index=i, address=address, lan=self, kind=kind,
                           wan_address=address)
        router = f"{self.tag}r{i}"
        self._add_netns(router)
        mapping = kind in (Kind.UPNP, Kind.NATPMP)
        wan = f"{UPNP_WAN_NET if mapping else NAT_WAN_NET}.{i + 1}"
        self._plug(i, router, wan)
        home_net = f"192.168.{i + 1}"
        _run(["ip", "-n", router, "link", "add", "eth1", "type", "veth",
              "peer", "name", "eth0", "netns", netns])
        _run(["ip", "-n", router, "addr", "add", f"{home_net}.1/24", "dev", "eth1"])
        _run(["ip", "-n", router, "link", "set", "eth1", "multicast", "on", "up"])
        _run(["ip", "-n", netns, "link", "set", "lo", "up"])
        _run(["ip", "-n", netns, "addr", "add", f"{home_net}.2/24", "dev", "eth0"])
        _run(["ip", "-n", netns, "link", "set", "eth0", "multicast", "on", "up"])
        _run(["ip", "-n", netns, "route", "add", "default", "via", f"{home_net}.1"])
        _run(["ip", "netns", "exec", router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        masquerade = ["ip", "netns", "exec", router, "iptables", "-t", "nat", "-A",
                      "POSTROUTING", "-o", "eth0", "-j", "MASQUERADE"]
        if kind is Kind.SYMMETRIC:
            masquerade.append("--random-fully")
        _run(masquerade)
        if self._drop:
            # Like most home routers: a connection attempt nobody inside asked for is
            # dropped silently (no RST), which is what lets TCP hole punching work.
            _run(["ip", "netns", "exec", router, "iptables", "-A", "INPUT", "-i", "eth0",
                  "-p", "tcp", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"])
        return LabHost(netns=netns, index=i, address=f"{home_net}.2", lan=self, kind=kind,
                       wan_address=wan, router_netns=router)

    def _start_igd(self, host: LabHost) -> None:
        """Run miniupnpd (NAT-PMP, and UPnP-IGD for ``upnp``) in ``host``'s router, and
        wait until it serves."""
        assert host.router_netns is not None
        router = host.router_netns
        # miniupnpd's nftables backend only fills chains; it expects them to exist.
        rules = self.log_dir / f"{router}.nft"
        rules.write_text(
            "table inet filter {\n"
            "  chain forward { type filter hook forward priority 0; policy accept;"
            " jump miniupnpd; }\n"
            "  chain miniupnpd { }\n"
            "  chain prerouting { type nat hook prerouting priority -100; policy accept;"
            " jump prerouting_miniupnpd; }\n"
            "  chain postrouting { type nat hook postrouting priority 100; policy accept;"
            " jump postrouting_miniupnpd; }\n"
            "  chain prerouting_miniupnpd { }\n"
            "  chain postrouting_miniupnpd { }\n"
            "}\n")
        _run(["ip", "netns", "exec", router, "nft", "-f", str(rules)])
        conf = self.log_dir / f"{router}-miniupnpd.conf"
        conf.write_text(
            "ext_ifname=eth0\n"
            "listening_ip=eth1\n"
            "http_port=5000\n"
            "enable_natpmp=yes\n"
            f"enable_upnp={'yes' if host.kind is Kind.UPNP else 'no'}\n"
            "secure_mode=yes\n"
            "system_uptime=no\n"
            "notify_interval=60\n"
            f"lease_file={self.log_dir / (router + '.leases')}\n"
            "uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n"
            "upnp_table_name=filter\n"
            "upnp_nat_table_name=filter\n"
            "upnp_forward_chain=miniupnpd\n"
            "upnp_nat_chain=prerouting_miniupnpd\n"
            "upnp_nat_postrouting_chain=postrouting_miniupnpd\n"
            "allow 1024-65535 192.168.0.0/16 1024-65535\n"
            "deny 0-65535 0.0.0.0/0 0-65535\n")
        log = (self.log_dir / f"{router}-miniupnpd.log").open("wb")
        with log:
            proc = self._run_in_netns(router, [MINIUPNPD, "-d", "-4", "-f", str(conf), "-P",
                                               str(self.log_dir / f"{router}.pid")],
                                      stdout=log, stderr=log)
        deadline = time.monotonic() + IGD_START_TIMEOUT_S
        while True:
            # Serving: the UPnP web server (TCP 5000), or the NAT-PMP port (UDP 5351).
            probe = (["-ltnH", "sport", "= :5000"] if host.kind is Kind.UPNP
                     else ["-lunH", "sport", "= :5351"])
            listening = _run(["ip", "netns", "exec", router, "ss", *probe],
                             check=False).stdout
            if listening.strip():
                return
            if proc.poll() is not None or time.monotonic() > deadline:
                text = (self.log_dir / f"{router}-miniupnpd.log").read_text(errors="replace")
                raise NetnsError(f"miniupnpd did not start in {router} "
                                 f"(exit code {proc.poll()}): {text[-1500:]}")
            time.sleep(0.05)

    def _run_in_netns(self, netns: str, argv: list[str],
                      **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Like ``run_in`` for a namespace that is not a host (a router)."""
        router_host = Host(netns=netns, index=-1, address="", lan=self)
        return self.run_in(router_host, argv, **popen_kwargs)

    def router_mappings(self, host: LabHost) -> str:
        """The router's current port-forwarding rules (nft), for assertions and logs."""
        if host.router_netns is None:
            return ""
        with contextlib.suppress(NetnsError):
            return _run(["ip", "netns", "exec", host.router_netns, "nft", "list", "chain",
                         "inet", "filter", "prerouting_miniupnpd"]).stdout
        return ""


# One side of a hole punch (peer/node/punch.py): listen on the port (shared, as the
# node's listener would be), dial the other from it at the agreed moment, swap a line.
# argv: remote host, remote port, start_at, port. Prints "connected <seconds>" or
# "failed <seconds>".
_PUNCH_SIDE = """
import asyncio, socket, sys, time
from peer.node.punch import punch

async def main():
    port = int(sys.argv[4])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("0.0.0.0", port)); listener.listen()
    start_at = float(sys.argv[3])
    sock = await punch(port, (sys.argv[1], int(sys.argv[2])), start_at)
    took = round(time.time() - start_at, 2)
    if sock is None:
        print("failed", took, flush=True); return
    loop = asyncio.get_running_loop()
    await loop.sock_sendall(sock, b"hello\\n")
    data = await asyncio.wait_for(loop.sock_recv(sock, 100), 5)
    print("connected" if data.startswith(b"hello") else "garbled", took, flush=True)

asyncio.run(main())
"""


def punch_between(a: LabHost, b: LabHost, port: int = 7400) -> tuple[str, str]:
    """Both hosts punch towards the other's WAN address at once (2 s from now).

    Returns:
        Each side's line: ``connected <s>`` or ``failed <s>`` (seconds from the start).
    """
    start_at = f"{time.time() + 2.0:.3f}"
    procs = [netns.python(x, "-c", _PUNCH_SIDE, y.wan_address, str(port), start_at,
                          str(port), stdout=subprocess.PIPE) for x, y in ((a, b), (b, a))]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        if proc.returncode != 0:
            raise NetnsError(f"punch side failed: {netns.stderr_tail(proc)}")
        outs.append(out.decode().strip())
    return outs[0], outs[1]
