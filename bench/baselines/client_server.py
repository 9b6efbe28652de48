"""The original course report's client-server design, rebuilt as a yardstick.

A central server receives the streamer's JPEG frames as base64 inside JSON lines over
TCP, re-encodes each frame for every viewer's resolution and sends every frame to
every viewer over TCP. This file is a yardstick, not a product: it is kept as short as
a faithful rebuild allows. Where the report left a choice open it takes the kinder one,
so the comparison does not flatter Treecast:

* one re-encode per resolution per frame, shared by the viewers at that resolution
  (not one per viewer), and one JSON line per resolution;
* a sender thread and an unbounded queue per viewer, so one slow viewer does not hold
  up the others (every frame still goes to every viewer: nothing is dropped, so a
  viewer that cannot keep up falls ever further behind).

Wire format, one JSON object per line: the first line names the role
(``{"role": "streamer"}`` or ``{"role": "viewer", "resolution": 720}``), then frames
``{"seq": n, "captured_at": t, "width": w, "height": h, "jpeg": "<base64>"}``.
Lines longer than ``MAX_LINE_BYTES`` close the connection.

Run (each role is a process; ``--tracker`` names the server, see ``report``)::

    python -m bench.baselines.client_server --role server --name s --events s.jsonl
    python -m bench.baselines.client_server --role streamer --clip clip.avi --tracker H:P ...
    python -m bench.baselines.client_server --role viewer --viewers 4 --decode --tracker H:P ...
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import signal
import socket
import sys
import threading
import time
from typing import BinaryIO

import cv2
import numpy as np

from bench.baselines.clip import PacedClip
from bench.baselines.report import Reporter, base_parser, host_port

JPEG_QUALITY = 80  # Treecast's MJPEG quality: both send pictures of the same quality
# A 1080p JPEG at quality 80 in base64 is under 1 MB; a longer line is not a frame.
MAX_LINE_BYTES = 4 * 1024 * 1024
SOCKET_BUFFER_BYTES = 512 * 1024  # what Treecast's links ask for


def frame_line(image: np.ndarray, seq: int, captured_at: float) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    height, width = image.shape[:2]
    return (json.dumps({"seq": seq, "captured_at": captured_at, "width": width,
                        "height": height,
                        "jpeg": base64.b64encode(jpeg.tobytes()).decode("ascii")})
            + "\n").encode()


def read_line(stream: BinaryIO) -> bytes | None:
    """One line, or None at EOF; raises ValueError for a line over the limit."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None
    if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
        raise ValueError(f"line over {MAX_LINE_BYTES} bytes or cut short")
    return line


def resized(image: np.ndarray, resolution: int) -> np.ndarray:
    height, width = image.shape[:2]
    if resolution >= height:
        return image
    return cv2.resize(image, (round(width * resolution / height), resolution),
                      interpolation=cv2.INTER_AREA)


def tuned(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
    return sock


class ViewerLink:
    """A viewer's connection: every line queued for it is sent, in order."""

    def __init__(self, conn: socket.socket, resolution: int, reporter: Reporter) -> None:
        self.conn, self.resolution, self._reporter = conn, resolution, reporter
        self.queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._send, daemon=True).start()

    def _send(self) -> None:
        while (line := self.queue.get()) is not None:
            try:
                self.conn.sendall(line)
            except OSError:
                return
            self._reporter.count("bytes_out", len(line))


