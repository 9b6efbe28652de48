"""A started link reads from its transport directly (peer/node/link.py, ``_Receiver``).

Bytes that came before ``start`` (held by the stream reader) come first, then what
arrived while those were read, then everything after, in order; the end of the
connection closes the link after what came before it. The writer side (drain,
wait_closed) works as before.
"""

from __future__ import annotations

import asyncio
import socket

from peer.node.link import PeerLink
from protocol import Bye, FrameDecoder, Message, Ping, encode

WAIT_S = 10.0


async def _pair() -> tuple[PeerLink, socket.socket, list[Message], list[str]]:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    received: list[Message] = []
    closed: list[str] = []
    link = PeerLink(reader, writer, on_message=lambda link, m: received.append(m),
                    on_close=lambda link, reason: closed.append(reason), outbound=True)
    return link, theirs, received, closed


async def _until(check: object) -> None:
    async with asyncio.timeout(WAIT_S):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)  # waiting on the loop's reads, not timing


async def test_bytes_before_start_and_while_they_are_read_keep_their_order() -> None:
    link, theirs, received, closed = await _pair()
    theirs.sendall(encode(Ping(1.0)) + encode(Ping(2.0))[:5])  # one and a half
    await _until(lambda: link._reader._buffer)  # the stream reader holds them
    link.start()
    assert link._receiver is not None  # the transport now delivers to the link
    # Before the reader's leftover is read, more arrives at the receiver: held.
    link._receiver.data_received(encode(Ping(2.0))[5:] + encode(Ping(3.0)))
    assert received == []
    await _until(lambda: len(received) == 3)
    theirs.sendall(encode(Ping(4.0)))
    await _until(lambda: len(received) == 4)
    assert received == [Ping(1.0), Ping(2.0), Ping(3.0), Ping(4.0)]
    # Writing still drains through the stream writer.
    link.send(Ping(5.0))
    theirs.setblocking(False)
    decoder = FrameDecoder()
    async with asyncio.timeout(WAIT_S):
        while (message := decoder.next_message()) is None:
            decoder.receive_data(await asyncio.get_running_loop().sock_recv(theirs, 65536))
    assert message == Ping(5.0)
    theirs.close()
    await _until(lambda: closed)
    assert closed == ["connection closed by peer"]
    await link.wait_closed()


async def test_an_end_while_held_comes_after_what_came_before_it() -> None:
    link, theirs, received, closed = await _pair()
    theirs.sendall(encode(Ping(1.0)))
    await _until(lambda: link._reader._buffer)
    link.start()
    assert link._receiver is not None
    link._receiver.data_received(encode(Ping(2.0)))
    assert link._receiver.eof_received() is False  # the transport closes itself
    await _until(lambda: closed)
    assert received == [Ping(1.0), Ping(2.0)] and closed == ["connection closed by peer"]
    await link.wait_closed()
    theirs.close()


async def test_garbage_after_start_closes_the_link_with_a_bye() -> None:
    link, theirs, received, closed = await _pair()
    link.start()
    theirs.sendall(encode(Ping(1.0)) + b"XX" + bytes(10))
    await _until(lambda: closed)
    assert received == [Ping(1.0)]
    assert closed[0].startswith("protocol error: bad magic")
    theirs.setblocking(False)
    decoder = FrameDecoder()
    async with asyncio.timeout(WAIT_S):
        while (message := decoder.next_message()) is None:
            decoder.receive_data(await asyncio.get_running_loop().sock_recv(theirs, 65536))
    assert isinstance(message, Bye) and "bad magic" in message.reason
    await link.wait_closed()
    theirs.close()
