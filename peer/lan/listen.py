"""Listening sockets for the tracker and the peer: dual-stack where the system allows.

``::`` (and the empty host) listens on every IPv6 and IPv4 address through one
``AF_INET6`` socket with ``IPV6_V6ONLY`` off, so a port chosen by the system (port 0)
is the same for both families, which two sockets could not promise. Where the system
has no IPv6 (disabled in the kernel, a container without it) it falls back to an IPv4
listener on ``0.0.0.0``. ``0.0.0.0`` or one address listens on exactly that.
IPv4 clients of a dual-stack socket show up as ``::ffff:a.b.c.d``:
``protocol.addresses.plain_host`` turns that back into ``a.b.c.d``.
"""

from __future__ import annotations

import contextlib
import errno
import socket

__all__ = ["listen_socket"]

_BACKLOG = 128
# No IPv6 here: the family is unsupported or the wildcard cannot be bound.
_NO_IPV6 = frozenset({errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT})


def listen_socket(host: str, port: int, *, backlog: int = _BACKLOG,
                  reuse_port: bool = False) -> socket.socket:
    """A bound, listening, non-blocking TCP socket for ``host:port`` (unbracketed host).

    ``reuse_port``: other sockets of this user may bind the same port (SO_REUSEPORT):
    a peer's hole punches dial out from its listening port (peer/node/punch.py).

    Raises:
        OSError: the address cannot be bound (in use, not ours, unknown name).
    """
    if host in ("", "::"):
        try:
            return _bind(socket.AF_INET6, ("::", port), backlog, dual=True,
                         reuse_port=reuse_port)
        except OSError as exc:
            if exc.errno not in _NO_IPV6:
                raise  # in use, say: falling back would only hide it
        return _bind(socket.AF_INET, ("0.0.0.0", port), backlog, dual=False,
                     reuse_port=reuse_port)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return _bind(family, address, backlog, dual=False, reuse_port=reuse_port)


def _bind(family: int, address: tuple[object, ...], backlog: int, *,
          dual: bool, reuse_port: bool = False) -> socket.socket:
    if reuse_port and address[1] != 0:
        # SO_REUSEPORT would let a second listener of ours share a port someone already
        # listens on (two peers started with one --listen): a plain bind first, so a
        # port in use is still refused.
        _bind(family, address, backlog, dual=dual).close()
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # Off: IPv4 clients arrive on the same socket. On: this address only.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual else 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock
