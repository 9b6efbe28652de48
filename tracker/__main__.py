"""``treecast-tracker``: run the tracker until SIGINT/SIGTERM.

The first line on stdout is ``treecast-tracker listening on HOST:PORT`` (flushed), so
scripts and tests can start it with ``--port 0`` and read the port it picked. The
second is ``treecast-tracker key sha256:...``: the fingerprint clients pin.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import sys
from pathlib import Path

from redis.exceptions import RedisError

from peer.lan.addresses import interfaces_for
from protocol.addresses import AddressError, join_host_port, split_host_port
from protocol.fields import is_wildcard_host
from protocol.identity import Identity, IdentityError
from tracker.config import TrackerConfig
from tracker.mdns import TrackerAdvertiser
from tracker.redis_store import describe
from tracker.server import TrackerServer
from tracker.status import StatusError, query_status, status_lines

log = logging.getLogger("tracker")


def _listen_host(text: str) -> str:
    """``--host``: an address or name; ``[::1]`` is taken as ``::1``."""
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def build_parser() -> argparse.ArgumentParser:
    """The command line (also used by the docs and tests)."""
    defaults = TrackerConfig()
    parser = argparse.ArgumentParser(
        prog="treecast-tracker",
        description="Treecast tracker: rooms, peer lists and the streamer lock.")
    parser.add_argument("--host", default="::", type=_listen_host,
                        help="address to listen on; '::' is every IPv6 and IPv4 address "
                        "(dual-stack, IPv4 only where the system has no IPv6), 0.0.0.0 "
                        "every IPv4 one (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7700,
                        help="port to listen on; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--no-mdns", action="store_true",
                        help="do not advertise the tracker on the LAN (mDNS)")
    parser.add_argument("--lease", type=float, default=defaults.lease_s, metavar="S",
                        help="streamer lock lease in seconds (default: %(default)s)")
    parser.add_argument("--store", metavar="redis://HOST:PORT/DB",
                        help="share rooms, peers and locks with other trackers on this "
                        "Redis (default: in memory, this tracker alone)")
    parser.add_argument("--lease-grace", type=float, default=defaults.lease_grace_s,
                        metavar="S", help="a silent or disconnected lock holder keeps the "
                        "lock this much longer, to come back (default: %(default)s)")
    parser.add_argument("--status", nargs="?", const="", metavar="HOST:PORT",
                        help="print the status of the tracker running at HOST:PORT "
                        "(default: this --host/--port, on loopback) and exit: rooms, "
                        "peers, streamers, store health, one line each")
    parser.add_argument("--peer-timeout", type=float, default=defaults.peer_timeout_s,
                        metavar="S", help="close a connection silent this long "
                        "(default: %(default)s)")
    parser.add_argument("--max-peers-per-room", type=int, default=defaults.max_peers_per_room,
                        metavar="N", help="(default: %(default)s)")
    parser.add_argument("--max-connections-per-address", type=int,
                        default=defaults.max_connections_per_address, metavar="N",
                        help="(default: %(default)s)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        metavar="N", help="open connections in total (default: %(default)s)")
    parser.add_argument("--full-list-peers", type=int, default=defaults.full_list_peers,
                        metavar="N", help="rooms up to this size are listed whole; larger "
                        "ones get bounded per-peer lists (default: %(default)s)")
    parser.add_argument("--candidates", type=int, default=defaults.candidates, metavar="N",
                        help="join candidates in a bounded list (default: %(default)s)")
    parser.add_argument("--refresh", type=float, default=defaults.refresh_s, metavar="S",
                        help="a large room's peers get a fresh list at most this often "
                        "(default: %(default)s)")
    parser.add_argument("--max-messages-per-s", type=float,
                        default=defaults.max_messages_per_s, metavar="N",
                        help="per-connection message rate (default: %(default)s)")
    parser.add_argument("--update-interval", type=float, default=defaults.update_interval_s,
                        metavar="S", help="at most one peer-list push per room per "
                        "interval (default: %(default)s)")
    parser.add_argument("--identity", metavar="FILE",
                        help="the tracker's key file (made if missing; clients pin its "
                        "fingerprint). Default: tracker.key in the user's config dir")
    parser.add_argument("--no-tls", action="store_true",
                        help="plaintext, unauthenticated connections: only for protocol "
                        "tests and overhead measurements on a trusted host")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``treecast-tracker`` and ``python -m tracker``.

    Returns:
        The process exit status: 0 after a clean stop, 1 if it cannot listen.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.status is not None:
        return _print_status(parser, args)
    try:
        config = TrackerConfig(
            lease_s=args.lease,
            lease_grace_s=args.lease_grace,
            peer_timeout_s=args.peer_timeout,
            max_peers_per_room=args.max_peers_per_room,
            max_connections_per_address=args.max_connections_per_address,
            max_connections=args.max_connections,
            full_list_peers=args.full_list_peers,
            candidates=args.candidates,
            refresh_s=args.refresh,
            max_messages_per_s=args.max_messages_per_s,
            update_interval_s=args.update_interval,
            tls=not args.no_tls,
        )
    except ValueError as exc:
        parser.error(str(exc))
    key_file = args.identity or str(_default_key_path())
    try:
        identity = Identity.load_or_create(key_file)
    except IdentityError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _raise_file_limit(config.max_connections)
    try:
        return asyncio.run(_serve(config, args.host, args.port, identity,
                                  mdns=not args.no_mdns, store=args.store))
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers were installed
        return 0


def _print_status(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``--status``: 0 when the tracker and its store are well, 1 when its store is
    failing, 4 when the tracker cannot be reached."""
    if args.status:
        try:
            host, port = split_host_port(args.status)
        except AddressError as exc:
            parser.error(f"--status wants HOST:PORT: {exc}")
    else:
        host = "127.0.0.1" if is_wildcard_host(args.host) else args.host
        port = args.port
    try:
        status = asyncio.run(query_status(host, port, tls=not args.no_tls))
    except StatusError as exc:
        print(f"treecast-tracker: {exc}", file=sys.stderr)
        return 4
    for line in status_lines(status):
        print(line)
    return 0 if status.store_ok else 1


