"""Pacing of Slack Web API calls: stay inside Slack's rate limits before Slack has to say so.

Slack limits each Web API method per workspace (tiers) and `chat.postMessage` per channel
(about one message a second, short bursts allowed), for every process that uses the bot token
(/work/shared/SLACK_FACTS.md). Each limit is a lane here: the method, or for `chat.postMessage`
the method and the channel. A call waits for its lane's next slot; the slots come from a budget
shared by every replica through the database (core.budget), so several replicas together spend
one budget. A 429 pauses the whole lane (that method, or that channel) for Retry-After, for
every replica; other lanes keep flowing.

Within a lane the waiting calls are served by priority (people before decoration: relays of what
a customer wrote and SLA alerts before card refreshes), then in arrival order. A pending App Home
publish for a person is replaced by a newer one for the same person. The outbox worker says how
long a message may wait for its slot (`max_wait`): a longer wait gives the message back to the
outbox, due when its slot is (`Deferred`), instead of holding a delivery slot.

Calls made while a request is being answered (opening a modal, who is this person) never wait:
they are counted into their lane's budget and paid for by the background work."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.notify import is_rate_limited, retry_after_seconds
from core import budget
from core.budget import Rate
from core.clock import Clock, FrozenClock
from core.context import Core
from core.errors import Unavailable
from core.outbox import OutboxKind

log = logging.getLogger("bot.pacing")


class Priority(IntEnum):
    """Who goes first when a lane's budget is short (lower first)."""

    PEOPLE = 0  # a relay of what someone wrote, an SLA alert
    NOTICE = 1  # a new card or thread, a status notice, an edited copy
    DECORATION = 2  # a card refresh, an App Home publish


# Slack's published limits (calls per minute per workspace, tiers 1-4) and the burst a tier
# tolerates, as the bot assumes them. The bot paces a little under them (SAFETY): Slack counts
# arrivals, and two calls sent a second apart can arrive closer together.
TIER_PER_MINUTE = {1: 1.0, 2: 20.0, 3: 50.0, 4: 100.0}
TIER_BURST = {1: 1, 2: 2, 3: 5, 4: 10}
METHOD_TIERS: dict[str, int] = {
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "chat.getPermalink": 4,
    "reactions.add": 3,
    "reactions.remove": 2,
    "views.publish": 4,
    "views.open": 4,
    "views.update": 4,
    "views.push": 4,
    "conversations.open": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.info": 3,
    "conversations.members": 4,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
    "files.info": 4,
    "files.delete": 3,
}
# chat.postMessage: about one message per second per channel, short bursts allowed.
POST_PER_SECOND = 1.0
POST_BURST = 3
SAFETY = 0.95

# The priority of the calls of the outbox message being delivered (None: answering a request).
current_priority: contextvars.ContextVar[Priority | None] = contextvars.ContextVar(
    "slack_call_priority", default=None
)
# How long the current outbox message may wait for a slot before it is given back (seconds).
current_max_wait: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "slack_call_max_wait", default=None
)


@contextlib.contextmanager
def delivering(priority: Priority, *, max_wait: float) -> Iterator[None]:
    """Calls made inside are background work of `priority` that may wait up to `max_wait`."""
    tokens = current_priority.set(priority), current_max_wait.set(max_wait)
    try:
        yield
    finally:
        current_priority.reset(tokens[0])
        current_max_wait.reset(tokens[1])


class Deferred(Exception):
    """The call's slot is further away than the caller may wait: try again in `seconds`."""

    def __init__(self, lane: str, seconds: float) -> None:
        super().__init__(f"{lane}: next slot in {seconds:.1f}s")
        self.lane = lane
        self.seconds = seconds


def lane_of(method: str, args: Mapping[str, Any]) -> str | None:
    """The lane a call is counted in; None for calls Slack does not limit in a way we pace."""
    if method == "chat.postMessage":
        channel = args.get("channel")
        return f"chat.postMessage:{channel}" if channel else None
    return method if method in METHOD_TIERS else None


