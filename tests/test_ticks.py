"""The node's repeating ticks: a tick may choose how long until the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from peer.node.tasks import Repeating


async def test_a_repeating_tick_asks_for_its_interval_after_every_tick() -> None:
    loop = asyncio.get_running_loop()
    asked: list[float] = []
    ticks: list[int] = []
    done = asyncio.Event()

    def interval() -> float:
        # Slow at first, then fast: what a tick saw sets the wait before the next one.
        value = 0.001 if len(ticks) >= 1 else 0.002
        asked.append(value)
        return value

    def tick() -> None:
        ticks.append(len(asked))
        if len(ticks) == 4:
            done.set()

    repeating = Repeating(loop, interval, tick)
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        repeating.cancel()
    # Asked once when started, then once as each tick ran (after it).
    assert ticks == [1, 2, 3, 4]
    assert asked[:1] == [0.002] and set(asked[1:]) == {0.001}


class _FakeHandle:
    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _FakeLoop:
    """Only what Repeating uses: call_later, recorded (the test runs the callbacks)."""

    def __init__(self) -> None:
        self.handles: list[_FakeHandle] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> _FakeHandle:
        handle = _FakeHandle(callback)
        self.handles.append(handle)
        return handle


def test_a_tick_that_raises_still_sets_the_next_and_one_that_cancels_does_not() -> None:
    loop = _FakeLoop()
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            repeating.cancel()
        raise RuntimeError("a failing tick")

    repeating = Repeating(loop, 0.1, tick)  # type: ignore[arg-type]
    assert len(loop.handles) == 1
    with pytest.raises(RuntimeError):
        loop.handles[-1].callback()
    assert len(loop.handles) == 2 and not loop.handles[-1].cancelled  # the next is set
    with pytest.raises(RuntimeError):
        loop.handles[-1].callback()  # this tick cancels: nothing more is set
    assert len(loop.handles) == 2 and loop.handles[-1].cancelled
    assert len(ticks) == 2


async def test_a_fixed_interval_still_works() -> None:
    loop = asyncio.get_running_loop()
    ticks: list[int] = []
    two = asyncio.Event()

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            two.set()

    repeating = Repeating(loop, 0.001, tick)
    try:
        await asyncio.wait_for(two.wait(), 10)
    finally:
        repeating.cancel()
    assert len(ticks) >= 2


def test_reschedule_asks_again_now_but_not_during_a_tick() -> None:
    loop = _FakeLoop()
    due = [1.0]

    def tick() -> None:
        repeating.reschedule()  # during a tick: the tick's end asks anyway

    repeating = Repeating(loop, lambda: due[0], tick)  # type: ignore[arg-type]
    assert len(loop.handles) == 1
    due[0] = 0.0  # something the interval depends on changed: look at once
    repeating.reschedule()
    assert len(loop.handles) == 2 and loop.handles[0].cancelled
    assert not loop.handles[1].cancelled
    loop.handles[1].callback()
    # One new call set by the tick's end, none by its reschedule.
    assert len(loop.handles) == 3 and not loop.handles[2].cancelled
    repeating.cancel()
    repeating.reschedule()  # cancelled: nothing more
    assert len(loop.handles) == 3
