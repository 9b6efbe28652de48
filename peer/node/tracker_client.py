"""The peer's side of the tracker link (asyncio, no Qt).

``TrackerClient`` registers in a room, keeps the registration alive with heartbeats
(which also carry our position in the tree), follows the room's PeerList and streamer,
and takes, renews and releases the streamer lock. ``query_room`` looks at a room
without joining it (the start screen).

Lease accounting: every claim and heartbeat carries our monotonic send time, and the
tracker echoes it in each StreamGranted. The tracker's lease runs from when it
received that request, so ``echoed send time + lease_s`` on our clock never outlives
the tracker's lease, however slow the network: ``lease_valid()`` is safe to gate
streaming on.

Liveness: the tracker only speaks when something changes, so when we have heard
nothing for a heartbeat interval we add a Ping (answered with a Pong). A link silent
for ``silence_s`` is dead (unless the timeout itself ran late: then our own loop
stalled, and the silence is ours; the tree excuses a stall the same way); EOF, a
reset, a Bye or bad bytes end it too. Every network await has a timeout.

Riding out a tracker outage. The tracker only does discovery and the lock: media and
chat never pass through it, so losing it must cost nothing but new joins for a
moment. When the link ends (without our ``close``), ``on_closed`` tells the owner and
the client reconnects by itself, with exponential backoff (0.1 s doubling to 2 s,
jittered so a room does not come back in lockstep), trying the next tracker of its
list first (``--tracker A:P,B:P``: a dead tracker's peers move to another). It
re-registers under the name it was given and with its position in the tree, and if
it held the streamer lock it re-claims it with ``resume_epoch`` and the grant's token
(proof that it is that holder). The lease it holds is kept meanwhile: the tracker
gives a holder that much grace, so streaming goes on through a restart; if the resume
is denied (someone else took the room) the lease ends and the owner steps down.
``on_reconnected`` says when the link is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TypeVar

from peer.node.errors import LockDeniedError, TrackerUnreachableError
from peer.trust.pins import KnownTrackers
from peer.trust.tls import AuthenticationError, client_context, make_proof, remote_public_key
from protocol import limits
from protocol.addresses import join_host_port
from protocol.errors import RemoteProtocolError
from protocol.framing import TRACKER_CLIENT_INBOX, FrameDecoder, encode
from protocol.identity import Identity
from protocol.messages import (
    Bye,
    DenyReason,
    Error,
    Heartbeat,
    Message,
    PeerList,
    Ping,
    PunchRequest,
    PunchStart,
    Register,
    RoomList,
    RoomListQuery,
    RoomQuery,
    StreamClaim,
    StreamDenied,
    StreamerChanged,
    StreamGranted,
    StreamRelease,
    Unknown,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_READ_BYTES = 64 * 1024
# However short the heartbeat, give a loaded machine this long before calling the
# tracker dead for silence (EOF and resets are noticed at once anyway).
_MIN_SILENCE_S = 5.0
# A peer that holds no streamer lock beats every this many periods: its position goes
# to the tracker at once when it changes (``set_position``), so the beat only keeps
# the registration and the link alive (the tracker's idle timeout and our silence
# limit are both at least five periods). The lock holder beats every period: each
# beat renews its lease. Halves the messages a room sends its tracker; and the loop
# sleeps the whole interval at once (one wake-up per beat, not per period), restarted
# when a lock is granted so that the first renewal comes one period after the grant.
IDLE_BEAT_PERIODS = 2
# How long writing may stall (tracker not reading) before the link counts as broken.
_WRITE_TIMEOUT_S = 5.0
# Reconnect backoff: first retry, cap, and the random spread around each delay.
_RETRY_FIRST_S = 0.1
_RETRY_MAX_S = 2.0
_RETRY_JITTER = 0.3
# One connection attempt while reconnecting (a restarted tracker answers at once).
_CONNECT_TIMEOUT_S = 3.0


_DENIED_BECAUSE = {
    DenyReason.RECOVERING: "the tracker restarted and the previous streamer may be "
                           "coming back: try again in a few seconds",
    DenyReason.NO_STORE: "the trackers' shared store does not answer, so nobody can "
                         "start a stream right now: try again in a moment",
    DenyReason.SUPERSEDED: "a newer stream has replaced ours in this room",
}


def denied_error(answer: StreamDenied) -> LockDeniedError:
    """The error a refused claim means to the user (the holder's name, or why not)."""
    if answer.reason is DenyReason.HELD:
        return LockDeniedError(answer.holder_name or answer.holder_id)
    return LockDeniedError("", _DENIED_BECAUSE[answer.reason])


def _ignore(_: object) -> None:
    return None


class TrackerClient:
    """One peer's persistent connection to a tracker (one of several it knows).

    Args:
        host: the tracker's address.
        port: the tracker's port.
        more_trackers: further trackers to move to when this one fails.
        peer_id: our peer id (unique in the room).
        name: our display name.
        room: the room to join.
        listen_host: where children dial us; None lets the tracker use the address
            it sees us connect from.
        listen_port: our listen port; None if we take no children.
        heartbeat_s: heartbeat period (the tracker's idle timeout and lease are
            several of these).
        on_peer_list: called with every PeerList pushed after the one ``connect``
            returns.
        on_streamer_changed: called when the room's streamer changes (or ends).
        on_closed: called with a reason when the link drops without our ``close``
            (the client then reconnects by itself unless ``reconnect`` is False).
        on_reconnected: called with "host:port" when a lost link is back (after the
            re-registration and, if we held the lock, its resume).
        reconnect: whether to reconnect after a lost link.
        identity: our key pair: with it the link is TLS, every tracker must present
            its pinned key (``pins``; the first tracker ``fingerprint`` when given)
            and we prove ours; None: plaintext (protocol tests only).
        fingerprint: the first tracker's fingerprint as the user gave it, or None.
        pins: the known_trackers file (default: the user's config dir).
        relay: we are a ``--relay`` peer (told at registration; see ``Register``).
        on_punch: called with every PunchStart (a hole punch the tracker arranged).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        peer_id: str,
        name: str,
        room: str,
        listen_host: str | None,
        listen_port: int | None,
        heartbeat_s: float = 1.0,
        on_peer_list: Callable[[PeerList], None] = _ignore,
        on_streamer_changed: Callable[[StreamerChanged], None] = _ignore,
        on_closed: Callable[[str], None] = _ignore,
        on_reconnected: Callable[[str], None] = _ignore,
        more_trackers: Sequence[tuple[str, int]] = (),
        reconnect: bool = True,
        identity: Identity | None = None,
        fingerprint: str | None = None,
        pins: KnownTrackers | None = None,
        relay: bool = False,
        on_punch: Callable[[PunchStart], None] = _ignore,
    ) -> None:
        self._on_punch = on_punch
        self._trackers = [(host, port), *[t for t in more_trackers if t != (host, port)]]
        self._host = host
        self._port = port
        # TLS when we have a key: the tracker is held to its pin, we prove our id.
        self._identity = identity
        self._fingerprint = fingerprint
        self._pins = pins or KnownTrackers()
        self._register = Register(peer_id, name, room, listen_host, listen_port,
                                  relay=relay)
        self._on_reconnected = on_reconnected
        self._reconnect = reconnect
        self._reconnect_task: asyncio.Task[None] | None = None
        self._token: str | None = None  # our grant's proof, for a resume
        self._started = False  # connect() succeeded once
        self._heartbeat_s = heartbeat_s
        self._silence_s = max(5 * heartbeat_s, _MIN_SILENCE_S)
        self._on_peer_list = on_peer_list
        self._on_streamer_changed = on_streamer_changed
        self._on_closed = on_closed
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder()
        self._tasks: list[asyncio.Task[None]] = []
        self._peers: PeerList | None = None
        self._position = Heartbeat()
        self._epoch: int | None = None
        self._valid_until = 0.0
        self._claim_lock = asyncio.Lock()
        self._claim_reply: asyncio.Future[StreamGranted | StreamDenied] | None = None
        self._claim_sent_at = 0.0
        self._last_heard = 0.0
        self._closed = False  # by us
        self._broken: str | None = None  # by the tracker or the network

    # --- public API -------------------------------------------------------------------

    @property
    def peers(self) -> PeerList | None:
        """The latest PeerList of our room (None before ``connect``)."""
        return self._peers

    @property
    def epoch(self) -> int | None:
        """The epoch of the lock we hold, or None."""
        return self._epoch

    @property
    def connected(self) -> bool:
        """True from a successful ``connect`` until the link ends."""
        return self._writer is not None and not self._closed and self._broken is None

    def lease_valid(self) -> bool:
        """True while our last grant or renewal is younger than the lease.

        Dated from when we *sent* the request it answered (see module docs).
        """
        return self._epoch is not None and time.monotonic() < self._valid_until

    async def connect(self, timeout: float = 3.0, patience: float = 0.0) -> PeerList:
        """Connect to the first tracker that answers, register, return the room's list.

        Args:
            timeout: for one attempt at one tracker.
            patience: how long to keep trying the list round after round (backoff
                between rounds) while no tracker answers: a peer started during a
                tracker restart joins once it is back. A refusal (room full, no
                common version) is final at once.

        Raises:
            TrackerUnreachableError: no tracker answered within ``patience``, or one
                refused us; the message says which.
        """
        if self._writer is not None or self._started:
            raise RuntimeError("connect() called twice")
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + patience
        delay = _RETRY_FIRST_S
        while True:
            for host, port in list(self._trackers):
                try:
                    reply = await self._open(host, port, timeout)
                except _Refused as exc:
                    raise TrackerUnreachableError(
                        f"cannot reach tracker at {host}:{port}: {exc}") from exc
                except TrackerUnreachableError as exc:
                    failure = exc
                    continue
                self._started = True
                return reply
            if loop.time() + delay > give_up_at:
                raise failure
            await asyncio.sleep(delay)  # backoff between rounds, not a sync wait
            delay = min(2 * delay, _RETRY_MAX_S)

    async def _open(self, host: str, port: int, timeout: float) -> PeerList:
        """One attempt: connect, register (with our position), start the link's tasks.

        Raises:
            _Refused: the tracker said Bye to the registration.
            TrackerUnreachableError: no connection, no answer, garbage.
        """
        register = self._registration()
        connected = False
        self._decoder = FrameDecoder(TRACKER_CLIENT_INBOX)
        try:
            async with asyncio.timeout(timeout):
                self._reader, self._writer = await _open_tracker(
                    host, port, self._identity,
                    self._fingerprint if (host, port) == (self._host, self._port) else None,
                    self._pins)
                self._writer.write(encode(register))
                await self._writer.drain()
                while True:
                    message = await self._read_message()
                    if isinstance(message, PeerList) and message.your_id is not None:
                        break
                    if isinstance(message, Bye):
                        raise _Refused(message.reason)
                    if isinstance(message, Error):
                        log.warning("tracker error while registering: %s", message.reason)
            connected = True
        except _Refused:
            raise
        except (OSError, TimeoutError, EOFError, RemoteProtocolError) as exc:
            raise TrackerUnreachableError(
                f"cannot reach tracker at {host}:{port}: {_why(exc, timeout)}") from exc
        finally:
            if not connected:  # failed or cancelled: leave no socket behind
                await self._close_writer()
                self._reader = self._writer = None
        self._host, self._port = host, port
        self._broken = None
        if message.your_name:  # an older tracker does not say: it took ours as is
            self._register = replace(self._register, name=message.your_name)
        self._peers = message
        self._last_heard = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._read_loop(), name="tracker-read"),
            asyncio.create_task(self._heartbeat_loop(), name="tracker-heartbeat"),
        ]
        return message

    def _registration(self) -> Register:
        """Our Register, with where we sit in the tree when we already do."""
        p = self._position
        return replace(self._register, depth=p.depth, free_slots=p.free_slots,
                       parent_id=p.parent_id, layer=p.layer)

    async def _reconnect_loop(self) -> None:
        """Back to a tracker after a lost link: backoff, next tracker first, forever
        (until ``close``). Re-registers, then resumes our lock if we held one."""
        failed = (self._host, self._port)
        start = (self._trackers.index(failed) + 1) if failed in self._trackers else 0
        order = self._trackers[start:] + self._trackers[:start]
        delay = _RETRY_FIRST_S
        attempt = 0
        while not self._closed:
            host, port = order[attempt % len(order)]
            attempt += 1
            try:
                reply = await self._open(host, port, _CONNECT_TIMEOUT_S)
            except (TrackerUnreachableError, _Refused) as exc:
                log.debug("tracker %s:%d not back yet: %s", host, port, exc)
                if attempt % len(order) == 0:
                    jitter = 1 + _RETRY_JITTER * (2 * random.random() - 1)
                    await asyncio.sleep(delay * jitter)  # backoff, not a sync wait
                    delay = min(2 * delay, _RETRY_MAX_S)
                continue
            log.info("tracker link back: %s:%d", host, port)
            _call(self._on_peer_list, reply)
            if self._epoch is not None:
                await self._resume()
            if self.connected:
                _call(self._on_reconnected, join_host_port(host, port))
                return
            # Lost again while resuming: _link_lost has started the next round.
            return

    async def _resume(self) -> None:
        """Claim back the lock we held (same epoch, with its token)."""
        epoch = self._epoch
        try:
            answer = await self._claim(StreamClaim(sent_at=time.monotonic(),
                                                   resume_epoch=epoch, token=self._token),
                                       _CONNECT_TIMEOUT_S)
        except TrackerUnreachableError as exc:
            log.info("could not resume the streamer lock yet: %s", exc)
            return  # the link dropped again: the next reconnect tries again
        if isinstance(answer, StreamDenied):
            log.warning("streamer lock not resumed: %s", denied_error(answer))
            self._lose_lock()
            self._token = None

    async def claim_stream(self, timeout: float = 3.0) -> StreamGranted:
        """Ask for the room's streamer lock (idempotent while we hold it).

        Raises:
            LockDeniedError: someone else streams; carries their name.
            TrackerUnreachableError: no link, or no answer within ``timeout``.
        """
        answer = await self._claim(StreamClaim(sent_at=time.monotonic()), timeout)
        if isinstance(answer, StreamDenied):
            raise denied_error(answer)
        return answer

    async def _claim(self, claim: StreamClaim, timeout: float) -> StreamGranted | StreamDenied:
        async with self._claim_lock:
            self._check_link()
            loop = asyncio.get_running_loop()
            reply: asyncio.Future[StreamGranted | StreamDenied] = loop.create_future()
            self._claim_reply = reply
            assert claim.sent_at is not None
            self._claim_sent_at = claim.sent_at
            try:
                async with asyncio.timeout(timeout):
                    await self._send(claim)
                    return await reply
            except TimeoutError as exc:
                raise TrackerUnreachableError(
                    f"tracker at {self._host}:{self._port} did not answer the stream "
                    f"claim within {timeout:g} s") from exc
            finally:
                self._claim_reply = None

    async def release_stream(self) -> None:
        """Give the lock back (no-op if we do not hold it or the link is gone)."""
        if self._epoch is None:
            return
        self._lose_lock()
        self._token = None  # given back: nothing to resume
        if self.connected:
            with contextlib.suppress(TrackerUnreachableError):
                await self._send(StreamRelease())

    def set_position(self, *, depth: int | None, free_slots: int, parent_id: str | None,
                     layer: int | None) -> None:
        """Where we sit in the tree; sent at once if it changed, then every heartbeat."""
        position = Heartbeat(depth=depth, free_slots=free_slots, parent_id=parent_id,
                             layer=layer)
        if position == self._position:
            return
        self._position = position
        if self.connected:
            self._write(self._heartbeat())  # drained by the next heartbeat

    def request_punch(self, peer_id: str) -> None:
        """Ask the tracker for a hole punch with ``peer_id`` (answered by PunchStart to
        ``on_punch``, or refused with an Error); nothing happens while disconnected."""
        if self.connected:
            self._write(PunchRequest(peer_id))

    async def close(self) -> None:
        """Release the lock if held, say Bye and close. Safe to call at any time."""
        if self._closed:
            return
        self._closed = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        writer = self._writer
        if writer is not None and self._broken is None:
            if self._epoch is not None:
                self._write(StreamRelease())
            self._write(Bye("leaving"))
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.drain()
        self._lose_lock()
        await self._stop_tasks()
        await self._close_writer()

    # --- internals --------------------------------------------------------------------

    def _check_link(self) -> None:
        if not self.connected:
            why = self._broken or ("closed" if self._closed else "not connected")
            raise TrackerUnreachableError(
                f"cannot reach tracker at {self._host}:{self._port}: {why}")

    def _heartbeat(self) -> Heartbeat:
        p = self._position
        return Heartbeat(p.depth, p.free_slots, p.parent_id, p.layer, time.monotonic())

    def _write(self, *messages: Message) -> None:
        if self._writer is not None and not self._writer.transport.is_closing():
            # One write: a heartbeat and its Ping go out as one TLS record, one send.
            self._writer.write(b"".join(encode(message) for message in messages))

    async def _send(self, *messages: Message) -> None:
        self._check_link()
        self._write(*messages)
        assert self._writer is not None
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT_S):
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            self._link_lost(f"cannot send to the tracker: {_why(exc, _WRITE_TIMEOUT_S)}")
            raise TrackerUnreachableError(
                f"cannot reach tracker at {self._host}:{self._port}: {self._broken}") from exc

    async def _read_message(self) -> Message | Unknown:
        """The next message (callers bound the wait). Raises EOFError on EOF."""
        assert self._reader is not None
        while (message := self._decoder.next_message()) is None:
            data = await self._reader.read(_READ_BYTES)
            if not data:
                raise EOFError("the tracker closed the connection")
            self._decoder.receive_data(data)
        return message

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._silence_s) as silence:
                        message = await self._read_message()
                except TimeoutError:
                    deadline = silence.when()
                    if deadline is not None and loop.time() - deadline > self._heartbeat_s / 2:
                        # Our own loop stalled past the deadline (a starved CPU): what
                        # the tracker sent meanwhile is still unread (asyncio reads it
                        # after this timeout fired). Read on; a dead tracker is still
                        # found one silence later.
                        continue
                    self._link_lost(f"tracker silent for {self._silence_s:g} s")
                    return
                self._last_heard = time.monotonic()
                if isinstance(message, Bye):
                    self._link_lost(f"tracker closed the link: {message.reason}")
                    return
                self._handle(message)
        except RemoteProtocolError as exc:
            reason = exc.reason[: limits.MAX_REASON_CHARS]
            log.warning("tracker %s:%d sent bad data: %s", self._host, self._port, reason)
            self._write(Bye(reason, code=exc.code))
            self._link_lost(f"tracker sent bad data: {reason}")
        except (EOFError, OSError) as exc:
            self._link_lost(str(exc) or type(exc).__name__)

    def _handle(self, message: Message | Unknown) -> None:
        if isinstance(message, PeerList):
            # Pushes are shared by the whole room (your_id None): we learnt our id
            # from the register reply.
            self._peers = message
            _call(self._on_peer_list, message)
        elif isinstance(message, StreamerChanged):
            if message.streamer_id != self._register.peer_id:
                self._lose_lock()
            _call(self._on_streamer_changed, message)
        elif isinstance(message, StreamGranted):
            self._granted(message)
        elif isinstance(message, StreamDenied):
            self._answer_claim(message)
        elif isinstance(message, PunchStart):
            _call(self._on_punch, message)
        elif isinstance(message, Error):
            log.warning("tracker error %d: %s", message.code, message.reason)
        # Pong and unknown kinds: hearing them is all that matters (liveness).

    def _granted(self, message: StreamGranted) -> None:
        sent = message.request_sent_at
        claim_pending = self._claim_reply is not None and not self._claim_reply.done()
        if claim_pending and sent in (None, self._claim_sent_at):
            if self._epoch is None:
                self._restart_beats()  # a holder renews every period from now on
            self._epoch = message.epoch  # the answer to our claim: a grant or a re-grant
            self._token = message.token or self._token
        elif message.epoch != self._epoch:
            if self._epoch is None and not claim_pending and sent == self._claim_sent_at:
                # The late answer to a claim that timed out: the tracker thinks we hold
                # the lock and our heartbeats would renew it forever. Give it back.
                self._write(StreamRelease())
            # Otherwise a renewal of a lock we gave up or replaced since: the tracker
            # has moved on (its StreamerChanged is on the way), and so do we.
            return
        # An old tracker that echoes nothing: date the lease from now (less safe).
        start = sent if sent is not None else time.monotonic()
        self._valid_until = max(self._valid_until, start + message.lease_s)
        self._answer_claim(message)

    def _answer_claim(self, answer: StreamGranted | StreamDenied) -> None:
        if self._claim_reply is not None and not self._claim_reply.done():
            self._claim_reply.set_result(answer)

    async def _heartbeat_loop(self) -> None:
        try:
            while True:
                beats = 1 if self._epoch is not None else IDLE_BEAT_PERIODS
                await asyncio.sleep(beats * self._heartbeat_s)  # the period, not a sync wait
                messages: list[Message] = [self._heartbeat()]
                if time.monotonic() - self._last_heard > self._heartbeat_s:
                    messages.append(Ping(time.monotonic()))  # ask for a sign of life
                await self._send(*messages)
        except TrackerUnreachableError:
            return  # _link_lost has reported it

    def _restart_beats(self) -> None:
        """Start the heartbeat loop afresh (a non-holder's may be asleep for
        ``IDLE_BEAT_PERIODS`` periods)."""
        for i, task in enumerate(self._tasks):
            if task.get_name() == "tracker-heartbeat" and task is not asyncio.current_task():
                task.cancel()
                self._tasks[i] = asyncio.create_task(self._heartbeat_loop(),
                                                     name="tracker-heartbeat")

    def _lose_lock(self) -> None:
        self._epoch = None
        self._valid_until = 0.0

    def _link_lost(self, reason: str) -> None:
        """The link ended without our close(): tell the owner once, stop the tasks."""
        if self._broken is not None or self._closed:
            return
        self._broken = reason
        if not self._reconnect:
            self._lose_lock()
        # (Reconnecting, we keep what lease we have: the tracker holds the lock for a
        # holder that is away for its grace, and we resume it once back.)
        if self._claim_reply is not None and not self._claim_reply.done():
            self._claim_reply.set_exception(TrackerUnreachableError(
                f"cannot reach tracker at {self._host}:{self._port}: {reason}"))
        if self._writer is not None:
            self._writer.close()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        log.info("tracker link lost: %s", reason)
        _call(self._on_closed, reason)
        if self._reconnect and self._started:
            self._reconnect_task = asyncio.get_running_loop().create_task(
                self._reconnect_loop(), name="tracker-reconnect")

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = []

    async def _close_writer(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        with contextlib.suppress(Exception):  # reset by the tracker: closed all the same
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


class _Refused(Exception):
    """The tracker said Bye while we registered (room full, bad version...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"refused: {reason}")


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, RemoteProtocolError):
        return f"bad reply: {exc.reason}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _call(callback: Callable[[T], None], arg: T) -> None:
    """Run an owner's callback; its bugs must not break the tracker link."""
    try:
        callback(arg)
    except Exception:
        log.exception("tracker client callback failed")


