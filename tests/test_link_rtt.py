"""The backlog gate's base round trip on a link that never pings (a parent's link to
its child, where the video flows): taken from the kernel (peer/node/link.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from peer.node.link import PeerLink
from protocol import Message, Ping, encode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="TCP_INFO is Linux's")
async def test_a_link_without_pings_takes_its_base_rtt_from_the_kernel() -> None:
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = \
        asyncio.get_running_loop().create_future()

    async def on_connect(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.set_result((r, w))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.sockets[0].getsockname()[1])

    def ignore(link: PeerLink, message: Message) -> None:
        return None

    link = PeerLink(reader, writer, on_message=ignore, on_close=lambda link, why: None,
                    outbound=True)
    far_reader, far_writer = await accepted
    try:
        assert link.clock.rtt is None  # no pings on this link
        link.start()
        link.send(Ping(t0=1.0))
        async with asyncio.timeout(10):
            assert await far_reader.readexactly(len(encode(Ping(t0=1.0))))
            while (rtt := link._base_rtt()) is None:
                await asyncio.sleep(0.01)  # waiting for the kernel's first ack
        assert 0 < rtt < 1.0  # loopback: microseconds
    finally:
        link.close("done")
        await link.wait_closed()
        far_writer.close()
        server.close()
        await server.wait_closed()
