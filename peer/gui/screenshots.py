"""Take the app's screenshots from a real local session: ``python -m peer.gui.screenshots``.

Starts a tracker (``python -m tracker --port 0``), a streamer window on the test
pattern, a viewer window, and a few headless peers (``treecast-peer``) so the tree has
some depth, then saves a PNG of each screen to ``docs/screenshots/``. Runs under Xvfb
or with QT_QPA_PLATFORM=offscreen (set here when there is no display).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WINDOW_SIZE = (1280, 800)
# Enough for a minute-long plot to show a real trend, short enough for `make`.
WARMUP_S = 12.0


def subprocess_env() -> dict[str, str]:
    """The environment for child processes: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@contextlib.contextmanager
def tracker_process() -> Iterator[tuple[str, int]]:
    """A tracker on a free loopback port; yields its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--host", "127.0.0.1", "--port", "0", "--no-mdns"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env=subprocess_env(), cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # "treecast-tracker listening on H:P"
        host, _, port = line.rpartition(" ")[2].rpartition(":")
        if not port.isdigit():
            raise RuntimeError(f"tracker did not start: {line!r}")
        yield host, int(port)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def headless_peer(name: str, tracker: tuple[str, int], resolution: int,
                  chat: bool = False, room: str = "lobby",
                  extra: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """A ``treecast-peer`` (the same node, no Qt): a viewer, or what ``extra`` says."""
    args = [
        sys.executable, "-m", "peer.node.cli", "--name", name,
        "--tracker", f"{tracker[0]}:{tracker[1]}", "--room", room,
        "--listen", "127.0.0.1:0", "--resolution", str(resolution), *extra,
    ]
    if chat:
        args.append("--chat-stdin")
    return subprocess.Popen(
        args, stdin=subprocess.PIPE if chat else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        env=subprocess_env(), cwd=ROOT,
    )


def write_clip(path: str, seconds: int = 20, fps: float = 15.0) -> None:
    """A short 1280x720 clip to stream (moving colour bands and its frame number)."""
    import cv2
    import numpy as np

    fourcc = cv2.VideoWriter.fourcc(*"MJPG")
    writer = cv2.VideoWriter(path, fourcc, fps, (1280, 720))
    hue = np.linspace(0, 179, 1280, dtype=np.float32)
    for index in range(int(seconds * fps)):
        hsv = np.empty((720, 1280, 3), np.uint8)
        hsv[..., 0] = ((hue + index * 2) % 180).astype(np.uint8)[None, :]
        hsv[..., 1] = 200
        hsv[..., 2] = 210
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        cv2.putText(image, f"clip {index / fps:5.1f} s", (60, 140), cv2.FONT_HERSHEY_SIMPLEX,
                    3.0, (255, 255, 255), 8, cv2.LINE_AA)
        writer.write(image)
    writer.release()


def main(argv: list[str] | None = None) -> int:
    """Run the session and write the screenshots.

    Args:
        argv: command-line arguments.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m peer.gui.screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--warmup", type=float, default=WARMUP_S,
                        help="seconds of streaming before the session screenshots")
    args = parser.parse_args(argv)
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    args.out.mkdir(parents=True, exist_ok=True)

    from PyQt6.QtCore import QCoreApplication, QEventLoop, QSettings
    from PyQt6.QtWidgets import QApplication, QWidget

    from peer.gui import streamer as streamer_mod
    from peer.gui import theme
    from peer.gui import viewer as viewer_mod
    from peer.gui.app import MainWindow
    from peer.gui.bridge import SessionRequest
    from peer.gui.streamer import StreamerView
    from peer.gui.viewer import ViewerView

    app = QApplication([sys.argv[0]])
    app.setOrganizationName("Treecast")
    app.setApplicationName("Treecast")
    theme.apply(app)
    settings_dir = tempfile.TemporaryDirectory(prefix="treecast-shots-")
    windows: list[MainWindow] = []
    peers: list[subprocess.Popen[str]] = []

    def pump(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    def wait_until(what: str, cond: Callable[[], bool], timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                states = [f"{w.windowTitle()}: {w.view.subtitle.text()!r} "
                          f"banner={w.view.banner.text()!r}"
                          for w in windows if w.view is not None]
                raise RuntimeError(f"timed out waiting for: {what} ({'; '.join(states)})")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.01)

    def window(name: str, tracker: tuple[str, int], room: str = "lobby") -> MainWindow:
        settings = QSettings(os.path.join(settings_dir.name, f"{name}.ini"),
                             QSettings.Format.IniFormat)
        win = MainWindow(settings=settings)
        win.resize(*WINDOW_SIZE)
        screen = win.start_screen
        screen.name_edit.setText(name)
        screen.tracker_radio.setChecked(True)
        screen.tracker_edit.setText(f"{tracker[0]}:{tracker[1]}")
        screen.room_edit.setText(room)
        win.show()
        windows.append(win)
        return win

    def shoot(widget: QWidget, name: str) -> None:
        pump(0.3)  # let the last signals paint
        path = args.out / name
        widget.grab().save(str(path))
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")

    try:
        with tracker_process() as tracker:
            # 1. Start screen, empty room.
            alice = window("Alice", tracker)
            wait_until("room status", lambda: "Nobody" in alice.start_screen.status_label.text())
            shoot(alice, "start.png")

            # 2. Alice streams the test pattern (its preview first).
            alice.start_screen.stream_button.click()
            streamer = alice.view
            assert isinstance(streamer, StreamerView)
            wait_until("streamer in the room", streamer.live_button.isEnabled)
            shoot(alice, "streamer-preview.png")
            streamer.live_button.click()
            wait_until("streaming", lambda: streamer.bridge.is_streaming)

            # 3. Viewers: headless peers fill the tree; Bob watches in the app.
            peers.append(headless_peer("Carol", tracker, 480, chat=True))
            for name, layer in (("Dave", 360), ("Erin", 720), ("Finn", 360)):
                peers.append(headless_peer(name, tracker, layer))
            bob = window("Bob", tracker)
            # Wait for the headless peers too, so the room shows who watches.
            wait_until("Alice is live, four watching", lambda: (
                bob.start_screen.holder == "Alice" and bob.start_screen.status is not None
                and bob.start_screen.status.peers >= 5), timeout=30)
            wait_until("the tracker's rooms", lambda: bob.start_screen.rooms_list.count() > 0)
            shoot(bob, "start-live.png")
            bob.start_screen.join_button.click()
            viewer = bob.view
            assert isinstance(viewer, ViewerView)
            wait_until("video", lambda: viewer.video.frames_shown > 10, timeout=90)

            # 4. Chat from the app and from a headless peer.
            streamer.chat.send_requested.emit("Welcome! This is the test pattern.")
            pump(0.5)
            viewer.chat.send_requested.emit("Looks sharp from here :)")
            carol_in = peers[0].stdin
            if carol_in is not None:
                carol_in.write("hi from the terminal\n")
                carol_in.flush()
            pump(args.warmup)

            streamer.side.setCurrentWidget(streamer.viewers_table)
            shoot(alice, "streamer.png")
            shoot(bob, "viewer.png")
            viewer.side.setCurrentWidget(viewer.tree)
            shoot(bob, "viewer-tree.png")

            # The streamer pauses its file... here the pattern cannot pause, so the
            # paused screen is taken in the file session below.

            # Bob records what he watches (the save dialog answered in advance).
            # Closing Alice's window at the end asks before ending her broadcast:
            # the script says yes in advance (a modal dialog would wait forever).
            streamer_mod.confirm_end_broadcast = lambda parent, viewers: True
            name = os.path.basename(viewer_mod.suggested_recording_path("lobby"))
            recording = os.path.join(settings_dir.name, name)
            viewer_mod.choose_recording_path = lambda parent, suggested: recording
            viewer.side.setCurrentWidget(viewer.chat)
            viewer.record_button.click()
            wait_until("recording", lambda: viewer.recording)
            pump(2.0)
            shoot(bob, "viewer-recording.png")
            viewer.record_button.click()
            wait_until("recording saved", lambda: not viewer.recording)
            shoot(bob, "viewer-saved.png")
            streamer.side.setCurrentWidget(streamer.tree)
            shoot(alice, "streamer-tree.png")

            # The light theme (the system's choice when it asks for light).
            theme.apply(app, theme.LIGHT)
            viewer.side.setCurrentWidget(viewer.chat)
            shoot(bob, "viewer-light.png")
            theme.apply(app, theme.DARK)

            # The mini player: what a minimised window leaves on screen.
            bob.mini.show_for(viewer.video)
            pump(1.0)
            shoot(bob.mini, "mini-player.png")
            bob.mini.hide()

            # 5. Errors: a second streamer in the same room, an unreachable tracker.
            eve = window("Eve", tracker)
            wait_until("Alice is live", lambda: eve.start_screen.holder == "Alice")
            eve.start_screen.stream_button.click()  # refused on the start screen
            shoot(eve, "start-refused.png")
            eve.open_session(SessionRequest("Eve", "lobby", tracker, False, True))
            blocked = eve.view
            assert isinstance(blocked, StreamerView)
            # Alice is live: Eve's "Go live" is greyed out, and the screen says why.
            wait_until("Eve sees Alice live", lambda: blocked.bridge.is_started
                       and blocked.live_hint.isVisible()
                       and "Alice" in blocked.live_hint.text())
            shoot(eve, "streamer-blocked.png")

            # 6. A paused file: Hana streams a clip in "movies" and pauses it; Ivy sees
            # the last picture dimmed with "Paused", not a frozen video.
            clip = os.path.join(settings_dir.name, "clip.avi")
            write_clip(clip)
            hana = headless_peer("Hana", tracker, 720, chat=True, room="movies",
                                 extra=("--stream", clip, "--loop", "--no-audio"))
            peers.append(hana)
            ivy = window("Ivy", tracker, room="movies")
            wait_until("Hana is live", lambda: ivy.start_screen.holder == "Hana", timeout=30)
            ivy.start_screen.join_button.click()
            paused_view = ivy.view
            assert isinstance(paused_view, ViewerView)
            wait_until("Hana's video", lambda: paused_view.video.frames_shown > 10, timeout=60)
            pump(2.0)
            if hana.stdin is not None:
                hana.stdin.write("/pause\n")
                hana.stdin.flush()
            wait_until("paused", lambda: paused_view.video.overlay() == "Paused", timeout=30)
            shoot(ivy, "viewer-paused.png")

            # 7. A private room: Jo streams behind a passphrase (--secret); Kim types
            # the room's name and passphrase in the app and watches; Lea mistypes it
            # and is told that nobody there has hers.
            peers.append(headless_peer(
                "Jo", tracker, 720, room="book club",
                extra=("--test-pattern", "1280x720", "--fps", "15", "--no-audio",
                       "--secret", "tea and biscuits")))
            kim = window("Kim", tracker, room="book club")
            kim.start_screen.passphrase_edit.setText("tea and biscuits")
            wait_until("private room status",
                       lambda: "Private room" in kim.start_screen.status_label.text())
            shoot(kim, "start-private.png")
            kim.start_screen.join_button.click()  # the passphrase is stretched first
            wait_until("Kim's session", lambda: kim.view is not None)
            private_view = kim.view
            assert isinstance(private_view, ViewerView)
            wait_until("Jo's video", lambda: private_view.video.frames_shown > 10, timeout=60)
            pump(3.0)
            shoot(kim, "viewer-private.png")
            lea = window("Lea", tracker, room="book club")
            lea.start_screen.passphrase_edit.setText("coffee and cake")
            lea.start_screen.join_button.click()
            wait_until("Lea's session", lambda: lea.view is not None)
            alone_view = lea.view
            assert alone_view is not None
            wait_until("the advice", lambda: "Nobody else" in alone_view.banner.text(),
                       timeout=30)
            shoot(lea, "viewer-private-alone.png")

            lost = window("Gus", ("127.0.0.1", 1))
            lost.start_screen.join_button.click()
            lost_view = lost.view
            assert lost_view is not None
            wait_until("tracker error", lambda: lost_view.banner.level == "error")
            shoot(lost, "tracker-unreachable.png")
    finally:
        for win in windows:
            win.close()
        with contextlib.suppress(RuntimeError):
            wait_until("windows closed", lambda: all(w.bridge is None for w in windows), 20)
        for win in windows:
            win.start_screen.shutdown()
        for proc in peers:
            proc.terminate()
        for proc in peers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            if proc.poll() is None:
                proc.kill()
        QCoreApplication.processEvents()
        settings_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
