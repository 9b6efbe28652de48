"""The tracker's asyncio adapter: sockets in, ``TrackerState`` calls, messages out.

This is the only tracker module that touches sockets. Each accepted connection is a
``_Connection`` (an ``asyncio.Protocol``: bytes arrive in ``data_received`` without a
task wake-up per read, which is what lets one process serve ten thousand peers'
heartbeats) with its own ``FrameDecoder``; everything it decodes goes to the state
with the loop's monotonic time, and whatever the state returns is written out here
(``_dispatch``). One timer task sleeps until the state's next deadline (lease expiry,
idle timeout, coalesced push, a large room's refresh turn) and is woken only when an
event moves that deadline earlier. Connect-back checks run as separate tasks, bounded
by a semaphore, so a slow or black-holed listener never holds up the loop.

A ``RemoteProtocolError`` is caught in exactly one place per connection
(``_Connection.data_received``): it is logged as one warning line with the peer's
address, answered with a Bye carrying the reason and code, and closes that
connection only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass

from peer.lan.listen import listen_socket
from peer.trust.tls import HANDSHAKE_TIMEOUT_S, LinkGuard, server_context
from protocol import limits
from protocol.addresses import join_host_port, plain_host
from protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from protocol.framing import TRACKER_INBOX, FrameDecoder, encode
from protocol.identity import Identity
from protocol.messages import Bye, Message, PeerList, Unknown
from tracker.config import TrackerConfig
from tracker.redis_store import RedisLink
from tracker.state import ConnectBack, Outbound, TrackerState

log = logging.getLogger("tracker")

# Pending connections the kernel queues for us: a reconnect storm of a whole large
# room (a tracker restart) arrives at once.
_BACKLOG = 4096
# How long close() lets the goodbyes flush before it cancels what is left.
_SHUTDOWN_GRACE_S = 1.0
# Bye codes that mean a client misbehaved (worth a warning); the rest are routine.
_ABUSE_CODES = frozenset({ErrorCode.MALFORMED, ErrorCode.TOO_LARGE, ErrorCode.RATE_LIMITED,
                          ErrorCode.UNEXPECTED, ErrorCode.TOO_MANY_CONNECTIONS})


@dataclass(slots=True)
class _Link:
    id: int
    label: str  # "ip:port" for logs
    transport: asyncio.Transport
    closing: bool = False


class _Connection(asyncio.Protocol):
    """One client connection: bytes in, decoded messages to the server, EOF out.

    Every byte a client sends passes here, and this is the one place where its
    protocol errors are caught.
    """

    def __init__(self, server: TrackerServer) -> None:
        self._server = server
        # Refuses at the header what a tracker never takes (video, peer-link and
        # tracker-push kinds) and caps metadata at a few KB, so a connection that
        # declares a large frame and withholds its body holds nothing of note.
        self._decoder = FrameDecoder(TRACKER_INBOX)
        self._link: _Link | None = None
        # TLS: the client must prove the key of the id it registers with (the lock
        # then belongs to that key: nobody else can register in its name).
        self._guard = (LinkGuard(server.identity.public_key) if server.config.tls
                       else None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._link = self._server._opened(transport)

    def data_received(self, data: bytes) -> None:
        link = self._link
        if link is None or link.closing:
            return  # closing: what a client sends after our Bye is moot
        try:
            self._decoder.receive_data(data)
            for message in self._decoder:
                if self._guard is not None and not self._guard.admit(message):
                    continue  # the proof itself: nothing for the state
                self._server._received(link, message)
                if link.closing:
                    break
        except RemoteProtocolError as exc:
            reason = exc.reason[: limits.MAX_REASON_CHARS]
            log.warning("closing %s: %s", link.label, reason)
            bye = Bye(reason, code=exc.code)
            self._server._write(link, bye, self._server._encode(bye, link))

    def eof_received(self) -> bool | None:
        return False  # close our side too: the client has left

    def connection_lost(self, exc: Exception | None) -> None:
        if self._link is not None:
            self._server._closed(self._link)
            self._link = None


class TrackerServer:
    """Serves a ``TrackerState`` over TCP.

    Args:
        config: limits and timers.
        host: address to listen on ("::": every IPv6 and IPv4 address, dual-stack where
            the system allows; "0.0.0.0": every IPv4 interface).
        port: port to listen on (0 picks a free one; see ``address``).
        epoch_floor: every epoch granted is above it. Default: the wall clock in
            milliseconds at start, which no earlier run of this tracker can have
            reached (it would have had to grant more than one epoch per millisecond
            it ran), so epochs never go back across restarts without any state kept.
        store: None to keep the state in memory (one tracker), or ``redis://HOST:PORT/DB``
            to share rooms, peers and locks with the other trackers on that Redis
            (tracker/redis_store.py).
        identity: the tracker's key pair (its TLS certificate's key, which clients
            pin); None makes a fresh one.
    """

    def __init__(self, config: TrackerConfig | None = None, *, host: str = "0.0.0.0",
                 port: int = 7700, epoch_floor: int | None = None,
                 store: str | None = None, identity: Identity | None = None) -> None:
        self.config = config or TrackerConfig()
        # Clients pin this key (known_trackers): keep it in a file (__main__ does).
        self.identity = identity or Identity.generate()
        cfg = self.config
        shared = store is not None
        self.state = TrackerState(
            cfg, epoch_floor=int(time.time() * 1000) if epoch_floor is None else epoch_floor,
            # (asyncio's loop.time() is time.monotonic(): the state's clock.) A shared
            # store remembers the locks: no need to wait for holders to come back.
            recovering_until=None if shared
            else time.monotonic() + cfg.lease_s + cfg.lease_grace_s,
            tracker_id=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
            shared=shared)
        self._store_url = store
        self._link: RedisLink | None = None
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._links: dict[int, _Link] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sleeping_until: float | None = None  # the timer task's deadline
        self._all_closed = asyncio.Event()  # set while no connection is open
        self._all_closed.set()
        self._check_slots = asyncio.Semaphore(self.config.max_connect_backs)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually listened on.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._server is None or not self._server.sockets:
            raise RuntimeError("tracker is not listening")
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Bind and start accepting connections.

        Raises:
            OSError: the address cannot be bound.
        """
        loop = asyncio.get_running_loop()
        if self._store_url is not None:
            link = RedisLink(self._store_url, self.state, self._dispatch)
            try:
                await link.start()
            except Exception:
                await link.close()
                raise
            self._link = link
        tls = self.config.tls
        self._server = await loop.create_server(
            lambda: _Connection(self), sock=listen_socket(self._host, self._port,
                                                          backlog=_BACKLOG),
            ssl=server_context(self.identity) if tls else None,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT_S if tls else None)
        self._timer_task = asyncio.create_task(self._run_timers(), name="tracker-timers")

    async def close(self) -> None:
        """Say Bye to every connection, stop listening and end every task."""
        if self._server is None:
            return
        self._server.close()
        for link in list(self._links.values()):
            bye = Bye("tracker shutting down", code=ErrorCode.UNEXPECTED)
            self._write(link, bye, self._encode(bye, link))
        if self._links:
            # Connections end by themselves once their Bye is flushed and the socket
            # closed; wait a bounded moment for that, then cut what is left.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SHUTDOWN_GRACE_S):
                    await self._all_closed.wait()
        for link in list(self._links.values()):
            link.transport.abort()
        tasks = [*self._tasks, *([self._timer_task] if self._timer_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        if self._link is not None:
            await self._link.close()
            self._link = None

    async def __aenter__(self) -> TrackerServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- connections ------------------------------------------------------------------

    def _opened(self, transport: asyncio.Transport) -> _Link:
        peer = transport.get_extra_info("peername")
        # One host, one spelling: an IPv4 client of a dual-stack listener is a.b.c.d.
        ip = plain_host(str(peer[0])) if peer else "?"
        link = _Link(next(self._ids), join_host_port(ip, peer[1]) if peer else "?",
                     transport)
        self._links[link.id] = link
        self._all_closed.clear()
        self._dispatch(self.state.connect(link.id, ip, self._loop_time()))
        return link

    def _received(self, link: _Link, message: Message | Unknown) -> None:
        self._dispatch(self.state.receive(link.id, message, self._loop_time()))

    def _closed(self, link: _Link) -> None:
        """The connection is gone (EOF, reset, closed after a Bye, shutdown)."""
        link.closing = True
        self._links.pop(link.id, None)
        if not self._links:
            self._all_closed.set()
        self._dispatch(self.state.disconnect(link.id, self._loop_time()))

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    def _dispatch(self, out: list[Outbound]) -> None:
        """Write what the state returned, start queued checks, re-arm the timer."""
        encoded: dict[int, bytes | None] = {}  # by message identity: a push is shared
        for conn, message in out:
            link = self._links.get(conn)
            if link is not None:
                if isinstance(message, Bye):
                    level = logging.WARNING if message.code in _ABUSE_CODES else logging.INFO
                    log.log(level, "closing %s: %s", link.label, message.reason)
                if id(message) not in encoded:
                    encoded[id(message)] = self._encode(message, link)
                self._write(link, message, encoded[id(message)])
        for check in self.state.take_checks():
            self._spawn(self._connect_back(check))
        if self._link is not None:
            self._link.submit()  # lock operations and peer changes for the store
        # Wake the timer only when the state's next deadline moved earlier than the
        # one it sleeps until: waking it on every message would cost a timer round per
        # heartbeat, thousands per second in a large room.
        deadline = self.state.get_timer()
        if deadline is not None and (self._sleeping_until is None
                                     or deadline < self._sleeping_until):
            self._wake.set()

    @staticmethod
    def _encode(message: Message, link: _Link) -> bytes | None:
        try:
            # A PeerList is built from registrations that passed the decoder's field
            # rules: checking them again would double a large room's busiest cost.
            return encode(message, check_fields=not isinstance(message, PeerList))
        except LocalProtocolError:
            log.exception("cannot encode %s for %s", type(message).__name__, link.label)
            return None

    def _write(self, link: _Link, message: Message, data: bytes | None) -> None:
        if link.closing or data is None:
            return
        transport = link.transport
        if transport.is_closing():
            return
        transport.write(data)
        if isinstance(message, Bye):
            self._close_link(link)  # the Bye is flushed before the socket closes
        elif transport.get_write_buffer_size() > self.config.max_write_buffer_bytes:
            # It does not read what we send: drop it rather than buffer without bound.
            log.warning("dropping %s: %d bytes unread", link.label,
                        transport.get_write_buffer_size())
            link.closing = True
            transport.abort()

    def _close_link(self, link: _Link) -> None:
        link.closing = True
        link.transport.close()  # after what is buffered has been written

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- time and reachability --------------------------------------------------------

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            deadline = self.state.get_timer()
            self._sleeping_until = deadline
            delay = None if deadline is None else max(0.0, deadline - loop.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            out = self.state.handle_timer(loop.time())
            if out:
                self._dispatch(out)

    async def _connect_back(self, check: ConnectBack) -> None:
        """Can the peer's listener be reached? Connect, close at once, report."""
        reachable = False
        async with self._check_slots:
            try:
                async with asyncio.timeout(self.config.connect_back_timeout_s):
                    _, writer = await asyncio.open_connection(check.host, check.port)
                    reachable = True
                    writer.close()
                    await writer.wait_closed()
            except (OSError, TimeoutError, ValueError):  # refused, unroutable, bad name
                pass
        log.info("connect-back to %s:%d for %s: %s", check.host, check.port, check.peer_id,
                 "reachable" if reachable else "unreachable")
        self._dispatch(self.state.check_done(check, reachable,
                                             asyncio.get_running_loop().time()))
