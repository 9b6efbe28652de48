"""Latest-wins CPU work off the event loop.

Decoding, resizing and encoding JPEG take milliseconds; they run in a thread pool
(OpenCV releases the GIL). A ``LatestWorker`` runs one job at a time and keeps at most
one job waiting: when a newer frame arrives before the waiting one started, the older
one is skipped. Real time prefers a fresh frame over a complete backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class LatestWorker(Generic[In, Out]):
    """Run ``work`` in ``executor`` on the newest submitted item, one at a time."""

    def __init__(
        self,
        name: str,
        executor: Executor,
        work: Callable[[In], Out],
        deliver: Callable[[In, Out], Awaitable[None] | None],
    ) -> None:
        self._name = name
        self._executor = executor
        self._work = work
        self._deliver = deliver
        self._pending: In | None = None
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.skipped = 0
        self.failed = 0

    def submit(self, item: In) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)
        if self._pending is not None:
            self.skipped += 1
        self._pending = item
        self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            item = self._pending
            self._pending = None
            if item is None:
                continue
            try:
                result = await loop.run_in_executor(self._executor, self._work, item)
            except Exception as exc:  # a bad frame must not stop the worker
                self.failed += 1
                log.debug("%s failed: %s", self._name, exc)
                continue
            outcome = self._deliver(item, result)
            if outcome is not None:
                await outcome

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
