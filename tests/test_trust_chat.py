"""Signed chat against a real node: forged lines die at the first honest peer.

The node runs in-process (as in test_node_links); the attacker is a raw socket that
joined as its child and speaks the protocol with its own key.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace

from peer.node.chat import SIGNING_CONTEXT, signed_bytes
from peer.node.config import PatternSource
from peer.node.events import ChatReceived
from protocol import Accept, Chat, Hello, JoinRequest, encode
from protocol.identity import Identity
from tests.support.tls_client import tls_connect
from tests.test_node_links import _node, _read_until


def _signed(author: Identity, n: int, text: str, name: str = "x") -> Chat:
    unsigned = Chat(f"{author.peer_id}:{n}", author.peer_id, name, time.time(), text)
    sig = author.sign(SIGNING_CONTEXT, signed_bytes(unsigned))
    return replace(unsigned, sig=base64.b64encode(sig).decode())


async def test_forged_chat_from_a_neighbour_is_dropped_and_not_forwarded() -> None:
    node, events = await _node(PatternSource(320, 180, 5.0), tls=True)
    attacker, victim = Identity.generate(), Identity.generate()
    try:
        assert node.listen is not None
        # The attacker is a member like any other: TLS, its own key proven.
        reader, writer, _ = await tls_connect(node.listen[1], attacker)
        writer.write(encode(Hello(attacker.peer_id, "mallory", "lobby"))
                     + encode(JoinRequest(layer=360)))
        await writer.drain()
        assert isinstance(await _read_until(reader, Accept), Accept)
        genuine = _signed(victim, 1, "the real line", name="victim")
        forged = [
            # In the victim's name, signed by the attacker.
            replace(_signed(attacker, 1, "I resign"), msg_id=genuine.msg_id,
                    origin_id=victim.peer_id, origin_name="victim"),
            replace(genuine, text="altered"),  # the victim's signature, new text
            replace(genuine, sig=""),  # unsigned, burning the victim's next id
        ]
        for line in forged:
            writer.write(encode(line))
        # Then the victim's genuine line (relayed by the attacker, as any relay would)
        # and one of the attacker's own, both valid.
        writer.write(encode(genuine) + encode(_signed(attacker, 2, "hello", "mallory")))
        await writer.drain()
        async with asyncio.timeout(20):
            while len([e for e in events if isinstance(e, ChatReceived)]) < 2:
                await asyncio.sleep(0.02)
        shown = [(e.origin_id, e.text) for e in events if isinstance(e, ChatReceived)]
        assert shown == [(victim.peer_id, "the real line"), (attacker.peer_id, "hello")]
        chat = node._chat
        router = getattr(chat, "_router", chat)  # the node may wrap the ChatRouter
        assert router.forged == len(forged)
        writer.close()
    finally:
        await node.stop()
