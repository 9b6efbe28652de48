"""One TCP link to a neighbour peer: framing in, three send queues out.

Theory of operation
-------------------
A started link takes over its transport's reading (``_Receiver``): each chunk the
transport reads goes straight to ``PeerLink.receive``, which feeds a ``FrameDecoder``
and hands each message to the node's handler, in the transport's own callback (no
stream reader buffering it, no task woken to read it: a frame costs one callback).
What the stream reader held from before ``start`` is read first. A ``ProtocolError``
is caught in ``receive``, in one place: the link sends a Bye carrying the reason and
closes. Nothing else is affected. A writer task sends.

The writer serves three queues: control messages (chat, pings, demand, bye) first, in
order and never dropped, then audio (its own small drop-oldest queue: a video backlog
never delays sound and a video drop never drops it), then video. The video queue is
small and bounded; when a frame arrives and the queue is full the *oldest* frame is
dropped and counted. A child that cannot keep up therefore loses frames but never
slows its parent or siblings: each child has its own queue and its own writer awaiting
its own socket.

Video is also held back while the link already has about ``rate x (base rtt + 60 ms)``
in flight (``backlog.BacklogGate``): on a link slower than the video, the queue at the
bottleneck stays short, so sound behind it is late by tens of ms, not seconds, and a
shaper never has to drop (which would stall TCP for a retransmission timeout).

A video message larger than ``limits.FRAME_PART_BYTES`` goes to a neighbour whose Hello
says it reassembles (``Hello.parts``) as ``FramePart`` pieces of its encoded bytes
(protocol/parts.py); the writer serves control and audio between pieces, so sound waits
behind one piece, not a whole keyframe. While the link is the bottleneck the pieces
shrink to 20 ms of its rate and every video message above that is split
(``BacklogGate.part_bytes``). A piece already begun is always finished (the receiver
holds exactly one message in progress); the backlog gate applies before every piece.
An older neighbour (no ``parts`` in its Hello) gets whole messages.
The reader reassembles pieces (``PartAssembler``: one message at a time, in order,
bounded) and decodes the exact original bytes as one video frame, so nothing above the
link sees pieces.

What a link accepts is decided at each 12-byte header (``framing.ReceivePolicy``): a
link we did not dial (a joiner or a child) never carries video to us, so it cannot
make us buffer a frame; a link we dialled (our parent) may. Every received video
frame's picture size is read from its header and checked against its layer
(``frame_check``) before anything can decode it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import logging
import socket
import struct
import sys
import termios
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from peer.node.backlog import BacklogGate
from peer.node.clock import ClockEstimator
from peer.node.frame_check import check_frame_size
from peer.trust.tls import (
    AuthenticationError,
    LinkGuard,
    check_remote,
    client_context,
    make_proof,
)
from protocol import (
    AudioFrame,
    Bye,
    ErrorCode,
    FrameDecoder,
    FramePart,
    Hello,
    Message,
    ProtocolError,
    RemoteProtocolError,
    Unknown,
    VideoFrame,
    encode,
    limits,
)
from protocol.framing import PARENT_INBOX, PEER_INBOX
from protocol.identity import Identity
from protocol.parts import PartAssembler, split
from protocol.private_room import member_proof
from protocol.ratelimit import TokenBucket
from protocol.records import PathEntry

log = logging.getLogger(__name__)

# One second of 20 ms packets (the longest playout delay): older sound is useless to
# a listener. Sound waits here only while one video frame drains.
AUDIO_QUEUE_PACKETS = 50
# Frames waiting for a slow link before the oldest is dropped. With H.264 a drop
# breaks the child's chain until the next keyframe, and a keyframe is 10-20 frames'
# worth of bytes: on a link that carries the average rate, the keyframe alone holds
# the queue for several frame times. Eight frames (267 ms at 30 fps) ride that out
# instead of dropping, breaking the chain and asking for yet another keyframe; a
# link that stays behind still drops (and an auto child moves down a layer before,
# at a backlog of two frames).
VIDEO_QUEUE_FRAMES = 8
# An inter-frame codec's queue is bounded in bytes instead (``send_video``'s budget,
# which the relay sets to a second of the layer's bitrate cap), never below the eight
# frames above and never above this many: a keyframe is followed by small P-frames, and
# while it drains (0.1-0.5 s to one of three 720p children on 8 Mbit/s) more than eight
# of them arrive, which a frame count took for congestion and dropped, breaking every
# child's chain at once (docs/PERFORMANCE.md, section 15).
VIDEO_QUEUE_MAX_FRAMES = 90
READ_CHUNK_BYTES = 256 * 1024
# About two 1080p frames: enough to keep a fast link busy between writer wake-ups.
SEND_BUFFER_BYTES = 512 * 1024
# See the socket options in PeerLink. Everything unsent in the kernel is a backlog the
# sound (and any fresher frame) must wait behind: 32 KB is 40 ms at 6 Mbit/s and 350 ms
# at 750 kbit/s (measured in bench_av_sync's capped link: 128 KB there held sound back
# 1.3 s and lost 38 % of it). Only unsent bytes count: in-flight data (the congestion
# window) is not limited, so a fast link still fills.
NOTSENT_LOWAT_BYTES = 32 * 1024
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # 25 on Linux
# Linux struct tcp_info: tcpi_min_rtt (u32, microseconds) sits at byte 148 (since 4.6).
TCPI_MIN_RTT_OFFSET = 148
# How often a writer holding video back (peer/node/backlog.py) looks again.
GATE_POLL_S = 0.005
# Control messages are small and never dropped, but a neighbour that stops reading
# must not make us hold unbounded chat: past this the link is closed.
MAX_CONTROL_BACKLOG = 2048


class Role(Enum):
    PENDING = "pending"  # handshake in progress
    PARENT = "parent"  # this link leads to our parent
    CHILD = "child"  # this link leads to one of our children


@dataclass(slots=True)
class LinkCounters:
    """Wire bytes both ways (framing included) and frames dropped from the queue."""

    bytes_in: int = 0
    bytes_out: int = 0
    video_bytes_in: int = 0
    video_bytes_out: int = 0
    frames_dropped: int = 0
    video_overflows: int = 0  # of those, frames the full queue pushed out (congestion)
    audio_bytes_in: int = 0
    audio_bytes_out: int = 0
    audio_dropped: int = 0


# Called for each message as it is read, in order (synchronously: the handler must not
# block; what it needs to await it starts as a task).
MessageHandler = Callable[["PeerLink", Message], None]
CloseHandler = Callable[["PeerLink", str], None]


class PeerLink:
    """A framed, queued TCP connection to one neighbour."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        on_message: MessageHandler,
        on_close: CloseHandler,
        outbound: bool,
        guard: LinkGuard | None = None,
        remote_id: str | None = None,
        room_key: bytes | None = None,
        own_id: str | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_message = on_message
        self._on_close = on_close
        self.outbound = outbound
        self._decoder = FrameDecoder(PARENT_INBOX if outbound else PEER_INBOX)
        # Inbound TLS links: the dialler must prove its id before anything else.
        self._guard = guard
        # Outbound TLS links: the id the listener proved in the handshake; its Hello
        # must name that id.
        self.remote_id = remote_id
        # A private room (TLS only): both Hellos carry a proof of the passphrase.
        self._room_key = room_key
        self._own_id = own_id
        # The remote address an inbound link was counted under (see admission.py).
        self.admitted_from: str | None = None
        self.role = Role.PENDING
        self.peer_id: str | None = None
        self.name = "?"
        self.listen: tuple[str, int] | None = None
        self.layer = 0  # for a child: the layer its subtree needs
        self.path: tuple[PathEntry, ...] = ()  # for the parent: root .. parent
        self.root_offset: float | None = None  # parent's estimate of root - parent clock
        self.clock = ClockEstimator()
        self.counters = LinkCounters()
        self.last_heard = time.monotonic()
        self.closed = False
        self.close_reason = ""
        self._control: deque[bytes] = deque()
        self._video: deque[bytes] = deque()
        self._video_bytes = 0  # what ``_video`` holds
        self._audio: deque[bytes] = deque()
        # The FramePart pieces of the video message being sent, still to write.
        self._parts_out: deque[bytes] = deque()
        # Whether the neighbour reassembles pieces (its Hello says; until then, no).
        self.remote_parts = False
        self._parts_in = PartAssembler()
        self._part_bucket = TokenBucket(limits.MAX_LINK_PARTS_PER_S,
                                        limits.MAX_LINK_PARTS_BURST, time.monotonic())
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._receiver: _Receiver | None = None  # the transport's protocol once started
        self._bucket = TokenBucket(limits.MAX_LINK_MESSAGES_PER_S,
                                   limits.MAX_LINK_MESSAGES_BURST, time.monotonic())
        # The Pongs we may still send (the node answers Pings only while it has one).
        self.pongs = TokenBucket(limits.MAX_PINGS_ANSWERED_PER_S,
                                 limits.MAX_PINGS_ANSWERED_BURST, time.monotonic())
        sock = writer.get_extra_info("socket")
        self._gate = BacklogGate()
        self._fd: int | None = None
        self._sock = sock if sys.platform.startswith("linux") else None
        if sock is not None and sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, ValueError):
                self._fd = sock.fileno()
        if sock is not None:
            # Frames are whole messages; Nagle would hold the tail of each one back.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # Bytes parked in the kernel are stale video we can no longer drop;
                # a bounded buffer moves the backlog into our drop-oldest queue.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
                # Linux: report writable only while little is unsent, so a slow link's
                # backlog waits in our queue (where old frames are dropped), not in the
                # kernel (where they would add seconds of delay).
                sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, NOTSENT_LOWAT_BYTES)
        transport = writer.transport
        # asyncio's own buffer is a second backlog in front of the kernel's: drain()
        # returns only once a message has been handed to the kernel. Not on a TLS
        # transport: asyncio's TLS layer (3.11) stops resuming writers at a zero limit
        # and the link wedges; there its default (64 KiB) stays in front.
        if writer.get_extra_info("ssl_object") is None:
            with contextlib.suppress(AttributeError, NotImplementedError):
                transport.set_write_buffer_limits(high=0)
        peer = writer.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    def __repr__(self) -> str:
        return f"<PeerLink {self.name} {self.role.value} {self.remote}>"

    def start(self) -> None:
        """Start reading and writing.

        Bytes go from the transport straight to the decoder (``_Receiver``), not
        through the stream reader and a task that awaits it: one frame is one
        callback, not a callback plus a task switch. What the stream reader already
        holds (bytes that came before we started) is read first.
        """
        transport = self._writer.transport
        # Any asyncio or uvloop transport can change its protocol (uvloop's are not
        # asyncio.BaseTransport subclasses); a stand-in without one (a test's
        # in-memory stream) is read through the stream reader to its end.
        if hasattr(transport, "set_protocol") and hasattr(transport, "get_protocol"):
            self._receiver = _Receiver(self, transport.get_protocol())
            transport.set_protocol(self._receiver)
            self._reader.feed_eof()  # it gets nothing more: what it holds is all it has
        self._tasks = [
            asyncio.create_task(self._read_stream(), name=f"link-read {self.remote}"),
            asyncio.create_task(self._write_loop(), name=f"link-write {self.remote}"),
        ]

    # --- sending ------------------------------------------------------------------

    def send(self, message: Message) -> None:
        """Queue a control message (never dropped while the link lives)."""
        if isinstance(message, Hello) and self._room_key is not None:
            message = replace(message, member=self._member_proof(mine=True))
        self.send_bytes(encode(message))

    def _member_proof(self, *, mine: bool) -> str:
        """Our proof (``mine``) or the one we expect from the other side."""
        assert self._room_key is not None and self._own_id is not None
        remote = self.remote_id if self.outbound else (
            self._guard.peer_id if self._guard is not None else None)
        if remote is None:
            return ""  # no proven id to bind to: nothing will verify
        listener, dialler = (remote, self._own_id) if self.outbound else (self._own_id, remote)
        role = "dialler" if self.outbound == mine else "listener"
        return member_proof(self._room_key, role, listener, dialler)

    def send_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        if len(self._control) >= MAX_CONTROL_BACKLOG:
            self.close("neighbour stopped reading control messages")
            return
        self._control.append(data)
        self._wakeup.set()

    def send_video(self, data: bytes, budget_bytes: int | None = None) -> bool:
        """Queue an encoded video frame; drops the oldest queued one when full.

        Args:
            data: the encoded frame.
            budget_bytes: the queue is full at ``VIDEO_QUEUE_FRAMES`` frames only once
                they and ``data`` exceed this many bytes (and always at
                ``VIDEO_QUEUE_MAX_FRAMES``); None: at ``VIDEO_QUEUE_FRAMES``.

        Returns:
            False when a frame had to be dropped to make room.
        """
        if self.closed:
            return True
        dropped = False
        queued = len(self._video)
        if queued >= VIDEO_QUEUE_MAX_FRAMES or (queued >= VIDEO_QUEUE_FRAMES and (
                budget_bytes is None or self._video_bytes + len(data) > budget_bytes)):
            self._video_bytes -= len(self._video.popleft())
            self.counters.frames_dropped += 1
            self.counters.video_overflows += 1
            dropped = True
        self._video.append(data)
        self._video_bytes += len(data)
        self._wakeup.set()
        return not dropped

    def clear_video(self) -> int:
        """Drop every queued video frame (a broken H.264 chain, or frames a keyframe
        supersedes); they count as dropped.

        Returns:
            How many were dropped.
        """
        dropped = len(self._video)
        self._video.clear()
        self._video_bytes = 0
        self.counters.frames_dropped += dropped
        return dropped

    def send_audio(self, data: bytes) -> bool:
        """Queue an audio packet on its own queue (sent before any video, after
        control); drops the oldest queued packet when full.

        Returns:
            False when a packet had to be dropped to make room.
        """
        if self.closed:
            return True
        dropped = False
        if len(self._audio) >= AUDIO_QUEUE_PACKETS:
            self._audio.popleft()
            self.counters.audio_dropped += 1
            dropped = True
        self._audio.append(data)
        self._wakeup.set()
        return not dropped

    def _in_flight(self) -> int | None:
        """Bytes in the kernel's send queue (unacknowledged + unsent), None where
        the platform cannot say."""
        if self._fd is None:
            return None
        try:
            buf = fcntl.ioctl(self._fd, termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            self._fd = None
            return None
        return int(struct.unpack("i", buf)[0])

    def _base_rtt(self) -> float | None:
        """The link's smallest round trip: from our pings, else the kernel's.

        Only a child pings, so on a parent's link to its child (where video flows)
        ``clock.rtt`` stays None and the backlog gate would let everything through;
        the kernel's own minimum (``tcpi_min_rtt``) is the same figure without pings.
        """
        if self.clock.rtt is not None:
            return self.clock.rtt
        if self._sock is None:
            return None
        try:
            info = self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO,
                                         TCPI_MIN_RTT_OFFSET + 4)
        except (OSError, AttributeError):
            self._sock = None
            return None
        if len(info) < TCPI_MIN_RTT_OFFSET + 4:
            self._sock = None  # an older kernel: it never will say
            return None
        min_rtt_us = int(struct.unpack_from("I", info, TCPI_MIN_RTT_OFFSET)[0])
        return min_rtt_us / 1e6 if min_rtt_us else None

    @property
    def queued_frames(self) -> int:
        return len(self._video)

    @property
    def queued_bytes(self) -> int:
        return self._video_bytes

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                if (not self._control and not self._audio and not self._video
                        and not self._parts_out):
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self._control:
                    data = self._control.popleft()
                elif self._audio:
                    # Sound never waits behind a video backlog (only behind the one
                    # frame being written).
                    data = self._audio.popleft()
                    self.counters.audio_bytes_out += len(data)
                else:
                    in_flight = self._in_flight()
                    if in_flight is not None:
                        self._gate.update(time.monotonic(), self.counters.bytes_out,
                                          in_flight)
                        if not self._gate.allow_video(in_flight, self._base_rtt()):
                            # The bottleneck has enough: let it drain (sound and
                            # control may pass meanwhile; the video queue keeps the
                            # newest frames).
                            self._wakeup.clear()
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._wakeup.wait(), GATE_POLL_S)
                            continue
                    if self._parts_out:
                        data = self._parts_out.popleft()
                    else:
                        data = self._video.popleft()
                        self._video_bytes -= len(data)
                        piece = self._gate.part_bytes(len(data))
                        if self.remote_parts and len(data) > piece:
                            # Sound and control may go between the pieces.
                            self._parts_out.extend(split(data, piece))
                            data = self._parts_out.popleft()
                    self.counters.video_bytes_out += len(data)
                self.counters.bytes_out += len(data)
                self._writer.write(data)
                await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self.close(f"send failed: {exc}")
        except asyncio.CancelledError:
            pass

    # --- receiving ----------------------------------------------------------------

    async def _read_stream(self) -> None:
        """Read the stream reader to its end: what it held when the receiver took over
        (then the receiver passes on what it held meanwhile, and all after), or, with
        no receiver, everything."""
        try:
            while data := await self._reader.read(READ_CHUNK_BYTES):
                self.receive(data)
                if self.closed:
                    return
        except (ConnectionError, OSError) as exc:
            self.close(f"connection lost: {exc}")
            return
        except asyncio.CancelledError:
            return
        if self._receiver is not None:
            self._receiver.release()
        else:
            self.close("connection closed by peer")

    def receive(self, data: bytes) -> None:
        """Bytes read from the neighbour: decode, check and hand on every whole message.

        A ``ProtocolError`` (the decoder's, a check's here, or the handler's) closes
        the link with a Bye giving the reason, in this one place.
        """
        if self.closed:
            return
        decoder = self._decoder
        # One clock read per chunk: what arrived together arrived then.
        self.last_heard = at = time.monotonic()
        self.counters.bytes_in += len(data)
        try:
            decoder.receive_data(data)
            while (message := decoder.next_message()) is not None:
                wire_bytes = decoder.last_message_bytes
                if isinstance(message, FramePart):
                    whole = self._take_part(message)
                    if whole is None:
                        continue
                    message, wire_bytes = whole
                if not self._bucket.take(at):
                    raise RemoteProtocolError(
                        f"more than {limits.MAX_LINK_MESSAGES_PER_S} messages per second",
                        ErrorCode.RATE_LIMITED)
                if self._guard is not None and not self._guard.admit(message):
                    continue  # the dialler's proof: checked, nothing for the node
                # Most messages are video: it is asked about first.
                if isinstance(message, VideoFrame):
                    self.counters.video_bytes_in += wire_bytes
                    check_frame_size(message)
                elif isinstance(message, AudioFrame):
                    self.counters.audio_bytes_in += wire_bytes
                elif isinstance(message, Unknown):
                    continue  # a newer peer's kind: skip it on purpose
                elif isinstance(message, Hello):
                    self._check_hello(message)
                self._on_message(self, message)
                if self.closed:
                    return
        except ProtocolError as exc:
            log.warning("closing link to %s (%s): %s", self.name, self.remote, exc.reason[:200])
            self._send_now(Bye(reason=exc.reason, code=int(exc.code)))
            self.close(f"protocol error: {exc.reason}")
        except (ConnectionError, OSError) as exc:
            self.close(f"connection lost: {exc}")

    def _check_hello(self, message: Hello) -> None:
        """A private room's proof, and the id the TLS handshake proved; then whether
        the neighbour reassembles pieces.

        Raises:
            RemoteProtocolError: no valid proof of the passphrase, or another id.
        """
        if self._room_key is not None and not hmac.compare_digest(
                message.member, self._member_proof(mine=False)):
            raise RemoteProtocolError(
                "not a member of this private room (no proof of its passphrase)",
                ErrorCode.UNEXPECTED)
        if self.remote_id is not None and message.peer_id != self.remote_id:
            raise RemoteProtocolError(
                f"Hello names id {message.peer_id[:12]}... but the link's "
                f"key is {self.remote_id[:12]}...", ErrorCode.UNEXPECTED)
        self.remote_parts = message.parts

    def _take_part(self, part: FramePart) -> tuple[VideoFrame, int] | None:
        """Add one received piece; the video frame (and its wire size) once whole.

        Raises:
            RemoteProtocolError: too many pieces per second, a piece out of order or
                a reassembled message that is not exactly one valid video frame.
        """
        if not self._part_bucket.take(time.monotonic()):
            raise RemoteProtocolError(
                f"more than {limits.MAX_LINK_PARTS_PER_S} message parts per second",
                ErrorCode.RATE_LIMITED)
        whole = self._parts_in.add(part)
        if whole is None:
            return None
        # The link's own policy: a link that may not carry video refused the piece at
        # its header already; this checks the inner header and fields the same way.
        inner = FrameDecoder(self._decoder.policy)
        inner.receive_data(whole)
        message = inner.next_message()
        if not isinstance(message, VideoFrame) or inner.buffered_bytes:
            raise RemoteProtocolError("split message parts are not exactly one video frame",
                                      ErrorCode.MALFORMED)
        return message, len(whole)

    def _send_now(self, message: Message) -> None:
        with contextlib.suppress(Exception):
            self._writer.write(encode(message))

    # --- closing ------------------------------------------------------------------

    def set_media_in(self, allowed: bool) -> None:
        """Whether video and sound may arrive here from now on (the next header).

        By default only a link we dialled (to our parent) carries media to us. With
        connection reversal the parent dials the child: the tree says when such a link
        became our parent (media allowed) or our child (refused).
        """
        self._decoder.policy = PARENT_INBOX if allowed else PEER_INBOX

    def close(self, reason: str, bye: Message | None = None) -> None:
        """Close the link (idempotent); ``bye`` is flushed first when given."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if bye is not None:
            self._send_now(bye)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
        self._on_close(self, reason)

    async def wait_closed(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _Receiver(asyncio.Protocol):
    """The transport's protocol once a link has started: received bytes go straight
    to ``PeerLink.receive``; the end of the connection closes the link.

    The stream protocol it replaced stays informed of everything else (flow control
    and the connection's loss), so the link's ``StreamWriter`` (``drain``,
    ``wait_closed``) works as before. Until ``release`` (the stream reader's leftover
    was read), what arrives is held, in order.
    """

    def __init__(self, link: PeerLink, streams: asyncio.BaseProtocol) -> None:
        self._link = link
        self._streams = streams
        # Bytes (or the end: a reason) that came before ``release``; None after it.
        self._held: list[bytes | str] | None = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for item in held:
            if isinstance(item, str):
                self._link.close(item)
            else:
                self._link.receive(item)

    def data_received(self, data: bytes) -> None:
        if self._held is None:
            self._link.receive(data)
        else:
            self._held.append(data)

    def eof_received(self) -> bool:
        self._end("connection closed by peer")
        return False  # close the transport (TLS has no half-close anyway)

    def connection_lost(self, exc: Exception | None) -> None:
        self._streams.connection_lost(exc)
        self._end("connection closed by peer" if exc is None else f"connection lost: {exc}")

    def pause_writing(self) -> None:
        self._streams.pause_writing()

    def resume_writing(self) -> None:
        self._streams.resume_writing()

    def _end(self, reason: str) -> None:
        if self._held is None:
            self._link.close(reason)
        else:
            self._held.append(reason)


async def open_link(
    host: str,
    port: int,
    *,
    timeout: float,
    on_message: MessageHandler,
    on_close: CloseHandler,
    identity: Identity | None = None,
    expected_id: str | None = None,
    room_key: bytes | None = None,
    sock: socket.socket | None = None,
) -> PeerLink:
    """Dial a peer.

    With ``identity`` the link is TLS: the listener must hold ``expected_id``'s key,
    and our first message proves we hold ``identity``'s (peer/trust/tls.py).
    ``sock``: a connection made already (a hole punch): used instead of dialling
    ``host:port``, with the same handshake and checks.

    Raises:
        OSError / TimeoutError: it cannot be reached, or (AuthenticationError, a
            ConnectionError) it is not the peer we expected.
    """
    context = client_context() if identity is not None else None
    server_hostname = "" if context else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(sock=sock, limit=READ_CHUNK_BYTES, ssl=context,
                                server_hostname=server_hostname) if sock is not None
        else asyncio.open_connection(host, port, limit=READ_CHUNK_BYTES, ssl=context,
                                     server_hostname=server_hostname), timeout)
    remote: str | None = None
    if identity is not None:
        try:
            if expected_id is None:
                raise AuthenticationError("no expected id to check the peer against")
            key = check_remote(writer.get_extra_info("ssl_object"), expected_id)
        except AuthenticationError:
            writer.close()
            raise
        remote = expected_id
        writer.write(encode(make_proof(identity, key)))
    return PeerLink(reader, writer, on_message=on_message, on_close=on_close, outbound=True,
                    remote_id=remote, room_key=room_key,
                    own_id=identity.peer_id if identity is not None else None)
