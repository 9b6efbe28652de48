"""TLS 1.3 on every link, bound to the Ed25519 identity of each side.

Theory of operation
-------------------
Every listener (a peer's, the tracker's) presents a self-signed certificate whose key
*is* its identity key (protocol/identity.py): the id a dialler expected is checked
against the key the handshake proved (``remote_id``), so nobody can answer in a
peer's or a tracker's place. There are no certificate authorities: ids are keys, and
trackers are pinned by fingerprint (pins.py).

The dialler is authenticated one step later, inside the encrypted channel: its first
message is a ``LinkProof``, its signature of the listener's public key
(``make_proof``). Python's ssl cannot ask a client for a certificate without
validating it against a CA, and a proof bound to the listener's key is as strong: a
man in the middle presents its own key, so a proof made for it is worthless at the
real listener, and the proof travels encrypted, so nobody else ever sees one.
``LinkGuard`` is the listener's side: it refuses a link whose first message is not
a valid proof, and any later message that names a different id for the sender.

The private key reaches OpenSSL through a PEM file in a private temporary directory
(``ssl`` loads keys only from files); the file is deleted as soon as it is loaded.
"""

from __future__ import annotations

import asyncio.sslproto
import base64
import binascii
import datetime
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from cryptography.x509.oid import NameOID

from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.identity import Identity, IdentityError, public_key_of, verify
from protocol.messages import Hello, LinkProof, Message, Register, Unknown

__all__ = [
    "HANDSHAKE_TIMEOUT_S",
    "PROOF_CONTEXT",
    "AuthenticationError",
    "LinkGuard",
    "check_remote",
    "client_context",
    "make_proof",
    "remote_id",
    "server_context",
]

PROOF_CONTEXT = b"treecast-link\0"
# asyncio gives every TLS connection a 256 KiB read buffer, allocated (and zeroed)
# when the connection is accepted: 1,000 idle hostile connections cost 250 MB.
# A TLS record is at most 16 KiB, so two records' worth reads just as correctly; the
# class attribute is the only knob asyncio offers (3.11), so it is set here, once,
# for every TLS connection of the process.
SSL_READ_BUFFER_BYTES = 32 * 1024
asyncio.sslproto.SSLProtocol.max_size = SSL_READ_BUFFER_BYTES
# A TLS handshake on loopback or a LAN takes milliseconds; a client that does not
# finish in this long holds a socket for nothing.
HANDSHAKE_TIMEOUT_S = 5.0


class AuthenticationError(ConnectionError):
    """The other side is not who it had to be (wrong key, no proof, no TLS)."""


def _certificate(identity: Identity) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.peer_id)])
    # Validity is not what anyone checks (the key is); a wide window keeps clocks
    # that are off by years from mattering.
    start = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    end = datetime.datetime(9999, 12, 31, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(identity.private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .sign(identity.private_key, None))
    return cert.public_bytes(Encoding.PEM)


def _base_context(purpose: int) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def server_context(identity: Identity) -> ssl.SSLContext:
    """The listener's context: TLS 1.3, a certificate of ``identity``'s own key."""
    context = _base_context(ssl.PROTOCOL_TLS_SERVER)
    key = identity.private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                             NoEncryption())
    with tempfile.TemporaryDirectory(prefix="treecast-tls-") as directory:
        cert_file = Path(directory) / "cert.pem"
        key_file = Path(directory) / "key.pem"
        cert_file.write_bytes(_certificate(identity))
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        context.load_cert_chain(cert_file, key_file)
    return context


def client_context() -> ssl.SSLContext:
    """The dialler's context: TLS 1.3; the listener's key is checked by id, not by CA."""
    context = _base_context(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # see remote_id: the key is what we check
    return context


def remote_public_key(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> bytes:
    """The raw Ed25519 key the other side proved in the handshake.

    Raises:
        AuthenticationError: no TLS, no certificate, or not an Ed25519 key.
    """
    if ssl_object is None:
        raise AuthenticationError("the link is not TLS")
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        raise AuthenticationError("the other side presented no certificate")
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as exc:
        raise AuthenticationError(f"unreadable certificate: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuthenticationError("the certificate's key is not Ed25519")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def remote_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """The id (public key) of the listener at the other end of a TLS link."""
    return Identity.id_of(remote_public_key(ssl_object))


def check_remote(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, expected_id: str) -> bytes:
    """Check that the listener holds ``expected_id``'s key; returns that key.

    Raises:
        AuthenticationError: it holds another key (or none).
    """
    key = remote_public_key(ssl_object)
    if Identity.id_of(key) != expected_id:
        raise AuthenticationError(
            f"expected peer {expected_id[:12]}... but the other side holds the key of "
            f"{Identity.id_of(key)[:12]}...")
    return key


def make_proof(identity: Identity, listener_key: bytes) -> LinkProof:
    """The dialler's first message: its signature of the listener's public key."""
    sig = identity.sign(PROOF_CONTEXT, listener_key)
    return LinkProof(identity.peer_id, base64.b64encode(sig).decode("ascii"))


class LinkGuard:
    """The listener's check of a dialler: a valid LinkProof first, its id ever after.

    Args:
        own_key: the listener's raw public key (what the proof must sign).
    """

    __slots__ = ("_own_key", "peer_id")

    def __init__(self, own_key: bytes) -> None:
        self._own_key = own_key
        self.peer_id: str | None = None  # the proven id, once the proof arrived

    def admit(self, message: Message | Unknown) -> bool:
        """Check one received message; False means it was the proof (consumed here).

        Raises:
            RemoteProtocolError: no proof first, a proof that does not verify, or a
                message that names the sender by another id than the proven one.
        """
        if self.peer_id is None:
            if not isinstance(message, LinkProof):
                raise RemoteProtocolError(
                    f"expected a LinkProof first, got {type(message).__name__}",
                    ErrorCode.UNEXPECTED)
            try:
                public_key_of(message.peer_id)
                sig = base64.b64decode(message.proof, validate=True)
            except (IdentityError, binascii.Error, ValueError) as exc:
                raise RemoteProtocolError(f"malformed LinkProof: {exc}") from exc
            if not verify(message.peer_id, sig, PROOF_CONTEXT, self._own_key):
                raise RemoteProtocolError("LinkProof does not verify: the sender does not "
                                          "hold the key of the id it claims",
                                          ErrorCode.UNEXPECTED)
            self.peer_id = message.peer_id
            return False
        if isinstance(message, LinkProof):
            raise RemoteProtocolError("a second LinkProof", ErrorCode.UNEXPECTED)
        if isinstance(message, Hello | Register) and message.peer_id != self.peer_id:
            raise RemoteProtocolError(
                f"{type(message).__name__} names id {message.peer_id[:12]}... but the link "
                f"proved {self.peer_id[:12]}...", ErrorCode.UNEXPECTED)
        return True
