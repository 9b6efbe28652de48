"""A WebRTC stack in Python (aiortc) streaming the clip to N receivers, as a yardstick.

What a user would get by building the same app on aiortc: one ``RTCPeerConnection``
per receiver, the source shared through aiortc's ``MediaRelay`` (so each connection
has its own encoder, as WebRTC's per-receiver congestion control requires), H.264 or
VP8 with RTX and NACK, aiortc's jitter buffer and its REMB-driven bitrate. Signalling
is one JSON line each way over TCP (offer from the sender, answer back); ICE uses only
the ``--listen`` address (no STUN: loopback or one namespace host each).

WebRTC carries pictures, not our metadata, so the sender paints the capture time and
frame number into the picture's top rows (``barcode``) and each receiver reads them
back from the decoded picture. Per frame a receiver reports:

* received: when the packet with the frame's marker bit (its last) arrived, before the
  jitter buffer (matched to the decoded picture by RTP timestamp);
* decoded: when ``track.recv()`` handed the decoded picture over, as a display would
  get it.

Bytes: the sender's SRTP bytes handed to its ICE transports (all connections), a
receiver's SRTP bytes received (its DTLS transport's counters).

Run (``--tracker`` names the sender's signalling address, see ``report``)::

    python -m bench.baselines.webrtc --role sender --clip clip.avi --codec vp8 ...
    python -m bench.baselines.webrtc --role receiver --viewers 4 --tracker H:P ...
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import signal
import sys
import threading
import time
from typing import Any

import aioice.ice
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay

from bench.baselines import barcode
from bench.baselines.clip import PacedClip
from bench.baselines.report import Reporter, base_parser, host_port

CLOCK_RATE = 90000  # RTP video clock
MAX_SIGNAL_BYTES = 64 * 1024  # an SDP is a few KB
BYTES_POLL_S = 0.5


def only_address(host: str) -> None:
    """ICE gathers host candidates on every interface but loopback; use ``host`` only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [host]  # type: ignore[assignment]


class ClipTrack(MediaStreamTrack):
    """The paced clip as a video track, with the barcode painted in at capture."""

    kind = "video"

    def __init__(self, clip: str, reporter: Reporter, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._frames: asyncio.Queue[av.VideoFrame] = asyncio.Queue(maxsize=2)
        self._reporter, self._loop = reporter, loop
        self._origin = time.time()
        threading.Thread(target=self._pace, args=(clip,), daemon=True).start()

    def _pace(self, clip: str) -> None:
        for seq, captured_at, image in PacedClip(clip).frames():
            barcode.draw(image, captured_at, seq)
            # Converted once here, not once per encoder: kind to aiortc.
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts = round((captured_at - self._origin) * CLOCK_RATE)
            frame.time_base = fractions.Fraction(1, CLOCK_RATE)
            self._reporter.produced(seq, captured_at)
            self._reporter.count("frames", 1)
            self._loop.call_soon_threadsafe(self._put, frame)

    def _put(self, frame: av.VideoFrame) -> None:
        if self._frames.full():  # latest wins, like a camera
            self._frames.get_nowait()
        self._frames.put_nowait(frame)

    async def recv(self) -> av.VideoFrame:
        return await self._frames.get()


def prefer(pc: RTCPeerConnection, codec: str) -> None:
    wanted = f"video/{codec}".lower()
    codecs = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in codecs if c.mimeType.lower() == wanted]
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx"]
    for transceiver in pc.getTransceivers():
        transceiver.setCodecPreferences(chosen + rtx)


async def read_description(reader: asyncio.StreamReader) -> RTCSessionDescription:
    line = await reader.readline()
    if not line.endswith(b"\n") or len(line) > MAX_SIGNAL_BYTES:
        raise ValueError("signalling line cut short or too long")
    data = json.loads(line)
    return RTCSessionDescription(sdp=str(data["sdp"]), type=str(data["type"]))


def description_line(pc: RTCPeerConnection) -> bytes:
    local = pc.localDescription
    return json.dumps({"sdp": local.sdp, "type": local.type}).encode() + b"\n"


def dtls_bytes(pcs: list[RTCPeerConnection], direction: str) -> int:
    total = 0
    for pc in pcs:
        for transceiver in pc.getTransceivers():
            part = transceiver.sender if direction == "tx" else transceiver.receiver
            total += getattr(part.transport, f"_RTCDtlsTransport__{direction}_bytes", 0)
    return total


async def poll_bytes(pcs: list[RTCPeerConnection], reporter: Reporter) -> None:
    while True:
        reporter.set("bytes_out", dtls_bytes(pcs, "tx"))
        reporter.set("bytes_in", dtls_bytes(pcs, "rx"))
        await asyncio.sleep(BYTES_POLL_S)


