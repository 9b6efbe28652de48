"""How many inbound connections a peer holds, in total and per remote address (sans-IO).

Each inbound connection costs a socket, two tasks and a decoder buffer before it has
said anything. Without a cap, a few hosts opening connections and trickling bytes
make a peer's memory grow without bound (measured before this existed: 60 slow
connections took a peer from 60 to 316 MB). A peer needs inbound connections only
for its children and for joiners being answered or redirected, so the caps follow
its fan-out: generous enough for a lab of peers behind one address, far below what
would hurt.
"""

from __future__ import annotations

__all__ = ["PENDING_SLACK", "ConnectionCaps"]

# Connections beyond the fan-out: joiners being redirected, children that are
# re-attaching while their old link has not timed out yet.
PENDING_SLACK = 16
# Total beyond the fan-out: room for joiners from many addresses at once.
TOTAL_SLACK = 48


class ConnectionCaps:
    """Counts open inbound connections and refuses those over a cap.

    Args:
        max_per_address: connections one remote address may hold open.
        max_total: connections all addresses together may hold open.

    Raises:
        ValueError: a cap below 1.
    """

    def __init__(self, max_per_address: int, max_total: int) -> None:
        if max_per_address < 1 or max_total < 1:
            raise ValueError("connection caps must be at least 1")
        self.max_per_address = max_per_address
        self.max_total = max_total
        self._per_address: dict[str, int] = {}
        self._total = 0

    @classmethod
    def for_fanout(cls, fanout: int) -> ConnectionCaps:
        """The caps of a peer that accepts ``fanout`` children."""
        return cls(fanout + PENDING_SLACK, fanout + PENDING_SLACK + TOTAL_SLACK)

    @property
    def total(self) -> int:
        """Connections currently admitted."""
        return self._total

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``.

        Returns:
            None if it is admitted (call ``release`` when it closes), else the reason
            it is refused (nothing is counted).
        """
        if self._total >= self.max_total:
            return f"this peer already has {self.max_total} connections"
        held = self._per_address.get(address, 0)
        if held >= self.max_per_address:
            return f"more than {self.max_per_address} connections from {address}"
        self._per_address[address] = held + 1
        self._total += 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection from ``address`` closed."""
        held = self._per_address.get(address, 0)
        if held <= 0:
            return  # not ours (refused, or released twice): nothing to undo
        if held == 1:
            del self._per_address[address]
        else:
            self._per_address[address] = held - 1
        self._total -= 1
