"""Field readers for message metadata, and the text checks every name and id passes.

A message's metadata arrives as a JSON object (``Meta``). Each ``read_*`` function takes
one field out of it and checks its type, range and length, raising ``FieldError`` (a
``RemoteProtocolError``) that names the field; nested readers prefix the item, e.g.
``peers[3].port``. ``check_len`` is the encode-side twin: we never send what the other
side would reject. ``control_chars`` is the one definition of "this text has control
characters" that the wire messages and the LAN TXT records share.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TypeVar

from protocol import limits
from protocol.errors import FieldError, LocalProtocolError

__all__ = [
    "CODEC_NAMES",
    "MAX_JSON_INT",
    "WILDCARD_HOSTS",
    "Meta",
    "check_len",
    "check_text",
    "control_chars",
    "is_wildcard_host",
    "read_bool",
    "read_demand",
    "read_float",
    "read_int",
    "read_layer",
    "read_list",
    "read_nested",
    "read_object",
    "read_opt_float",
    "read_opt_int",
    "read_opt_layer",
    "read_opt_port",
    "read_opt_str",
    "read_str",
    "read_versions",
]

Meta = dict[str, object]
T = TypeVar("T")

# C0 and C1 control characters: in a name or id they break one-line displays (the
# --list table, the GUI lists) and logs.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# JSON can spell a lone surrogate ("\ud800") but UTF-8 cannot: accepting one would make
# us fail later, when we re-encode the value (a tracker relaying a peer's name).
_SURROGATE = re.compile("[\ud800-\udfff]")

# The codec names in use, which the readers accept without looking at their letters
# (every frame names one); other well-formed names are accepted too (see read_codec).
CODEC_NAMES = frozenset({"h264", "mjpeg"})

# Largest integer a JSON number holds exactly in every implementation (IEEE double).
MAX_JSON_INT = 2**53
# Versions a peer may list in Hello/Register; the header's version field is one byte.
_MAX_VERSIONS = 16


# Listen addresses that mean "every interface": not an address anyone can dial, so a
# peer registering one is given the address the tracker sees it connect from, and an
# advertiser announces the host's real addresses instead.
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def is_wildcard_host(host: str) -> bool:
    """True for "", "0.0.0.0" and "::" (listen on every interface)."""
    return host in WILDCARD_HOSTS


def control_chars(value: str) -> bool:
    """True if ``value`` holds a C0 or C1 control character (newline and tab included)."""
    return _CONTROL.search(value) is not None


def check_text(key: str, value: str, *, text: bool = False) -> None:
    """Reject lone surrogates always and control characters unless ``text`` (chat
    lines and reasons may hold newlines and tabs; names and ids may not).

    Raises:
        FieldError: naming ``key``.
    """
    if value.isascii() and value.isprintable():
        return  # the usual case (ids, signatures, names): nothing to look for
    if _SURROGATE.search(value):
        raise FieldError(key, "lone surrogate (not valid Unicode text)")
    if not text and control_chars(value):
        raise FieldError(key, "control character")


def check_len(what: str, value: str, max_chars: int) -> None:
    """Encode-side check: we never send what the other side would reject.

    Raises:
        LocalProtocolError: if ``value`` is longer than ``max_chars``.
    """
    if len(value) > max_chars:
        raise LocalProtocolError(f"{what} has {len(value)} characters, limit is {max_chars}")


def _get(meta: Meta, key: str) -> object:
    if key not in meta:
        raise FieldError(key, "missing")
    return meta[key]


def read_int(meta: Meta, key: str, lo: int = 0, hi: int = MAX_JSON_INT) -> int:
    """An integer in ``[lo, hi]``."""
    value = _get(meta, key)
    # bool is an int subclass in Python but never a valid integer on our wire
    if not isinstance(value, int) or isinstance(value, bool):
        raise FieldError(key, "expected an integer")
    if not lo <= value <= hi:
        raise FieldError(key, f"{value} outside [{lo}, {hi}]")
    return value


def read_opt_int(meta: Meta, key: str, lo: int = 0, hi: int = MAX_JSON_INT) -> int | None:
    """Like ``read_int``, but a missing or null field is None."""
    return None if meta.get(key) is None else read_int(meta, key, lo, hi)


def read_opt_port(meta: Meta, key: str = "port") -> int | None:
    """A TCP port (1-65535), or None if missing or null."""
    return read_opt_int(meta, key, 1, 65535)


def read_float(meta: Meta, key: str) -> float:
    """A finite number (JSON integers are accepted)."""
    value = _get(meta, key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise FieldError(key, "expected a number")
    result = float(value)
    if not math.isfinite(result):
        raise FieldError(key, "not finite")
    return result


def read_opt_float(meta: Meta, key: str) -> float | None:
    """Like ``read_float``, but a missing or null field is None."""
    return None if meta.get(key) is None else read_float(meta, key)


def read_str(meta: Meta, key: str, max_chars: int, *, allow_empty: bool = True,
             text: bool = False) -> str:
    """A string of at most ``max_chars``; ``text`` (chat, reasons) may hold newlines
    and tabs, names and ids may not (see ``check_text``)."""
    value = _get(meta, key)
    if not isinstance(value, str):
        raise FieldError(key, "expected a string")
    if len(value) > max_chars:
        raise FieldError(key, f"{len(value)} characters, limit is {max_chars}")
    if not allow_empty and not value:
        raise FieldError(key, "empty")
    check_text(key, value, text=text)
    return value


def read_opt_str(meta: Meta, key: str, max_chars: int) -> str | None:
    """Like ``read_str`` (no control characters), but a missing or null field is None."""
    if meta.get(key) is None:
        return None
    return read_str(meta, key, max_chars)


def read_bool(meta: Meta, key: str) -> bool:
    """A JSON boolean (not 0/1)."""
    value = _get(meta, key)
    if not isinstance(value, bool):
        raise FieldError(key, "expected a boolean")
    return value


def read_list(meta: Meta, key: str, max_items: int) -> list[object]:
    """A list of at most ``max_items`` items, not yet checked."""
    value = _get(meta, key)
    if not isinstance(value, list):
        raise FieldError(key, "expected a list")
    if len(value) > max_items:
        raise FieldError(key, f"{len(value)} items, limit is {max_items}")
    return value


def read_nested(meta: Meta, key: str, max_items: int,
                parse: Callable[[Meta], T]) -> tuple[T, ...]:
    """A list of objects, each parsed by ``parse``; an error names the item, e.g.
    ``peers[3].port``."""
    items = read_list(meta, key, max_items)
    if not all(isinstance(item, dict) for item in items):
        raise FieldError(key, "expected a list of objects")
    result = []
    for index, item in enumerate(items):
        assert isinstance(item, dict)  # checked above; narrows the type
        try:
            result.append(parse(item))
        except FieldError as exc:
            raise FieldError(f"{key}[{index}].{exc.field}", exc.why) from exc
    return tuple(result)


def read_object(meta: Meta, key: str, parse: Callable[[Meta], T]) -> T:
    """One nested object parsed by ``parse``; an error names the path, e.g. ``ann.e``."""
    value = _get(meta, key)
    if not isinstance(value, dict):
        raise FieldError(key, "expected an object")
    try:
        return parse(value)
    except FieldError as exc:
        raise FieldError(f"{key}.{exc.field}", exc.why) from exc


def read_layer(meta: Meta, key: str = "layer") -> int:
    """A layer: one of the frame heights in ``limits.LAYERS``."""
    layer = read_int(meta, key, 0, limits.MAX_DIMENSION_PX)
    if layer not in limits.LAYERS:
        raise FieldError(key, f"{layer} is not one of {limits.LAYERS}")
    return layer


def read_demand(meta: Meta, key: str = "layer") -> int:
    """A subtree's demand: a layer, or ``limits.NO_VIDEO`` (chat and control only)."""
    value = meta.get(key)
    if type(value) is int and value == limits.NO_VIDEO:  # not False, not 0.0
        return limits.NO_VIDEO
    return read_layer(meta, key)


