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

Authorship. A peer's id is its public key (protocol/identity.py), and every line
carries its author's signature over all its fields (``signed_bytes``). A line whose
signature does not verify against ``origin_id``, or whose id is not
``"<origin_id>:<counter>"``, is dropped by the first honest peer that sees it, and is
*not* marked seen: a forger cannot burn someone's next ids in advance. The counter
is the author's clock in milliseconds (kept rising), so ids stay unique across runs
of a peer that keeps its key. A genuine line replayed later has the same id and is a
duplicate while anyone remembers it; lines dated more than ``MAX_AGE_S`` in the past
or ``MAX_SKEW_S`` in the future are dropped, so an old line cannot be replayed into a
room that has forgotten it.

Rate limiting. Because the author is authenticated, flood limits apply to the
author, not to the link: a token bucket per origin (``rate_per_s``, ``burst``) at
every peer, so the first honest peer stops a flood and the honest relays after it
never carry it (before, a neighbour's own lines were limited per link and forwarded
ones not at all, so a flood pushed through an honest relay got that relay refused).
Authors are cheap to make (a key pair each), so each link also has an aggregate
bucket (``link_rate_per_s``, ``link_burst``) that many fresh authors behind one
neighbour cannot exceed. Refused lines are not marked seen (they may still come
another way, or by backfill). The per-origin buckets are bounded (``MAX_ORIGINS``,
least recently used forgotten first).

A backfill from a neighbour can hold up to ``limits.MAX_CHAT_IDS`` messages, far
above the burst. Rather than having the node flag backfill traffic, ``open_link``
grants the link a one-off credit of that many messages, valid for
``BACKFILL_GRACE_S``; while it lasts, the link's messages dated before the link
opened (history) bypass the per-origin buckets (a history holds many lines of one
chatty author) and spend the credit once the link's own bucket is empty; lines
written since pay their author's rate as always. The worst a neighbour can do with it is send one
history's worth of (genuinely signed) messages per link it opens, which is what an
honest backfill sends anyway.

Bounds: the seen-cache holds ``seen_size`` ids (FIFO eviction), the history the last
``history_size`` messages in display order ``(sent_at, msg_id)``, and a message in
history counts as seen even if the seen-cache evicted it.

"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections import OrderedDict, deque
from dataclasses import dataclass

from protocol import limits
from protocol.errors import ErrorCode
from protocol.identity import Identity, verify
from protocol.messages import Chat, ChatHave, Error
from protocol.ratelimit import TokenBucket

__all__ = [
    "BACKFILL_GRACE_S",
    "MAX_AGE_S",
    "MAX_ORIGINS",
    "MAX_SKEW_S",
    "SIGNING_CONTEXT",
    "ChatRouter",
    "ChatVerdict",
    "LinkId",
    "signed_bytes",
]

LinkId = str
"""A link is named by the neighbour's peer id."""

# How long after ``open_link`` the backfill credit lasts. A backfill is sent as soon
# as the ChatHave arrives, one round trip after the link is up; 30 s leaves room for a
# link whose TCP buffer is full of video, and bounds how long the credit is open.
BACKFILL_GRACE_S = 30.0
# Lines older than this are not taken (replays of what a room has forgotten); a day
# keeps a quiet room's whole history backfillable.
MAX_AGE_S = 24 * 3600.0
# Clocks of honest peers disagree by seconds, not minutes.
MAX_SKEW_S = 300.0
# Authors whose rate is tracked at once; the least recently heard is forgotten first.
MAX_ORIGINS = 1024
SIGNING_CONTEXT = b"treecast-chat\0"


def signed_bytes(msg: Chat) -> bytes:
    """What the author signs: every field but the signature, in one fixed encoding."""
    return json.dumps([msg.msg_id, msg.origin_id, msg.origin_name, msg.sent_at, msg.text],
                      separators=(",", ":"), ensure_ascii=False).encode()


