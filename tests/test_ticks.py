"""The node's repeating ticks: a tick may choose how long until the next one."""

from __future__ import annotations

import asyncio

from peer.node.tasks import Repeating


async def test_a_repeating_tick_asks_for_its_interval_before_every_tick() -> None:
    loop = asyncio.get_running_loop()
    asked: list[float] = []
    ticks: list[int] = []
    done = asyncio.Event()

    def interval() -> float:
        # Slow at first, then fast: each answer sets the wait before the next tick.
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
    # Asked once when started, then once as each tick ran (before it).
    assert ticks == [2, 3, 4, 5]
    assert asked[:2] == [0.002, 0.002] and set(asked[2:]) == {0.001}


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
