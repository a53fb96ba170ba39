"""The app factory and the HTTP server: bolt listeners on POST /slack/events, health checks,
the outbox worker and the SLA scheduler, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text

from bot import channel_guard, connect
from bot.delivery import OutboxWorker
from bot.errors import Place, remember_message_thread, report_error, show_error
from bot.http_limits import BodyRefused, ConnectionGuard
from bot.identity import RequestProfile
from bot.listeners import register_listeners
from bot.listeners.registry import Registry
from bot.logs import REQUEST_ID
from bot.metrics import CONTENT_TYPE, BotMetrics, RequestInfo, describe_request
from bot.notify import slack_error_code
from bot.request_shape import well_formed
from bot.respond import ClientSessionView, PooledRespond
from bot.runtime import Runtime, WorkSlots, build_runtime
from bot.settings import BotSettings
from bot.slack_reach import SlackUnreachable, Sleep, ask_slack_patiently
from bot.slack_reach import start_retry_delays as start_retry_delays_for
from bot.staff_channel import StaffChannelGuard
from core.clock import Clock
from core.context import Core
from core.errors import DomainError
from core.results import UserView
from core.surfaces import SurfaceProblem, SurfaceState
from migrations import run_migrations

log = logging.getLogger("bot.app")
access_log = logging.getLogger("bot.access")


# Interaction payloads whose listeners act as the user who sent them.
_ACTOR_PAYLOADS = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}
)


# What bolt raises while reading a body of an unexpected shape (before any listener runs).
_MALFORMED = (ValueError, TypeError, AttributeError, KeyError, IndexError)


class DeferredLookup:
    """`resolve(user_id)`, started when first awaited (and shared by later awaits)."""

    def __init__(self, resolve: Callable[[str], Awaitable[UserView]], user_id: str) -> None:
        self._resolve = resolve
        self._user_id = user_id
        self._task: asyncio.Future[UserView] | None = None

    def start(self) -> asyncio.Future[UserView]:
        if self._task is None:
            self._task = asyncio.ensure_future(self._resolve(self._user_id))
            self._task.add_done_callback(_retrieved)
        return self._task

    def __await__(self) -> Generator[Any, None, UserView]:
        return self.start().__await__()


def _retrieved(lookup: asyncio.Future[Any]) -> None:
    """Mark a lookup's failure as seen (the listener that awaits it reports it)."""
    if not lookup.cancelled():
        lookup.exception()


class StartupError(Exception):
    """The bot must not start; the message says why in plain words."""


@contextlib.contextmanager
def _bolt_reads_no_token_from_the_environment() -> Iterator[None]:
    """AsyncApp falls back to SLACK_BOT_TOKEN from the environment and then warns that it will
    not use it, since the app is given its client (which holds the token of our settings,
    perhaps read from .env). Hidden while the app is built, restored right after."""
    token = os.environ.pop("SLACK_BOT_TOKEN", None)
    try:
        yield
    finally:
        if token is not None:
            os.environ["SLACK_BOT_TOKEN"] = token


