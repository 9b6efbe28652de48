"""Private rooms: a shared passphrase the tracker never learns.

A private room is known everywhere by an opaque id derived from its passphrase
(``room_id``): the tracker stores and routes by that id only, never lists it, and
tells a stranger nothing about it. Peers hold each other to the passphrase on every
link: each side's Hello carries ``member_proof``, an HMAC under a key derived from the
passphrase (``link_key``) over both ends' ids and its own role, so it cannot be
replayed on another link or reflected back. Video and chat travel only over links
whose Hellos proved membership (and every link is TLS), so the tracker and anyone
without the passphrase can neither join, watch nor chat.

The passphrase is stretched with scrypt (a fixed, public salt: the derived values
must be the same for every member) so that guessing a weak passphrase from a room id
seen at the tracker costs tens of milliseconds per guess.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["PRIVATE_PREFIX", "is_private", "link_key", "member_proof", "private_room",
           "room_id", "stretch"]

# Room ids starting with this are private: the tracker hides them. A name typed by a
# user cannot start with it (the CLI and the app refuse it).
PRIVATE_PREFIX = "~"
_SALT = b"treecast-private-room-v1"


def stretch(passphrase: str) -> bytes:
    """The 32-byte room secret of a passphrase (scrypt, ~50 ms)."""
    return hashlib.scrypt(passphrase.encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32)


def private_room(room: str, passphrase: str) -> tuple[str, bytes]:
    """The opaque id and the secret of room ``room`` behind ``passphrase``.

    The one derivation every front end uses (``--secret``, ``--secret-file``, the
    app's passphrase field), so the same name and passphrase always meet in the same
    room. The room's name is part of the stretched input: one passphrase used for two
    rooms gives two unrelated secrets. Spaces around the passphrase are not part of
    it (a pasted line or a file's newline must not lead into another room).

    Raises:
        ValueError: the passphrase is empty (or only spaces).
    """
    passphrase = passphrase.strip()
    if not passphrase:
        raise ValueError("the private room's passphrase is empty")
    secret = stretch(f"{room}\0{passphrase}")
    return room_id(secret), secret


def room_id(secret: bytes) -> str:
    """The room's opaque id: ``~`` + 26 base32 characters (130 bits)."""
    digest = hmac.new(secret, b"room-id", hashlib.sha256).digest()
    return PRIVATE_PREFIX + base64.b32encode(digest).decode("ascii").lower()[:26]


def is_private(room: str) -> bool:
    """Whether ``room`` is a private room's id."""
    return room.startswith(PRIVATE_PREFIX)


def link_key(secret: bytes) -> bytes:
    """The key members prove membership with on their links."""
    return hmac.new(secret, b"link", hashlib.sha256).digest()


def member_proof(key: bytes, role: str, listener_id: str, dialler_id: str) -> str:
    """One side's proof of membership on one link (``role``: "dialler" or "listener")."""
    data = "\0".join((role, listener_id, dialler_id)).encode()
    return base64.b64encode(hmac.new(key, data, hashlib.sha256).digest()).decode("ascii")
