"""Trackers pinned the way SSH pins hosts: known on first use, then held to their key.

``known_trackers`` (in the user's config dir) has one line per tracker,
``HOST:PORT FINGERPRINT``. The first connection to a tracker records the key it
presented; every later one must present the same key, or it is refused with an error
that says what changed and which line to remove if the change is genuine. A tracker
given as ``HOST:PORT#FINGERPRINT`` is held to that fingerprint from the start (and is
recorded once it matches).
"""

from __future__ import annotations

import os
from pathlib import Path

from peer.trust.tls import AuthenticationError
from protocol.addresses import join_host_port
from protocol.identity import fingerprint

__all__ = ["KnownTrackers", "PinMismatchError", "default_known_trackers_path"]


class PinMismatchError(AuthenticationError):
    """A tracker presented another key than the one pinned for its address."""


def default_known_trackers_path() -> Path:
    """``$XDG_CONFIG_HOME/treecast/known_trackers`` (``~/.config`` when unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "treecast" / "known_trackers"


class KnownTrackers:
    """The pin file: check a tracker's key, record it on first use.

    Args:
        path: the file (created on the first pin); None: the default path.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_known_trackers_path()

    def _entries(self) -> list[tuple[str, str]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                entries.append((parts[0], parts[1]))
        return entries

    def pinned(self, host: str, port: int) -> str | None:
        """The fingerprint pinned for ``host:port``, or None."""
        address = join_host_port(host, port)
        for known, print_ in self._entries():
            if known == address:
                return print_
        return None

    def check(self, host: str, port: int, public_key: bytes,
              expected: str | None = None) -> None:
        """Hold the tracker at ``host:port`` to its pin; pin it on first use.

        Args:
            host / port: where we connected.
            public_key: the key it proved in the TLS handshake.
            expected: a fingerprint the user gave (``HOST:PORT#FINGERPRINT``).

        Raises:
            PinMismatchError: the key is not the expected or pinned one.
        """
        seen = fingerprint(public_key)
        if expected is not None and seen != expected:
            raise PinMismatchError(
                f"tracker {host}:{port} presented key {seen}, not the {expected} you gave")
        pinned = self.pinned(host, port)
        if pinned is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(f"{join_host_port(host, port)} {seen}\n")
            return
        if pinned != seen:
            raise PinMismatchError(
                f"tracker {host}:{port} presented key {seen}, but {pinned} was pinned on "
                f"first use: someone may be impersonating it. If its key really changed, "
                f"remove the line '{host}:{port} {pinned}' from {self.path}")
