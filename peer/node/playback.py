"""Pause and seek of a streamed file, as the whole tree sees it (sans-IO).

Theory of operation
-------------------
Only the streamer decides: pausing, resuming or seeking its file makes a
:class:`~protocol.messages.Playback` message that it sends to its children. Every
relay keeps the latest one of the current stream epoch, forwards it to its own
children and reports it as a :class:`~peer.node.events.PlaybackChanged` event (the GUI
shows "Paused", the headless peer's stats say ``paused``). A child that attaches while
the stream is paused gets the state right away, so it does not wait for frames that
will not come. A message of another epoch (a late copy from an older stream) changes
nothing. Children cannot send it up: the peer-link inbox refuses the kind.

This module holds that state and decides; the node moves the messages.
"""

from __future__ import annotations

from collections.abc import Callable

from peer.node.events import PlaybackChanged
from protocol import limits
from protocol.messages import Playback


def _ms(seconds: float | None) -> int | None:
    if seconds is None:
        return None
    return min(max(round(seconds * 1000), 0), limits.MAX_MEDIA_MS)


class PlaybackState:
    """The room's playback state as one peer knows it.

    Args:
        sign: the streamer's signature on the notices it makes (issue 13); a relay
            keeps and passes on its parent's signed notice unchanged.
    """

    def __init__(self, sign: Callable[[Playback], Playback] = lambda message: message,
                 ) -> None:
        self.epoch = 0
        self.paused = False
        self.position_ms = 0
        self.duration_ms: int | None = None
        self._sign = sign
        self._last: Playback | None = None  # the newest notice, as signed

    def new_stream(self, epoch: int) -> None:
        """A stream (epoch) started: it plays until told otherwise."""
        self.epoch = epoch
        self.paused = False
        self.position_ms = 0
        self.duration_ms = None
        self._last = None

    def local(self, epoch: int, paused: bool, position_s: float,
              duration_s: float | None, at: float = 0.0) -> Playback:
        """The streamer changed its playback at ``at`` (its wall clock): the signed
        message for its children."""
        if self._last is not None and self._last.epoch == epoch:
            at = max(at, self._last.at + 0.001)  # notices of one stream strictly ordered
        self.epoch = epoch
        self.paused = paused
        self.position_ms = _ms(position_s) or 0
        self.duration_ms = _ms(duration_s)
        self._last = self._sign(Playback(self.epoch, self.paused, self.position_ms,
                                         self.duration_ms, at=at))
        return self._last

    def received(self, message: Playback, epoch: int) -> bool:
        """A Playback from our parent while the stream's epoch is ``epoch``.

        Returns:
            True when it is news: forward it to the children and report the event.
        """
        if message.epoch != epoch:
            return False
        changed = (message.paused, message.position_ms, message.duration_ms) != (
            self.paused, self.position_ms, self.duration_ms) or self.epoch != epoch
        self.epoch = epoch
        self.paused = message.paused
        self.position_ms = message.position_ms
        self.duration_ms = message.duration_ms
        self._last = message
        return changed

    def for_new_child(self, epoch: int) -> Playback | None:
        """What a child attaching now must hear: the state when the stream is paused."""
        if not self.paused or self.epoch != epoch:
            return None
        return self._last or self.message()

    def message(self) -> Playback:
        """The state as the wire message."""
        return Playback(self.epoch, self.paused, self.position_ms, self.duration_ms)

    def event(self) -> PlaybackChanged:
        """The state as the node's event."""
        duration = None if self.duration_ms is None else self.duration_ms / 1000
        return PlaybackChanged(paused=self.paused, position_s=self.position_ms / 1000,
                               duration_s=duration)
