"""Chat gossip core (sans-IO): dedup, rate limiting, history and backfill.

Theory of operation
-------------------
Chat travels over the same peer links as video. Every message has a room-unique id,
``"<origin peer id>:<counter>"``. A peer that receives a message it has not seen
shows it and forwards it on every link but the one it came from; a message already
seen is dropped. That floods each message once over every link of the tree (and ends
on any graph, since every peer forwards a message at most once). The node owns the
links; ``ChatRouter`` only decides, and returns what to do:

* ``compose`` -> a ``Chat`` to send on every link;
* ``receive`` -> ``ChatVerdict``: ``deliver`` (show it, forward it on every link but
  ``from_link``) and/or a ``refusal`` to send back on ``from_link``.

Backfill. Messages sent while a link was down (a parent lost, a peer that just
joined) would never arrive by flooding alone. So when a link comes up both sides
call ``open_link`` and send the ``ChatHave`` it returns (the ids of their recent
history); each side answers the other's ``ChatHave`` with ``missing_for(have)``, the
history messages the other side lacks, oldest first. Those go through ``receive``
like any message: the new ones are shown and flooded on, which also carries them
into the rest of the re-attached subtree. A message composed while the peer has no
links at all is kept in history and leaves by backfill on the next link.

Rate limiting, and the trust it assumes. A token bucket per link (``rate_per_s``,
``burst``) limits the messages a neighbour *originates* (``origin_id == from_link``).
Messages it forwards for others are not limited again: they were limited by their
origin's first hop, and in a tree limiting them again would drop messages that have
no other path. This trusts neighbours not to forge ``origin_id``; a peer that does
can flood past the limit, and the remedy is to close its link, which the node can
decide from a misbehaving peer's other traits (e.g. protocol errors). A refused
message is not marked seen, so it can still arrive later (another path, a backfill).

A backfill from a neighbour can hold up to ``limits.MAX_CHAT_IDS`` messages that it
originated itself, far above the burst. Rather than having the node flag backfill
traffic, ``open_link`` grants the link a one-off credit of that many messages,
valid for ``BACKFILL_GRACE_S``; the bucket is spent first, then the credit. The
worst a neighbour can do with it is send one history's worth of messages per link it
opens, which is what an honest backfill sends anyway.

Bounds: the seen-cache holds ``seen_size`` ids (FIFO eviction), the history the last
``history_size`` messages in display order ``(sent_at, msg_id)``, and a message in
history counts as seen even if the seen-cache evicted it.

The ids are only unique if the peer id is: a peer must use a fresh id per session,
or its counter restarting at 1 would collide with its messages of the last session
still in others' seen-caches.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

from protocol import limits
from protocol.errors import ErrorCode
from protocol.messages import Chat, ChatHave, Error
from protocol.ratelimit import TokenBucket

__all__ = [
    "BACKFILL_GRACE_S",
    "ChatRouter",
    "ChatVerdict",
    "LinkId",
]

LinkId = str
"""A link is named by the neighbour's peer id."""

# How long after ``open_link`` the backfill credit lasts. A backfill is sent as soon
# as the ChatHave arrives, one round trip after the link is up; 30 s leaves room for a
# link whose TCP buffer is full of video, and bounds how long the credit is open.
BACKFILL_GRACE_S = 30.0


@dataclass(frozen=True, slots=True)
class ChatVerdict:
    """What to do with a received chat message.

    Attributes:
        deliver: the message is new: show it and forward it on every link except
            the one it came from.
        refusal: if not None, send this back on the link the message came from.
    """

    deliver: bool
    refusal: Error | None = None


class _LinkAllowance:
    """What one link may still originate: its token bucket, then a one-off backfill
    credit (``open_link``) that lasts until ``credit_until``."""

    __slots__ = ("bucket", "credit", "credit_until")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.bucket = TokenBucket(rate_per_s, burst, now)  # a new link may burst at once
        self.credit = 0
        self.credit_until = now

    def take(self, now: float) -> bool:
        if self.bucket.take(now):
            return True
        if self.credit > 0 and now <= self.credit_until:
            self.credit -= 1
            return True
        return False


