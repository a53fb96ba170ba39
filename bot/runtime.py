"""The bot's long-lived dependencies, built once per process and handed to listeners."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.directory import SlackDirectory
from bot.errors import report_error
from bot.identity import IdentityResolver
from bot.pacing import PacedWebClient, build_pacer
from bot.settings import BotSettings
from core.clock import Clock
from core.context import Core

if TYPE_CHECKING:
    from bot.metrics import BotMetrics
    from bot.staff_channel import StaffChannelGuard

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

# While requests are being answered, work after the ack waits for them: at most this many
# listeners do their work at once (the rest queue), unless the oldest queued work has waited
# WORK_MAX_WAIT_SECONDS (then the whole `size` runs again, so that work is never starved and
# the queue stays short).
WORK_WHILE_SERVING = 2
WORK_MAX_WAIT_SECONDS = 2.0


class WorkSlots:
    """Admission of what listeners do after their ack (and of events, acked by bolt before
    they run): acks first.

    A semaphore of `size` (the share of the database pool that work may hold), narrowed to
    `while_serving` while HTTP requests are in progress (`serving()` counts them), so that
    the CPU goes to acking first and the work catches up between requests. The narrowing ends
    as soon as the oldest waiting work has waited `max_wait` seconds: under a sustained load
    work and acks share the process again, and the queue holds at most about `max_wait`
    seconds of requests."""

    def __init__(
        self,
        size: int,
        *,
        while_serving: int = WORK_WHILE_SERVING,
        max_wait: float = WORK_MAX_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.while_serving = min(size, while_serving)
        self.max_wait = max_wait
        self.clock = clock
        self.busy = 0
        self.requests = 0
        self._waiters: deque[tuple[float, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def capacity(self) -> int:
        if self.requests == 0:
            return self.size
        if self._waiters and self.clock() - self._waiters[0][0] >= self.max_wait:
            return self.size
        return self.while_serving

    async def acquire(self) -> None:
        if not self._waiters and self.busy < self.capacity():
            self.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.clock(), waiter)
        self._waiters.append(entry)
        self._wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just before the cancellation: give it back
            else:
                self._waiters.remove(entry)
            raise

    def release(self) -> None:
        self.busy -= 1
        self._wake()

    def serving(self, change: int) -> None:
        """An HTTP request started (+1) or was answered (-1)."""
        self.requests += change
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.busy < self.capacity():
            _, waiter = self._waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)


@dataclass
class Runtime:
    """What listeners, the delivery worker and the scheduler share."""

    settings: BotSettings
    core: Core
    client: AsyncWebClient
    identity: IdentityResolver
    outbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: BotMetrics | None = None  # set by BotServer; the outbox worker counts into it
    # One keep-alive HTTP connection pool for Web API calls and response_url answers (set by
    # BotServer.start, which runs in the event loop; closed by BotServer.stop).
    http: aiohttp.ClientSession | None = None
    # How many listeners may work at once once they have acked (set by BotServer to the
    # database pool's size): under a burst the acks still go out at once, the work queues
    # here instead of in the event loop and the connection pool.
    work_slots: WorkSlots | asyncio.Semaphore | None = None
    # Listeners still working after their ack (kept referenced until they finish).
    _running: set[asyncio.Future[None]] = field(default_factory=set)
    # Checks that the staff channel is still safe for notes (set by BotServer at start).
    staff_channel: StaffChannelGuard | None = None
    # Names of the people and channels messages mention (bot.incoming), cached.
    directory: SlackDirectory = field(init=False)

    def __post_init__(self) -> None:
        self.directory = SlackDirectory(self.client)

    @property
    def clock(self) -> Clock:
        return self.core.clock

    def supervise(self, listener: F) -> F:
        """Wrap a listener: count it while it runs, queue its work after the ack for a work
        slot, report any exception it raises to the person (bot.errors.report_error), and
        return to bolt as soon as the listener has acked.

        The app runs with bolt's process_before_response (bot.app.build_app): bolt answers
        Slack when the listener returns, and the wrapper returns when the listener has called
        ack() (or has finished, or at once for events, which take no ack and are acked by
        bolt), while the listener goes on in a task of its own. So the ack goes out the moment
        it is made, with none of the 10 ms polling bolt otherwise does for it.
        The count is how a graceful stop, the demo and the tests know that all work has
        finished. Exceptions must not escape: when a listener fails right after ack(), bolt
        can lose the ack. The wrapper asks bolt for `context` (declared through its
        signature) to report errors. With `work_slots`, what a listener does after its ack()
        waits for a free slot (events wait at the start): acks are never held back."""
        signature = inspect.signature(listener)
        wants_context = "context" in signature.parameters

        async def supervised(**kwargs: Any) -> Any:
            context = kwargs.get("context") if wants_context else kwargs.pop("context", None)
            self.in_flight += 1
            self.idle.clear()
            slots, held = self.work_slots, False
            ack = kwargs.get("ack")
            acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def answered(_: object = None) -> None:
                if not acked.done():
                    acked.set_result(None)

            if ack is not None:

                async def ack_then_queue(*args: Any, **fields: Any) -> Any:
                    nonlocal held
                    answer = await ack(*args, **fields)
                    answered()
                    if slots is not None and not held:
                        await slots.acquire()
                        held = True
                    return answer

                kwargs["ack"] = ack_then_queue

            async def run() -> None:
                nonlocal held
                try:
                    if slots is not None and ack is None:  # events: acked by bolt
                        await slots.acquire()
                        held = True
                    await listener(**kwargs)
                except Exception as error:
                    await report_error(self, error, context)
                finally:
                    if held:
                        assert slots is not None
                        slots.release()
                    self.in_flight -= 1
                    if self.in_flight == 0:
                        self.idle.set()

            task = asyncio.ensure_future(run())
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(answered)
            if ack is not None:
                await asyncio.shield(acked)
            return None

        parameters = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for name in [*signature.parameters, *([] if wants_context else ["context"])]
        ]
        # bolt passes a listener the arguments its signature names.
        cast(Any, supervised).__signature__ = inspect.Signature(parameters)
        supervised.__name__ = getattr(listener, "__name__", "listener")
        supervised.__qualname__ = getattr(listener, "__qualname__", supervised.__name__)
        return cast(F, supervised)

    async def wait_idle(self) -> None:
        """Return once no listener is running."""
        while self.in_flight:
            await self.idle.wait()

    def wake_outbox(self) -> None:
        """Tell the delivery worker that a change just committed outbox messages."""
        self.outbox_wake.set()


def build_runtime(
    settings: BotSettings, *, core: Core | None = None, team_id: str | None = None
) -> Runtime:
    core = core or Core.from_settings(settings)
    client = PacedWebClient(
        token=settings.bot_token if settings.slack_bot_token else None,
        base_url=settings.slack_api_url,
        timeout=settings.slack_api_timeout_seconds,  # type: ignore[arg-type]
    )
    client.pacer = build_pacer(core, mode=settings.slack_pacing, speed=settings.slack_pacing_speed)
    identity = IdentityResolver(
        core,
        client,
        admin_ids=settings.admin_user_ids,
        ttl_seconds=settings.identity_cache_seconds,
        team_id=team_id,
    )
    return Runtime(settings=settings, core=core, client=client, identity=identity)