def _signature_ok(msg: Chat) -> bool:
    prefix, sep, counter = msg.msg_id.rpartition(":")
    if not sep or prefix != msg.origin_id or not counter.isdigit():
        return False
    try:
        sig = base64.b64decode(msg.sig, validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(msg.origin_id, sig, SIGNING_CONTEXT, signed_bytes(msg))


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
    """What one link may still bring: its token bucket, then a one-off backfill
    credit (``open_link``) for history dated before ``credit_from``, that lasts until
    ``credit_until``."""

    __slots__ = ("bucket", "credit", "credit_from", "credit_until")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.bucket = TokenBucket(rate_per_s, burst, now)  # a new link may burst at once
        self.credit = 0
        self.credit_from = now
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
        identity: this peer's key pair: its id prefixes the ids it composes, and it
            signs every line it composes.
        self_name: this peer's display name, stamped on the messages it composes.
        history_size: messages kept for display and backfill.
        seen_size: message ids remembered to drop duplicates.
        rate_per_s: sustained messages per second one author may send.
        burst: messages one author may send at once.
        link_rate_per_s: sustained messages per second one link may bring, all
            authors together (many fresh keys behind one neighbour).
        link_burst: messages one link may bring at once.

    Raises:
        ValueError: if a size or rate is not positive.
    """

    def __init__(
        self,
        identity: Identity,
        self_name: str,
        history_size: int = 256,
        seen_size: int = 4096,
        rate_per_s: float = 5.0,
        burst: int = 30,
        link_rate_per_s: float = 20.0,
        link_burst: int = 100,
    ) -> None:
        if history_size < 1 or seen_size < 1 or burst < 1 or link_burst < 1:
            raise ValueError("history_size, seen_size and bursts must be at least 1")
        if not rate_per_s > 0 or not link_rate_per_s > 0:
            raise ValueError(f"rates must be positive, got {rate_per_s}, {link_rate_per_s}")
        self._identity = identity
        self.self_id = identity.peer_id
        self.self_name = self_name
        self._history_size = history_size
        self._seen_size = seen_size
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._link_rate_per_s = link_rate_per_s
        self._link_burst = link_burst
        self._counter = 0
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        # Sorted by (sent_at, msg_id): the display order, so eviction drops the oldest.
        self._history_keys: list[tuple[float, str]] = []
        self._history: dict[str, Chat] = {}
        self._buckets: dict[LinkId, _LinkAllowance] = {}
        self._origins: OrderedDict[str, TokenBucket] = OrderedDict()
        self.forged = 0  # lines dropped for a bad signature, id or date

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
        # Milliseconds of our clock, kept rising: unique across runs of a kept key.
        self._counter = max(self._counter + 1, int(now * 1000))
        unsigned = Chat(
            msg_id=f"{self.self_id}:{self._counter}",
            origin_id=self.self_id,
            origin_name=self.self_name,
            sent_at=now,
            text=text,
        )
        sig = self._identity.sign(SIGNING_CONTEXT, signed_bytes(unsigned))
        msg = Chat(unsigned.msg_id, unsigned.origin_id, unsigned.origin_name, now, text,
                   sig=base64.b64encode(sig).decode("ascii"))
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
        if not (now - MAX_AGE_S <= msg.sent_at <= now + MAX_SKEW_S) or not _signature_ok(msg):
            # Forged, altered, misdated or replayed from long ago: dropped here, not
            # forwarded, and not marked seen (the genuine line may still come).
            self.forged += 1
            return ChatVerdict(deliver=False)
        link = self._bucket(from_link, now)
        # History (dated before the link opened) may hold many lines of one author;
        # lines written since are live and pay their author's rate.
        in_backfill = (link.credit > 0 and now <= link.credit_until
                       and msg.sent_at <= link.credit_from)
        if not in_backfill and not self._origin(msg.origin_id, now).take(now):
            # Not marked seen: it may still come another way, or by backfill.
            return ChatVerdict(deliver=False, refusal=self._rate_refusal())
        if not link.take(now):
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
            f"chat rate limit: at most {self._rate_per_s:g} messages per second per "
            f"author, {self._link_rate_per_s:g} per link",
        )

    def _bucket(self, link: LinkId, now: float) -> _LinkAllowance:
        bucket = self._buckets.get(link)
        if bucket is None:
            bucket = self._buckets[link] = _LinkAllowance(self._link_rate_per_s,
                                                          self._link_burst, now)
        return bucket

    def _origin(self, origin: str, now: float) -> TokenBucket:
        bucket = self._origins.get(origin)
        if bucket is None:
            bucket = self._origins[origin] = TokenBucket(self._rate_per_s, self._burst, now)
            while len(self._origins) > MAX_ORIGINS:
                self._origins.popitem(last=False)
        else:
            self._origins.move_to_end(origin)
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
        bucket.credit_from = now
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
