"""The event loop a Treecast peer runs on: uvloop where it exists, asyncio's own
otherwise. Used by the headless peer (``peer/node/cli.py``) and the app's node thread
(``peer/node/runner.py``). The tracker keeps asyncio's loop (docs/ARCHITECTURE.md,
"Libraries and why").

uvloop (libuv underneath, its transports and TLS layer in Cython) runs the same
asyncio code for less CPU per byte and per wake-up: a headless viewer's cost is mostly
the loop's own (wake-ups, reads, TLS records), and on this the room size of the scale
benchmark hangs (docs/PERFORMANCE.md, "The event loop"). It is not on Windows, and a
broken or missing install must not stop a peer: then the standard loop runs, which
behaves the same.

``TREECAST_EVENT_LOOP=asyncio`` picks the standard loop even where uvloop is installed
(an A/B benchmark, or a way out should uvloop misbehave somewhere); ``uvloop`` asks
for uvloop and says so on stderr when it cannot have it.

Clocks: both loops' ``time()`` is CLOCK_MONOTONIC, the clock of ``time.monotonic()``,
so a due time computed from ``time.monotonic()`` can be handed to ``loop.call_at``
(peer/node/tree_driver.py does). uvloop's clock is libuv's ``uv_now``, whole
milliseconds, and it rounds a delay to the nearest millisecond, so its ``call_at``
can run a callback up to half a millisecond before the due time. A timer that checks
"is it due yet?" against ``time.monotonic()`` (the tree's) would then find itself not
quite due, re-arm for less than a millisecond, and spin through loop iterations
until it is. Our uvloop rounds ``call_at``'s delay up instead: like asyncio's loop, a
timer never runs before its due time; it runs at most a millisecond after it.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import sys
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

ENV_VAR = "TREECAST_EVENT_LOOP"
"""Environment variable naming the loop: ``uvloop`` (the default where installed) or
``asyncio``."""

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def uvloop_factory() -> LoopFactory | None:
    """Our uvloop loop class, or None where uvloop is not installed or not usable."""
    if sys.platform == "win32":
        return None  # uvloop has no Windows support
    try:
        import uvloop
    except ImportError:
        return None
    return _never_early(uvloop.Loop)


@functools.cache
def _never_early(base: type[asyncio.AbstractEventLoop]) -> LoopFactory:
    """uvloop's loop class with a ``call_at`` that never runs a callback early."""

    class Loop(base):  # type: ignore[valid-type,misc]  # (a class made at run time)
        """uvloop whose ``call_at`` never runs a callback before ``when``."""

        def call_at(self, when: float, callback: Callable[[*Ts], object],
                    *args: *Ts, context: Context | None = None) -> asyncio.TimerHandle:
            # time() is uv_now truncated to the millisecond (so not after the real
            # time) and the timer starts from a uv_now at least as late: a delay
            # rounded up to whole milliseconds ends at or after ``when``.
            delay = math.ceil((when - self.time()) * 1000) / 1000
            handle: asyncio.TimerHandle = self.call_later(max(0.0, delay), callback, *args,
                                                          context=context)
            return handle

    return Loop


def loop_factory() -> LoopFactory:
    """The function that makes a new event loop for this process (see the module doc)."""
    wanted = os.environ.get(ENV_VAR, "").strip().lower()
    if wanted == "asyncio":
        return asyncio.new_event_loop
    factory = uvloop_factory()
    if factory is None:
        if wanted == "uvloop":
            print(f"treecast: {ENV_VAR}=uvloop but uvloop is not available here; "
                  "running on asyncio's own loop", file=sys.stderr)
        return asyncio.new_event_loop
    return factory


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: which implementation ``loop`` is (for logs, events and
    benchmarks)."""
    uvloop = any(cls.__module__.startswith("uvloop") for cls in type(loop).__mro__)
    return "uvloop" if uvloop else "asyncio"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the implementation :func:`loop_factory` picks."""
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks.

    Like ``asyncio.run``: a fresh loop, remaining tasks cancelled, async generators
    and the default executor shut down, the loop closed.
    """
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
