"""When a layer's producer forces a keyframe: requests in, decisions out (sans-IO).

Children ask for a keyframe when they join, after a parent switch and after their
queue dropped frames. Every keyframe costs every child of that layer 10-20 P-frames
of bandwidth, and a hostile or broken child could ask for one per frame; so requests
per layer are merged and served at most once per ``KEYFRAME_MIN_INTERVAL_S``. A request
that arrives inside the interval is kept and served when the interval ends, so no
child waits longer than that for its picture. Any keyframe the encoder makes anyway
(its first frame, the periodic backstop) serves the pending requests too.
"""

from __future__ import annotations

from typing import Final

# Short enough that a child joining right after another still sees its first picture
# well inside the 500 ms join target; long enough that a storm of requests costs at
# most two keyframes a second per layer.
KEYFRAME_MIN_INTERVAL_S: Final = 0.5


class KeyframeThrottle:
    """Keyframe requests per layer, served at most once per interval.

    Args:
        min_interval_s: the least time between two forced keyframes of one layer.
    """

    def __init__(self, min_interval_s: float = KEYFRAME_MIN_INTERVAL_S) -> None:
        self.min_interval_s = min_interval_s
        self._pending: set[int] = set()
        self._last: dict[int, float] = {}
        self.requests = 0
        self.forced = 0

    def request(self, layer: int) -> None:
        """Someone needs a keyframe of ``layer`` soon."""
        self.requests += 1
        self._pending.add(layer)

    def pending(self, layer: int) -> bool:
        """Whether a request for ``layer`` waits to be served."""
        return layer in self._pending

    def take(self, layers: set[int] | frozenset[int], now: float) -> frozenset[int]:
        """The layers whose next frame must be a keyframe, given the interval.

        Args:
            layers: the layers about to be encoded.
            now: monotonic time in seconds.

        Returns:
            The subset of ``layers`` with a request that may be served now; they count
            as served (call ``keyframe_made`` only for unforced keyframes).
        """
        due = frozenset(
            layer for layer in layers & self._pending
            if now - self._last.get(layer, -1e18) >= self.min_interval_s
        )
        for layer in due:
            self._pending.discard(layer)
            self._last[layer] = now
        self.forced += len(due)
        return due

    def keyframe_made(self, layer: int, now: float) -> None:
        """The encoder made a keyframe of ``layer`` on its own: requests are served."""
        self._pending.discard(layer)
        self._last[layer] = now

    def forget(self, layer: int) -> None:
        """Nobody wants ``layer`` any more: drop its request and history."""
        self._pending.discard(layer)
        self._last.pop(layer, None)
