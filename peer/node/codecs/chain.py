"""Which frames of an inter-frame codec can still be decoded (sans-IO).

An H.264 P-frame only decodes after the frame it refers to. Every VideoFrame names
that frame: ``prev`` is the sequence number of the frame before it in the same coded
stream (the same layer from the same encoder), and a keyframe needs nothing before
it. A :class:`ChainGate` follows one receiver (a child of a relay, or our own
decoder) along one chain: it passes a frame when it is a keyframe or continues the
chain the receiver already has, and otherwise waits for the next keyframe (the
caller then asks for one).

Sequence gaps alone cannot tell this: a transcoding relay skips input frames when it
is busy, and the stream it encodes is still whole; a dropped frame inside a queue
leaves the same kind of gap and breaks it. ``prev`` says which.

A layer switch is make-before-break: while a receiver moves to another layer it
keeps getting its old chain until a keyframe of the new layer arrives, so a switch
loses no frame.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ChainGate:
    """One receiver's position in a coded stream.

    Attributes:
        layer: the layer of the chain being passed, None while waiting for a keyframe.
        seq: the last frame passed on that chain.
        target: the layer the receiver should move to (None: stay on any chain it
            has; the first keyframe of any layer starts it).
        refused: frames refused since the chain broke (0 while it is whole).
    """

    layer: int | None = None
    seq: int = -1
    target: int | None = None
    refused: int = 0

    @property
    def waiting(self) -> bool:
        """No chain: only a keyframe (of ``target``, when set) passes."""
        return self.layer is None

    def admit(self, layer: int, seq: int, prev: int, keyframe: bool) -> bool:
        """Whether the receiver gets (or can decode) this frame; updates the position.

        Args:
            layer: the frame's layer.
            seq: its sequence number.
            prev: the sequence number of the frame before it on its chain (-1: none).
            keyframe: whether it is a keyframe.
        """
        if keyframe and (self.target is None or layer == self.target):
            self.layer, self.seq, self.refused = layer, seq, 0
            return True
        if self.layer == layer:
            if prev == self.seq and seq > self.seq:
                self.seq = seq
                return True
            if seq > self.seq:
                self.layer = None  # a frame of our chain went missing: it is broken
        if self.layer is None:
            self.refused += 1
        return False

    def broke(self) -> None:
        """A frame already passed was lost (a queue dropped it): wait for a keyframe."""
        self.layer = None
        self.refused = 0

    def switch(self, target: int | None) -> bool:
        """Move to ``target`` at its next keyframe (the old chain flows until then).

        Returns:
            True when a keyframe of ``target`` is needed (the receiver is not on it).
        """
        self.target = target
        return target is not None and self.layer != target
