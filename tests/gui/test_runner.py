"""NodeThread: the asyncio loop the desktop app runs the node on. No Qt here."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import pytest

from peer.node.runner import NodeThread


def test_submit_runs_on_the_loop_thread() -> None:
    with NodeThread(name="t-runner") as runner:
        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert runner.submit(where()).result(timeout=10) == "t-runner"
    assert not any(t.name == "t-runner" for t in threading.enumerate())


def test_exceptions_come_back_through_the_future() -> None:
    with NodeThread() as runner:
        async def fail() -> None:
            raise ValueError("nope")

        with pytest.raises(ValueError, match="nope"):
            runner.submit(fail()).result(timeout=10)


def test_stop_cancels_remaining_tasks_and_closes_the_loop() -> None:
    runner = NodeThread().start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = threading.Event()

    async def spawn() -> None:
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        started.set()

    runner.submit(spawn()).result(timeout=10)
    assert started.is_set()
    assert runner.stop(timeout=10)
    assert cancelled.is_set()
    assert runner.loop.is_closed()
    assert not runner.running


def test_stop_is_idempotent_and_safe_before_start() -> None:
    never = NodeThread()
    assert never.stop()
    assert never.loop.is_closed()
    runner = NodeThread().start()
    assert runner.stop(timeout=10)
    assert runner.stop(timeout=10)


def test_submit_after_stop_raises_and_closes_the_coroutine() -> None:
    runner = NodeThread().start()
    runner.stop(timeout=10)

    async def nothing() -> None:
        return None

    coro = nothing()
    with pytest.raises(RuntimeError, match="not running"):
        runner.submit(coro)
    assert coro.cr_frame is None  # closed, so no "never awaited" warning


def test_stop_from_the_loop_thread_is_refused() -> None:
    with NodeThread() as runner:
        async def stop_self() -> None:
            runner.stop()

        with pytest.raises(RuntimeError, match="own thread"):
            runner.submit(stop_self()).result(timeout=10)


def test_request_stop_from_inside_ends_the_thread() -> None:
    runner = NodeThread(name="t-self-stop").start()

    async def finish() -> None:
        runner.request_stop()

    runner.submit(finish())
    runner._thread.join(10)
    assert not runner._thread.is_alive() and runner.loop.is_closed()
    assert runner.stop()  # nothing left to do


def test_start_twice_is_refused() -> None:
    with NodeThread() as runner, pytest.raises(RuntimeError, match="once"):
        runner.start()


def test_runner_imports_without_qt() -> None:
    code = (
        "import sys; sys.modules['PyQt6'] = None\n"
        "import peer.node.runner\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