async def run_sender(listen: tuple[str, int], clip: str, codec: str, reporter: Reporter,
                     duration: float) -> None:
    relay = MediaRelay()
    source = ClipTrack(clip, reporter, asyncio.get_running_loop())
    pcs: list[RTCPeerConnection] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pc = RTCPeerConnection()
        pcs.append(pc)
        try:
            pc.addTransceiver(relay.subscribe(source), direction="sendonly")
            prefer(pc, codec)
            await pc.setLocalDescription(await pc.createOffer())
            writer.write(description_line(pc))
            await writer.drain()
            await pc.setRemoteDescription(await asyncio.wait_for(read_description(reader), 30))
            await reader.read()  # the receiver keeps the line open while it watches
        except (TimeoutError, OSError, ValueError) as exc:
            print(f"sender: signalling failed: {exc!r}", file=sys.stderr)
        finally:
            writer.close()
            await pc.close()

    server = await asyncio.start_server(serve, *listen)
    reporter.event("ready", port=server.sockets[0].getsockname()[1])
    poller = asyncio.ensure_future(poll_bytes(pcs, reporter))
    try:
        await asyncio.sleep(duration)
    finally:
        poller.cancel()
        server.close()
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


async def consume(index: int, track: MediaStreamTrack, receiver: Any, arrivals: dict[int, float],
                  reporter: Reporter) -> None:
    mapper = receiver._RTCRtpReceiver__timestamp_mapper
    while True:
        frame = await track.recv()
        done = time.time()
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:, :frame.width]
        stamp = barcode.read(luma)
        if stamp is None:
            reporter.count("unreadable", 1)
            continue
        captured_at, seq = stamp
        reporter.decoded(index, seq, done, captured_at)
        origin = mapper._origin
        arrival = arrivals.pop((frame.pts + origin) & 0xFFFFFFFF, None) if origin is not None \
            else None
        if arrival is not None:
            reporter.received(index, seq, arrival, captured_at)


def stamp_arrivals(receiver: Any, arrivals: dict[int, float]) -> None:
    """Wrap the receiver's packet handler: note when each frame's last packet lands."""
    handle = receiver._handle_rtp_packet

    async def handle_rtp_packet(packet: Any, arrival_time_ms: int) -> None:
        if packet.marker and packet.timestamp not in arrivals:
            arrivals[packet.timestamp] = time.time()
            if len(arrivals) > 1000:  # frames never decoded: bound the map
                for key in list(arrivals)[:500]:
                    del arrivals[key]
        await handle(packet, arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp_packet


async def receive(index: int, sender: tuple[str, int], reporter: Reporter,
                  pcs: list[RTCPeerConnection]) -> None:
    reader, writer = await asyncio.open_connection(*sender)
    pc = RTCPeerConnection()
    pcs.append(pc)
    tasks: list[asyncio.Task[None]] = []
    arrivals: dict[int, float] = {}

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
        stamp_arrivals(receiver, arrivals)
        tasks.append(asyncio.ensure_future(consume(index, track, receiver, arrivals, reporter)))

    try:
        await pc.setRemoteDescription(await asyncio.wait_for(read_description(reader), 30))
        await pc.setLocalDescription(await pc.createAnswer())
        writer.write(description_line(pc))
        await writer.drain()
        await asyncio.Event().wait()  # until cancelled
    finally:
        for task in tasks:
            task.cancel()
        writer.close()
        await pc.close()


async def run_receivers(sender: tuple[str, int], viewers: int, reporter: Reporter,
                        duration: float) -> None:
    pcs: list[RTCPeerConnection] = []
    tasks = [asyncio.ensure_future(receive(i, sender, reporter, pcs)) for i in range(viewers)]
    poller = asyncio.ensure_future(poll_bytes(pcs, reporter))
    reporter.event("ready")
    try:
        done, _ = await asyncio.wait(tasks, timeout=duration,
                                     return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None:
                print(f"receiver: {task.exception()!r}", file=sys.stderr)
    finally:
        poller.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--role", choices=["sender", "receiver"], required=True)
    parser.add_argument("--clip", help="the video the sender streams (looped)")
    parser.add_argument("--codec", choices=["h264", "vp8"], default="vp8")
    parser.add_argument("--viewers", type=int, default=1, help="receivers in this process")
    args = parser.parse_args(argv)
    only_address(host_port(args.listen)[0])
    reporter = Reporter(args.events)
    loop = asyncio.new_event_loop()
    if args.role == "sender":
        main_task = loop.create_task(run_sender(host_port(args.listen), args.clip, args.codec,
                                                reporter, args.duration))
    else:
        main_task = loop.create_task(run_receivers(host_port(args.tracker), args.viewers,
                                                   reporter, args.duration))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main_task)
    finally:
        reporter.close()
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
