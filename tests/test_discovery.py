"""LAN discovery: the TXT codec, the tie-break, and zeroconf on loopback.

Network tests use ``interfaces=["127.0.0.1"]`` only, and a unique room per test so that
other tests advertising on loopback at the same time cannot disturb them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

from peer.lan.addresses import advertise_addresses
from peer.lan.advertiser import LanAdvertiser
from peer.lan.browser import (
    LanBrowser,
    LanSession,
    find_tracker,
    format_sessions,
    list_lan,
    read_peer_record,
)
from protocol import Candidate
from protocol.identity import Identity
from protocol.lan import (
    CLAIM_SLACK_MS,
    MAX_LABEL_BYTES,
    SERVICE_TYPE,
    TRACKER_SERVICE_TYPE,
    LanPeer,
    MalformedRecordError,
    claim_is_backdated,
    decode_txt,
    encode_txt,
    instance_label,
    lan_streamer,
    parse_txt,
    streamer_wins,
)
from tracker.mdns import TrackerAdvertiser

LOOPBACK = ["127.0.0.1"]
# DNS record type and class codes (RFC 1035 3.2.2) for reading the browser's cache.
_TYPE_TXT = 16
_CLASS_IN = 1
# Generous: a loaded 2-core machine may take seconds to run zeroconf's probing.
SEEN_TIMEOUT_S = 20.0


def _uid() -> str:
    return uuid.uuid4().hex[:16]


# Every record is signed by the key its id names: the key of each id a test makes.
KEY_OF: dict[str, Identity] = {}


def new_id() -> str:
    identity = Identity.generate()
    KEY_OF[identity.peer_id] = identity
    return identity.peer_id


def signed(peer: LanPeer) -> dict[str, str]:
    return encode_txt(peer, KEY_OF[peer.id])


def make_peer(**changes: object) -> LanPeer:
    fields: dict[str, object] = {
        "id": new_id(), "name": "Alice", "room": "lobby", "role": "viewer", "depth": None,
        "free_slots": 3, "version": 1, "host": "", "port": 40000, "claim": 0,
    }
    fields.update(changes)
    return LanPeer(**fields)  # type: ignore[arg-type]


def make_streamer(**changes: object) -> LanPeer:
    return make_peer(**{"role": "streamer", "depth": 0, "claim": 1_700_000_000_000,
                        **changes})


def txt_bytes(peer: LanPeer) -> dict[bytes, bytes | None]:
    return {k.encode(): v.encode() for k, v in signed(peer).items()}


class Watch:
    """An on_change callback that tests can await a condition on."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    def __call__(self) -> None:
        self.changed.set()

    async def until(self, condition: Callable[[], bool],
                    timeout: float = SEEN_TIMEOUT_S) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                await self.changed.wait()
                self.changed.clear()


# --- TXT codec ----------------------------------------------------------------------

ROUND_TRIP = [
    make_peer(),
    make_peer(depth=3, free_slots=0, parent_id="p" * 64, layer=480, name="Ωmega ☃", room="r"),
    make_streamer(free_slots=1024, version=255, claim=2**53),
    make_peer(name="n" * 32, room="r" * 32, depth=64, port=65535, version=1),
]


