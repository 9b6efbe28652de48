"""``treecast-peer``: the headless peer (scripts, tests, benchmarks, relays).

Exit codes: ``peer.node.errors.ExitCode`` (0 clean exit, 1 unexpected failure, 2 bad
input: arguments, video file, camera; 3 the streamer lock is held by someone else, 4
tracker unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from typing import TextIO

from peer.node import loops
from peer.node.audio.config import AudioConfig
from peer.node.config import (
    CameraSource,
    FileSource,
    NodeConfig,
    PatternSource,
    ScreenSource,
    SourceSpec,
    parse_trackers,
)
from peer.node.errors import ExitCode, MediaError, NodeError, exit_code
from peer.node.events import NodeEvent
from peer.node.node import Node
from protocol import limits
from protocol.addresses import AddressError, split_host_port
from protocol.messages import RoomList
from protocol.private_room import private_room


def _address(text: str) -> tuple[str, int]:
    """``--listen``: ``HOST:PORT`` or ``[IPV6]:PORT``; port 0 picks a free one."""
    try:
        return split_host_port(text, allow_port_zero=True)
    except AddressError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _split_fingerprint(text: str) -> tuple[str, str | None]:
    """``HOST:PORT#FINGERPRINT,...`` -> the list without it, and the first's fingerprint
    (the key the tracker prints at start, which it must then hold)."""
    first, sep, rest = text.partition(",")
    address, hashed, fingerprint = first.partition("#")
    if hashed and not fingerprint.startswith("sha256:"):
        raise ValueError(f"expected HOST:PORT#sha256:..., got {first!r}")
    return address + sep + rest, fingerprint or None


class _TrackerAction(argparse.Action):
    """``--tracker``: the list into ``tracker``, a fingerprint into
    ``tracker_fingerprint``."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        try:
            text, fingerprint = _split_fingerprint(str(values))
            trackers = parse_trackers(text)
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        namespace.tracker = trackers
        namespace.tracker_fingerprint = fingerprint


def _size(text: str) -> tuple[int, int]:
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    w, h = int(width), int(height)
    if not (16 <= w <= limits.MAX_DIMENSION_PX and 16 <= h <= limits.MAX_DIMENSION_PX):
        raise argparse.ArgumentTypeError(f"size out of range: {text!r}")
    return w, h


