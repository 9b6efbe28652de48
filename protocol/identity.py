"""Who a peer or tracker is: an Ed25519 key pair, and the id derived from its public key.

Theory of operation
-------------------
An id used to be a random string anyone could claim: registering at the tracker with
the live streamer's id took its lock. Now a peer's id *is* its public key (32 bytes,
in lowercase base32 without padding: 52 characters of ``[a-z2-7]``, safe in logs,
file names and DNS labels). Whoever presents an id can be asked to prove it holds the
matching private key (a signature), and any signature can be checked against the id
alone: no key directory, no extra field on the wire.

Signatures are domain-separated: every signed byte string starts with a context label
(``b"treecast-chat\\0"`` ...), so a signature made for one purpose is never valid for
another.

This module is sans-IO apart from ``load_or_create`` (a key file). Keys are made and
signatures signed with ``cryptography`` (OpenSSL); signatures are checked with
libsodium (PyNaCl), which does it in half the time (every video frame and sound
packet is checked at every hop) and is stricter: it also refuses keys and
signature points of small order, for which OpenSSL accepts one forged signature for
every message (R = the neutral point, S = 0, under the neutral point as the key).
The private key never leaves the ``Identity`` object except through
``private_bytes`` (for the key file).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

__all__ = [
    "ID_CHARS",
    "SIGNATURE_BYTES",
    "Identity",
    "IdentityError",
    "fingerprint",
    "is_peer_id",
    "public_key_of",
    "verify",
    "verify_key",
]

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
# base32 of 32 bytes without padding.
ID_CHARS = 52
# The key file: a label line, then the 32-byte seed in base64 (readable, diffable).
_FILE_LABEL = "treecast-identity-v1"


class IdentityError(ValueError):
    """A key file or an id that cannot be used (malformed, wrong length, unreadable)."""


def _encode_id(public_key: bytes) -> str:
    return base64.b32encode(public_key).decode("ascii").rstrip("=").lower()


def public_key_of(peer_id: str) -> bytes:
    """The 32-byte Ed25519 public key an id names.

    Raises:
        IdentityError: the id is not a key-derived id.
    """
    if len(peer_id) != ID_CHARS:
        raise IdentityError(f"id of {len(peer_id)} characters is not a key ({ID_CHARS})")
    try:
        raw = base64.b32decode(peer_id.upper() + "====", casefold=False)
    except (binascii.Error, ValueError) as exc:
        raise IdentityError(f"id {peer_id[:12]}... is not base32") from exc
    if len(raw) != PUBLIC_KEY_BYTES or _encode_id(raw) != peer_id:
        raise IdentityError(f"id {peer_id[:12]}... is not in canonical form")
    return raw


def is_peer_id(peer_id: str) -> bool:
    """Whether ``peer_id`` is a well-formed key-derived id."""
    try:
        public_key_of(peer_id)
    except IdentityError:
        return False
    return True


def verify(peer_id: str, signature: bytes, context: bytes, data: bytes) -> bool:
    """Whether ``signature`` is ``peer_id``'s signature of ``data`` for ``context``.

    Never raises for remote input: a malformed id or signature is simply not valid.
    """
    try:
        public_key = public_key_of(peer_id)
    except IdentityError:
        return False
    return verify_key(public_key, signature, context, data)


def verify_key(public_key: bytes, signature: bytes, context: bytes, data: bytes) -> bool:
    """Whether ``signature`` is the holder of ``public_key``'s signature of ``data`` for
    ``context`` (libsodium's check: see the module docs).

    Never raises for remote input: a malformed key or signature is simply not valid.
    """
    if len(signature) != SIGNATURE_BYTES or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    try:
        crypto_sign_open(signature + _signed(context, data), public_key)
    except (CryptoError, ValueError):
        return False
    return True


def fingerprint(public_key: bytes) -> str:
    """A short, typeable digest of a public key (tracker pinning): ``sha256:`` + hex[:32]."""
    return "sha256:" + hashlib.sha256(public_key).hexdigest()[:32]


def _signed(context: bytes, data: bytes) -> bytes:
    # The context ends in NUL so no context is a prefix of another one's bytes.
    if not context.endswith(b"\0"):
        raise ValueError("a signing context ends with a NUL byte")
    return context + data


class Identity:
    """An Ed25519 key pair: signs, and names its holder by ``peer_id``.

    Args:
        private_key: the key; ``generate`` or ``load_or_create`` make one.
    """

    __slots__ = ("_key", "peer_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw,
                                                                PublicFormat.Raw)
        self.peer_id = _encode_id(self.public_key)

    def __repr__(self) -> str:
        return f"<Identity {self.peer_id[:12]}...>"

    @staticmethod
    def id_of(public_key: bytes) -> str:
        """The id of a 32-byte public key.

        Raises:
            IdentityError: not 32 bytes.
        """
        if len(public_key) != PUBLIC_KEY_BYTES:
            raise IdentityError(f"a public key is {PUBLIC_KEY_BYTES} bytes")
        return _encode_id(public_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh key pair (one run of a headless peer)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The key pair of a 32-byte private seed.

        Raises:
            IdentityError: the seed is not 32 bytes.
        """
        if len(seed) != 32:
            raise IdentityError(f"a private key is 32 bytes, got {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Identity:
        """The key kept in ``path``; a new one is made and saved there if it is missing.

        The file is created readable by its owner only (0600), its directory if needed.

        Raises:
            IdentityError: the file exists but is not a Treecast key, or cannot be
                read or written.
        """
        file = Path(path)
        try:
            text = file.read_text(encoding="ascii")
        except FileNotFoundError:
            identity = cls.generate()
            identity.save(file)
            return identity
        except (OSError, UnicodeDecodeError) as exc:
            raise IdentityError(f"cannot read key file {file}: {exc}") from exc
        lines = text.split()
        if len(lines) != 2 or lines[0] != _FILE_LABEL:
            raise IdentityError(f"{file} is not a Treecast key file")
        try:
            seed = base64.b64decode(lines[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise IdentityError(f"{file}: the key is not base64") from exc
        return cls.from_seed(seed)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the private key to ``path`` (owner-only), replacing nothing else.

        Raises:
            IdentityError: the file cannot be written (or already exists).
        """
        file = Path(path)
        text = f"{_FILE_LABEL}\n{base64.b64encode(self.private_bytes()).decode()}\n"
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: never overwrite a key (another process may have just made one).
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(text)
        except OSError as exc:
            raise IdentityError(f"cannot write key file {file}: {exc}") from exc

    def private_bytes(self) -> bytes:
        """The 32-byte private seed (for the key file and TLS; keep it secret)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The key object (for building a TLS certificate)."""
        return self._key

    @property
    def fingerprint(self) -> str:
        """``fingerprint(public_key)``: what a user pins a tracker by."""
        return fingerprint(self.public_key)

    def sign(self, context: bytes, data: bytes) -> bytes:
        """Sign ``data`` for ``context`` (a label ending in NUL, e.g. ``b"treecast-chat\\0"``)."""
        return self._key.sign(_signed(context, data))
