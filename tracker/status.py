"""``treecast-tracker --status``: ask a running tracker how it is, one line per item.

The tracker answers a StatusQuery only on a connection from its own host (loopback):
room names, sizes and streamers are for its operator, not for the network.
"""

from __future__ import annotations

import asyncio
import contextlib

from peer.trust.tls import client_context, make_proof, remote_public_key
from protocol.errors import RemoteProtocolError
from protocol.framing import TRACKER_CLIENT_INBOX, FrameDecoder, encode
from protocol.identity import Identity
from protocol.messages import Bye, StatusQuery, TrackerStatus

_READ_BYTES = 64 * 1024


class StatusError(Exception):
    """No status: unreachable, refused, or garbled (the message says which)."""


async def query_status(host: str, port: int, timeout: float = 3.0, *,
                       tls: bool = True) -> TrackerStatus:
    """The status report of the tracker at ``host:port`` (over TLS unless ``tls`` is
    False, as a client with a throwaway key: the operator asks its own host).

    Raises:
        StatusError: no answer within ``timeout``, a Bye, or bad bytes.
    """
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            context = client_context() if tls else None
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname="" if context else None)
            if tls:
                key = remote_public_key(writer.get_extra_info("ssl_object"))
                writer.write(encode(make_proof(Identity.generate(), key)))
            writer.write(encode(StatusQuery()))
            await writer.drain()
            decoder = FrameDecoder(TRACKER_CLIENT_INBOX)
            while True:
                data = await reader.read(_READ_BYTES)
                if not data:
                    raise StatusError("the tracker closed the connection")
                decoder.receive_data(data)
                for message in decoder:
                    if isinstance(message, TrackerStatus):
                        return message
                    if isinstance(message, Bye):
                        raise StatusError(f"refused: {message.reason}")
    except TimeoutError as exc:
        raise StatusError(f"no answer from {host}:{port} within {timeout:g} s") from exc
    except (OSError, RemoteProtocolError) as exc:
        raise StatusError(f"cannot reach {host}:{port}: {exc}") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()


def status_lines(status: TrackerStatus) -> list[str]:
    """One line for the tracker and its store, one per room (largest first)."""
    health = "ok" if status.store_ok else "FAILING"
    lines = [f"tracker {status.tracker_id}: store {status.store} ({health}), "
             f"{status.connections} connections, {status.rooms_total} rooms"]
    for room in status.rooms:
        streamer = (f"streamer {room.streamer_name} (epoch {room.epoch})"
                    if room.streamer_name is not None else "nobody streams")
        lines.append(f"room {room.room}: {room.peers} peers, {streamer}")
    if status.rooms_total > len(status.rooms):
        lines.append(f"({status.rooms_total - len(status.rooms)} smaller rooms not shown)")
    return lines
