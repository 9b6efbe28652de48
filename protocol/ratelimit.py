"""A token bucket with time passed in (sans-IO): the message-rate limit of every link."""

from __future__ import annotations


class TokenBucket:
    """Allows ``rate_per_s`` events per second on average and bursts of ``burst``.

    Args:
        rate_per_s: refill rate.
        burst: bucket size; a new bucket starts full.
        now: the current time (any monotonic clock, in seconds).
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> bool:
        """Spend one token; False when the bucket is empty (the caller refuses)."""
        # max(): a clock that steps back must not drain the bucket.
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
        self._updated = max(self._updated, now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
