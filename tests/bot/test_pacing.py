"""The pacer on its own: who gets a lane's next slot, what a newer App Home publish does to a
pending one, when a message is given back instead of waiting, and two replicas' pacers on one
database spending one budget together."""

from __future__ import annotations

import asyncio

import pytest

from bot.pacing import BudgetStore, Deferred, MemoryBudget, Pacer, Priority, rate_of
from core.budget import Rate, Reservation
from core.context import Core
from core.db import Database
from tests.conftest import settings_for


class VirtualTime:
    """A clock that moves only when the pacer sleeps, and only once the test opens the gate:
    everything the test queued is waiting before the first slot is handed out."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.gate = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        await self.gate.wait()
        self.now += seconds


async def _served_in_order(pacer: Pacer, lane: str, calls: list[tuple[str, Priority]]) -> list[str]:
    order: list[str] = []

    async def call(name: str, priority: Priority) -> None:
        if await pacer.acquire(lane, priority=priority):
            order.append(name)

    tasks = [asyncio.create_task(call(name, priority)) for name, priority in calls]
    await asyncio.sleep(0)
    return order if not tasks else await _finish(tasks, order)


async def _finish(tasks: list[asyncio.Task[None]], order: list[str]) -> list[str]:
    await asyncio.gather(*tasks)
    return order


async def test_people_get_a_short_budget_before_decoration():
    time_ = VirtualTime()
    pacer = Pacer(MemoryBudget(), clock=time_.clock, sleep=time_.sleep)
    lane = "chat.update"
    burst = rate_of(lane).burst
    # The burst is spent first, so that the rest must wait for slots.
    for _ in range(burst):
        assert await pacer.acquire(lane, priority=Priority.DECORATION)
    calls = [
        ("refresh-1", Priority.DECORATION),
        ("refresh-2", Priority.DECORATION),
        ("relay-1", Priority.PEOPLE),
        ("notice-1", Priority.NOTICE),
        ("relay-2", Priority.PEOPLE),
    ]
    waiting = asyncio.create_task(_served_in_order(pacer, lane, calls))
    await asyncio.sleep(0.01)
    time_.gate.set()
    order = await waiting
    assert order == ["relay-1", "relay-2", "notice-1", "refresh-1", "refresh-2"]


async def test_a_newer_home_publish_replaces_the_pending_one_for_that_person_only():
    time_ = VirtualTime()
    pacer = Pacer(MemoryBudget(), clock=time_.clock, sleep=time_.sleep)
    lane = "views.publish"
    for _ in range(rate_of(lane).burst):
        assert await pacer.acquire(lane, priority=Priority.DECORATION)
    results: dict[str, bool] = {}

    async def publish(name: str, user: str) -> None:
        results[name] = await pacer.acquire(
            lane, priority=Priority.DECORATION, coalesce=f"home:{user}"
        )

    tasks = [
        asyncio.create_task(publish("u1-old", "U1")),
        asyncio.create_task(publish("u2", "U2")),
    ]
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(publish("u1-new", "U1")))
    await asyncio.sleep(0.01)
    assert results == {"u1-old": False}  # replaced at once, before any slot came
    time_.gate.set()
    await asyncio.gather(*tasks)
    assert results == {"u1-old": False, "u2": True, "u1-new": True}
    assert pacer.superseded == 1


async def test_a_slot_further_away_than_the_message_may_wait_gives_it_back():
    time_ = VirtualTime()
    pacer = Pacer(MemoryBudget(), clock=time_.clock, sleep=time_.sleep)
    lane = "chat.postMessage:C1"
    await pacer.on_rate_limited(lane, 30)
    with pytest.raises(Deferred) as deferred:
        await pacer.acquire(lane, priority=Priority.PEOPLE, max_wait=2)
    assert 29 <= deferred.value.seconds <= 30
    # Another channel is not paused.
    time_.gate.set()
    assert await pacer.acquire("chat.postMessage:C2", priority=Priority.PEOPLE, max_wait=2)


class Recorded(BudgetStore):
    """A replica's view of the shared budget, noting when each slot it got may start."""

    def __init__(self, store: BudgetStore) -> None:
        self.inner = store
        self.reservations = 0
        self.seconds = 0.0
        self.starts: list[float] = []

    async def reserve(self, lane: str, rate: Rate, now: float, uses: int) -> Reservation:
        reservation = await self.inner.reserve(lane, rate, now, uses)
        self.starts.append(reservation.start_at)
        return reservation

    async def pause(self, lane: str, until: float) -> None:
        await self.inner.pause(lane, until)


async def _slot_starts(stores: list[BudgetStore], lane: str, per_replica: int) -> list[float]:
    recorded = [Recorded(store) for store in stores]
    pacers = [Pacer(store, speed=SPEED) for store in recorded]
    await asyncio.gather(
        *(p.acquire(lane, priority=Priority.NOTICE) for p in pacers for _ in range(per_replica))
    )
    return sorted(start for store in recorded for start in store.starts)


def _over_budget(starts: list[float], rate: Rate) -> int:
    """How many pairs of slots lie closer than one budget allows (0: all within it; a tenth
    of a millisecond is left for the rounding of epoch seconds)."""
    over = 0
    for i in range(len(starts)):
        for j in range(i + rate.burst, len(starts)):
            # Between slot i and slot j lie j - i intervals, less the burst allowance.
            if starts[j] - starts[i] < (j - i - (rate.burst - 1)) * rate.interval - 1e-4:
                over += 1
    return over


SPEED = 40.0  # the lane runs 40 times faster than Slack's: 38 posts a second, bursts of 2


async def test_two_replicas_pacers_together_stay_within_one_shared_budget(database, database_url):
    lane = "chat.postMessage:CSHARED"
    rate = rate_of(lane, speed=SPEED)
    second = Database(database_url, pool_size=3, max_overflow=2)
    core_a = Core(db=database, settings=settings_for(database_url))
    core_b = Core(db=second, settings=settings_for(database_url))
    try:
        shared = await _slot_starts([BudgetStore(core_a), BudgetStore(core_b)], lane, 12)
        assert len(shared) == 24
        assert _over_budget(shared, rate) == 0
        # Each replica on its own budget: together they start slots twice as fast.
        alone = await _slot_starts([MemoryBudget(), MemoryBudget()], lane, 12)
        assert _over_budget(alone, rate) > 0
    finally:
        await second.engine.dispose()


async def test_the_process_budget_forgets_lanes_with_nothing_ahead(monkeypatch) -> None:
    monkeypatch.setattr("bot.pacing.MEMORY_BUDGET_LANES", 4)
    store = MemoryBudget()
    rate = Rate(per_second=1.0, burst=1)
    for n in range(10):
        await store.reserve(f"chat.postMessage:D{n:04d}", rate, now=1000.0 + 10 * n, uses=1)
    assert len(store._due) <= 4
    # a lane whose slot is still ahead is kept while the others go
    await store.reserve("chat.postMessage:DBUSY", rate, now=2000.0, uses=50)
    for n in range(10):
        await store.reserve(f"chat.postMessage:E{n:04d}", rate, now=2001.0 + n, uses=1)
    assert "chat.postMessage:DBUSY" in store._due
