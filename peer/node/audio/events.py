"""Events about sound (same shape as the node's other events)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from peer.node.events import NodeEvent


@dataclass(frozen=True, slots=True)
class SoundResumed(NodeEvent):
    """Sound from the parent came back after a silence (a repair, a stall).

    Attributes:
        gap_ms: from the last packet before the silence to this one.
        lost: packets missing across the gap (by sequence numbers).
    """

    KIND: ClassVar[str] = "sound_resumed"
    gap_ms: float
    lost: int
