"""Background tasks the node keeps a reference to (and cancels when it stops).

A task nobody references can be garbage-collected mid-flight, and one nobody cancels
outlives the node; every coroutine the node runs in the background goes through here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class TaskSet:
    """Tasks started on the running loop, kept until they finish."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``coro`` as a task kept here."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        """Cancel every task and wait until they are all done."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Repeating:
    """Calls ``tick`` every ``interval_s`` on ``loop`` until cancelled (the next call is
    set even when a tick raises, so one failure does not stop the others).

    ``interval_s`` may be a function: it is asked for the next interval when started
    and after each tick, so what a tick saw decides how soon the next one comes (a
    tick with nothing to watch can come less often, and each one is a wake-up).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 interval_s: float | Callable[[], float], tick: Callable[[], None]) -> None:
        self._loop = loop
        self._interval_s = interval_s
        self._tick = tick
        self._cancelled = False
        self._running = False
        self._handle = loop.call_later(self._interval(), self._run)

    def _interval(self) -> float:
        interval = self._interval_s
        return interval() if callable(interval) else interval

    def _run(self) -> None:
        self._running = True
        try:
            self._tick()
        finally:
            self._running = False
            if not self._cancelled:  # (the tick may have cancelled us)
                self._handle = self._loop.call_later(self._interval(), self._run)

    def reschedule(self) -> None:
        """Ask for the interval again now, from now (what it depends on changed).
        During a tick it does nothing: the interval is asked when the tick ends."""
        if not self._cancelled and not self._running:
            self._handle.cancel()
            self._handle = self._loop.call_later(self._interval(), self._run)

    def cancel(self) -> None:
        self._cancelled = True
        self._handle.cancel()