def rate_of(lane: str, *, speed: float = 1.0) -> Rate:
    """The rate the bot allows itself on `lane` (`speed` scales it for a sped-up stand-in)."""
    if lane.startswith("chat.postMessage:"):
        return Rate(POST_PER_SECOND * SAFETY * speed, burst=max(1, POST_BURST - 1))
    tier = METHOD_TIERS[lane]
    return Rate(TIER_PER_MINUTE[tier] / 60.0 * SAFETY * speed, burst=max(1, TIER_BURST[tier] - 1))


class BudgetStore:
    """Where lanes reserve their slots: the database, shared by every replica."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.reservations = 0
        self.seconds = 0.0  # time spent reserving (the cost of sharing the budget)

    async def reserve(self, lane: str, rate: Rate, now: float, uses: int) -> budget.Reservation:
        started = time.perf_counter()
        try:
            return await budget.reserve(self.core, key=lane, rate=rate, now=now, uses=uses)
        finally:
            self.reservations += 1
            self.seconds += time.perf_counter() - started

    async def pause(self, lane: str, until: float) -> None:
        await budget.pause(self.core, key=lane, until=until)


# Past this many lanes, MemoryBudget forgets those with nothing ahead of them.
MEMORY_BUDGET_LANES = 1_000


class MemoryBudget(BudgetStore):
    """Slots kept in this process only (one replica, or the database is not to be written)."""

    def __init__(self) -> None:
        self.reservations = 0
        self.seconds = 0.0
        self._due: dict[str, float] = {}
        self._paused: dict[str, float] = {}

    async def reserve(self, lane: str, rate: Rate, now: float, uses: int) -> budget.Reservation:
        self.reservations += 1
        if len(self._due) >= MEMORY_BUDGET_LANES:
            # Lanes whose slots and pauses are all past hold nothing to remember (one per
            # channel posted to: thousands of DMs over a day).
            self._due = {k: t for k, t in self._due.items() if t > now}
            self._paused = {k: t for k, t in self._paused.items() if t > now}
        paused = self._paused.get(lane, 0.0)
        due = max(self._due.get(lane, now), paused, now) + max(1, uses) * rate.interval
        self._due[lane] = due
        start = max(due - rate.interval - rate.tolerance, now, paused)
        return budget.Reservation(start_at=start, paused_until=paused)

    async def pause(self, lane: str, until: float) -> None:
        self._paused[lane] = max(self._paused.get(lane, 0.0), until)
        self._due[lane] = max(self._due.get(lane, 0.0), until)


# What a waiting call is told when its slot comes: go, or a newer one replaced it.
_GO, _SUPERSEDED = "go", "superseded"


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[str] = field(compare=False)
    coalesce: str | None = field(default=None, compare=False)


@dataclass
class _Lane:
    name: str
    rate: Rate
    waiters: list[_Waiter] = field(default_factory=list)
    by_coalesce: dict[str, _Waiter] = field(default_factory=dict)
    debt: int = 0  # calls made without a reservation, paid with the next one
    paused_until: float = 0.0
    next_start: float = 0.0  # when the slot being waited for starts
    dispatcher: asyncio.Task[None] | None = None


class Pacer:
    """Every lane of one process; calls wait here for their slot."""

    def __init__(
        self,
        store: BudgetStore,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self._lanes: dict[str, _Lane] = {}
        self._seq = itertools.count()
        self.waited = 0.0  # seconds calls spent waiting for slots
        self.deferred = 0
        self.superseded = 0
        self.rate_limited = 0

    def lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(name, rate_of(name, speed=self.speed))
        return lane

    def note(self, name: str) -> None:
        """A call made without waiting: its lane pays for it with the next reservation (at
        most a burst's worth is remembered, so that a lane used only by requests for hours
        does not make its next background call wait for all of them)."""
        lane = self.lane(name)
        lane.debt = min(lane.debt + 1, lane.rate.burst)

    async def acquire(
        self,
        name: str,
        *,
        priority: Priority,
        max_wait: float | None = None,
        coalesce: str | None = None,
    ) -> bool:
        """Wait for a slot on lane `name`. False when a newer call with the same `coalesce` key
        took this one's place (do not make the call). Raises Deferred when the slot is further
        away than `max_wait` seconds."""
        lane = self.lane(name)
        now = self.clock()
        if max_wait is not None:
            ahead = sum(1 for w in lane.waiters if w.priority <= priority and not w.future.done())
            expected = max(
                lane.paused_until - now,
                lane.next_start - now if lane.waiters else 0.0,
                ahead * lane.rate.interval,
            )
            if expected > max_wait:
                self.deferred += 1
                raise Deferred(name, expected)
        loop = asyncio.get_running_loop()
        earlier = lane.by_coalesce.get(coalesce) if coalesce else None
        if earlier is not None and not earlier.future.done():
            # The newer call takes the earlier one's place in the queue.
            earlier.future.set_result(_SUPERSEDED)
            self.superseded += 1
            waiter = _Waiter(earlier.priority, earlier.seq, loop.create_future(), coalesce)
        else:
            waiter = _Waiter(int(priority), next(self._seq), loop.create_future(), coalesce)
        heapq.heappush(lane.waiters, waiter)
        if coalesce:
            lane.by_coalesce[coalesce] = waiter
        if lane.dispatcher is None or lane.dispatcher.done():
            lane.dispatcher = asyncio.create_task(self._dispatch(lane))
        started = self.clock()
        try:
            if max_wait is None:
                outcome = await waiter.future
            else:
                outcome = await asyncio.wait_for(asyncio.shield(waiter.future), max_wait + 5.0)
        except TimeoutError:
            waiter.future.cancel()
            self.deferred += 1
            raise Deferred(name, max(lane.next_start - self.clock(), 1.0)) from None
        except asyncio.CancelledError:
            waiter.future.cancel()
            raise
        finally:
            if coalesce and lane.by_coalesce.get(coalesce) is waiter:
                del lane.by_coalesce[coalesce]
        self.waited += self.clock() - started
        return outcome == _GO

    async def _dispatch(self, lane: _Lane) -> None:
        """Hand out lane's slots to its waiters, best first, while any wait."""
        while True:
            while lane.waiters and lane.waiters[0].future.done():
                heapq.heappop(lane.waiters)
            if not lane.waiters:
                if lane.debt == 0 and lane.paused_until <= self.clock() and ":" in lane.name:
                    # An idle channel's lane is forgotten (its budget lives in the database):
                    # a desk posts to thousands of DMs over a day.
                    self._lanes.pop(lane.name, None)
                return
            uses, lane.debt = 1 + lane.debt, 0
            try:
                reservation = await self.store.reserve(lane.name, lane.rate, self.clock(), uses)
            except Exception as error:  # (Unavailable, or any other database failure)
                # No shared budget without the database: pace this process alone meanwhile.
                log.warning(
                    "slack pacing: budget unavailable",
                    extra={"lane": lane.name, "error": type(error).__name__},
                )
                reservation = budget.Reservation(
                    start_at=max(self.clock(), lane.next_start) + lane.rate.interval,
                    paused_until=lane.paused_until,
                )
            lane.paused_until = max(lane.paused_until, reservation.paused_until)
            lane.next_start = reservation.start_at
            delay = reservation.start_at - self.clock()
            if delay > 1e-6:  # (not a rounding error of the slot arithmetic)
                await self.sleep(delay)
            if lane.paused_until > self.clock():
                continue  # a 429 arrived meanwhile: this slot is void, reserve after the pause
            while lane.waiters:
                waiter = heapq.heappop(lane.waiters)
                if not waiter.future.done():
                    waiter.future.set_result(_GO)
                    break

    async def on_rate_limited(self, name: str, retry_after: float) -> None:
        """Slack answered 429 on this lane: pause it for everyone for `retry_after` seconds."""
        self.rate_limited += 1
        lane = self.lane(name)
        until = self.clock() + retry_after
        lane.paused_until = max(lane.paused_until, until)
        try:
            await self.store.pause(name, until)
        except Unavailable:
            log.warning("slack pacing: pause not shared", extra={"lane": name})

    def stats(self) -> dict[str, float]:
        return {
            "reservations": self.store.reservations,
            "reserve_seconds": round(self.store.seconds, 3),
            "waited_seconds": round(self.waited, 3),
            "deferred": self.deferred,
            "superseded": self.superseded,
            "rate_limited": self.rate_limited,
        }


