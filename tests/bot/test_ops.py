"""Operations endpoints of the running bot: /healthz, /readyz and /metrics, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.ids import Action
from bot.metrics import OUTCOMES, REQUEST_KINDS
from core import sla
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Status
from devslack.stage import AGENT, CUSTOMER, MANAGER_CHANNEL, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import detail, open_ticket
from tests.conftest import settings_for as core_settings
from tests.conftest import truncate_all

MakeStage = Callable[..., Awaitable[Stage]]


@pytest.fixture
async def make_stage(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[MakeStage]:
    """A Stage with settings overrides (time-outs, ...), optionally with the server's own
    delivery worker loop running (`run_worker_task`)."""
    started: list[Stage] = []

    async def make(*, run_worker_task: bool = False, **overrides: Any) -> Stage:
        core = Core(db=database, settings=core_settings(database_url), clock=clock)
        stage = Stage(
            database_url=database_url,
            clock=clock,
            core=core,
            settings_overrides=overrides,
            run_worker_task=run_worker_task,
        )
        await stage.start()
        started.append(stage)
        return stage

    try:
        yield make
    finally:
        try:
            for stage in started:
                await stage.stop()
        finally:
            await truncate_all(database)


async def get(stage: Stage, path: str) -> tuple[int, dict[str, str], Any]:
    assert stage.server is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(stage.server.base_url + path) as response,
    ):
        body: Any = await response.text()
        if response.content_type == "application/json":
            body = await response.json()
        return response.status, dict(response.headers), body


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(stage: Stage) -> Samples:
    status, headers, body = await get(stage, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def hanging_database() -> tuple[asyncio.Server, str]:
    """A TCP server that accepts connections and never answers: a database that hangs."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"postgresql+asyncpg://postgres@127.0.0.1:{port}/hangs"


# ------------------------------------------------------------------------------------ health


async def test_healthz_answers_ok_while_the_process_runs(stage):
    status, _, body = await get(stage, "/healthz")
    assert status == 200 and body == {"status": "ok"}


async def test_readyz_is_ok_when_database_slack_and_staff_channel_are_fine(stage):
    status, _, body = await get(stage, "/readyz")
    assert status == 200
    # This stage's server runs no delivery worker of its own: there is no worker check.
    assert body == {
        "status": "ok",
        "checks": {"database": "ok", "staff_channel": "ok", "slack": "ok"},
    }


async def test_readyz_ignores_the_outbox_backlog_which_stays_a_metric(stage):
    customer = stage.user(CUSTOMER)
    # Open a ticket without letting the worker deliver: card and confirmation wait.
    await stage.send(customer.slash_command("new Printer on fire", channel_id=stage.dm(CUSTOMER)))
    await stage.runtime.wait_idle()
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    values = {"title_block": {"title": "Printer on fire"}, "priority_block": {"priority": "high"}}
    await stage.send(customer.submit(view.to_api(), values))
    await stage.runtime.wait_idle()

    status, _, body = await get(stage, "/readyz")
    assert status == 200, body
    assert "outbox" not in body["checks"]
    assert value(await scrape(stage), "ticketbot_outbox_backlog") == 2


async def test_readyz_checks_the_delivery_worker_of_its_own_process(make_stage):
    stage = await make_stage(run_worker_task=True)
    assert stage.server is not None and stage.server.worker is not None
    status, _, body = await get(stage, "/readyz")
    assert status == 200 and body["checks"]["worker"] == "ok"

    stage.server.worker.stop()  # the loop ends: this process delivers nothing any more
    for _ in range(100):
        if not stage.server.worker.running:
            break
        await asyncio.sleep(0.01)
    status, _, body = await get(stage, "/readyz")
    assert status == 503
    assert body["failing"] == ["worker"]
    assert body["checks"]["worker"] == "the delivery worker is not running"