class ChatRouter:
    """Decides what happens to chat messages on one peer; the node moves the bytes.

    Args:
        self_id: this peer's id (unique per session); prefix of the ids it composes.
        self_name: this peer's display name, stamped on the messages it composes.
        history_size: messages kept for display and backfill.
        seen_size: message ids remembered to drop duplicates.
        rate_per_s: sustained messages per second a neighbour may originate.
        burst: messages a neighbour may originate at once.

    Raises:
        ValueError: if a size or rate is not positive.
    """

    def __init__(
        self,
        self_id: str,
        self_name: str,
        history_size: int = 256,
        seen_size: int = 4096,
        rate_per_s: float = 5.0,
        burst: int = 30,
    ) -> None:
        if history_size < 1 or seen_size < 1 or burst < 1:
            raise ValueError("history_size, seen_size and burst must be at least 1")
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be positive, got {rate_per_s}")
        self.self_id = self_id
        self.self_name = self_name
        self._history_size = history_size
        self._seen_size = seen_size
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._counter = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        # Sorted by (sent_at, msg_id): the display order, so eviction drops the oldest.
        self._history_keys: list[tuple[float, str]] = []
        self._history: dict[str, Chat] = {}
        self._buckets: dict[LinkId, _LinkAllowance] = {}

    # --- sending ------------------------------------------------------------------

    def compose(self, text: str, now: float) -> Chat:
        """Make a message of ours; the node sends it on every link and shows it.

        Args:
            text: what the user typed; surrounding whitespace is stripped.
            now: local time, stamped as ``sent_at``.

        Returns:
            The message, already in history and seen (an echo is a duplicate).

        Raises:
            ValueError: if the text is empty after stripping, or longer than
                ``limits.MAX_CHAT_CHARS``.
        """
        text = text.strip()
        if not text:
            raise ValueError("chat message is empty")
        if len(text) > limits.MAX_CHAT_CHARS:
            raise ValueError(
                f"chat message is longer than {limits.MAX_CHAT_CHARS} characters"
            )
        self._counter += 1
        msg = Chat(
            msg_id=f"{self.self_id}:{self._counter}",
            origin_id=self.self_id,
            origin_name=self.self_name,
            sent_at=now,
            text=text,
        )
        self._remember(msg)
        return msg

    # --- receiving ----------------------------------------------------------------

    def receive(self, msg: Chat, from_link: LinkId, now: float) -> ChatVerdict:
        """Decide what to do with a message that arrived on ``from_link``.

        Args:
            msg: the message (already validated by the decoder).
            from_link: the neighbour it came from.
            now: local time.

        Returns:
            The verdict: deliver (show and forward) or not, and a refusal to send back.
        """
        if self.is_seen(msg.msg_id):
            return ChatVerdict(deliver=False)
        if msg.origin_id == from_link:
            bucket = self._bucket(from_link, now)
            if not bucket.take(now):
                # Not marked seen: it may still come another way, or by backfill.
                return ChatVerdict(deliver=False, refusal=self._rate_refusal())
        self._remember(msg)
        return ChatVerdict(deliver=True)

    def is_seen(self, msg_id: str) -> bool:
        """Whether a message id was already delivered (or composed) here.

        Args:
            msg_id: the message id.

        Returns:
            True if it is in the seen-cache or in history.
        """
        return msg_id in self._seen or msg_id in self._history

    def _rate_refusal(self) -> Error:
        return Error(
            ErrorCode.RATE_LIMITED,
            f"chat rate limit: at most {self._rate_per_s:g} messages per second",
        )

    def _bucket(self, link: LinkId, now: float) -> _LinkAllowance:
        bucket = self._buckets.get(link)
        if bucket is None:
            bucket = self._buckets[link] = _LinkAllowance(self._rate_per_s, self._burst, now)
        return bucket

    def _remember(self, msg: Chat) -> None:
        self._seen.add(msg.msg_id)
        self._seen_order.append(msg.msg_id)
        while len(self._seen_order) > self._seen_size:
            self._seen.discard(self._seen_order.popleft())
        key = (msg.sent_at, msg.msg_id)
        bisect.insort(self._history_keys, key)
        self._history[msg.msg_id] = msg
        while len(self._history_keys) > self._history_size:
            _, old_id = self._history_keys.pop(0)
            del self._history[old_id]

    # --- links ----------------------------------------------------------------------

    def open_link(self, link: LinkId, now: float) -> ChatHave:
        """A link came up: expect its backfill, and get our offer to send on it.

        Grants ``link`` a one-off credit of ``limits.MAX_CHAT_IDS`` messages of its
        own, valid for ``BACKFILL_GRACE_S``, so its backfill is not rate limited.

        Args:
            link: the new neighbour.
            now: local time.

        Returns:
            ``have()``, to send on the link.
        """
        bucket = self._bucket(link, now)
        bucket.credit = limits.MAX_CHAT_IDS
        bucket.credit_until = now + BACKFILL_GRACE_S
        return self.have()

    def forget_link(self, link: LinkId) -> None:
        """A link is gone: drop its rate-limit state.

        Args:
            link: the neighbour.
        """
        self._buckets.pop(link, None)

    # --- history and backfill --------------------------------------------------------

    def history(self) -> list[Chat]:
        """The kept messages in display order, ``(sent_at, msg_id)`` ascending.

        Returns:
            A new list, oldest first.
        """
        return [self._history[msg_id] for _, msg_id in self._history_keys]

    def have(self) -> ChatHave:
        """Our backfill offer: the ids of the most recent history messages.

        Returns:
            At most ``limits.MAX_CHAT_IDS`` ids, oldest first.
        """
        recent = self._history_keys[-limits.MAX_CHAT_IDS :]
        return ChatHave(msg_ids=tuple(msg_id for _, msg_id in recent))

    def missing_for(self, have: ChatHave) -> list[Chat]:
        """What to backfill to a neighbour that sent ``have``.

        Args:
            have: the neighbour's offer.

        Returns:
            Our recent history messages (at most ``limits.MAX_CHAT_IDS``, the credit
            the neighbour grants us) that are not in ``have``, oldest first.
        """
        theirs = set(have.msg_ids)
        recent = self._history_keys[-limits.MAX_CHAT_IDS :]
        return [self._history[msg_id] for _, msg_id in recent if msg_id not in theirs]
