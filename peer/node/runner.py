"""Run an asyncio loop in its own daemon thread, for drivers that own another loop.

The desktop app's main thread belongs to Qt, so the node's asyncio loop runs here
instead. Other threads hand coroutines to it with :meth:`NodeThread.submit` and get a
``concurrent.futures.Future`` back; they must never block on it from a GUI thread.

No Qt in this module: it is tested (and usable) on its own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from peer.node.loops import new_event_loop

T = TypeVar("T")

# How long start() waits for the loop to run. A healthy thread is ready in
# milliseconds; a slow shared CI machine can take a while to schedule it.
READY_TIMEOUT_S = 10.0
# Tasks still alive at stop() get this long to honour cancellation before the loop
# closes anyway; a task that swallows CancelledError must not hang the app's exit.
CANCEL_GRACE_S = 2.0


class NodeThread:
    """An asyncio event loop running forever in a daemon thread.

    Usage::

        runner = NodeThread().start()
        future = runner.submit(node.start())   # concurrent.futures.Future
        ...
        runner.stop()

    Attributes:
        loop: the thread's event loop (only touch it through submit/call_soon_threadsafe).
        ready: set once the loop is running and accepts work.
    """

    def __init__(self, name: str = "treecast-node") -> None:
        """Create the loop; the thread starts with :meth:`start`.

        Args:
            name: the thread's name (shows in tracebacks and leak checks).
        """
        # uvloop where installed, as for the headless peer (peer/node/loops.py).
        self.loop = new_event_loop()
        self.ready = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> NodeThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the loop accepts work (started and not stopping)."""
        return self.ready.is_set() and self._thread.is_alive() and not self._stopping

    def start(self, timeout: float = READY_TIMEOUT_S) -> NodeThread:
        """Start the thread and wait until its loop runs.

        Args:
            timeout: seconds to wait for the loop.

        Returns:
            self, for chaining.

        Raises:
            RuntimeError: the thread was started before or did not come up in time.
        """
        if self._thread.ident is not None:
            raise RuntimeError("NodeThread can only be started once")
        self._thread.start()
        if not self.ready.wait(timeout):
            raise RuntimeError("the node thread did not start in time")
        return self

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop from any other thread.

        Args:
            coro: the coroutine to run.

        Returns:
            A future with the coroutine's result or exception; cancelling it cancels
            the task.

        Raises:
            RuntimeError: the loop is not running (not started, or stopped).
        """
        if not self.running:
            coro.close()  # never awaited otherwise: avoid the "never awaited" warning
            raise RuntimeError("the node thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, callback: Any, *args: Any) -> None:
        """Run a plain callback on the loop thread (thread-safe; ignored once stopped)."""
        if self.running:
            with contextlib.suppress(RuntimeError):  # loop closed between check and call
                self.loop.call_soon_threadsafe(callback, *args)

    def request_stop(self) -> None:
        """Ask the loop to stop without waiting (any thread, the loop's own included).

        The thread then cancels what is left, closes the loop and ends by itself.
        """
        self._stopping = True
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed
                self.loop.call_soon_threadsafe(self.loop.stop)

    def stop(self, timeout: float = 5.0) -> bool:
        """Cancel what still runs on the loop, close the loop and join the thread.

        Idempotent; safe before start(). Must not be called from the loop's own thread
        (it would wait for itself).

        Args:
            timeout: seconds to wait for the thread to finish.

        Returns:
            True when the thread has ended (or never started).

        Raises:
            RuntimeError: called from the loop thread.
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("NodeThread.stop() called from its own thread")
        self._stopping = True
        if self._thread.ident is None:
            # Never started: nothing runs, only the loop's resources to free.
            if not self.loop.is_closed():
                self.loop.close()
            return True
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # loop already closed by _run
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self.ready.set)
        try:
            self.loop.run_forever()
        finally:
            try:
                self._cancel_remaining()
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                self.loop.close()

    def _cancel_remaining(self) -> None:
        tasks = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        self.loop.run_until_complete(asyncio.wait(tasks, timeout=CANCEL_GRACE_S))
        for task in tasks:
            # Retrieve exceptions so asyncio does not log "never retrieved" at exit.
            if task.done() and not task.cancelled():
                task.exception()