def _raise_file_limit(connections: int) -> None:
    """Each connection is a file descriptor (and a connect-back briefly one more): ask
    for enough, up to the hard limit, and say so when the system allows fewer."""
    wanted = connections + 2 * TrackerConfig().max_connect_backs + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    if new < wanted:
        log.warning("only %d file descriptors allowed: fewer than --max-connections %d "
                    "can be open at once", new, connections)


async def _advertise(host: str, port: int) -> TrackerAdvertiser | None:
    """Advertise the tracker on the LAN; a failure only costs LAN discovery.

    A wildcard host advertises every IPv4 address of this machine on every interface;
    a specific one advertises that address on its own interface only.
    """
    try:
        advertiser = TrackerAdvertiser(port, None if is_wildcard_host(host) else host,
                                       interfaces_for(host))
        await advertiser.start()
    except Exception as exc:  # no multicast, an IPv6 or named host, a name clash, ...
        log.warning("not advertising the tracker on the LAN (mDNS): %s", exc)
        return None
    return advertiser


def _default_key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "treecast" / "tracker.key"


async def _serve(config: TrackerConfig, host: str, port: int, identity: Identity, *,
                 mdns: bool = True, store: str | None = None) -> int:
    server = TrackerServer(config, host=host, port=port, store=store, identity=identity)
    try:
        await server.start()
    except RedisError as exc:
        print(f"treecast-tracker: store {describe(store or '')} does not answer: {exc}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"treecast-tracker: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    advertiser: TrackerAdvertiser | None = None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bound_host, bound_port = server.address
        print(f"treecast-tracker listening on {join_host_port(bound_host, bound_port)}",
              flush=True)
        # What users give peers to pin this tracker: --tracker HOST:PORT#FINGERPRINT.
        print(f"treecast-tracker key {identity.fingerprint}"
              + ("" if config.tls else " (TLS off)"), flush=True)
        if mdns:
            advertiser = await _advertise(host, bound_port)
        await stop.wait()
    finally:
        if advertiser is not None:
            await advertiser.close()  # goodbye packets: peers stop offering us at once
        await server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