def _call_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in ("params", "data", "json"):
        value = kwargs.get(part)
        if isinstance(value, Mapping):
            merged.update(value)
    return merged


class PacedWebClient(AsyncWebClient):
    """An AsyncWebClient whose every Web API call goes through a Pacer (None: unpaced)."""

    pacer: Pacer | None = None

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        pacer = self.pacer
        if pacer is None:
            return await super().api_call(api_method, **kwargs)
        args = _call_args(kwargs)
        name = lane_of(api_method, args)
        if name is None:
            return await super().api_call(api_method, **kwargs)
        priority = current_priority.get()
        if priority is None and api_method == "views.publish":
            # An App Home publish waits (it follows an ack) and a newer one for the same
            # person replaces it while it waits.
            user = str(args.get("user_id") or "")
            if not await pacer.acquire(
                name, priority=Priority.DECORATION, coalesce=f"home:{user}" if user else None
            ):
                return self._superseded(api_method, kwargs)
        elif priority is None:
            pacer.note(name)  # answering a request: never wait
        else:
            await pacer.acquire(name, priority=priority, max_wait=current_max_wait.get())
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as error:
            if is_rate_limited(error):
                seconds = retry_after_seconds(getattr(error.response, "headers", None))
                await pacer.on_rate_limited(name, seconds)
            raise

    def _superseded(self, api_method: str, kwargs: Mapping[str, Any]) -> AsyncSlackResponse:
        """The answer for a call a newer one replaced: nothing was sent."""
        return AsyncSlackResponse(
            client=self,
            http_verb="POST",
            api_url=self.base_url + api_method,
            req_args=dict(kwargs),
            data={"ok": True, "superseded": True},
            headers={},
            status_code=200,
        )