async def test_readyz_is_503_when_the_delivery_worker_of_its_process_is_stuck(
    make_stage, monkeypatch
):
    stage = await make_stage(
        run_worker_task=True, outbox_lease_seconds=0.1, outbox_poll_seconds=0.02
    )
    assert (await get(stage, "/readyz"))[0] == 200
    stuck = asyncio.Event()

    async def claim_that_never_returns(*args: Any, **kwargs: Any) -> list[Any]:
        stuck.set()
        await asyncio.Event().wait()
        return []

    monkeypatch.setattr("core.outbox.claim_batch", claim_that_never_returns)
    await asyncio.wait_for(stuck.wait(), timeout=5)
    await asyncio.sleep(0.3)  # past the limit: max(lease, 3 polls) = 0.1 s
    status, _, body = await get(stage, "/readyz")
    assert status == 503 and body["failing"] == ["worker"]
    assert body["checks"]["worker"].startswith("the delivery worker has not run for")


async def test_readyz_is_503_when_slack_refuses_the_token_on_the_next_recheck(stage, clock):
    stage.fake.fail_for("auth.test", error="invalid_auth")
    # The start-up auth.test is remembered for READINESS_SLACK_RECHECK_SECONDS (60 s).
    asked = len(stage.fake.calls_to("auth.test"))
    status, _, _ = await get(stage, "/readyz")
    assert status == 200
    assert len(stage.fake.calls_to("auth.test")) == asked

    clock.advance(seconds=61)
    status, _, body = await get(stage, "/readyz")
    assert status == 503
    assert body["failing"] == ["slack"]
    assert body["checks"]["slack"] == "auth.test refused the token: invalid_auth"

    stage.fake.clear_faults()
    clock.advance(seconds=30)  # still within the interval: the refusal is remembered
    assert (await get(stage, "/readyz"))[0] == 503
    clock.advance(seconds=31)
    assert (await get(stage, "/readyz"))[0] == 200


async def test_readyz_stays_ready_when_slack_is_only_briefly_unavailable(stage, clock):
    stage.fake.fail_for("auth.test", status=500)
    clock.advance(seconds=61)
    status, _, body = await get(stage, "/readyz")
    assert status == 200, body
    assert stage.fake.calls_to("auth.test")[-1].injected  # it did ask Slack


async def test_readyz_and_metrics_answer_promptly_while_the_database_hangs(make_stage):
    stage = await make_stage(health_timeout_seconds=0.3)
    assert stage.server is not None
    server, url = await hanging_database()
    real_core = stage.server.core
    hung = Core(db=Database(url), settings=core_settings(url), clock=real_core.clock)
    stage.server.core = hung
    try:
        readiness = await asyncio.wait_for(get(stage, "/readyz"), timeout=5)
        samples = await asyncio.wait_for(scrape(stage), timeout=5)
    finally:
        stage.server.core = real_core
        await hung.close()
        server.close()
    status, _, body = readiness
    assert status == 503
    assert body["checks"]["database"] == "no answer within 0.3 s"
    assert "database" in body["failing"]
    assert value(samples, "ticketbot_database_up") == 0
    assert value(samples, "ticketbot_outbox_backlog") is None  # not a stale figure
    assert value(samples, "ticketbot_slack_requests_total", kind="command", outcome="ok") == 0


async def test_readyz_names_an_unreachable_database(make_stage):
    stage = await make_stage()
    assert stage.server is not None
    real_core = stage.server.core
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    gone = Core(db=Database(url), settings=core_settings(url), clock=real_core.clock)
    stage.server.core = gone
    try:
        status, _, body = await get(stage, "/readyz")
    finally:
        stage.server.core = real_core
        await gone.close()
    assert status == 503
    assert body["checks"]["database"].startswith("unreachable (")
    assert body["failing"] == ["database"]  # the staff channel: this process's own last check


# ------------------------------------------------------------------------------------ metrics


