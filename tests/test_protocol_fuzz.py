"""Property tests: the decoder's contract holds for any input, and valid messages
round-trip whatever their content."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import framing, limits
from protocol.errors import ProtocolError, RemoteProtocolError
from protocol.framing import FrameDecoder, encode
from protocol.messages import (
    Chat,
    Heartbeat,
    MessageType,
    PeerList,
    Ping,
    Register,
    StreamerChanged,
    VideoFrame,
)
from protocol.records import Candidate, PeerInfo

# The machine is slow and shared: judge properties, never per-example speed.
FUZZ = settings(deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _header(kind: int, meta_len: int, payload_len: int, version: int = 1,
            magic: bytes = limits.MAGIC) -> bytes:
    return struct.pack("!2sBBII", magic, version, kind, meta_len, payload_len)


def _feed(chunks: list[bytes]) -> list[object]:
    """Feed chunks, draining after each; check the contract at every step.

    Returns the messages decoded before the first error (if any).
    """
    decoder = FrameDecoder()
    out: list[object] = []
    error: ProtocolError | None = None
    for chunk in chunks:
        try:
            decoder.receive_data(chunk)
            # Bounded: at most one accepted frame plus the chunk just handed in.
            assert decoder.buffered_bytes <= framing.MAX_FRAME_BYTES + len(chunk)
            while (message := decoder.next_message()) is not None:
                out.append(message)
        except RemoteProtocolError as exc:
            error = exc
            break
        # Anything else escapes and fails the test: the contract is broken.
    if error is not None:
        # Dead after an error: every later call raises that same error.
        assert decoder.buffered_bytes == 0
        for call in (lambda: decoder.receive_data(b""), lambda: decoder.receive_data(b"x"),
                     decoder.next_message):
            try:
                call()
            except RemoteProtocolError as again:
                assert again is error
            else:
                raise AssertionError("decoder accepted input after an error")
    return out


@FUZZ
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_whole(data: bytes) -> None:
    _feed([data])


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes_one_at_a_time(data: bytes) -> None:
    _feed([data[i:i + 1] for i in range(len(data))])


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_arbitrary_chunks(chunks: list[bytes]) -> None:
    _feed(chunks)


@FUZZ
@given(kind=st.integers(0, 255), meta_len=st.integers(0, 300), payload_len=st.integers(0, 300),
       garbage=st.binary(max_size=700), split=st.integers(0, 1000))
def test_valid_header_then_garbage(kind: int, meta_len: int, payload_len: int, garbage: bytes,
                                   split: int) -> None:
    data = _header(kind, meta_len, payload_len) + garbage
    _feed([data])
    _feed([data[:split], data[split:]])


@FUZZ
@given(kind=st.integers(0, 255), meta_len=st.integers(0, 2**32 - 1),
       payload_len=st.integers(0, 2**32 - 1), version=st.integers(0, 255),
       rest=st.binary(max_size=64))
def test_arbitrary_headers(kind: int, meta_len: int, payload_len: int, version: int,
                           rest: bytes) -> None:
    _feed([_header(kind, meta_len, payload_len, version) + rest])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
FIELD_NAMES = st.sampled_from([
    "id", "name", "room", "host", "port", "versions", "peers", "epoch", "you", "depth",
    "free", "parent", "layer", "lease", "holder", "holder_id", "streamer_id",
    "streamer_name", "reason", "code", "candidates", "path", "e", "s", "c", "w", "h",
    "text", "from", "oid", "t", "ids", "t0", "t1", "t2", "ro", "sw", "sh", "reachable",
    "role",
])


@FUZZ
@given(kind=st.sampled_from(list(MessageType)),
       meta=st.dictionaries(FIELD_NAMES, JSON, max_size=12),
       payload=st.binary(max_size=16))
def test_arbitrary_meta_for_every_known_kind(kind: int, meta: dict[str, object],
                                             payload: bytes) -> None:
    # Field decoders see every JSON type in every field: only RemoteProtocolError.
    meta_bytes = json.dumps(meta).encode()
    _feed([_header(kind, len(meta_bytes), len(payload)) + meta_bytes + payload])


@FUZZ
@given(st.sampled_from(list(MessageType)), st.binary(min_size=1, max_size=200))
def test_arbitrary_meta_bytes_for_every_known_kind(kind: int, meta: bytes) -> None:
    _feed([_header(kind, len(meta), 0) + meta])


@FUZZ
@given(st.lists(st.sampled_from([
    encode(Ping(1.0)),
    encode(VideoFrame(1, 1, 0.0, 8, 8, 360, b"j" * 5000)),
    _header(MessageType.VIDEO_FRAME, 100, limits.MAX_VIDEO_PAYLOAD_BYTES),
    _header(MessageType.PEER_LIST, limits.MAX_PEER_LIST_META_BYTES, 10),
    b"\x00" * 4096,
    b"TC",
]), max_size=12), st.integers(1, 5000))
def test_buffer_stays_bounded(pieces: list[bytes], chunk: int) -> None:
    stream = b"".join(pieces)
    _feed([stream[i:i + chunk] for i in range(0, len(stream), chunk)])


# --- round trips of generated messages -------------------------------------------------

# What the protocol accepts in names: no lone surrogates (Cs), no control characters (Cc).
NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"))
TEXT_CHARS = st.characters(blacklist_categories=("Cs",))


def _name(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(NAME_CHARS, min_size=min_size, max_size=max_size)


IDS = _name(limits.MAX_ID_CHARS, 1)
NAMES = _name(limits.MAX_NAME_CHARS)
HOSTS = _name(limits.MAX_HOST_CHARS)
PORTS = st.integers(1, 65535)
LAYERS = st.sampled_from(limits.LAYERS)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
DEPTHS = st.integers(0, limits.MAX_PATH_LEN)

PEER_INFOS = st.builds(
    PeerInfo, IDS, NAMES, st.none() | HOSTS, st.none() | PORTS, st.none() | DEPTHS,
    st.integers(0, 1024), st.booleans(), st.sampled_from(["viewer", "streamer"]),
    st.none() | IDS, st.none() | LAYERS)

MESSAGES = st.one_of(
    st.builds(Chat, _name(2 * limits.MAX_ID_CHARS, 1), IDS, NAMES, FINITE,
              st.text(TEXT_CHARS, max_size=limits.MAX_CHAT_CHARS)),
    st.builds(Register, IDS, _name(limits.MAX_NAME_CHARS, 1), _name(limits.MAX_ROOM_CHARS, 1),
              st.none() | HOSTS, st.none() | PORTS,
              st.lists(st.integers(0, 2**53), min_size=1, max_size=16).map(tuple)),
    st.builds(PeerList, _name(limits.MAX_ROOM_CHARS), st.lists(PEER_INFOS, max_size=5).map(tuple),
              st.none() | IDS, st.none() | NAMES, st.integers(0, 2**53), st.none() | IDS),
    st.builds(Heartbeat, st.none() | DEPTHS, st.integers(0, 1024), st.none() | IDS,
              st.none() | LAYERS),
    st.builds(StreamerChanged, st.none() | IDS, st.none() | NAMES, st.integers(0, 2**53),
              st.none() | HOSTS, st.none() | PORTS),
    st.builds(VideoFrame, st.integers(0, 2**53), st.integers(0, 2**53), FINITE,
              st.integers(1, limits.MAX_DIMENSION_PX), st.integers(1, limits.MAX_DIMENSION_PX),
              LAYERS, st.binary(min_size=1, max_size=64)),
    st.builds(Candidate, IDS, NAMES, _name(limits.MAX_HOST_CHARS, 1), PORTS, DEPTHS,
              st.integers(0, 1024)).map(lambda c: Register(c.id, "n", "r", c.host, c.port)),
)


@FUZZ
@given(st.lists(MESSAGES, min_size=1, max_size=4), st.integers(1, 64))
def test_generated_messages_round_trip(messages: list[object], chunk: int) -> None:
    stream = b"".join(encode(m) for m in messages)  # type: ignore[arg-type]
    assert _feed([stream[i:i + chunk] for i in range(0, len(stream), chunk)]) == messages