@pytest.mark.parametrize("peer", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_txt_round_trip(peer: LanPeer) -> None:
    assert decode_txt(txt_bytes(peer), peer.host, peer.port) == peer


@pytest.mark.parametrize("peer", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_txt_round_trip_through_zeroconf_wire_format(peer: LanPeer) -> None:
    # zeroconf builds the TXT RDATA; our parser must read back what it wrote
    info = AsyncServiceInfo(SERVICE_TYPE, f"x.{SERVICE_TYPE}", properties=signed(peer))
    props = parse_txt(info.text)
    assert props is not None
    assert decode_txt(props, "10.0.0.1", peer.port) == dataclasses.replace(peer, host="10.0.0.1")


def test_decode_takes_the_host_from_the_address_records() -> None:
    # The SRV port is signed with the TXT; the address is each interface's own.
    peer = make_peer(port=7001)
    assert decode_txt(txt_bytes(peer), "192.168.1.20", 7001) == dataclasses.replace(
        peer, host="192.168.1.20")


def test_encode_rejects_an_entry_over_255_bytes() -> None:
    peer = make_peer(depth=1, parent_id="\U0001f600" * 64)  # 64 characters, 256 bytes
    with pytest.raises(ValueError, match="255 bytes"):
        signed(peer)


def test_encode_refuses_to_sign_another_peers_record() -> None:
    with pytest.raises(ValueError, match="signed by the peer"):
        encode_txt(make_peer(), Identity.generate())


REQUIRED_KEYS = [b"id", b"name", b"room", b"role", b"depth", b"slots", b"ver", b"claim"]
GOOD = txt_bytes(make_peer(depth=2))
GOOD_STREAMER = txt_bytes(make_streamer())

MALFORMED: list[tuple[str, dict[bytes, bytes | None]]] = [
    *[(f"missing {k.decode()}", {kk: v for kk, v in GOOD.items() if kk != k})
      for k in REQUIRED_KEYS],
    *[(f"no value for {k.decode()}", {**GOOD, k: None}) for k in REQUIRED_KEYS],
    *[(f"slots={v!r}", {**GOOD, b"slots": v}) for v in [
        b"", b"x", b"-1", b" 1", b"1 ", b"+1", b"1_0", "\u0663".encode(), b"1e3",
        b"0x10", b"1025", b"99999999999999999", b"\xff"]],
    ("depth over MAX_PATH_LEN", {**GOOD, b"depth": b"65"}),
    ("depth spelled None", {**GOOD, b"depth": b"None"}),
    ("depth empty", {**GOOD, b"depth": b""}),
    ("version 0", {**GOOD, b"ver": b"0"}),
    ("version 256", {**GOOD, b"ver": b"256"}),
    ("claim over 2**53", {**GOOD_STREAMER, b"claim": b"9007199254740993"}),
    ("name too long", {**GOOD, b"name": b"n" * 33}),
    ("room too long", {**GOOD, b"room": b"r" * 33}),
    ("id too long", {**GOOD, b"id": b"i" * 65}),
    ("empty name", {**GOOD, b"name": b""}),
    ("empty id", {**GOOD, b"id": b""}),
    ("empty room", {**GOOD, b"room": b""}),
    ("binary name", {**GOOD, b"name": b"\xff\xfe\x00junk"}),
    ("lone surrogate bytes", {**GOOD, b"name": b"\xed\xa0\x80"}),
    ("control char in id", {**GOOD, b"id": b"\x00abc"}),
    ("newline in name", {**GOOD, b"name": b"a\nb"}),
    ("C1 control in room", {**GOOD, b"room": "a\x85b".encode()}),
    ("unknown role", {**GOOD, b"role": b"admin"}),
    ("role in capitals", {**GOOD, b"role": b"Viewer"}),
    ("streamer not at depth 0", {**GOOD_STREAMER, b"depth": b"3"}),
    ("streamer without claim", {**GOOD_STREAMER, b"claim": b"0"}),
    ("viewer with a claim", {**GOOD, b"claim": b"5"}),
    ("viewer at depth 0", {**GOOD, b"depth": b"0"}),
    ("bad parent", {**GOOD, b"parent": b"\x07"}),
    ("parent without value", {**GOOD, b"parent": None}),
    ("layer 0", {**GOOD, b"layer": b"0"}),
    ("layer junk", {**GOOD, b"layer": b"720p"}),
    ("empty record", {}),
]


@pytest.mark.parametrize(("why", "props"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_records_are_refused(why: str, props: dict[bytes, bytes | None]) -> None:
    with pytest.raises(MalformedRecordError):
        decode_txt(props, "10.0.0.1", 5000)


@pytest.mark.parametrize("port", [0, -1, 65536])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(MalformedRecordError, match="port"):
        decode_txt(GOOD, "10.0.0.1", port)


def test_non_bytes_key_is_refused() -> None:
    props: dict[object, object] = {**GOOD, "id": "str-key"}
    with pytest.raises(MalformedRecordError, match="non-bytes key"):
        decode_txt(props, "10.0.0.1", 5000)  # type: ignore[arg-type]


def test_browser_ignores_a_malformed_record_and_logs_it_at_debug(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="peer.lan.browser")
    bad = b"".join(bytes([len(item)]) + item
                   for item in [f"{k.decode()}={v.decode()}".encode()
                                for k, v in {**GOOD, b"slots": b"lots"}.items()
                                if v is not None])
    assert read_peer_record(bad, "10.0.0.9", 5000) is None
    assert read_peer_record(b"\x05a=b", "10.0.0.9", 5000) is None  # truncated
    assert "ignoring malformed" in caplog.text
    assert "slots" in caplog.text and "runs past the end" in caplog.text
    assert "10.0.0.9" in caplog.text
    assert all(r.levelname == "DEBUG" for r in caplog.records)
    good = make_peer()
    raw = b"".join(bytes([len(i)]) + i
                   for i in [f"{k}={v}".encode() for k, v in signed(good).items()])
    assert read_peer_record(raw, "", good.port) == good


def test_keys_are_case_insensitive_and_first_occurrence_wins() -> None:
    peer = make_peer()
    raw = b"".join(bytes([len(item)]) + item for item in [
        f"ID={peer.id}".encode(), b"id=ignored-second", b"", b"=novalue",
        *[f"{k}={v}".encode() for k, v in signed(peer).items() if k != "id"]])
    props = parse_txt(raw)
    assert props is not None
    assert props[b"id"] == peer.id.encode()
    assert decode_txt(props, "", peer.port) == peer


def test_parse_txt_edge_cases() -> None:
    assert parse_txt(b"") == {}
    assert parse_txt(b"\x00") == {}
    assert parse_txt(b"\x04flag") == {b"flag": None}
    assert parse_txt(b"\x02a=") == {b"a": b""}
    assert parse_txt(b"\x05a=b") is None  # runs past the end
    assert parse_txt(b"\x03a=b\x09") is None


@given(st.binary(max_size=600))
def test_parse_txt_never_raises(data: bytes) -> None:
    props = parse_txt(data)
    assert props is None or isinstance(props, dict)


TXT_KEYS = st.sampled_from([*REQUIRED_KEYS, b"parent", b"layer", b"ID", b"x"])
VALUES = st.none() | st.binary(max_size=80) | st.sampled_from(
    [b"viewer", b"streamer", b"0", b"1", b"-", b"64", b"1700000000000"])


@given(st.dictionaries(TXT_KEYS | st.binary(max_size=12), VALUES, max_size=12),
       st.integers(-5, 70000))
def test_decode_raises_nothing_but_malformed_record_error(
        props: dict[bytes, bytes | None], port: int) -> None:
    try:
        peer = decode_txt(props, "10.0.0.1", port)
    except MalformedRecordError:
        return
    assert isinstance(peer, LanPeer)


SIGNER = Identity.generate()
KEY_OF[SIGNER.peer_id] = SIGNER


@given(st.fixed_dictionaries({k: VALUES for k in REQUIRED_KEYS if k != b"id"}))
def test_records_parse_only_with_their_signature(props: dict[bytes, bytes | None]) -> None:
    # Whatever the fields say, an unsigned record is refused; once its author signs
    # what it parsed to, the signed record reads back as the same peer.
    props = {**props, b"id": SIGNER.peer_id.encode()}
    with pytest.raises(MalformedRecordError):
        decode_txt(props, "10.0.0.1", 80)
    try:
        peer = decode_txt({**props, b"sig": b"A" * 88}, "10.0.0.1", 80)
    except MalformedRecordError:
        peer = None
    assert peer is None  # a made-up signature never verifies


@pytest.mark.parametrize("peer", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_a_changed_field_breaks_the_signature(peer: LanPeer) -> None:
    props = txt_bytes(peer)
    for key, value in [(b"role", b"viewer"), (b"slots", b"0"), (b"name", b"Mallory"),
                       (b"claim", b"1")]:
        if props.get(key) == value:
            continue
        with pytest.raises(MalformedRecordError):
            decode_txt({**props, key: value}, peer.host, peer.port)
    with pytest.raises(MalformedRecordError, match="sig"):
        decode_txt(props, peer.host, peer.port + 1 if peer.port < 65535 else 1)


def test_a_record_in_another_peers_name_is_refused() -> None:
    victim = make_streamer()
    mallory = Identity.generate()
    KEY_OF[mallory.peer_id] = mallory
    # Mallory signs the victim's record with her own key and puts the victim's id on it.
    forged = {**txt_bytes(dataclasses.replace(victim, id=mallory.peer_id)),
              b"id": victim.id.encode()}
    with pytest.raises(MalformedRecordError, match="not signed by"):
        decode_txt(forged, "10.0.0.1", victim.port)
    for bad in [None, b"", b"!!notbase64", b"AAAA"]:
        with pytest.raises(MalformedRecordError, match="sig"):
            decode_txt({**txt_bytes(victim), b"sig": bad}, "10.0.0.1", victim.port)


def test_a_claim_first_seen_long_after_its_time_is_backdated() -> None:
    assert not claim_is_backdated(10_000, 10_000 + CLAIM_SLACK_MS)
    assert claim_is_backdated(10_000, 10_001 + CLAIM_SLACK_MS)
    assert not claim_is_backdated(10_000, 9_000)  # clocks a little apart


@pytest.mark.parametrize("changes", [
    {"role": "admin"}, {"depth": -1}, {"depth": 65}, {"free_slots": 1025},
    {"version": 0}, {"port": 0}, {"name": ""}, {"name": "x" * 33}, {"claim": 5},
    {"depth": 0}, {"layer": 0}, {"parent_id": ""}, {"free_slots": True},
])
def test_lan_peer_validates_on_construction(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_peer(**changes)


@pytest.mark.parametrize("changes", [{"depth": 1}, {"claim": 0}])
def test_streamer_must_be_root_with_a_claim(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_streamer(**changes)


def test_candidate() -> None:
    assert make_peer().candidate() is None  # not attached yet
    peer = make_peer(depth=2, host="10.0.0.3", port=7000, free_slots=1)
    assert peer.candidate() == Candidate(id=peer.id, name=peer.name, host="10.0.0.3",
                                         port=7000, depth=2, free_slots=1)


# --- tie-break ----------------------------------------------------------------------

TIE_BREAK = [
    # (claim a, id a, claim b, id b, a wins)
    (100, "bbbb", 200, "aaaa", True),  # earlier claim wins, whatever the ids
    (200, "aaaa", 100, "bbbb", False),
    (100, "aaaa", 100, "bbbb", True),  # equal claims: lower id wins
    (100, "bbbb", 100, "aaaa", False),
    (100, "aaaa", 100, "aaaa", True),  # never loses to itself
    (1, "zzzz", 2**53, "0000", True),
]


@pytest.mark.parametrize(("claim_a", "id_a", "claim_b", "id_b", "a_wins"), TIE_BREAK)
def test_streamer_wins_table(claim_a: int, id_a: str, claim_b: int, id_b: str,
                             a_wins: bool) -> None:
    a = make_streamer(claim=claim_a, id=id_a)
    b = make_streamer(claim=claim_b, id=id_b)
    assert streamer_wins(a, b) is a_wins


@given(st.integers(1, 2**53), st.text("0123456789abcdef", min_size=1, max_size=16),
       st.integers(1, 2**53), st.text("0123456789abcdef", min_size=1, max_size=16))
def test_exactly_one_of_two_different_streamers_wins(claim_a: int, id_a: str,
                                                      claim_b: int, id_b: str) -> None:
    a = make_streamer(claim=claim_a, id=id_a)
    b = make_streamer(claim=claim_b, id=id_b)
    if (claim_a, id_a) != (claim_b, id_b):
        assert streamer_wins(a, b) != streamer_wins(b, a)


def test_lan_streamer_picks_the_winner() -> None:
    first = make_streamer(claim=500, id="m")
    peers = [make_peer(depth=1), make_streamer(claim=900, id="a"), first,
             make_streamer(claim=500, id="z")]
    assert lan_streamer(peers) == first
    assert lan_streamer(reversed(peers)) == first
    assert lan_streamer([make_peer()]) is None
    assert lan_streamer([]) is None


# --- names, addresses, formatting ---------------------------------------------------


def test_instance_label_is_unique_per_id_short_and_clean() -> None:
    a = instance_label("Alice", "0123456789abcdef")
    b = instance_label("Alice", "0123456789abcdee")
    assert a != b and "0123456789abcdef" in a
    label = instance_label("a.b\x00c" + "é" * 40, "f" * 64)
    assert "." not in label and "\x00" not in label
    assert len(label.encode()) <= MAX_LABEL_BYTES - 3
    assert instance_label("...", "id1") == "peer id1"


def test_advertise_addresses() -> None:
    assert advertise_addresses("10.1.2.3") == ["10.1.2.3"]
    assert advertise_addresses("0.0.0.0", LOOPBACK) == ["127.0.0.1"]
    assert advertise_addresses("", ["10.0.0.1", "0.0.0.0"]) == ["10.0.0.1"]
    with pytest.raises(ValueError, match="IPv4"):
        advertise_addresses("example.org")
    found = advertise_addresses()
    assert found
    assert found == ["127.0.0.1"] or not any(a.startswith("127.") for a in found)


def test_service_types_are_valid() -> None:
    for service_type in (SERVICE_TYPE, TRACKER_SERVICE_TYPE):
        # RFC 6335 5.1: at most 15 characters between "_" and "._tcp"
        assert len(service_type.split(".")[0]) - 1 <= 15


def test_format_sessions() -> None:
    assert format_sessions([]) == "No Treecast sessions found on the LAN."
    table = format_sessions([
        LanSession("lobby", "Alice", 3, ("10.0.0.5", 7000)),
        LanSession("quiet-room", None, 1, None),
    ])
    lines = table.splitlines()
    assert lines[0].split() == ["ROOM", "STREAMER", "PEERS", "TRACKER"]
    assert lines[1].split() == ["lobby", "Alice", "3", "10.0.0.5:7000"]
    assert lines[2].split()[:3] == ["quiet-room", "-", "1"]
    assert "LAN only" in lines[2]


# --- zeroconf on loopback -----------------------------------------------------------


@pytest.fixture
def room() -> str:
    return f"test-{_uid()}"


@pytest.fixture
async def closing() -> AsyncIterator[list[LanAdvertiser | LanBrowser | TrackerAdvertiser]]:
    """Close everything a test opened, even when it fails."""
    opened: list[LanAdvertiser | LanBrowser | TrackerAdvertiser] = []
    yield opened
    for thing in reversed(opened):
        await thing.close()


async def start_browser(closing: list[object]) -> tuple[LanBrowser, Watch]:
    watch = Watch()
    browser = LanBrowser(LOOPBACK, on_change=watch, sweep_s=0.2)
    closing.append(browser)
    await browser.start()
    return browser, watch


async def start_advertiser(closing: list[object], peer: LanPeer, **kwargs: object) -> LanAdvertiser:
    advertiser = LanAdvertiser(LOOPBACK, identity=KEY_OF[peer.id],
                               **kwargs)  # type: ignore[arg-type]
    closing.append(advertiser)
    await advertiser.start(peer)
    return advertiser


def as_seen(peer: LanPeer) -> LanPeer:
    return dataclasses.replace(peer, host="127.0.0.1")


async def test_advertiser_and_browser_see_each_other_follow_updates_and_withdrawals(
        room: str, closing: list[object]) -> None:
    # two nodes, each advertising itself and browsing, like two peers of one room
    alice = make_streamer(room=room, name="Alice")
    bob = make_peer(room=room, name="Bob", port=40001)
    browser_a, watch_a = await start_browser(closing)
    browser_b, watch_b = await start_browser(closing)
    ad_a, ad_b = await asyncio.gather(start_advertiser(closing, alice),
                                      start_advertiser(closing, bob))
    both = [as_seen(alice), as_seen(bob)]
    await watch_a.until(lambda: browser_a.peers(room) == both)
    await watch_b.until(lambda: browser_b.peers(room) == both)
    assert browser_a.sessions()[[s.room for s in browser_a.sessions()].index(room)].peers == 2

    bob = dataclasses.replace(bob, depth=1, free_slots=0, parent_id=alice.id, layer=480)
    ad_b.update(bob)
    await watch_a.until(lambda: as_seen(bob) in browser_a.peers(room))
    assert browser_a.peers(room) == [as_seen(alice), as_seen(bob)]

    await ad_b.close()  # goodbye packets: gone at once, not after the TTL
    await watch_a.until(lambda: browser_a.peers(room) == [as_seen(alice)], timeout=5)
    await watch_b.until(lambda: browser_b.peers(room) == [as_seen(alice)], timeout=5)
    await ad_a.close()
    await watch_a.until(lambda: browser_a.peers(room) == [], timeout=5)


async def test_rapid_updates_end_on_the_last_one(room: str, closing: list[object]) -> None:
    browser, watch = await start_browser(closing)
    peer = make_peer(room=room)
    advertiser = await start_advertiser(closing, peer)
    await watch.until(lambda: browser.peers(room) == [as_seen(peer)])
    for slots in (0, 1, 2, 0, 3):
        peer = dataclasses.replace(peer, free_slots=slots)
        advertiser.update(peer)
    await watch.until(lambda: browser.peers(room) == [as_seen(peer)])


async def test_update_rejects_another_id(closing: list[object]) -> None:
    peer = make_peer()
    advertiser = LanAdvertiser(LOOPBACK, identity=KEY_OF[peer.id])
    closing.append(advertiser)
    with pytest.raises(ValueError, match="before start"):
        advertiser.update(peer)
    await advertiser.start(peer)
    with pytest.raises(ValueError, match="cannot change"):
        advertiser.update(make_peer())
    with pytest.raises(ValueError, match="IPv4"):
        advertiser.update(dataclasses.replace(peer, host="example.org"))
    await advertiser.close()
    advertiser.update(dataclasses.replace(peer, free_slots=0))  # no-op after close


async def test_same_instance_name_gets_a_suffix(room: str, closing: list[object]) -> None:
    browser, watch = await start_browser(closing)
    first = make_peer(room=room)
    second = dataclasses.replace(first, free_slots=0)  # a restart under the same id
    ad1 = await start_advertiser(closing, first)
    ad2 = await start_advertiser(closing, second)
    assert ad1.instance_name is not None and ad2.instance_name is not None
    assert ad2.instance_name != ad1.instance_name
    assert ad2.instance_name.startswith(ad1.instance_name[: -len(SERVICE_TYPE) - 1] + "-")
    # one record per id: the two records of one id never show up as two peers
    await watch.until(lambda: browser.peers(room) in ([as_seen(first)], [as_seen(second)]))
    await ad1.close()
    await watch.until(lambda: browser.peers(room) == [as_seen(second)])


CRASHING_PEER = """
import asyncio, sys
from peer.lan.advertiser import LanAdvertiser
from protocol.identity import Identity
from protocol.lan import LanPeer

async def main():
    identity = Identity.from_seed(bytes.fromhex(sys.argv[1]))
    advertiser = LanAdvertiser(["127.0.0.1"], identity=identity, ttl_s=2, refresh_s=0.5)
    await advertiser.start(LanPeer(id=identity.peer_id, name="doomed", room=sys.argv[2],
                                   role="viewer", depth=None, free_slots=1, version=1,
                                   host="", port=4000))
    print("ready", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


async def test_crashed_peer_expires_without_goodbye(room: str, closing: list[object]) -> None:
    aiozc = AsyncZeroconf(interfaces=LOOPBACK)
    watch = Watch()
    browser = LanBrowser(LOOPBACK, on_change=watch, aiozc=aiozc, sweep_s=0.2)
    closing.append(browser)
    await browser.start()
    identity = Identity.generate()
    peer_id = identity.peer_id
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_PEER,
                             identity.private_bytes().hex(), room],
                            stdout=subprocess.PIPE, text=True)
    try:
        await watch.until(lambda: [p.id for p in browser.peers(room)] == [peer_id], timeout=30)
        # It keeps refreshing its 2 s records: once the browser's cache holds a TXT
        # record received more than a TTL after the first one, the first has expired and
        # the peer must still be listed.
        name = f"{instance_label('doomed', peer_id)}.{SERVICE_TYPE}"

        def txt_created_ms() -> list[float]:
            return [r.created for r in aiozc.zeroconf.cache.async_all_by_details(
                name, _TYPE_TXT, _CLASS_IN)]

        first_ms = min(txt_created_ms())
        async with asyncio.timeout(SEEN_TIMEOUT_S):
            while max(txt_created_ms(), default=0.0) < first_ms + 2000 * 1.5:
                await asyncio.sleep(0.1)  # polling the cache, not timing
        assert [p.id for p in browser.peers(room)] == [peer_id]
        proc.kill()  # SIGKILL: no goodbye packets
        loop = asyncio.get_running_loop()
        started = loop.time()
        await watch.until(lambda: browser.peers(room) == [], timeout=15)
        assert loop.time() - started >= 1.0  # it expired; nobody said goodbye
    finally:
        proc.kill()
        await browser.close()
        await aiozc.async_close()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


async def test_tracker_is_found_and_withdrawn(closing: list[object]) -> None:
    browser, watch = await start_browser(closing)
    port = 40000 + int(_uid()[:4], 16) % 20000
    advertiser = TrackerAdvertiser(port, interfaces=LOOPBACK)
    closing.append(advertiser)
    await advertiser.start()
    ours = ("127.0.0.1", port)
    await watch.until(lambda: ours in browser.trackers())
    found = await find_tracker(10.0, LOOPBACK)
    # another test on this machine may advertise a tracker on loopback as well
    assert found == ours or found in browser.trackers()
    await advertiser.close()
    await watch.until(lambda: ours not in browser.trackers(), timeout=5)


async def test_list_lan_reports_rooms(room: str, closing: list[object]) -> None:
    streamer = make_streamer(room=room, name="Caster")
    viewers = [make_peer(room=room, name=f"v{i}", depth=1, port=41000 + i) for i in range(2)]
    await asyncio.gather(*(start_advertiser(closing, p) for p in [streamer, *viewers]))
    browser, watch = await start_browser(closing)
    await watch.until(lambda: len(browser.peers(room)) == 3)

    sessions = [s for s in await list_lan(2.0, LOOPBACK) if s.room == room]
    assert len(sessions) == 1
    assert (sessions[0].streamer, sessions[0].peers) == ("Caster", 3)
    assert room in format_sessions(sessions)


async def test_simultaneous_streamers_agree_on_one(room: str, closing: list[object]) -> None:
    # both claim the same millisecond: the lower id keeps the room
    low, high = sorted([new_id(), new_id()])
    a = make_streamer(room=room, id=low, claim=1_000)
    b = make_streamer(room=room, id=high, claim=1_000)
    browser_a, watch_a = await start_browser(closing)
    browser_b, watch_b = await start_browser(closing)
    ad_a, ad_b = await asyncio.gather(start_advertiser(closing, a),
                                      start_advertiser(closing, b))
    await watch_a.until(lambda: len(browser_a.peers(room)) == 2)
    await watch_b.until(lambda: len(browser_b.peers(room)) == 2)
    winner_a, winner_b = lan_streamer(browser_a.peers(room)), lan_streamer(browser_b.peers(room))
    assert winner_a is not None and winner_b is not None
    assert winner_a.id == winner_b.id == a.id
    # the loser steps down; everyone then sees a single streamer
    ad_b.update(dataclasses.replace(b, role="viewer", depth=None, claim=0))
    await watch_a.until(lambda: [p.role for p in browser_a.peers(room)].count("streamer") == 1)
    await watch_b.until(lambda: [p.role for p in browser_b.peers(room)].count("streamer") == 1)
    assert ad_a.instance_name is not None


async def test_browser_ignores_foreign_junk_records(room: str, closing: list[object]) -> None:
    # another program advertising our type with a bad TXT must not disturb the view
    from zeroconf.asyncio import AsyncZeroconf

    browser, watch = await start_browser(closing)
    zc = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        junk = AsyncServiceInfo(SERVICE_TYPE, f"junk-{_uid()}.{SERVICE_TYPE}", port=1,
                                properties={b"id": b"\xff", b"room": room.encode()},
                                parsed_addresses=["127.0.0.1"], host_ttl=10, other_ttl=10)
        await (await zc.async_register_service(junk))
        good = make_peer(room=room)
        await start_advertiser(closing, good)
        await watch.until(lambda: browser.peers(room) == [as_seen(good)])
        assert browser._names.get(junk.name) == SERVICE_TYPE  # it was seen, and ignored
    finally:
        await zc.async_close()


async def test_browser_ignores_a_record_forged_in_a_streamers_name(
        room: str, closing: list[object]) -> None:
    # The attack from issue 13: one record that says the streamer stepped down (or
    # claims earlier) in the streamer's name. Unsigned or signed by another key, it
    # is ignored and the real streamer stays the room's streamer.
    browser, watch = await start_browser(closing)
    real = make_streamer(room=room, name="Real", claim=1_700_000_000_000)
    await start_advertiser(closing, real)
    await watch.until(lambda: browser.peers(room) == [as_seen(real)])
    mallory = Identity.generate()
    KEY_OF[mallory.peer_id] = mallory
    stepped_down = dataclasses.replace(real, id=mallory.peer_id, role="viewer", depth=None,
                                       claim=0)
    forged = {**signed(stepped_down), "id": real.id}
    earlier = {k: v for k, v in signed(dataclasses.replace(
        real, claim=1_000, id=mallory.peer_id)).items() if k != "sig"} | {"id": real.id}
    zc = AsyncZeroconf(interfaces=LOOPBACK)
    try:
        for label, props in [("forged", forged), ("unsigned", earlier)]:
            info = AsyncServiceInfo(SERVICE_TYPE, f"{label}-{_uid()}.{SERVICE_TYPE}",
                                    port=real.port, properties=props,
                                    parsed_addresses=["127.0.0.1"], host_ttl=10,
                                    other_ttl=10)
            await (await zc.async_register_service(info))
        await watch.until(lambda: sum(n.startswith(("forged-", "unsigned-"))
                                      for n in browser._names) == 2)
        browser._refresh()
        assert browser.peers(room) == [as_seen(real)]
        winner = lan_streamer(browser.peers(room))
        assert winner is not None and winner.id == real.id
    finally:
        await zc.async_close()
