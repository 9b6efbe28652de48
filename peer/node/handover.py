"""Frames from the old parent and a move's new one, spliced without a gap (sans-IO).

Theory of operation
-------------------
A peer moving closer to the root keeps its old parent until the new parent's video
continues what it already has (``TreeState.take_over``): before this, the old link was
closed at the new parent's Accept, and every frame until the new parent's first
keyframe was lost, for this peer and everything below it (a move cost 10-16 frames in
the capped-hosts benchmark).

While both feed us, ``Splice`` holds the new parent's frames that we do not have yet,
in order. The new parent sends a new child nothing before a keyframe (its chain gate),
so the held frames start at one. The switch comes as soon as the first held frame
*continues* the last frame we passed on: it refers to it (``prev``) and is either a
keyframe or from the same encoder (layer and transcoding relay equal), so every
decoder below us may take it; JPEGs (no ``prev``) need the very next ``seq``. Held
frames we get from the old parent meanwhile are dropped (one sequence number, one
frame), so whichever path is ahead, the seam loses nothing:

- the new path is ahead (usual for a move up: fewer hops): its keyframe ``S`` waits
  until the old parent has delivered ``S - 1``;
- the new path is behind (usual for a shed: one hop more): its frames are ones we
  have. Once its stream is whole from a keyframe and comes from the encoder ours does
  (layer and transcoding relay equal: the same bytes), we switch at once; its frames
  we have are then dropped as repeats, and the next one refers to the last we passed
  on.

Bounded: at most ``HOLD_FRAMES`` are held. More means the old parent stopped
delivering (its own chain broke, or it stalled): we switch at the held keyframe and
lose only what the old parent would have brought late. A new parent whose frames
never continue ours is given up by the tree state after ``MEDIA_HANDOVER_S``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from protocol import VideoFrame

# Held frames of the new parent at most (half a second at 30 fps); past this the old
# parent is taken to have stopped and the new one's keyframe starts our stream.
HOLD_FRAMES: Final = 15


@dataclass(frozen=True, slots=True)
class Mark:
    """The last frame passed on: what a frame must refer to to continue it."""

    epoch: int
    seq: int
    layer: int
    by: str  # the transcoding relay that made it ("" : the streamer)

    @classmethod
    def of(cls, frame: VideoFrame) -> Mark:
        return cls(frame.epoch, frame.seq, frame.layer, frame.by)


def continues(frame: VideoFrame, last: Mark | None) -> bool:
    """Whether ``frame`` may follow ``last`` for every decoder below, losing nothing."""
    if last is None:
        return frame.keyframe
    if frame.epoch != last.epoch or frame.seq <= last.seq:
        return False
    if frame.prev < 0:  # JPEGs (each a keyframe), and encoders' first frames
        return frame.keyframe and frame.seq == last.seq + 1
    return frame.prev == last.seq and (
        frame.keyframe or (frame.layer, frame.by) == (last.layer, last.by))


def _chained(frame: VideoFrame, tail: VideoFrame) -> bool:
    """Whether ``frame`` follows ``tail`` in the new parent's own stream."""
    if frame.epoch != tail.epoch or frame.seq <= tail.seq:
        return False
    if frame.prev < 0:
        return frame.seq == tail.seq + 1
    return frame.prev == tail.seq


class Splice:
    """The new parent's frames during one move (see the module's theory).

    Each call returns None (go on as we are) or the frames to pass on now, in order,
    possibly none: the new parent takes over (the caller tells the tree state, then
    passes them).
    """

    def __init__(self, hold_frames: int = HOLD_FRAMES) -> None:
        self._hold = hold_frames
        self._held: deque[VideoFrame] = deque()
        self._tail: VideoFrame | None = None  # the new parent's last frame
        self.duplicates = 0  # its frames we had from the old parent already

    def reset(self) -> None:
        """A new move (or none): forget what the last one held."""
        self._held.clear()
        self._tail = None
        self.duplicates = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def from_new(self, frame: VideoFrame, last: Mark | None) -> list[VideoFrame] | None:
        """A frame from the new parent (``last``: the last frame we passed on)."""
        tail = self._tail
        if not frame.keyframe and (tail is None or not _chained(frame, tail)):
            # Its stream broke (a frame lost in its queue): nothing held decodes on.
            self._held.clear()
            self._tail = None
            return None
        self._tail = frame
        if last is not None and frame.epoch == last.epoch and frame.seq <= last.seq:
            self.duplicates += 1
            if (frame.layer, frame.by) == (last.layer, last.by):
                # Behind us, whole, and the same encoder's: its next frame we lack
                # refers to the last we passed on. Switch now.
                self._held.clear()
                return []
            return None
        self._held.append(frame)
        return self._ready(last)

    def after_old(self, last: Mark | None) -> list[VideoFrame] | None:
        """The old parent's frame ``last`` was passed on."""
        while self._held and last is not None and self._held[0].epoch == last.epoch \
                and self._held[0].seq <= last.seq:
            self._held.popleft()
            self.duplicates += 1
        return self._ready(last)

    def release(self) -> list[VideoFrame]:
        """The old parent is gone: the held frames from the first keyframe on (what
        can be decoded without it)."""
        while self._held and not self._held[0].keyframe:
            self._held.popleft()
        return self._take()

    def _ready(self, last: Mark | None) -> list[VideoFrame] | None:
        if not self._held:
            return None
        if continues(self._held[0], last):
            return self._take()
        if len(self._held) > self._hold:
            # The old parent has stopped: start at the new one's keyframe (if the
            # held frames have none, nothing they hold decodes: wait for one).
            return self.release() or None
        return None

    def _take(self) -> list[VideoFrame]:
        frames = list(self._held)
        self._held.clear()
        return frames
