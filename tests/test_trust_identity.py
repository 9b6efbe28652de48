"""Identity: ids are public keys, signatures verify against the id alone, keys persist."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from peer.node.cli import build_parser, config_from_args
from peer.node.config import NodeConfig
from peer.node.errors import NodeError
from peer.node.identity_file import default_identity_path, load_identity
from peer.node.node import Node
from protocol import limits
from protocol.identity import (
    ID_CHARS,
    Identity,
    IdentityError,
    is_peer_id,
    public_key_of,
    verify,
    verify_key,
)
from protocol.stream_auth import VIDEO_CONTEXT, sign_b64, verify_b64

CHAT = b"treecast-chat\0"


def test_the_id_is_the_public_key() -> None:
    me = Identity.generate()
    assert len(me.peer_id) == ID_CHARS <= limits.MAX_ID_CHARS
    assert public_key_of(me.peer_id) == me.public_key
    assert is_peer_id(me.peer_id)
    assert Identity.generate().peer_id != me.peer_id


@pytest.mark.parametrize("bad", ["", "abc", "a" * 52 + "=", "A" * 52, "1" * 52, "a" * 51 + "b"])
def test_malformed_ids_are_not_keys(bad: str) -> None:
    assert not is_peer_id(bad)
    with pytest.raises(IdentityError):
        public_key_of(bad)


def test_signatures_verify_against_the_id_and_nothing_else() -> None:
    alice, mallory = Identity.generate(), Identity.generate()
    sig = alice.sign(CHAT, b"hello")
    assert verify(alice.peer_id, sig, CHAT, b"hello")
    assert not verify(alice.peer_id, sig, CHAT, b"hello!")  # altered text
    assert not verify(mallory.peer_id, sig, CHAT, b"hello")  # claimed by someone else
    assert not verify(alice.peer_id, sig, b"treecast-other\0", b"hello")  # other purpose
    assert not verify(alice.peer_id, sig[:-1], CHAT, b"hello")
    assert not verify("not-an-id", sig, CHAT, b"hello")
    forged = mallory.sign(CHAT, b"hello")
    assert not verify(alice.peer_id, forged, CHAT, b"hello")


# The neutral point of Ed25519 (y = 1) as a public key, and a "signature" R = that
# point, S = 0: [S]B == R + [k]A holds for every message k when A is of small order.
NEUTRAL_KEY = bytes([1]) + bytes(31)
UNIVERSAL_SIG = NEUTRAL_KEY + bytes(32)


def test_a_key_of_small_order_proves_nothing() -> None:
    # An attacker's id made from the neutral point, with the one signature that fits
    # every message under it (OpenSSL's cofactorless check accepts it; libsodium,
    # which checks what we receive, refuses such keys).
    mallory = Identity.id_of(NEUTRAL_KEY)
    for message in (b"hello", b"anything at all"):
        assert not verify(mallory, UNIVERSAL_SIG, CHAT, message)
        assert not verify_key(NEUTRAL_KEY, UNIVERSAL_SIG, CHAT, message)
    assert not verify_b64(mallory, base64.b64encode(UNIVERSAL_SIG).decode(), VIDEO_CONTEXT,
                          b"a frame")


def test_a_signature_with_an_unreduced_scalar_is_refused() -> None:
    # S + L for a valid S is the same point arithmetic, but a second encoding of one
    # signature (malleability): refused.
    alice = Identity.generate()
    sig = alice.sign(CHAT, b"hello")
    order = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + order
    assert verify(alice.peer_id, sig, CHAT, b"hello")
    assert not verify(alice.peer_id, sig[:32] + s.to_bytes(32, "little"), CHAT, b"hello")
    assert not verify_key(alice.public_key, sig, CHAT, b"hello!")
    assert not verify_key(alice.public_key[:31], sig, CHAT, b"hello")
    assert verify_b64(alice.peer_id, sign_b64(alice, VIDEO_CONTEXT, b"f"), VIDEO_CONTEXT, b"f")


def test_a_key_file_keeps_the_id_between_runs(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "id.key"
    first = Identity.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the private key is the owner's
    assert Identity.load_or_create(path).peer_id == first.peer_id


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    path.write_text("not a key\n")
    with pytest.raises(NodeError, match="is not a Treecast key file"):
        load_identity(str(path))


def test_headless_peers_get_a_new_id_per_run_unless_given_a_file(tmp_path: Path) -> None:
    def peer_id(config: NodeConfig) -> str:
        return Node(config, lambda event: None).peer_id

    fresh = NodeConfig(name="a")
    assert peer_id(fresh) != peer_id(fresh)
    args = build_parser().parse_args(["--name", "a", "--identity", str(tmp_path / "k")])
    kept = config_from_args(args)
    assert peer_id(kept) == peer_id(kept) == Identity.load_or_create(tmp_path / "k").peer_id


def test_the_app_keeps_its_key_in_the_user_config_dir(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from peer.gui.bridge.request import IdentityClaim, SessionRequest, make_config

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    claim = IdentityClaim()
    config = make_config(SessionRequest("Dana", "lobby", None, lan=True, streaming=False),
                         identity_path=claim.path)
    assert config.identity_path == str(tmp_path / "treecast" / "identity.key")
    # A second window or app meanwhile gets a fresh id: sharing the key would make it
    # the same peer, and its registration would push the first one out of the room.
    second = IdentityClaim()
    assert second.path is None
    claim.release()
    third = IdentityClaim()
    assert third.path == config.identity_path
    third.release()
    assert default_identity_path() == tmp_path / "treecast" / "identity.key"