class Server:
    """Accepts one streamer and any number of viewers; fans every frame out."""

    def __init__(self, listen: tuple[str, int], reporter: Reporter) -> None:
        self.sock = socket.create_server(listen)
        self._reporter = reporter
        self._viewers: list[ViewerLink] = []
        self._lock = threading.Lock()

    def serve(self) -> None:
        """Accept connections until the listening socket is closed."""
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(tuned(conn),), daemon=True).start()

    def close(self) -> None:
        """Stop ``serve`` (shutdown wakes a blocked accept; close alone does not)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def viewer_count(self) -> int:
        with self._lock:
            return len(self._viewers)

    def _handle(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")
        link = None
        try:
            hello = json.loads(read_line(stream) or b"{}")
            if hello.get("role") == "streamer":
                self._relay(stream)
            elif hello.get("role") == "viewer":
                link = ViewerLink(conn, int(hello.get("resolution", 720)), self._reporter)
                with self._lock:
                    self._viewers.append(link)
                self._reporter.count("viewers", 1)
                while stream.read(4096):  # until the viewer leaves
                    pass
        except (OSError, ValueError) as exc:  # bad JSON, bad base64, over-long line
            print(f"server: closing a connection: {exc}", file=sys.stderr)
        finally:
            if link is not None:
                with self._lock:
                    self._viewers.remove(link)
                link.queue.put(None)
            conn.close()

    def _relay(self, stream: BinaryIO) -> None:
        while (line := read_line(stream)) is not None:
            self._reporter.count("bytes_in", len(line))
            frame = json.loads(line)
            jpeg = np.frombuffer(base64.b64decode(frame["jpeg"], validate=True), np.uint8)
            image = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError("not a JPEG")
            with self._lock:
                viewers = list(self._viewers)
            lines: dict[int, bytes] = {}
            for viewer in viewers:
                if viewer.resolution not in lines:
                    lines[viewer.resolution] = frame_line(
                        resized(image, viewer.resolution), frame["seq"], frame["captured_at"])
                viewer.queue.put(lines[viewer.resolution])
            self._reporter.count("frames", 1)


def run_streamer(server: tuple[str, int], clip: str, reporter: Reporter) -> None:
    sock = tuned(socket.create_connection(server, timeout=10))
    sock.settimeout(None)
    sock.sendall(b'{"role": "streamer"}\n')
    reporter.event("ready")
    source = PacedClip(clip)
    for seq, captured_at, image in source.frames():
        line = frame_line(image, seq, captured_at)
        reporter.produced(seq, captured_at)
        sock.sendall(line)
        reporter.count("bytes_out", len(line))
        reporter.count("frames", 1)


def watch(index: int, server: tuple[str, int], resolution: int, decode: bool,
          reporter: Reporter) -> None:
    sock = tuned(socket.create_connection(server, timeout=10))
    sock.settimeout(None)
    sock.sendall(json.dumps({"role": "viewer", "resolution": resolution}).encode() + b"\n")
    stream = sock.makefile("rb")
    while (line := read_line(stream)) is not None:
        arrival = time.time()
        reporter.count("bytes_in", len(line))
        frame = json.loads(line)
        jpeg = np.frombuffer(base64.b64decode(frame["jpeg"]), np.uint8)
        reporter.received(index, frame["seq"], arrival, frame["captured_at"])
        if decode and cv2.imdecode(jpeg, cv2.IMREAD_COLOR) is not None:
            reporter.decoded(index, frame["seq"], time.time(), frame["captured_at"])


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--role", choices=["server", "streamer", "viewer"], required=True)
    parser.add_argument("--clip", help="the video the streamer sends (looped)")
    parser.add_argument("--viewers", type=int, default=1, help="viewers in this process")
    parser.add_argument("--resolution", type=int, default=720)
    parser.add_argument("--decode", action="store_true", help="decode every frame (display)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cv2.setNumThreads(1)
    reporter = Reporter(args.events)
    workers: list[threading.Thread] = []
    try:
        if args.role == "server":
            server = Server(host_port(args.listen), reporter)
            reporter.event("ready", port=server.sock.getsockname()[1])
            workers.append(threading.Thread(target=server.serve, daemon=True))
        elif args.role == "streamer":
            workers.append(threading.Thread(
                target=run_streamer, args=(host_port(args.tracker), args.clip, reporter),
                daemon=True))
        else:
            target = host_port(args.tracker)
            workers += [threading.Thread(target=watch, daemon=True, args=(
                i, target, args.resolution, args.decode, reporter))
                for i in range(args.viewers)]
            reporter.event("ready")
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + args.duration
        while time.monotonic() < deadline and all(w.is_alive() for w in workers):
            time.sleep(0.2)
    finally:
        reporter.close()
    return 0




if __name__ == "__main__":
    sys.exit(main())