def build_app(settings: BotSettings, runtime: Runtime) -> tuple[AsyncApp, Registry]:
    """A bolt AsyncApp with the actor middleware, every listener and the error handler."""
    with _bolt_reads_no_token_from_the_environment():
        app = AsyncApp(
            signing_secret=settings.signing_secret if settings.slack_signing_secret else "",
            client=runtime.client,
            # Signatures are checked once, by BotServer._handle_slack before the body is even
            # parsed (over HTTP, every request reaches bolt through it).
            request_verification_enabled=False,
            # Bolt answers when the listener returns: Runtime.supervise returns at the ack and
            # lets the listener go on (bolt would otherwise poll for the ack every 10 ms).
            process_before_response=True,
            logger=logging.getLogger("bot.bolt"),
        )

    @app.middleware
    async def resolve_actor(
        context: AsyncBoltContext,
        body: dict[str, Any],
        next: Callable[[], Awaitable[BoltResponse | None]],
    ) -> BoltResponse | None:
        """Put the acting core user into `context["actor"]` for commands and interactions."""
        if context.response_url and runtime.http is not None:
            context["respond"] = PooledRespond(
                response_url=context.response_url,
                session=runtime.http,
                timeout=settings.slack_api_timeout_seconds,
            )
        if body.get("type") == "event_callback" or body.get("event"):
            remember_message_thread(context, body)
            return await next()
        if not context.user_id:
            if body.get("command") or body.get("type") in _ACTOR_PAYLOADS:
                # Every listener below needs the actor: a request without a user is malformed.
                return BoltResponse(status=400, body="the request names no user")
            return await next()
        if body.get("command"):
            # A slash command is acked without its actor: the listener looks it up after its
            # ack (bot.listeners.commands), in its turn for a work slot, so that nothing of the
            # database is read before the ack. Rights are still read fresh, by the lookup and
            # by the core service the listener calls.
            lookup = DeferredLookup(runtime.identity.resolve, context.user_id)
            if not runtime.identity.profile_is_fresh(context.user_id):
                # users.info is due: started now, so that a burst of this person's commands
                # shares one call (bot.identity).
                lookup.start()
            context["actor_lookup"] = lookup
            return await next()
        try:
            context["actor"] = await connect.resolve_in_channel(
                runtime,
                context.user_id,
                context.channel_id,
                form=body.get("type") == "view_submission",
                hint=RequestProfile.of_payload(body),
            )
        except DomainError as error:
            view = body.get("view")
            if body.get("type") == "view_submission" and isinstance(view, dict):
                # The modal's answer is this response: the reason under a field keeps the
                # modal (and what was typed) open.
                answer: dict[str, Any] = {}

                async def answer_modal(**fields: Any) -> None:
                    answer.update(fields)

                place = Place.of_request(context, ack=answer_modal, view=view)
                await show_error(runtime, error, place)
                return BoltResponse(status=200, body=answer or "")
            if context.ack is not None:
                await context.ack()
            await show_error(runtime, error, Place.of_request(context))
            return BoltResponse(status=200, body="")
        return await next()

    @app.error
    async def on_bolt_error(error: Exception, context: AsyncBoltContext) -> None:
        await report_error(runtime, error, context)

    registry = register_listeners(app, runtime)
    return app, registry


