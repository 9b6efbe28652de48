"""A real ``PeerLink`` over loopback with the raw far end of its socket, for tests that
play the neighbour byte by byte."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from peer.node.link import PeerLink
from protocol import Message


@dataclass
class RawPair:
    """Our link and the far end's reader and writer (plus the server to close)."""

    link: PeerLink
    far_reader: asyncio.StreamReader
    far_writer: asyncio.StreamWriter
    server: asyncio.Server


async def raw_link_pair(received: list[Message] | None = None) -> RawPair:
    """An outbound ``PeerLink`` (video may come in) on loopback, not started; what it
    receives goes to ``received`` (or nowhere)."""
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
        asyncio.get_running_loop().create_future()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result((r, w))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    def keep(link: PeerLink, message: Message) -> None:
        if received is not None:
            received.append(message)

    link = PeerLink(reader, writer, on_message=keep, on_close=lambda link, why: None,
                    outbound=True)
    far_reader, far_writer = await accepted
    return RawPair(link, far_reader, far_writer, server)
