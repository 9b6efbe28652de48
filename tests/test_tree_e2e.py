"""The relay tree end to end: real tracker and peer processes on loopback."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time

import pytest

from peer.trust.tls import client_context, make_proof, remote_public_key
from protocol import Hello, JoinRequest, Ping, encode
from protocol.identity import Identity
from tests.support.procs import Peer, session, wait_for

pytestmark = pytest.mark.slow


def _stats(peer: Peer) -> dict:
    return peer.last("stats") or {}


def _counts(peers: list[Peer]) -> tuple[int, int]:
    frames = sum(_stats(p).get("frames", 0) for p in peers)
    lost = sum(_stats(p).get("lost", 0) for p in peers)
    return frames, lost


def test_eight_viewers_form_a_deep_tree_at_their_own_resolutions() -> None:
    resolutions = [720, 480, 360, 720, 360, 480, 1080, 360]
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "1280x720", "--fps", "10",
                            "--max-children", "2")
        assert wait_for(lambda: root.last("stream_started"), 30), root.proc.stderr
        viewers = [s.start_peer(f"v{i}", "--watch", "--resolution", str(r),
                                "--max-children", "2")
                   for i, r in enumerate(resolutions)]
        assert wait_for(lambda: all(_stats(v).get("frames", 0) >= 30 for v in viewers), 90), \
            [(v.name, _stats(v)) for v in viewers]

        # Steady state: count frames and losses until every viewer got 40 more frames
        # (4 s of a 10 fps stream).
        frames0, lost0 = _counts(viewers)
        start = {v.name: _stats(v).get("frames", 0) for v in viewers}
        assert wait_for(lambda: all(_stats(v).get("frames", 0) - start[v.name] >= 40
                                    for v in viewers), 60), \
            [(v.name, _stats(v)) for v in viewers]
        frames1, lost1 = _counts(viewers)
        received, lost = frames1 - frames0, lost1 - lost0
        assert lost / (received + lost) < 0.01

        for viewer, wanted in zip(viewers, resolutions, strict=True):
            stats = _stats(viewer)
            assert stats["height"] == min(wanted, 720), (viewer.name, stats)
            assert abs(stats["width"] - stats["height"] * 16 / 9) <= 2  # even widths
            joined = viewer.last("joined")
            assert joined is not None and joined["parent"]
        depths = [_stats(v)["depth"] for v in viewers]
        assert max(depths) >= 3
        assert _stats(root)["children"] <= 2
        assert all(_stats(v)["children"] <= 2 for v in viewers)


def test_resolution_change_takes_effect_and_demand_follows_upstream() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "1280x720", "--fps", "10",
                            "--max-children", "1")
        assert wait_for(lambda: root.last("stream_started"), 30)
        relay = s.start_peer("relay", "--watch", "--resolution", "360", "--max-children", "1")
        assert wait_for(lambda: relay.last("joined"), 30)
        leaf = s.start_peer("leaf", "--watch", "--resolution", "720", "--chat-stdin",
                            stdin=True)
        assert wait_for(lambda: _stats(leaf).get("frames", 0) > 10, 60)
        # The relay shows 360 but carries 720 for its child.
        assert _stats(relay)["layer_in"] == 720
        assert _stats(relay)["height"] == 360
        assert _stats(leaf)["layer_in"] == 720

        assert leaf.proc.stdin is not None
        leaf.proc.stdin.write("/res 360\n")
        leaf.proc.stdin.flush()
        changed_at = time.time()
        assert wait_for(lambda: _stats(leaf).get("layer_in") == 360
                        and _stats(relay).get("layer_in") == 360, 10)
        # Stats are sampled once a second; the change itself lands well inside that.
        first = next(e for e in leaf.all("stats") if e.get("layer_in") == 360)
        assert first["t"] - changed_at < 2.5
        assert _stats(leaf)["height"] == 360


def _slow_child(port: int) -> ssl.SSLSocket:
    """A child that joins, keeps its link alive with pings, and never reads."""
    sock = socket.socket()
    # Before connect, so the advertised TCP window stays tiny.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    # Links are TLS: join as a proper (if lazy) peer with a key of its own.
    me = Identity.generate()
    tls = client_context().wrap_socket(sock)
    tls.sendall(encode(make_proof(me, remote_public_key(tls))))
    tls.sendall(encode(Hello(peer_id=me.peer_id, name="slowpoke", room="lobby")))
    tls.sendall(encode(JoinRequest(layer=720)))
    return tls


def test_a_viewer_that_stops_reading_does_not_slow_its_siblings() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "1280x720", "--fps", "10",
                            "--max-children", "3", "--listen", "127.0.0.1:0")
        assert wait_for(lambda: root.last("ready") and root.last("stream_started"), 30)
        port = int(root.last("ready")["listen"].rsplit(":", 1)[1])
        a = s.start_peer("a", "--watch", "--resolution", "720")
        b = s.start_peer("b", "--watch", "--resolution", "720")
        assert wait_for(lambda: _stats(a).get("frames", 0) > 10
                        and _stats(b).get("frames", 0) > 10, 60)
        slow = _slow_child(port)
        try:
            # Until the silent reader's queue has dropped frames and each sibling got
            # 50 more (5 s at 10 fps), keep it "alive" with pings.
            start = {p.name: _stats(p).get("frames", 0) for p in (a, b)}

            def settled() -> bool:
                slow.sendall(encode(Ping(t0=time.time())))
                return (_stats(root).get("dropped", 0) > 0
                        and all(_stats(p).get("frames", 0) - start[p.name] >= 50
                                for p in (a, b)))

            assert wait_for(settled, 60, interval=0.2), (_stats(root), _stats(a), _stats(b))
            assert _stats(root)["children"] == 3  # still attached, just not reading
            assert _stats(root)["dropped"] > 0  # its queue dropped oldest frames
            for sibling in (a, b):
                assert _stats(sibling)["fps"] >= 7, _stats(sibling)
                assert _stats(sibling)["loss_pct"] < 1.0
        finally:
            slow.close()


def _peer_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peer.node.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_missing_video_file_is_one_clear_line_and_exit_2(tmp_path) -> None:
    result = _peer_cli("--name", "x", "--tracker", "127.0.0.1:9", "--stream",
                       str(tmp_path / "nope.mp4"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"treecast-peer: video file not found: {tmp_path / 'nope.mp4'}"]


def test_not_a_video_file_is_exit_2(tmp_path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n")
    result = _peer_cli("--name", "x", "--tracker", "127.0.0.1:9", "--stream", str(fake))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_arguments_are_exit_2() -> None:
    assert _peer_cli("--name", "x", "--tracker", "nowhere").returncode == 2
    assert _peer_cli("--tracker", "127.0.0.1:1").returncode == 2  # no name
    result = _peer_cli("--name", "x", "--tracker", "127.0.0.1:1", "--resolution", "999")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_unreachable_tracker_is_exit_4() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        result = _peer_cli("--name", "x", "--tracker", f"127.0.0.1:{port}", "--watch")
    assert result.returncode == 4
    assert "tracker" in result.stderr and "Traceback" not in result.stderr


def test_second_streamer_is_denied_with_the_holders_name_exit_3() -> None:
    with session() as s:
        s.start_tracker()
        first = s.start_peer("alice", "--test-pattern", "320x240", "--fps", "5")
        assert wait_for(lambda: first.last("stream_started"), 30)
        second = s.start_peer("bob", "--test-pattern", "320x240", "--fps", "5")
        assert second.proc.wait(30) == 3
        assert wait_for(lambda: second.last("lock_denied"), 5)
        assert second.last("lock_denied")["holder"] == "alice"


def test_sigterm_leaves_cleanly_and_children_are_told() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "640x360", "--fps", "10")
        assert wait_for(lambda: root.last("stream_started"), 30)
        viewer = s.start_peer("v", "--watch", "--resolution", "360")
        assert wait_for(lambda: _stats(viewer).get("frames", 0) > 5, 60)
        root.proc.terminate()
        assert root.proc.wait(15) == 0
        assert root.last("stopped") is not None
        assert wait_for(lambda: viewer.last("stream_ended"), 15)


def _make_video(path, frames: int = 60, size: tuple[int, int] = (640, 360),
                fps: float = 20.0) -> None:
    import cv2
    import numpy as np

    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if str(path).endswith(".mp4") else "MJPG"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (i * 4) % 256, dtype=np.uint8)
        cv2.putText(image, str(i), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(image)
    writer.release()


def _frame_count(path) -> tuple[int, int, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    count = 0
    width = height = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        count += 1
        height, width = image.shape[:2]
    cap.release()
    return count, width, height


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_stream_a_video_file_and_record_it_at_the_viewers_resolution(tmp_path, suffix) -> None:
    source = tmp_path / f"clip{suffix}"
    _make_video(source, frames=40, size=(1280, 720))
    recording = tmp_path / "seen.mp4"
    with session() as s:
        s.start_tracker()
        viewer = s.start_peer("v", "--watch", "--resolution", "360", "--record", str(recording))
        assert wait_for(lambda: viewer.last("ready"), 30)
        root = s.start_peer("root", "--stream", str(source), "--loop")
        assert wait_for(lambda: _stats(viewer).get("frames", 0) >= 30, 60)
        progress = root.last("progress")
        assert progress is not None and progress["duration_s"] == pytest.approx(2.0, abs=0.2)
        viewer.proc.terminate()  # SIGTERM finalizes the recording
        assert viewer.proc.wait(15) == 0
    count, width, height = _frame_count(recording)
    assert count >= 20
    assert (width, height) == (640, 360)


def test_a_file_without_loop_ends_the_stream(tmp_path) -> None:
    source = tmp_path / "short.avi"
    _make_video(source, frames=20, fps=20.0)
    with session() as s:
        s.start_tracker()
        viewer = s.start_peer("v", "--watch", "--resolution", "360")
        assert wait_for(lambda: viewer.last("ready"), 30)
        root = s.start_peer("root", "--stream", str(source))
        assert wait_for(lambda: root.last("stream_ended") is not None, 30)
        assert wait_for(lambda: viewer.last("stream_ended") is not None, 15)
        # The typed reason reads as its words in the --events line.
        assert root.last("stream_ended")["reason"] == "stream ended"
        assert viewer.last("stream_ended")["reason"] == "stream ended"


def test_missing_camera_is_a_clear_error_exit_2() -> None:
    result = _peer_cli("--name", "x", "--tracker", "127.0.0.1:9", "--camera", "7")
    assert result.returncode == 2
    assert result.stderr.strip() == "treecast-peer: no camera at index 7"


def test_duration_ends_the_peer_cleanly() -> None:
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "320x240", "--fps", "5",
                            "--duration", "2")
        assert root.proc.wait(30) == 0
        assert root.last("stopped") is not None


def test_unwritable_recording_path_is_exit_2(tmp_path) -> None:
    result = _peer_cli("--name", "x", "--tracker", "127.0.0.1:9", "--watch",
                       "--record", str(tmp_path / "missing" / "out.mp4"))
    assert result.returncode == 2
    assert "cannot record" in result.stderr and "Traceback" not in result.stderr


def test_a_recording_relay_decodes_once_for_its_picture_and_its_lower_child(tmp_path) -> None:
    recording = tmp_path / "relay.avi"
    with session() as s:
        s.start_tracker()
        root = s.start_peer("root", "--test-pattern", "1280x720", "--fps", "10",
                            "--max-children", "1")
        assert wait_for(lambda: root.last("stream_started"), 30)
        relay = s.start_peer("relay", "--watch", "--resolution", "720", "--max-children", "1",
                             "--record", str(recording))
        assert wait_for(lambda: relay.last("joined"), 30)
        leaf = s.start_peer("leaf", "--watch", "--resolution", "360")
        assert wait_for(lambda: _stats(leaf).get("frames", 0) >= 20, 60)
        assert _stats(leaf)["layer_in"] == 360  # transcoded by the relay
        relay.proc.terminate()
        assert relay.proc.wait(15) == 0
    count, width, height = _frame_count(recording)
    assert count >= 10 and (width, height) == (1280, 720)