def read_sound_demand(meta: Meta, key: str = "snd") -> bool:
    """Whether a subtree wants sound; absent (a peer that predates the field): True."""
    return True if meta.get(key) is None else read_bool(meta, key)


def read_opt_layer(meta: Meta, key: str = "layer") -> int | None:
    """Like ``read_layer``, but a missing or null field is None."""
    return None if meta.get(key) is None else read_layer(meta, key)


def read_codec(meta: Meta, key: str = "cd", default: str = "mjpeg") -> str:
    """A video codec's name: a short lowercase token; missing means ``default``.

    Peers from before codecs were named sent only JPEG, hence the default. An unknown
    name is not an error here (forward compatibility): the node refuses what it cannot
    decode, and says which codec that was.
    """
    if meta.get(key) is None:
        return default
    name = meta[key]
    if type(name) is str and name in CODEC_NAMES:
        return name
    name = read_str(meta, key, limits.MAX_CODEC_CHARS, allow_empty=False)
    if not all("a" <= c <= "z" or "0" <= c <= "9" for c in name):
        raise FieldError(key, "codec names are lowercase letters and digits")
    return name


def read_versions(meta: Meta, key: str = "versions") -> tuple[int, ...]:
    """The protocol versions a peer speaks: a non-empty list of integers."""
    versions = read_list(meta, key, _MAX_VERSIONS)
    if not versions or not all(isinstance(v, int) and not isinstance(v, bool)
                               for v in versions):
        raise FieldError(key, "expected a non-empty list of integers")
    return tuple(versions)  # type: ignore[arg-type]
