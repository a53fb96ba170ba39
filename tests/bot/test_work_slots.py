"""Acks first (bot.runtime.WorkSlots): while requests are being answered, work after the ack
runs on a narrow number of slots; the full number comes back when no request is in progress or
when the oldest waiting work has waited long enough, so work is never starved."""

from __future__ import annotations

import asyncio

import pytest

from bot.runtime import WorkSlots


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _take(slots: WorkSlots, count: int) -> list[asyncio.Task[None]]:
    tasks = [asyncio.ensure_future(slots.acquire()) for _ in range(count)]
    for _ in range(3):
        await asyncio.sleep(0)
    return tasks


async def test_while_a_request_is_answered_only_the_narrow_share_of_work_runs() -> None:
    slots = WorkSlots(6, while_serving=2, max_wait=2.0, clock=Clock())
    slots.serving(+1)
    tasks = await _take(slots, 5)
    assert sum(t.done() for t in tasks) == 2 and slots.waiting == 3
    slots.serving(-1)  # nothing left to answer: the whole width runs
    await asyncio.sleep(0)
    assert all(t.done() for t in tasks) and slots.busy == 5


async def test_without_requests_in_progress_the_full_width_runs() -> None:
    slots = WorkSlots(4, while_serving=1, clock=Clock())
    tasks = await _take(slots, 6)
    assert sum(t.done() for t in tasks) == 4 and slots.waiting == 2
    slots.release()
    await asyncio.sleep(0)
    assert sum(t.done() for t in tasks) == 5


async def test_work_that_waited_max_wait_gets_the_full_width_even_while_serving() -> None:
    clock = Clock()
    slots = WorkSlots(6, while_serving=1, max_wait=2.0, clock=clock)
    slots.serving(+1)
    tasks = await _take(slots, 4)
    assert sum(t.done() for t in tasks) == 1
    clock.now += 1.9
    slots.serving(+1)  # any event re-evaluates the width
    await asyncio.sleep(0)
    assert sum(t.done() for t in tasks) == 1
    clock.now += 0.2
    slots.serving(-1)
    await asyncio.sleep(0)
    assert all(t.done() for t in tasks) and slots.busy == 4


async def test_a_cancelled_waiter_neither_keeps_nor_leaks_a_slot() -> None:
    slots = WorkSlots(1, while_serving=1, clock=Clock())
    await slots.acquire()
    waiter = asyncio.ensure_future(slots.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0 and slots.busy == 1
    slots.release()
    assert slots.busy == 0
    await slots.acquire()  # the slot is free again
    assert slots.busy == 1
