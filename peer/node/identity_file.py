"""Where a peer's key pair lives: kept between runs by the app, fresh per run otherwise.

The desktop app keeps its key in the user's config directory, so its id (and so the
authorship of its chat lines and streams) stays the same from one run to the next.
A headless peer makes a new key every run unless ``--identity FILE`` names one.
"""

from __future__ import annotations

import os
from pathlib import Path

from peer.node.errors import NodeError
from protocol.identity import Identity, IdentityError

__all__ = ["default_identity_path", "load_identity"]


def default_identity_path() -> Path:
    """``$XDG_CONFIG_HOME/treecast/identity.key`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "treecast" / "identity.key"


def load_identity(path: str | None) -> Identity:
    """The key kept in ``path`` (made there if missing), or a fresh one for None.

    Raises:
        NodeError: the file exists but is not a key, or cannot be read or written.
    """
    if path is None:
        return Identity.generate()
    try:
        return Identity.load_or_create(path)
    except IdentityError as exc:
        raise NodeError(str(exc)) from exc
