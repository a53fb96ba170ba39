"""The bot's long-lived dependencies, built once per process and handed to listeners."""

from __future__ import annotations

import asyncio
import inspect
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
    work_slots: asyncio.Semaphore | None = None
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
        slot, and report any exception it raises to the person (bot.errors.report_error).

        Bolt keeps running listeners after the ack, so the count is how a graceful stop, the
        demo and the tests know that all work has finished. Exceptions must not escape: when a
        listener fails right after ack(), bolt can lose the ack and answer Slack late with 404.
        The wrapper asks bolt for `context` (declared through its signature) to report errors.
        With `work_slots`, what a listener does after its ack() waits for a free slot (events,
        acked by bolt before they run, wait at the start): acks are never held back."""
        signature = inspect.signature(listener)
        wants_context = "context" in signature.parameters

        async def supervised(**kwargs: Any) -> Any:
            context = kwargs.get("context") if wants_context else kwargs.pop("context", None)
            self.in_flight += 1
            self.idle.clear()
            slots, held = self.work_slots, False
            try:
                if slots is not None:
                    ack = kwargs.get("ack")
                    if ack is None:  # events: bolt has acked already
                        await slots.acquire()
                        held = True
                    else:

                        async def ack_then_queue(*args: Any, **fields: Any) -> Any:
                            nonlocal held
                            answer = await ack(*args, **fields)
                            if not held:
                                await slots.acquire()
                                held = True
                            return answer

                        kwargs["ack"] = ack_then_queue
                return await listener(**kwargs)
            except Exception as error:
                await report_error(self, error, context)
                return None
            finally:
                if held:
                    assert slots is not None
                    slots.release()
                self.in_flight -= 1
                if self.in_flight == 0:
                    self.idle.set()

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
