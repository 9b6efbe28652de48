"""TCP hole punching: two peers behind NATs connect by dialling each other at once.

Neither of two peers behind NAT routers can be dialled, but each router lets in what
answers a connection its own host opened. If both dial each other *from their listening
port* at about the same moment, each one's SYN opens its router for the other's, and
TCP's simultaneous open turns the two crossing attempts into one connection (RFC 793,
RFC 5382 section 7.2). It works through NATs that keep the source port and the mapping
whatever the destination (port-preserving, "cone"); it cannot work where the outside
port is new for every destination (symmetric NATs): the other side dials a port that
leads nowhere. Such attempts end after ``PUNCH_TIMEOUT_S``.

The listening socket must allow the port to be shared (``SO_REUSEPORT``; asyncio's
``start_server(reuse_port=True)``).

The tree uses it through punching.py (the tracker tells both sides the other's address
and a moment; the child then serves TLS on the connection, the parent is the TLS
client, as if it had dialled: see punching.py). tests/test_punch.py measures the
primitive alone per NAT pair in the NAT lab.
"""

from __future__ import annotations

import asyncio
import socket
import time

PUNCH_TIMEOUT_S = 3.0
"""How long one punch may take: a SYN retransmission (1 s) and change. Where it does not
work (a symmetric NAT on either side) nothing better comes from waiting longer."""


def _bound_socket(local_port: int, family: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", local_port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def punch(local_port: int, remote: tuple[str, int], start_at: float,
                timeout_s: float = PUNCH_TIMEOUT_S) -> socket.socket | None:
    """Dial ``remote`` from ``local_port`` at wall-clock ``start_at``.

    Returns:
        The connected socket (non-blocking), or None if no connection came within
        ``timeout_s`` of the start (refused, dropped, or a symmetric NAT).
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in remote[0] else socket.AF_INET
    await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = loop.time() + timeout_s
    while (remaining := deadline - loop.time()) > 0:
        try:
            sock = _bound_socket(local_port, family)
        except OSError:
            return None  # our port cannot be shared (no SO_REUSEPORT on the listener)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, remote), timeout=remaining)
        except (OSError, TimeoutError):
            sock.close()
            # Refused (a router that answers with RST): try again shortly, the other
            # side's SYN may open the way meanwhile.
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
            continue
        return sock
    return None