async def _open_tracker(host: str, port: int, identity: Identity | None,
                        fingerprint: str | None, pins: KnownTrackers,
                        ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect; with ``identity``: TLS, the tracker's key checked, our proof sent.

    Raises:
        OSError: cannot connect, or (AuthenticationError) the tracker's key is not
            the pinned one.
    """
    context = client_context() if identity is not None else None
    reader, writer = await asyncio.open_connection(
        host, port, ssl=context, server_hostname="" if context else None)
    if identity is not None:
        try:
            key = remote_public_key(writer.get_extra_info("ssl_object"))
            pins.check(host, port, key, fingerprint)
        except AuthenticationError:
            writer.close()
            raise
        writer.write(encode(make_proof(identity, key)))
    return reader, writer


async def query_room(host: str, port: int, room: str, timeout: float = 3.0, *,
                     tls: bool = True, fingerprint: str | None = None,
                     pins: KnownTrackers | None = None) -> PeerList:
    """Who is in ``room`` and who streams there, without joining it.

    Over TLS (the default) the tracker is held to its pin like any connection; a
    throwaway key proves nothing about us, which is all a stranger's query needs.

    Raises:
        TrackerUnreachableError: refused, timed out, closed or garbled.
    """
    return await _ask(host, port, RoomQuery(room), PeerList, timeout, tls=tls,
                      fingerprint=fingerprint, pins=pins)


async def query_rooms(host: str, port: int, timeout: float = 3.0, *,
                      tls: bool = True, fingerprint: str | None = None,
                      pins: KnownTrackers | None = None) -> RoomList:
    """The tracker's rooms (busiest first, bounded), without joining any (over TLS
    as ``query_room``).

    Raises:
        TrackerUnreachableError: refused, timed out, closed or garbled.
    """
    return await _ask(host, port, RoomListQuery(), RoomList, timeout, tls=tls,
                      fingerprint=fingerprint, pins=pins)


_Reply = TypeVar("_Reply", PeerList, RoomList)


async def _ask(host: str, port: int, question: Message, reply: type[_Reply],
               timeout: float, *, tls: bool, fingerprint: str | None,
               pins: KnownTrackers | None) -> _Reply:
    """One question on a fresh connection; the first ``reply``-typed answer."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _open_tracker(
                host, port, Identity.generate() if tls else None, fingerprint,
                pins or KnownTrackers())
            writer.write(encode(question))
            await writer.drain()
            decoder = FrameDecoder()
            while True:
                data = await reader.read(_READ_BYTES)
                if not data:
                    raise EOFError("the tracker closed the connection")
                decoder.receive_data(data)
                for message in decoder:
                    if isinstance(message, reply):
                        return message
                    if isinstance(message, Bye):
                        raise _Refused(message.reason)
    except (OSError, TimeoutError, EOFError, RemoteProtocolError, _Refused) as exc:
        raise TrackerUnreachableError(
            f"cannot reach tracker at {host}:{port}: {_why(exc, timeout)}") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

