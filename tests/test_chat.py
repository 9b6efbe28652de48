"""ChatRouter: compose, dedup, signatures, rate limiting, history, backfill, and gossip."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer.node.chat import (
    BACKFILL_GRACE_S,
    MAX_AGE_S,
    SIGNING_CONTEXT,
    ChatRouter,
    ChatVerdict,
    signed_bytes,
)
from protocol import limits
from protocol.errors import ErrorCode
from protocol.identity import Identity
from protocol.messages import Chat, ChatHave, Error


@cache
def key(name: str) -> Identity:
    """One key pair per short test name ("a", "b", ...), the same in every run."""
    return Identity.from_seed(hashlib.sha256(name.encode()).digest())


def pid(name: str) -> str:
    return key(name).peer_id


def mid(name: str, n: int) -> str:
    return f"{pid(name)}:{n}"


def router(name: str, **kwargs: object) -> ChatRouter:
    return ChatRouter(key(name), name.title(), **kwargs)  # type: ignore[arg-type]


def chat(origin: str, n: int, sent_at: float = 0.0, text: str = "hi") -> Chat:
    """A line genuinely signed by ``origin``."""
    unsigned = Chat(mid(origin, n), pid(origin), origin.upper(), sent_at, text)
    sig = key(origin).sign(SIGNING_CONTEXT, signed_bytes(unsigned))
    return replace(unsigned, sig=base64.b64encode(sig).decode())


RATE_REFUSAL = "chat rate limit: at most 5 messages per second per author, 20 per link"


# --- compose ---------------------------------------------------------------------------


def test_compose_numbers_signs_and_strips() -> None:
    r = router("a")
    m1 = r.compose("  hello \n", now=10.0)
    m2 = r.compose("again", now=10.0)
    assert (m1.msg_id, m1.origin_id, m1.origin_name, m1.sent_at, m1.text) == (
        mid("a", 10_000), pid("a"), "A", 10.0, "hello")
    assert m2.msg_id == mid("a", 10_001)  # same millisecond: still rising
    assert r.history() == [m1, m2]
    assert router("b").receive(m1, "a", now=10.0).deliver  # it verifies


def test_ids_stay_unique_across_runs_of_a_kept_key() -> None:
    first = router("a").compose("before restart", now=100.0)
    second = router("a").compose("after restart", now=101.0)  # counter starts afresh
    assert first.msg_id != second.msg_id


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_compose_rejects_empty(text: str) -> None:
    r = router("a")
    with pytest.raises(ValueError, match=r"^chat message is empty$"):
        r.compose(text, now=0.0)
    assert r.history() == []


def test_compose_length_limit() -> None:
    r = router("a")
    assert r.compose("x" * limits.MAX_CHAT_CHARS, now=0.0).text == "x" * limits.MAX_CHAT_CHARS
    # Whitespace around does not count.
    r.compose("  " + "y" * limits.MAX_CHAT_CHARS + "  ", now=0.0)
    with pytest.raises(ValueError, match=r"^chat message is longer than 500 characters$"):
        r.compose("x" * (limits.MAX_CHAT_CHARS + 1), now=0.0)


def test_echo_of_own_message_is_a_duplicate() -> None:
    r = router("a")
    m = r.compose("hello", now=0.0)
    assert r.receive(m, "b", now=1.0) == ChatVerdict(deliver=False, refusal=None)


# --- forged lines (the attacker's side) -------------------------------------------------


def test_forged_and_altered_lines_are_dropped_and_not_marked_seen() -> None:
    r = router("a")
    genuine = chat("b", 1, text="I agree")
    attempts = [
        replace(genuine, text="I disagree"),  # altered on the way
        replace(genuine, origin_name="Admin"),  # renamed
        replace(genuine, sig=""),  # unsigned (an older peer, or a forger)
        replace(genuine, sig="not base64!"),
        # Signed by the attacker, in b's name (the id is b's key: it cannot verify).
        replace(chat("m", 1), msg_id=mid("b", 1), origin_id=pid("b"), origin_name="B"),
        # The attacker's own valid signature but an id in b's numbering.
        replace(chat("m", 1), msg_id=mid("b", 1)),
    ]
    for forged in attempts:
        assert r.receive(forged, "m", now=0.0) == ChatVerdict(deliver=False)
    assert r.forged == len(attempts)
    assert not r.is_seen(mid("b", 1))  # b's real line is not burned in advance
    assert r.receive(genuine, "c", now=0.0).deliver


def test_burning_future_ids_fails() -> None:
    r = router("a")
    for n in range(1, 50):  # the old attack: claim b's next ids with garbage
        burn = Chat(mid("b", n), pid("b"), "B", 0.0, "x", sig=chat("m", n).sig)
        assert not r.receive(burn, "m", now=0.0).deliver
    assert r.receive(chat("b", 1), "b", now=0.0).deliver


def test_lines_replayed_from_long_ago_or_dated_ahead_are_dropped() -> None:
    r = router("a")
    assert not r.receive(chat("b", 1, sent_at=0.0), "m", now=MAX_AGE_S + 1.0).deliver
    assert not r.receive(chat("b", 2, sent_at=1000.0), "m", now=0.0).deliver
    assert r.forged == 2


# --- receive -------------------------------------------------------------------------


def test_receive_new_then_duplicate_from_another_link() -> None:
    r = router("a")
    m = chat("b", 1)
    assert r.receive(m, "b", now=0.0) == ChatVerdict(deliver=True)
    assert r.receive(m, "c", now=0.0) == ChatVerdict(deliver=False)
    assert r.history() == [m]


def test_rate_limit_refuses_after_burst_and_refills() -> None:
    r = router("a", rate_per_s=5.0, burst=30)
    for n in range(1, 31):
        assert r.receive(chat("b", n), "b", now=0.0).deliver
    verdict = r.receive(chat("b", 31), "b", now=0.0)
    assert verdict == ChatVerdict(
        deliver=False, refusal=Error(ErrorCode.RATE_LIMITED, RATE_REFUSAL))
    assert not r.is_seen(mid("b", 31))  # not marked seen: it may come again
    assert not r.receive(chat("b", 31), "b", now=0.1).deliver  # 0.5 token: still no
    assert r.receive(chat("b", 31), "b", now=0.2).deliver  # one token refilled
    assert not r.receive(chat("b", 32), "b", now=0.2).deliver


def test_rate_limit_message_formats_fractional_rates() -> None:
    r = router("a", rate_per_s=0.5, burst=1)
    r.receive(chat("b", 1), "b", now=0.0)
    refusal = r.receive(chat("b", 2), "b", now=0.0).refusal
    assert refusal is not None
    assert refusal.reason == (
        "chat rate limit: at most 0.5 messages per second per author, 20 per link")


def test_refused_message_can_arrive_later_by_another_path() -> None:
    r = router("a", burst=1)
    assert r.receive(chat("b", 1), "b", now=0.0).deliver
    assert r.receive(chat("b", 2), "b", now=0.0).refusal is not None
    assert r.receive(chat("b", 2), "c", now=1.0) == ChatVerdict(deliver=True)


def test_a_flood_is_limited_at_its_author_even_through_an_honest_relay() -> None:
    # x floods; b is an honest relay forwarding whatever reaches it. The limit is
    # x's, so it is spent the same at every hop: the flood stops at the first honest
    # peer, and b's own lines (and b's link) are never refused for it.
    r = router("a", burst=2)
    delivered = [r.receive(chat("x", n), "b", now=0.0).deliver for n in range(1, 101)]
    assert delivered == [True, True] + [False] * 98
    assert r.receive(chat("b", 1), "b", now=0.0).deliver


def test_many_fresh_authors_behind_one_link_hit_the_link_limit() -> None:
    r = router("a", link_rate_per_s=20.0, link_burst=10)
    sybils = [chat(f"sybil{i}", 1) for i in range(30)]
    delivered = [r.receive(m, "b", now=0.0).deliver for m in sybils]
    assert delivered == [True] * 10 + [False] * 20
    assert r.receive(chat("c", 1), "c", now=0.0).deliver  # other links unaffected


def test_buckets_are_per_author_whatever_the_link() -> None:
    r = router("a", burst=1)
    assert r.receive(chat("b", 1), "b", now=0.0).deliver
    assert r.receive(chat("c", 1), "c", now=0.0).deliver  # c has its own bucket
    assert not r.receive(chat("b", 2), "b", now=0.0).deliver
    assert not r.receive(chat("b", 2), "c", now=0.0).deliver  # another link: same author
    r.forget_link("never-seen")  # harmless


def test_clock_stepping_back_does_not_break_the_bucket() -> None:
    r = router("a", burst=1, rate_per_s=1.0)
    assert r.receive(chat("b", 1, sent_at=100.0), "b", now=100.0).deliver
    assert not r.receive(chat("b", 2, sent_at=50.0), "b", now=50.0).deliver
    assert r.receive(chat("b", 2, sent_at=50.0), "b", now=101.0).deliver


# --- bounds and order ---------------------------------------------------------------------


def test_seen_cache_is_fifo_bounded() -> None:
    r = router("a", history_size=2, seen_size=4)
    for n in range(1, 6):
        r.receive(chat("x", n, sent_at=float(n)), f"l{n}", now=10.0)
    assert len(r._seen) == 4
    assert not r.is_seen(mid("x", 1))  # evicted from both caches
    assert r.receive(chat("x", 1, sent_at=1.0), "b", now=10.0).deliver
    assert r.is_seen(mid("x", 5))


def test_history_counts_as_seen_even_when_the_cache_evicted_it() -> None:
    r = router("a", history_size=10, seen_size=2)
    for n in range(1, 6):
        r.receive(chat("x", n, sent_at=float(n)), f"l{n}", now=10.0)
    assert mid("x", 1) not in r._seen
    assert not r.receive(chat("x", 1, sent_at=1.0), "b", now=10.0).deliver


def test_history_is_bounded_and_in_display_order() -> None:
    r = router("a", history_size=3)
    arrivals = [chat("b", 1, 5.0), chat("c", 1, 1.0), chat("b", 2, 9.0),
                chat("e", 7, 4.0), chat("d", 1, 7.0)]
    for m in arrivals:
        assert r.receive(m, "z", now=10.0).deliver
    # Kept: the three latest by (sent_at, msg_id).
    assert [m.msg_id for m in r.history()] == [mid("b", 1), mid("d", 1), mid("b", 2)]


def test_have_is_capped_at_the_protocol_limit() -> None:
    total = limits.MAX_CHAT_IDS + 50
    r = router("a", history_size=total)
    r.open_link("b", now=10.0)  # a backfill: the author's own rate does not apply
    for n in range(1, total + 1):
        assert r.receive(chat("x", n, sent_at=n / 100), "b", now=10.0).deliver
    have = r.have()
    assert len(have.msg_ids) == limits.MAX_CHAT_IDS
    assert have.msg_ids[-1] == mid("x", total)
    assert have.msg_ids[0] == mid("x", 51)
    assert len(r.missing_for(ChatHave(()))) == limits.MAX_CHAT_IDS


def test_missing_for_sends_what_the_other_side_lacks_in_order() -> None:
    r = router("a")
    msgs = [chat("x", n, sent_at=float(10 - n)) for n in range(1, 6)]
    for m in msgs:
        r.receive(m, "b", now=10.0)
    missing = r.missing_for(ChatHave((mid("x", 2), mid("x", 4), "unknown:1")))
    assert [m.msg_id for m in missing] == [mid("x", 5), mid("x", 3), mid("x", 1)]


def test_constructor_validates() -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        router("a", history_size=0)
    with pytest.raises(ValueError, match="rates must be positive, got 0"):
        router("a", rate_per_s=0)


# --- backfill ---------------------------------------------------------------------------


def connect(a: ChatRouter, b: ChatRouter, now: float) -> tuple[list[bool], list[bool]]:
    """Open a link both ways, exchange haves and backfill; returns deliver flags."""
    have_a = a.open_link(b.self_id, now)
    have_b = b.open_link(a.self_id, now)
    to_b = [b.receive(m, a.self_id, now) for m in a.missing_for(have_b)]
    to_a = [a.receive(m, b.self_id, now) for m in b.missing_for(have_a)]
    assert all(v.refusal is None for v in to_a + to_b)
    return [v.deliver for v in to_a], [v.deliver for v in to_b]


def test_message_composed_without_links_arrives_by_backfill() -> None:
    a, b = router("a"), router("b")
    lonely = a.compose("anyone here?", now=1.0)
    got_a, got_b = connect(a, b, now=2.0)
    assert got_b == [True] and got_a == []
    assert b.history() == [lonely]
    # Re-attaching again sends nothing: both hold the same history.
    a.forget_link(b.self_id)
    b.forget_link(a.self_id)
    assert connect(a, b, now=3.0) == ([], [])


def test_backfill_of_a_whole_history_of_one_author_is_not_refused() -> None:
    a = router("a", rate_per_s=1.0, burst=3)
    b = router("b", rate_per_s=1.0, burst=3, link_burst=3)
    for n in range(256):
        a.compose(f"line {n}", now=n * 0.001)
    _, got_b = connect(a, b, now=1.0)
    assert got_b == [True] * 256
    # The credit is one history's worth (256 messages, 3 of them from the link's
    # bucket), not more: three live ones still fit, the fourth is refused.
    live = [b.receive(a.compose(f"more {n}", now=1.0), a.self_id, now=1.0)
            for n in range(4)]
    assert [v.deliver for v in live] == [True, True, True, False]


def test_backfill_credit_expires() -> None:
    b = router("b", burst=1, link_burst=1)
    b.open_link("a", now=0.0)
    assert b.receive(chat("a", 1), "a", now=0.0).deliver  # the link's token
    assert b.receive(chat("a", 2), "a", now=0.0).deliver  # credit
    late = BACKFILL_GRACE_S + 1.0
    assert b.receive(chat("a", 3, sent_at=late), "a", now=late).deliver  # refilled
    assert not b.receive(chat("a", 4, sent_at=late), "a", now=late).deliver  # no credit


def test_forget_link_drops_the_credit() -> None:
    b = router("b", burst=1, link_burst=5)
    b.open_link("a", now=0.0)
    b.forget_link("a")
    assert b.receive(chat("a", 1), "a", now=0.0).deliver
    assert not b.receive(chat("a", 2), "a", now=0.0).deliver  # the author's own limit


# --- gossip over a network of routers ----------------------------------------------------


@dataclass
class Net:
    """In-memory links between routers; in-flight messages die with their link."""

    routers: list[ChatRouter]
    links: dict[frozenset[int], int] = field(default_factory=dict)  # pair -> incarnation
    next_incarnation: int = 0
    in_flight: list[tuple[int, int, int, Chat | ChatHave]] = field(default_factory=list)
    delivered: list[Counter[str]] = field(default_factory=list)
    now: float = 0.0
    refusals: int = 0

    def __post_init__(self) -> None:
        self.delivered = [Counter() for _ in self.routers]

    def send(self, src: int, dst: int, msg: Chat | ChatHave) -> None:
        self.in_flight.append((src, dst, self.links[frozenset((src, dst))], msg))

    def neighbours(self, i: int) -> list[int]:
        return [j for pair in self.links for j in pair if i in pair and j != i]

    def connect(self, i: int, j: int) -> None:
        self.links[frozenset((i, j))] = self.next_incarnation
        self.next_incarnation += 1
        self.send(i, j, self.routers[i].open_link(self.routers[j].self_id, self.now))
        self.send(j, i, self.routers[j].open_link(self.routers[i].self_id, self.now))

    def disconnect(self, pair: frozenset[int]) -> None:
        del self.links[pair]
        i, j = sorted(pair)
        self.routers[i].forget_link(self.routers[j].self_id)
        self.routers[j].forget_link(self.routers[i].self_id)

    def compose(self, i: int, text: str) -> None:
        msg = self.routers[i].compose(text, self.now)
        self.delivered[i][msg.msg_id] += 1
        for j in self.neighbours(i):
            self.send(i, j, msg)

    def deliver(self, index: int) -> None:
        src, dst, incarnation, msg = self.in_flight.pop(index)
        if self.links.get(frozenset((src, dst))) != incarnation:
            return  # the link broke while this was in flight
        router, src_id = self.routers[dst], self.routers[src].self_id
        if isinstance(msg, ChatHave):
            for m in router.missing_for(msg):
                self.send(dst, src, m)
            return
        verdict = router.receive(msg, src_id, self.now)
        if verdict.refusal is not None:
            self.refusals += 1
        if verdict.deliver:
            self.delivered[dst][msg.msg_id] += 1
            for k in self.neighbours(dst):
                if k != src:
                    self.send(dst, k, msg)

    def component(self, i: int) -> set[int]:
        seen, todo = {i}, [i]
        while todo:
            for j in self.neighbours(todo.pop()):
                if j not in seen:
                    seen.add(j)
                    todo.append(j)
        return seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(2, 7))
def test_gossip_with_breaks_and_backfill_delivers_everything_exactly_once(
    data: st.DataObject, n: int
) -> None:
    net = Net([ChatRouter(key(f"p{i}"), f"P{i}") for i in range(n)])
    for i in range(1, n):  # a random tree...
        net.connect(i, data.draw(st.integers(0, i - 1)))
    for _ in range(data.draw(st.integers(0, 2))):  # ...or a graph with a few cycles
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
        if i != j and frozenset((i, j)) not in net.links:
            net.connect(i, j)

    composed = 0
    for _ in range(data.draw(st.integers(1, 60))):
        net.now += data.draw(st.sampled_from([0.0, 0.01, 0.5]))
        action = data.draw(st.sampled_from(["compose", "deliver", "deliver", "break", "heal"]))
        if action == "compose" and composed < 25:
            composed += 1
            net.compose(data.draw(st.integers(0, n - 1)), f"m{composed}")
        elif action == "deliver" and net.in_flight:
            net.deliver(data.draw(st.integers(0, len(net.in_flight) - 1)))
        elif action == "break" and net.links:
            net.disconnect(data.draw(st.sampled_from(sorted(net.links, key=sorted))))
        elif action == "heal":
            # An orphaned part re-attaches to any peer outside it, as repair does.
            part = net.component(data.draw(st.integers(0, n - 1)))
            outside = [j for j in range(n) if j not in part]
            if outside:
                net.connect(data.draw(st.sampled_from(sorted(part))),
                            data.draw(st.sampled_from(outside)))

    # Repair whatever is still split, then let every message arrive in random order.
    for j in range(1, n):
        if j not in net.component(0):
            net.connect(data.draw(st.integers(0, j - 1)), j)
    while net.in_flight:
        net.deliver(data.draw(st.integers(0, len(net.in_flight) - 1)))

    all_ids = set().union(*(set(d) for d in net.delivered))
    assert len(all_ids) == composed
    assert net.refusals == 0
    for router, delivered in zip(net.routers, net.delivered, strict=True):
        assert delivered == Counter(dict.fromkeys(all_ids, 1))  # each exactly once
        history = router.history()
        assert {m.msg_id for m in history} == all_ids
        keys = [(m.sent_at, m.msg_id) for m in history]
        assert keys == sorted(keys)


def test_live_lines_on_a_new_link_pay_their_author_rate() -> None:
    # A flooder that just attached must not pass its flood off as backfill.
    b = router("b", burst=5)
    b.open_link("x", now=0.0)
    delivered = [b.receive(chat("x", n, sent_at=0.5), "x", now=0.5).deliver
                 for n in range(1, 301)]
    assert sum(delivered) == 5
