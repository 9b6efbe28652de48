"""A room that always says the same: the ``RoomView`` a test or benchmark gives one
``TreeState`` when no directory or simulator is around."""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.records import Candidate


@dataclass
class FixedRoom:
    """``RoomView`` with fixed answers.

    Attributes:
        offers: the join candidates, best first.
        dialable: whether others can dial us (``reachable``).
        address: where children should dial us (``advertised``).
    """

    offers: list[Candidate] = field(default_factory=list)
    dialable: bool = True
    address: tuple[str | None, int | None] = ("10.0.0.9", 9000)

    def candidates(self) -> list[Candidate]:
        return list(self.offers)

    def subtree(self, peer_id: str, children: set[str]) -> set[str]:
        return set(children)

    def is_live_epoch(self, epoch: int, newest: int) -> bool:
        return epoch >= newest

    def reachable(self) -> bool:
        return self.dialable

    def advertised(self) -> tuple[str | None, int | None]:
        return self.address