def _resolution(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        layer = int(text)
    except ValueError:
        layer = -1
    if layer not in limits.LAYERS:
        raise argparse.ArgumentTypeError(
            f"resolution must be one of {', '.join(map(str, limits.LAYERS))} or auto")
    return layer


# Children of a --relay peer: a public host's uplink is meant for forwarding.
RELAY_FANOUT = 16

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="treecast-peer", description="Treecast headless peer: stream or watch.")
    parser.add_argument("--name", help="display name")
    parser.add_argument("--tracker", action=_TrackerAction,
                        metavar="HOST:PORT[#FINGERPRINT][,HOST:PORT...]",
                        help="the tracker; with a list, the next one takes over when one "
                        "fails. With #FINGERPRINT the first must hold that key; otherwise "
                        "each tracker's key is pinned on first use (known_trackers)")
    parser.add_argument("--lan", action="store_true",
                        help="find peers and trackers on the LAN by mDNS (no tracker needed)")
    parser.add_argument("--list", action="store_true",
                        help="print the rooms and streams visible on the LAN (or, with "
                             "--tracker, the tracker's rooms), then exit")
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--listen", type=_address, default=("::", 0), metavar="HOST:PORT",
                        help="where children connect; the default [::]:0 is every IPv6 "
                        "and IPv4 address (IPv4 only where the system has no IPv6), "
                        "0.0.0.0:0 every IPv4 one")
    parser.add_argument("--advertise", metavar="HOST",
                        help="address others should dial (default: as the tracker sees us)")
    parser.add_argument("--upnp", action="store_true",
                        help="behind a home router: ask it (UPnP-IGD, else NAT-PMP) to "
                        "forward a port to "
                        "this peer, so others can connect to it and it can relay")
    parser.add_argument("--max-children", type=int, metavar="N")
    role = parser.add_mutually_exclusive_group()
    role.add_argument("--stream", metavar="PATH", help="stream a video file")
    role.add_argument("--test-pattern", nargs="?", const="1280x720", type=str,
                      metavar="WxH", help="stream the built-in test pattern")
    role.add_argument("--camera", type=int, metavar="N", help="stream camera N")
    role.add_argument("--screen", nargs="?", const=1, type=int, metavar="N",
                      help="share monitor N (default 1, the first; 0 is all monitors)")
    role.add_argument("--watch", action="store_true", help="watch (the default)")
    role.add_argument("--relay", action="store_true",
                      help="forward only, for a public host: no display, no decoding, "
                      f"{RELAY_FANOUT} children unless --max-children says otherwise; "
                      "takes the layers its children ask for")
    parser.add_argument("--loop", action="store_true", help="repeat the video file")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate of the test pattern (default 30) or the shared "
                             "screen (default 15)")
    parser.add_argument("--resolution", type=_resolution, default=720,
                        metavar="{" + ",".join(map(str, limits.LAYERS)) + ",auto}",
                        help="the layer to watch; auto: the best the path carries (up to "
                             "1080)")
    parser.add_argument("--codec", choices=("h264", "mjpeg"), default="h264",
                        help="video codec when streaming (default h264; mjpeg: lowest "
                             "latency on a LAN, more bandwidth)")
    parser.add_argument("--record", metavar="PATH")
    sound = parser.add_argument_group("sound")
    sound.add_argument("--no-audio", action="store_true",
                       help="stream the picture only (no sound from the file/pattern/mic)")
    sound.add_argument("--audio-track", type=int, metavar="N",
                       help="which audio track of the file to stream (default: the first)")
    sound.add_argument("--mic", nargs="?", const="", metavar="DEVICE",
                       help="with --camera: stream a microphone (default input if no DEVICE)")
    sound.add_argument("--audio-out", nargs="?", const="", metavar="DEVICE",
                       help="play the stream's sound (default output if no DEVICE); "
                            "headless peers are silent otherwise")
    parser.add_argument("--events", metavar="PATH|-")
    parser.add_argument("--duration", type=float, metavar="SECONDS")
    parser.add_argument("--chat-stdin", action="store_true",
                        help="send each stdin line as chat (/res N|auto changes resolution; "
                             "a file streamer takes /pause, /resume, /seek SECONDS; "
                             "/quit leaves)")
    parser.add_argument("--secret", metavar="PASSPHRASE",
                        help="a private room: only peers with the same passphrase can "
                        "join, see its members, chat or watch; the tracker sees only an "
                        "opaque id (use --secret-file to keep it out of the process list)")
    parser.add_argument("--secret-file", metavar="FILE",
                        help="read the private room's passphrase from FILE (first line)")
    parser.add_argument("--no-tls", action="store_true",
                        help="plaintext, unauthenticated links: only for protocol tests "
                        "and overhead measurements on a trusted host")
    parser.add_argument("--identity", metavar="FILE",
                        help="key file that keeps this peer's id between runs (made if "
                        "missing); without it every run has a new key and id")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace) -> NodeConfig:
    if args.mic is not None and args.camera is None:
        raise ValueError("--mic streams a microphone with --camera (files and the test "
                         "pattern bring their own sound)")
    source: SourceSpec | None = None
    if args.stream:
        source = FileSource(args.stream, loop=args.loop)
    elif args.test_pattern:
        width, height = _size(args.test_pattern)
        source = PatternSource(width, height, args.fps or 30.0)
    elif args.camera is not None:
        source = CameraSource(args.camera)
    elif args.screen is not None:
        source = (ScreenSource(args.screen) if args.fps is None
                  else ScreenSource(args.screen, args.fps))
    room, room_secret = args.room, None
    passphrase = args.secret
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as file:
                passphrase = file.readline()
        except OSError as exc:
            raise ValueError(f"cannot read {args.secret_file}: {exc.strerror}") from exc
    if passphrase is not None:
        # The room is known by an id derived from the passphrase and the room name.
        room, room_secret = private_room(args.room, passphrase)
    return NodeConfig(
        room_secret=room_secret,
        name=args.name, room=room, lan=args.lan,
        tracker=args.tracker[0] if args.tracker else None,
        more_trackers=args.tracker[1:] if args.tracker else (),
        tracker_fingerprint=getattr(args, "tracker_fingerprint", None),
        tls=not args.no_tls,
        listen_host=args.listen[0], listen_port=args.listen[1], advertise_host=args.advertise,
        port_mapping=args.upnp, relay=args.relay,
        max_children=(args.max_children if args.max_children is not None or not args.relay
                      else RELAY_FANOUT),
        source=source,
        # A relay watches nothing itself: what it asks for is what its children need.
        resolution=(min(limits.LAYERS) if args.relay else
                    max(limits.LAYERS) if args.resolution == "auto" else args.resolution),
        auto_resolution=args.resolution == "auto" and not args.relay, codec=args.codec,
        record_path=args.record, decode=args.record is not None,
        identity_path=args.identity,
        audio=AudioConfig(enabled=not args.no_audio, track=args.audio_track,
                          mic=args.mic is not None, mic_device=_device(args.mic),
                          play=args.audio_out is not None,
                          output_device=_device(args.audio_out)))


