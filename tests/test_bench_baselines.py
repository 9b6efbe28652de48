"""The benchmark yardsticks measure what they claim (bench/baselines/).

* The barcode survives JPEG at quality 15 and H.264 at 300 kbit/s, and refuses a misread.
* The client-server rebuild delivers every frame, with its capture time, to a viewer,
  and a client sending an over-long line loses its connection, not the server.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bench.baselines import barcode
from bench.baselines.client_server import MAX_LINE_BYTES, Server, frame_line, read_line
from bench.baselines.report import Reporter


def picture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (720, 1280, 3), np.uint8)


def test_barcode_survives_a_low_quality_jpeg() -> None:
    image = picture()
    barcode.draw(image, 1796012345.678901, 123456)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 15])
    assert ok
    luma = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
    captured_at, seq = barcode.read(luma, now=1796012346.0) or (None, None)
    assert seq == 123456 % 65536
    assert captured_at == pytest.approx(1796012345.6789, abs=1e-4)


def test_barcode_survives_h264_at_300_kbit() -> None:
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 1280, 720, "yuv420p"
    encoder.bit_rate = 300_000
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"tune": "zerolatency", "preset": "ultrafast"}  # as aiortc's
    decoder = av.CodecContext.create("h264", "r")
    read = []
    for seq in range(10):
        image = picture(seq)
        barcode.draw(image, 1796000000.0 + seq / 30, seq)
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = seq
        for packet in encoder.encode(frame):
            for decoded in decoder.decode(packet):
                luma = decoded.to_ndarray(format="gray")
                read.append(barcode.read(luma, now=1796000001.0))
    assert read, "the encoder produced no frames"
    assert all(stamp is not None for stamp in read)
    assert [stamp[1] for stamp in read if stamp] == list(range(len(read)))


def test_barcode_refuses_a_flipped_cell() -> None:
    image = np.zeros((barcode.ROWS, 1280), np.uint8)
    barcode.draw(image, 1796012345.5, 7)
    image[: barcode.BAND_ROWS, 40 * 20: 40 * 21] ^= 255  # one cell of the time, inverted
    assert barcode.read(image) is None


def test_read_line_refuses_a_line_over_the_limit() -> None:
    import io

    with pytest.raises(ValueError, match="over"):
        read_line(io.BytesIO(b"x" * (MAX_LINE_BYTES + 10) + b"\n"))
    assert read_line(io.BytesIO(b'{"a": 1}\n')) == b'{"a": 1}\n'
    assert read_line(io.BytesIO(b"")) is None


def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_client_server_delivers_every_frame_and_survives_a_hostile_client(
        tmp_path: Path) -> None:
    reporter = Reporter(str(tmp_path / "server.jsonl"))
    server = Server(("127.0.0.1", 0), reporter)
    address = server.sock.getsockname()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    hostile = socket.create_connection(address)
    viewer = socket.create_connection(address)
    streamer = socket.create_connection(address)
    try:
        # An endless line: the server reads up to its limit, then drops this client.
        hostile.sendall(b'{"role": "streamer", "x": "' + b"y" * (MAX_LINE_BYTES + 1024))
        hostile.settimeout(10)
        try:
            data = hostile.recv(1)
        except ConnectionResetError:  # closed with our bytes unread: a reset
            data = b""
        assert data == b""  # closed by the server
        viewer.sendall(b'{"role": "viewer", "resolution": 360}\n')
        assert wait_for(lambda: server.viewer_count() == 1)
        streamer.sendall(b'{"role": "streamer"}\n')
        sent = [(seq, 1796000000.0 + seq / 30) for seq in range(3)]
        for seq, captured_at in sent:
            streamer.sendall(frame_line(picture(seq), seq, captured_at))
        stream = viewer.makefile("rb")
        viewer.settimeout(10)
        for seq, captured_at in sent:
            frame = json.loads(read_line(stream) or b"{}")
            assert (frame["seq"], frame["captured_at"]) == (seq, captured_at)
            jpeg = np.frombuffer(base64.b64decode(frame["jpeg"]), np.uint8)
            assert cv2.imdecode(jpeg, cv2.IMREAD_COLOR).shape == (360, 640, 3)
    finally:
        for sock in (hostile, viewer, streamer):
            sock.close()
        server.close()
        thread.join(5)
        reporter.close()
    assert not thread.is_alive()