# Where this process's monotonic clock started: a frozen desk clock moves by it (see below).
_ORIGIN = time.monotonic()


def pacing_clock(clock: Clock) -> Callable[[], float]:
    """Epoch seconds for pacing. Slack's limits run on real time; a desk clock frozen for a test
    or the demo still moves here, at real speed, from wherever the test sets it (a Retry-After
    ends when that much real time passed or the test moved its clock on that far)."""
    if isinstance(clock, FrozenClock):
        return lambda: clock.now().timestamp() + (time.monotonic() - _ORIGIN)
    return time.time


def build_pacer(core: Core, *, mode: str, speed: float) -> Pacer | None:
    """The pacer the settings ask for: `shared` (the database), `process`, or `off`."""
    if mode == "off":
        return None
    store = BudgetStore(core) if mode == "shared" else MemoryBudget()
    return Pacer(store, speed=speed, clock=pacing_clock(core.clock))


def outbox_priority(kind: OutboxKind, payload: Mapping[str, Any]) -> Priority:
    """How urgent the calls of an outbox message are: people before decoration."""
    if kind in (OutboxKind.MANAGER_ALERT, OutboxKind.SLA_ALERTS):
        return Priority.PEOPLE
    if kind in (OutboxKind.STAFF_THREAD_POST, OutboxKind.CUSTOMER_THREAD_POST):
        return Priority.PEOPLE if payload.get("event") == "reply" else Priority.NOTICE
    if kind is OutboxKind.STAFF_CARD_REFRESH:
        return Priority.DECORATION
    return Priority.NOTICE
