"""Connections in and out: the listening socket, admitting inbound links, dialling.

Inbound: a connection is counted against the caps (in total and per address,
admission.py) before anything else; a refused one hears a Bye with
``TOO_MANY_CONNECTIONS`` and costs nothing more. TLS starts only after that: a
handshake costs memory and CPU that a refused connection must not get. An admitted
link is handed over unstarted (the driver gives it a tree id first).

The listener is a plain accept loop: each accepted socket is admitted while it is still
a bare socket, and only then becomes a (TLS) transport, which reads from its first
byte. Upgrading a transport that already reads (``StreamWriter.start_tls``) loses the
ClientHello whenever it arrived before the upgrade: uvloop starts reading as soon as
the transport exists, so every inbound handshake would hang (asyncio's own loop only
got away with it by the order of its callbacks).

Outbound: ``dial`` opens a link to a candidate (TLS: the listener must hold the
candidate's key). With port mapping on, the home router forwards a port to our
listener and we register under its external port.

Hole punches (punching.py): the listener shares its port (SO_REUSEPORT) so punches
can dial out from it; a dial the tracker arranged a punch for punches instead of
connecting, and a punched connection on the child's side goes through ``adopt``,
the same admission as an accepted one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from peer.lan.listen import listen_socket
from peer.node.admission import ConnectionCaps
from peer.node.config import NodeConfig
from peer.node.errors import NodeError
from peer.node.link import CloseHandler, MessageHandler, PeerLink, open_link
from peer.node.portmap import PortMapper, PortMapping
from peer.node.tasks import TaskSet
from peer.trust.tls import HANDSHAKE_TIMEOUT_S, LinkGuard, server_context
from protocol import Bye, Candidate, ErrorCode, encode
from protocol.addresses import join_host_port, plain_host
from protocol.identity import Identity
from protocol.private_room import link_key

if TYPE_CHECKING:
    from peer.node.punching import HolePunching

log = logging.getLogger(__name__)

ACCEPT_RETRY_S = 1.0
"""How long the listener rests after accept() failed (out of file descriptors, say),
rather than spin on a listening socket that stays readable (asyncio's servers do the
same)."""

READ_LIMIT_BYTES = 2 ** 16
"""An inbound link's StreamReader limit (asyncio's default, as ``start_server`` had)."""


class Connections:
    """Our listener and the links it admits; links we dial.

    Args:
        config: where to listen, TLS, private room, timing, port mapping.
        identity: our key (TLS).
        on_message: every link's messages.
        on_close: every link's close.
        on_inbound: an admitted inbound link (not started) and its remote address.
    """

    def __init__(self, config: NodeConfig, identity: Identity, *,
                 on_message: MessageHandler, on_close: CloseHandler,
                 on_inbound: Callable[[PeerLink, str | None], None]) -> None:
        self._config = config
        self._identity = identity
        self._on_message = on_message
        self._on_close = on_close
        self._on_inbound = on_inbound
        # A private room: links prove the passphrase in their Hellos (private_room.py).
        self._room_key = link_key(config.room_secret) if config.room_secret else None
        # Inbound connections held at once, in total and per address (hostile hosts).
        self._caps = ConnectionCaps.for_fanout(config.fanout)
        self._listener: socket.socket | None = None
        # The accept loop and the connections it is admitting (handshakes under way).
        self._accepting = TaskSet()
        self._tls_context: ssl.SSLContext | None = None
        self._portmap: PortMapper | None = None
        self.closing = False
        # Dials the tracker arranged a punch for go through it (set by the node).
        self.punching: HolePunching | None = None

    @property
    def mapping(self) -> PortMapping | None:
        """The router's port mapping to our listener, if one was made."""
        return self._portmap.mapping if self._portmap is not None else None

    async def listen(self) -> tuple[str, int]:
        """Start listening; our (host, port).

        Raises:
            NodeError: the address cannot be listened on.
        """
        cfg = self._config
        try:
            listener = listen_socket(cfg.listen_host, cfg.listen_port, reuse_port=True)
            self._tls_context = server_context(self._identity) if cfg.tls else None
        except OSError as exc:
            raise NodeError(
                f"cannot listen on {join_host_port(cfg.listen_host, cfg.listen_port)}: "
                f"{exc.strerror or exc}") from None
        self._listener = listener
        self._accepting.spawn(self._accept_loop(listener), "node-accept")
        address = listener.getsockname()
        return address[0], address[1]

    @property
    def listen_port(self) -> int | None:
        """The port we listen on (punches dial out from it), None when not listening."""
        if self._listener is None:
            return None
        return int(self._listener.getsockname()[1])

    async def adopt(self, sock: socket.socket) -> None:
        """Admit a connection made by a hole punch as if our listener had accepted it."""
        await self._admit(sock)

    async def map_port(self, listen: tuple[str, int]) -> tuple[str, int]:
        """Ask the home router for a port mapping if configured; the address to register.

        With a mapping we register under its external port: the tracker lists us at the
        address our registration comes from (the router's) and dials that back.
        """
        if not self._config.port_mapping:
            return listen
        self._portmap = PortMapper(listen[1])
        mapping = await self._portmap.open()
        if mapping is None:
            return listen
        return listen[0], mapping.external_port

    async def close(self) -> None:
        """Stop listening and give the port mapping back."""
        self.closing = True
        # The accept loop and unfinished admissions end here (each releases its slot
        # and closes its socket); links already handed over are the node's to close.
        await self._accepting.cancel_all()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._portmap is not None:
            await self._portmap.close()

    def closed(self, link: PeerLink) -> None:
        """A link closed: its address holds one connection less."""
        if link.admitted_from is not None:
            self._caps.release(link.admitted_from)
            link.admitted_from = None

    async def dial(self, candidate: Candidate) -> PeerLink:
        """Open a link to ``candidate`` (not started).

        Raises:
            OSError, TimeoutError: it cannot be reached or is not who it says.
        """
        sock: socket.socket | None = None
        if self.punching is not None:
            with contextlib.suppress(LookupError):  # no punch arranged: dial as usual
                sock = await self.punching.dial_socket(candidate)
        return await open_link(candidate.host, candidate.port,
                               timeout=self._config.timing.connect_timeout_s,
                               on_message=self._on_message, on_close=self._on_close,
                               identity=self._identity if self._config.tls else None,
                               expected_id=candidate.id, room_key=self._room_key,
                               sock=sock)

    async def _accept_loop(self, listener: socket.socket) -> None:
        """Accept connections until cancelled; each is admitted in a task of its own
        (a slow TLS handshake must not hold up the next connection)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:
                log.warning("cannot accept connections: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            self._accepting.spawn(self._admit(sock), "node-admit")

    async def _admit(self, sock: socket.socket) -> None:
        """An inbound connection (accepted or punched): count it against the caps, then
        TLS, then hand it over as an unstarted link. It is closed if refused, if the
        handshake fails, or if we are closing."""
        if self.closing:
            sock.close()
            return
        try:
            peer = sock.getpeername()
        except OSError:  # gone already (reset before we got to it)
            sock.close()
            return
        # One host, one spelling: an IPv4 peer on our dual-stack listener is a.b.c.d.
        address = plain_host(str(peer[0])) if isinstance(peer, tuple) else "?"
        refusal = self._caps.admit(address)
        if refusal is not None:
            with contextlib.suppress(OSError):  # a full buffer or a reset: it is told no
                sock.setblocking(False)
                sock.send(encode(Bye(reason=refusal, code=int(ErrorCode.TOO_MANY_CONNECTIONS))))
            sock.close()
            return
        try:
            reader, writer = await self._open_streams(sock)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            log.debug("TLS handshake with %s failed: %r", address, exc)
            self._caps.release(address)
            sock.close()  # (a no-op if the transport closed it already)
            return
        except BaseException:  # cancelled: we are closing
            self._caps.release(address)
            sock.close()
            raise
        if self.closing:
            self._caps.release(address)
            writer.close()
            return
        tls = self._config.tls
        link = PeerLink(reader, writer, on_message=self._on_message,
                        on_close=self._on_close, outbound=False,
                        guard=LinkGuard(self._identity.public_key) if tls else None,
                        room_key=self._room_key, own_id=self._identity.peer_id)
        link.admitted_from = address
        self._on_inbound(link, address if address != "?" else None)

    async def _open_streams(self, sock: socket.socket
                            ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``sock`` as asyncio streams, after the TLS handshake when links are TLS.

        Raises:
            OSError, TimeoutError, ssl.SSLError: the handshake failed or timed out.
        """
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_LIMIT_BYTES, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        context = self._tls_context
        # The loop closes the socket if the handshake fails, by its own timeout too.
        transport, _ = await loop.connect_accepted_socket(
            lambda: protocol, sock, ssl=context,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if context is not None else None)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