def _device(text: str | None) -> str | int | None:
    """A PortAudio device: an index when it is a number, None for the default."""
    if not text:
        return None
    return int(text) if text.isdigit() else text


class EventWriter:
    """Writes one JSON object per line; flushes so readers see events live."""

    # One encoder for every line: ``json.dumps`` with separators builds a new one
    # each call (a headless viewer writes a stats line every second).
    _ENCODER = json.JSONEncoder(separators=(",", ":"))

    def __init__(self, out: TextIO | None) -> None:
        self._out = out

    def __call__(self, event: NodeEvent) -> None:
        if self._out is None:
            return
        try:
            self._out.write(self._ENCODER.encode(event.to_json()) + "\n")
            self._out.flush()
        except (ValueError, OSError):  # closed pipe at exit
            pass


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    # A daemon thread: a blocked readline must never keep the process from exiting.
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line)
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def _stdin_commands(node: Node, stop: asyncio.Event) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_stdin, args=(asyncio.get_running_loop(), lines),
                     name="stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        text = line.strip()
        if not text:
            continue
        try:
            if text.startswith("/res "):
                value = text.split()[1]
                await node.set_resolution("auto" if value == "auto" else int(value))
            elif text == "/pause":
                await node.set_paused(True)
            elif text == "/resume":
                await node.set_paused(False)
            elif text.startswith("/seek "):
                await node.seek(float(text.split()[1]))
            elif text == "/quit":
                stop.set()
            else:
                await node.send_chat(text)
        except (ValueError, IndexError, MediaError) as exc:
            print(f"treecast-peer: {exc}", file=sys.stderr)


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT and SIGTERM set (where the loop supports signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def wait_until_done(node: Node, stop: asyncio.Event, duration: float | None) -> None:
    """Wait for ``stop``, for the node to stop by itself, or for ``duration`` seconds."""
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(node.wait_stopped())]
    if duration is not None:
        waiters.append(asyncio.ensure_future(asyncio.sleep(duration)))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run(args: argparse.Namespace, config: NodeConfig, writer: EventWriter) -> int:
    node = Node(config, writer)
    stop = stop_on_signals()
    try:
        await node.start()
    except NodeError as exc:
        print(f"treecast-peer: {exc}", file=sys.stderr)
        return exit_code(exc)
    commands = asyncio.ensure_future(_stdin_commands(node, stop)) if args.chat_stdin else None
    await wait_until_done(node, stop, args.duration)
    if commands is not None:
        commands.cancel()
    await node.stop("quit")
    return ExitCode.OK


def format_rooms(rooms: RoomList) -> str:
    """A plain-text table of a tracker's rooms (no trailing newline)."""
    if not rooms.rooms:
        return "The tracker has no rooms."
    rows = [("ROOM", "STREAMER", "VIEWERS")]
    for room in rooms.rooms:
        # Everyone in a room but its streamer watches.
        viewers = room.peers - 1 if room.streamer_name else room.peers
        rows.append((room.room, room.streamer_name or "-", str(viewers)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}" for r in rows]
    if rooms.total > len(rooms.rooms):
        lines.append(f"(the {len(rooms.rooms)} busiest of {rooms.total} rooms)")
    return "\n".join(lines)


def _list_tracker_rooms(host: str, port: int, fingerprint: str | None = None,
                        tls: bool = True) -> int:
    from peer.node.tracker_client import query_rooms

    try:
        rooms = loops.run(query_rooms(host, port, tls=tls, fingerprint=fingerprint))
    except NodeError as exc:
        print(f"treecast-peer: {exc}", file=sys.stderr)
        return exit_code(exc)
    print(format_rooms(rooms))
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.list and args.tracker is not None:
        (host, port), fingerprint = args.tracker[0], getattr(args, "tracker_fingerprint", None)
        return _list_tracker_rooms(host, port, fingerprint, tls=not args.no_tls)
    if args.list:
        from peer.lan.browser import format_sessions, list_lan

        print(format_sessions(loops.run(list_lan())))
        return ExitCode.OK
    if not args.name:
        parser.error("--name is required")
    if args.tracker is None and not args.lan:
        parser.error("give --tracker HOST:PORT, or --lan to find peers on the LAN")
    try:
        config = config_from_args(args)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    out: TextIO | None = None
    if args.events == "-":
        out = sys.stdout
    elif args.events:
        try:
            out = open(args.events, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            parser.error(f"cannot write events to {args.events}: {exc.strerror}")
    try:
        return loops.run(run(args, config, EventWriter(out)))
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        if out is not None and out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    sys.exit(main())