async def test_metrics_scraped_during_a_scenario_count_requests_deliveries_and_tickets(
    stage, clock
):
    before = await scrape(stage)
    assert value(before, "ticketbot_slack_requests_total", kind="command", outcome="ok") == 0
    assert value(before, "ticketbot_tickets", status="open") == 0

    opened = await open_ticket(stage)  # a slash command, then a modal submission
    agent = stage.user(AGENT)
    await stage.act(agent.click(Action.ASSIGN_TO_ME, message=opened.card, channel_id=STAFF_CHANNEL))
    await stage.act(agent.says(STAFF_CHANNEL, "!reply Try again now", thread_ts=opened.card.ts))
    # A request whose signature does not match is refused with 401.
    forged = await stage.send(
        stage.user(CUSTOMER).slash_command("list", channel_id=stage.dm(CUSTOMER)),
        headers={"X-Slack-Signature": "v0=" + "0" * 64},
    )
    assert forged.status == 401
    headers = {name.lower(): text for name, text in forged.headers.items()}
    assert len(headers["x-request-id"]) == 32

    during = await scrape(stage)
    requests = "ticketbot_slack_requests_total"
    assert value(during, requests, kind="command", outcome="ok") == 1
    # Refused whatever its body claims to be (an unverified body may be counted as "other").
    assert sum(value(during, requests, kind=k, outcome="refused") for k in REQUEST_KINDS) == 1
    assert value(during, requests, kind="view_submission", outcome="ok") == 1
    assert value(during, requests, kind="block_actions", outcome="ok") == 1
    assert value(during, requests, kind="event", outcome="ok") == 1
    assert value(during, requests, kind="shortcut", outcome="ok") == 0
    # Every request answered is timed, forged ones included.
    answered = sum(
        value(during, requests, kind=k, outcome=o) for k in REQUEST_KINDS for o in OUTCOMES
    )
    timed = sum(value(during, "ticketbot_slack_ack_seconds_count", kind=k) for k in REQUEST_KINDS)
    assert answered == timed == 5
    assert value(during, "ticketbot_slack_ack_seconds_bucket", kind="command", le="+Inf") >= 1
    assert value(during, "ticketbot_slack_ack_seconds_sum", kind="command") > 0
    status = (await detail(stage, opened.number)).ticket.status.value
    assert value(during, "ticketbot_tickets", status=status) == 1
    assert sum(value(during, "ticketbot_tickets", status=s.value) for s in Status) == 1
    assert value(during, "ticketbot_outbox_backlog") == 0
    assert value(during, "ticketbot_database_up") == 1
    delivered = "ticketbot_outbox_deliveries_total"
    assert value(during, delivered, result="delivered", kind="staff_card_create") == 1
    assert value(during, delivered, result="delivered", kind="customer_thread_create") == 1
    assert value(during, delivered, result="delivered", kind="customer_thread_post") >= 1
    assert value(during, "ticketbot_sla_alerts_sent_total") == 0

    # The first response came; a second ticket waits past its target: one breach alert...
    await open_ticket(stage, title="Email bounces")
    clock.advance(hours=9)
    await sla.scan(stage.runtime.core)
    await stage.settle()
    after = await scrape(stage)
    alerts = [m for m in stage.fake.messages(MANAGER_CHANNEL) if not m.is_reply]
    assert alerts and value(after, "ticketbot_sla_alerts_sent_total") == len(alerts)
    assert value(after, "ticketbot_tickets", status="open") == 1 + (status == "open")


async def test_metrics_count_retried_and_failed_deliveries(stage, clock):
    stage.fake.fail_next("chat.postMessage", status=500)
    await stage.open_ticket(CUSTOMER, title="VPN drops")
    clock.advance(seconds=10)  # the retry's back-off
    await stage.settle()
    card = stage.fake.messages(STAFF_CHANNEL)[0]
    stage.fake.fail_next("chat.postMessage", error="msg_too_long")  # permanent: no retry
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Fixed on our side", thread_ts=card.ts)
    )
    samples = await scrape(stage)

    def total(result: str) -> float:
        return sum(
            count
            for (name, labels), count in samples.items()
            if name == "ticketbot_outbox_deliveries_total" and ("result", result) in labels
        )

    assert total("retried") == 1
    assert total("failed") == 1
    assert total("delivered") >= 2


async def test_metrics_of_two_servers_in_one_process_are_separate(make_stage, stage):
    other = await make_stage()
    await stage.act(stage.user(CUSTOMER).slash_command("help", channel_id=stage.dm(CUSTOMER)))
    mine, theirs = await scrape(stage), await scrape(other)
    key = "ticketbot_slack_requests_total"
    assert value(mine, key, kind="command", outcome="ok") == 1
    assert value(theirs, key, kind="command", outcome="ok") == 0


async def test_metrics_endpoint_can_be_switched_off(make_stage):
    stage = await make_stage(metrics_enabled=False)
    status, _, _ = await get(stage, "/metrics")
    assert status == 404
    assert (await get(stage, "/healthz"))[0] == 200
