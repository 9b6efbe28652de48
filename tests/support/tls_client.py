"""A raw protocol client over TLS, authenticated as a given identity (for tests)."""

from __future__ import annotations

import asyncio

from peer.trust.tls import client_context, make_proof, remote_public_key
from protocol import encode
from protocol.identity import Identity


async def tls_connect(port: int, identity: Identity, host: str = "127.0.0.1",
                      local_addr: tuple[str, int] | None = None,
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """Connect over TLS and send our LinkProof; returns the listener's public key."""
    reader, writer = await asyncio.open_connection(
        host, port, ssl=client_context(), server_hostname="", local_addr=local_addr)
    key = remote_public_key(writer.get_extra_info("ssl_object"))
    writer.write(encode(make_proof(identity, key)))
    await writer.drain()
    return reader, writer, key