class BotServer:
    """The running bot: HTTP endpoint, outbox worker and optional scheduler.

    Tests and the demo start it exactly as production does, only on a loopback port."""

    def __init__(
        self,
        settings: BotSettings,
        *,
        core: Core | None = None,
        clock: Clock | None = None,
        run_worker: bool = True,
        run_scheduler: bool | None = None,
        migrate: bool = True,
        start_retry_delays: Sequence[float] | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        # Waits between start-up attempts to reach Slack (tests inject a sleep that records).
        if start_retry_delays is None:
            start_retry_delays = start_retry_delays_for(settings.slack_start_attempts)
        self.start_retry_delays = tuple(start_retry_delays)
        self.sleep = sleep
        if core is None:
            core = Core.from_settings(settings, clock)
        self.core = core
        self.runtime: Runtime | None = None
        self.app: AsyncApp | None = None
        self.registry: Registry | None = None
        self.worker: OutboxWorker | None = None
        self.run_worker = run_worker
        self.run_scheduler = settings.run_scheduler if run_scheduler is None else run_scheduler
        self.migrate = migrate
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler: Any = None
        self._socket_handler: Any = None
        self.base_url = ""
        self.team_id: str | None = None
        self.metrics = BotMetrics()
        self.http_guard = ConnectionGuard.from_settings(settings)
        # The last auth.test: None when it succeeded, else what Slack said; /readyz repeats it
        # at most every READINESS_SLACK_RECHECK_SECONDS.
        self.slack_problem: str | None = "auth.test has not run"
        self._slack_checked_at: datetime | None = None
        self._slack_check_lock = asyncio.Lock()
        # Rechecks the staff channel periodically and on Slack's channel events (set by start).
        self.staff_channel: StaffChannelGuard | None = None

    async def check_slack(self, runtime: Runtime) -> None:
        """auth.test, then the staff channel must exist, be private and have the bot in it.

        What the check saw is recorded for every replica (bot.staff_channel): a channel found
        public here holds staff messages everywhere before this process refuses to start, and
        one found safe again releases what an earlier exposure held."""
        api_url = self.settings.slack_api_url
        try:
            auth = await ask_slack_patiently(
                runtime.client.auth_test,
                method="auth.test",
                api_url=api_url,
                timeout_seconds=self.settings.slack_api_timeout_seconds,
                delays=self.start_retry_delays,
                sleep=self.sleep,
            )
        except SlackUnreachable as failure:
            raise StartupError(str(failure)) from None
        except SlackApiError as error:
            raise StartupError(
                f"Slack refused the bot token (auth.test: {slack_error_code(error)}). "
                "Check SLACK_BOT_TOKEN."
            ) from None
        self.team_id = auth.get("team_id")
        runtime.identity.team_id = self.team_id
        self.slack_problem = None
        self._slack_checked_at = self.core.clock.now()
        guard = StaffChannelGuard(runtime, bot_user_id=auth.get("user_id"))
        channel = guard.channel_id
        observed_at = self.core.clock.now()
        try:
            verdict = await ask_slack_patiently(
                guard.inspect,
                method="conversations.info",
                api_url=api_url,
                timeout_seconds=self.settings.slack_api_timeout_seconds,
                delays=self.start_retry_delays,
                sleep=self.sleep,
            )
        except SlackUnreachable as failure:
            raise StartupError(str(failure)) from None
        except SlackApiError as error:
            raise StartupError(
                f"STAFF_CHANNEL_ID {channel}: conversations.info failed "
                f"({slack_error_code(error)}). Invite the bot to the private staff channel."
            ) from None
        await guard.record(verdict, observed_at=observed_at, cause="start-up")
        if verdict.problem is SurfaceProblem.PUBLIC:
            raise StartupError(
                f"STAFF_CHANNEL_ID {channel} is a public channel. Internal notes are posted "
                "there, so it must be private: use a private channel and invite the bot."
            )
        self.staff_channel = runtime.staff_channel = guard

    async def start(self) -> str:
        """Migrate, check Slack, start serving; returns the base URL."""
        missing = self.settings.missing_for_serving()
        if missing:
            raise StartupError("Missing settings: " + ", ".join(missing))
        if self.migrate:
            await run_migrations(self.settings.database_url)
        runtime = build_runtime(self.settings, core=self.core)
        timeout = aiohttp.ClientTimeout(total=self.settings.slack_api_timeout_seconds)
        runtime.http = aiohttp.ClientSession(timeout=timeout)
        shared = ClientSessionView(runtime.http, runtime.client)  # Web API calls reuse it too
        runtime.client.session = shared  # type: ignore[assignment]
        pool = self.settings.database_pool_size
        # Work after the ack may hold at most this many connections: the rest of the pool and
        # its overflow stay free for what must happen before an ack (validating a form) and
        # for the outbox worker, so a backlog of slow work never delays Slack's 3-second ack.
        # Kept within the pool's steady size: an overflow connection is closed as soon as it
        # is returned, and under a sustained load profiles showed them opened and closed again
        # and again (docs/benchmarks.md, issue 16).
        runtime.work_slots = WorkSlots(max(1, pool - max(2, pool // 4)))
        runtime.metrics = self.metrics
        self.metrics.watch_in_flight(lambda: runtime.in_flight)
        self.runtime = runtime
        reserved = await channel_guard.reserved_channel_problem(
            runtime.core,
            staff_channel_id=self.settings.staff_channel_id,
            manager_channel_id=self.settings.manager_channel_id,
        )
        if reserved:
            raise StartupError(reserved + ".")
        await self.check_slack(runtime)
        self.app, self.registry = build_app(self.settings, runtime)
        web_app = web.Application(middlewares=[self.http_guard.middleware])
        web_app.router.add_post("/slack/events", self._handle_slack)
        web_app.router.add_get("/healthz", self._healthz)
        web_app.router.add_get("/readyz", self._readyz)
        if self.settings.metrics_enabled:
            web_app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(web_app, access_log=None, **self.http_guard.handler_options())
        await self._runner.setup()
        site = self.http_guard.site(self._runner, self.settings.host, self.settings.port)
        await site.start()
        bound = [a for a in self._runner.addresses if isinstance(a, tuple) and len(a) >= 2]
        port = int(bound[0][1]) if bound else self.settings.port
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        self.base_url = f"http://{host}:{port}"
        if self.run_worker:
            self.worker = OutboxWorker(runtime)
            self._tasks.append(asyncio.create_task(self.worker.run_forever()))
        if self.staff_channel is not None:
            self._tasks.append(asyncio.create_task(self.staff_channel.run_forever()))
        if self.run_scheduler:
            from bot.scheduler import build_scheduler

            self._scheduler = build_scheduler(
                self.core,
                interval_seconds=self.settings.sla_scan_interval_seconds,
                on_alerts=runtime.wake_outbox,
            )
            self._scheduler.start()
        log.info("ticketbot serving", extra={"url": self.base_url})
        return self.base_url

    async def connect_socket_mode(self) -> Any:
        """Socket Mode (SLACK_APP_TOKEN): receive Slack's payloads over a WebSocket instead of
        the HTTP endpoint; the same app, listeners and acks serve both."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        assert self.app is not None and self.settings.slack_app_token is not None
        handler = AsyncSocketModeHandler(self.app, self.settings.slack_app_token.get_secret_value())
        await handler.connect_async()  # type: ignore[no-untyped-call]
        self._socket_handler = handler
        return handler

    async def stop(self) -> None:
        if self._socket_handler is not None:
            await self._socket_handler.close_async()
            self._socket_handler = None
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self.worker is not None:
            self.worker.stop()
        if self.staff_channel is not None:
            self.staff_channel.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._runner is not None:
            await self._runner.cleanup()
        session = getattr(self.runtime.client, "session", None) if self.runtime else None
        if session is not None:
            await session.close()

    async def _handle_slack(self, request: web.Request) -> web.Response:
        """Dispatch to bolt, timing the ack; one access-log line and one metric per request.

        The request id is returned as X-Request-Id, passed to listeners as
        context["request_id"] and attached to every log record written while handling it."""
        assert self.app is not None
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        reset = REQUEST_ID.set(request_id)
        info = RequestInfo("other")
        status = 500
        slots = self.runtime.work_slots if self.runtime is not None else None
        serving = slots.serving if isinstance(slots, WorkSlots) else None
        if serving is not None:
            serving(+1)  # work after other requests' acks waits while this one is answered
        try:
            try:
                body = await self.http_guard.read_unsigned_body(request)
            except BodyRefused as refusal:  # too large, too slow or cut off: never parsed
                status = refusal.status
                response = refusal.response()
                response.headers["X-Request-Id"] = request_id
                return response
            if not self._signed(request.headers, body):
                # Checked before the body is even parsed: whatever it holds, unsigned is 401.
                status = 401
                response = web.Response(status=401, text="invalid request signature")
            else:
                try:
                    bolt_request = AsyncBoltRequest(  # from the body read above, not re-read
                        body=body.decode(request.charset or "utf-8"),
                        query=request.query_string,
                        headers=request.headers,  # type: ignore[arg-type]
                    )
                    if not well_formed(bolt_request.body):
                        raise ValueError("a field of an unexpected type")
                    info = describe_request(bolt_request.body)
                    bolt_request.context["request_id"] = request_id
                    bolt_response = await self.app.async_dispatch(bolt_request)
                except _MALFORMED:
                    # Neither a form nor JSON, or a shape bolt cannot read (payload=null, a
                    # list, "actions": 7): refused before any listener ran.
                    log.warning("unreadable request body", extra={"kind": info.kind})
                    status = 400
                    response = web.Response(status=400, text="malformed request body")
                else:
                    status = bolt_response.status
                    response = await to_aiohttp_response(bolt_response)
            response.headers["X-Request-Id"] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe_request(info.kind, status, elapsed)
            line: dict[str, object] = {
                "request_id": request_id,
                "kind": info.kind,
                "action": info.action,
                "user": info.user,
                "status": status,
                "latency_ms": round(elapsed * 1000, 1),
            }
            retry = request.headers.get("X-Slack-Retry-Num")
            if retry:
                line["retry_num"] = retry[:8]
            access_log.info("slack request", extra=line)
            REQUEST_ID.reset(reset)
            if serving is not None:
                serving(-1)

    def _signed(self, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether a body carries a valid, fresh Slack signature (the only check: bolt's own
        is off, see build_app)."""
        if self.settings.socket_mode:
            return True
        verifier = SignatureVerifier(self.settings.signing_secret)
        try:
            return verifier.is_valid_request(body, dict(headers))
        except (ValueError, TypeError):  # a timestamp that is not a number
            return False

    async def _healthz(self, request: web.Request) -> web.Response:
        """The process is alive and its event loop answers."""
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        """Ready to take traffic, judged by what this process can do: its database answers,
        Slack accepts the token, the staff channel is safe for notes (as any replica last
        found it), and its delivery worker, when it runs one, is looping. 503 names every
        failing check. The outbox backlog is no criterion: one person can fill it for every
        replica alike (it is the ticketbot_outbox_backlog metric)."""
        database, slack = await asyncio.gather(self._database_check(), self._slack_check())
        checks = {**database, "slack": slack or "ok"}
        worker = self._worker_check()
        if worker is not None:
            checks["worker"] = worker
        failing = sorted(name for name, state in checks.items() if state != "ok")
        body: dict[str, Any] = {"status": "unready" if failing else "ok", "checks": checks}
        if failing:
            body["failing"] = failing
        return web.json_response(body, status=503 if failing else 200)

    async def _database_check(self) -> dict[str, str]:
        """The database answers `SELECT 1`; the staff channel as last recorded there (this
        process's own last check when the database does not answer)."""
        timeout = self.settings.health_timeout_seconds
        guard = self.staff_channel

        async def ping_and_read() -> SurfaceState | None:
            async with self.core.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            return await guard.state() if guard is not None else None

        try:
            state = await asyncio.wait_for(ping_and_read(), timeout=timeout)
        except TimeoutError:
            database, state = f"no answer within {timeout:g} s", None
        except Exception as error:
            database, state = f"unreachable ({type(error).__name__})", None
        else:
            database = "ok"
        problem = guard.describe(state) if guard is not None else "not checked yet"
        return {"database": database, "staff_channel": problem or "ok"}

    def _worker_check(self) -> str | None:
        """Whether this process's delivery worker loops (None when it runs none): a pass
        starts at least every OUTBOX_POLL_SECONDS, and a long one renews its leases."""
        worker = self.worker
        if worker is None:
            return None
        if not worker.running:
            return "the delivery worker is not running"
        limit = max(self.settings.outbox_lease_seconds, 3 * self.settings.outbox_poll_seconds)
        quiet = worker.seconds_since_pass()
        if quiet > limit:
            return f"the delivery worker has not run for {quiet:.0f} s (limit {limit:g} s)"
        return "ok"

    async def _slack_check(self) -> str | None:
        """None when Slack accepts the token. auth.test is repeated at most every
        READINESS_SLACK_RECHECK_SECONDS; a refusal (invalid_auth, token_revoked, ...) makes the
        replica unready, while a network failure or a Slack outage keeps the last result: acks
        do not need Slack, and taking every replica out of the load balancer would not help."""
        runtime = self.runtime
        if runtime is None:
            return self.slack_problem
        async with self._slack_check_lock:
            now = self.core.clock.now()
            last = self._slack_checked_at
            interval = self.settings.readiness_slack_recheck_seconds
            if last is not None and (now - last).total_seconds() < interval:
                return self.slack_problem
            try:
                await asyncio.wait_for(
                    runtime.client.auth_test(), timeout=self.settings.health_timeout_seconds
                )
            except SlackApiError as error:
                code = slack_error_code(error) or ""
                if getattr(error.response, "status_code", 200) == 200 and code != "ratelimited":
                    self.slack_problem = f"auth.test refused the token: {code}"
                else:
                    log.warning("readiness: auth.test failed", extra={"error": code})
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                log.warning("readiness: Slack unreachable", extra={"error": type(error).__name__})
            else:
                self.slack_problem = None
            self._slack_checked_at = now
            return self.slack_problem

    async def _metrics(self, request: web.Request) -> web.Response:
        limit = self.settings.health_timeout_seconds
        body = await self.metrics.render(self.core, time_limit=limit)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
