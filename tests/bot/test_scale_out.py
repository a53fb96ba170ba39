"""Two replicas of the bot behind one request URL, sharing one PostgreSQL database and one Slack:
interleaved traffic through either replica, both delivery workers running at once. Every outbox
message reaches Slack exactly once, nothing is stored twice, and both workers do some of it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BotServer
from bot.delivery import OutboxWorker
from bot.ids import EVENT_METADATA_TYPE
from core import chat
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Audience
from core.models import OutboxMessage, Reply, Ticket
from devslack.requests import BotClient, BotResponse, SlackRequest, SlackRequestSigner
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, SIGNING_SECRET, Person, Stage
from tests.conftest import settings_for as core_settings


@pytest.fixture
def postgresql_only(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip(
            "several replicas need PostgreSQL: SQLite is a single-process database (one "
            "writer, no FOR UPDATE SKIP LOCKED), so the README allows one replica on it"
        )


@dataclass
class Replica:
    name: str
    server: BotServer
    client: BotClient
    worker: OutboxWorker

    async def send(self, request: SlackRequest, **kwargs: Any) -> BotResponse:
        response = await self.client.send(request, **kwargs)
        assert response.status == 200, response
        assert self.server.runtime is not None
        await self.server.runtime.wait_idle()
        return response


@pytest.fixture
async def replicas(
    postgresql_only: None, stage: Stage, database_url: str, clock: FrozenClock
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replica A is the stage's bot; replica B is a second BotServer with its own connection
    pool, on the same database and the same stand-in Slack, started (and migrated, under the
    advisory lock) like any new replica."""
    assert stage.server is not None and stage.client is not None
    core_b = Core(
        db=Database(database_url, pool_size=5, max_overflow=5),
        settings=core_settings(database_url),
        clock=clock,
    )
    server_b = BotServer(stage.server.settings, core=core_b, clock=clock, run_worker=False)
    base_b = await server_b.start()
    assert server_b.runtime is not None
    client_b = BotClient(base_b, SlackRequestSigner(SIGNING_SECRET))
    a = Replica(
        "a", stage.server, stage.client, OutboxWorker(stage.runtime, worker_id="replica-a", batch=2)
    )
    b = Replica(
        "b", server_b, client_b, OutboxWorker(server_b.runtime, worker_id="replica-b", batch=2)
    )
    try:
        yield a, b
    finally:
        await client_b.close()
        await server_b.stop()
        await core_b.close()


async def deliver_until_stopped(worker: OutboxWorker, stop: asyncio.Event) -> None:
    """A worker loop as `serve` runs it, polling briskly."""
    while not stop.is_set():
        if not await worker.run_once():
            await asyncio.sleep(0.005)


async def backlog(core: Core) -> int:
    async with core.db.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
        )
        return int(count or 0)


async def quiesce(core: Core, *replicas: Replica, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for replica in replicas:
            assert replica.server.runtime is not None
            await replica.server.runtime.wait_idle()
        if not await backlog(core):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox did not drain")


async def open_ticket(stage: Stage, replica: Replica, person: Person, title: str) -> None:
    """The person's `/ticket new` and the modal's submission, both through `replica`."""
    user = stage.user(person)
    await replica.send(user.slash_command(f"new {title}", channel_id=stage.dm(person)))
    view = stage.fake.views_opened(person.user_id)[-1].to_api()
    values = {"title_block": {"title": title}, "priority_block": {"priority": "high"}}
    await replica.send(user.submit(view, values))


async def test_two_replicas_share_the_work_and_deliver_every_message_exactly_once(
    stage, replicas, clock
):
    a, b = replicas
    core = stage.runtime.core
    stop = asyncio.Event()
    workers = [asyncio.create_task(deliver_until_stopped(r.worker, stop)) for r in (a, b)]
    try:
        # Tickets opened through either replica at the same moment, while both workers deliver.
        for round_number in range(3):
            await asyncio.gather(
                open_ticket(stage, a, CUSTOMER, f"Printer {round_number} jams"),
                open_ticket(stage, b, CUSTOMER_2, f"Laptop {round_number} overheats"),
            )
        await quiesce(core, a, b)

        async with core.db.transaction() as session:
            tickets = list(await session.scalars(select(Ticket).order_by(Ticket.number)))
        assert [t.number for t in tickets] == [1, 2, 3, 4, 5, 6]
        assert len({t.title for t in tickets}) == 6

        # Replies both ways, each sent through the other replica than the previous one.
        agent = stage.user(AGENT)
        sends = []
        for index, ticket in enumerate(tickets):
            staff = await chat.thread_of(core, ticket_id=ticket.id, audience=Audience.STAFF)
            customer = await chat.thread_of(core, ticket_id=ticket.id, audience=Audience.CUSTOMER)
            assert staff is not None and customer is not None
            person = CUSTOMER if ticket.title.startswith("Printer") else CUSTOMER_2
            first, second = (a, b) if index % 2 else (b, a)
            sends.append(
                first.send(
                    agent.says(staff.channel_id, f"!reply Answer {index}", thread_ts=staff.ts)
                )
            )
            sends.append(
                second.send(
                    stage.user(person).says(
                        customer.channel_id, f"Thanks {index}", thread_ts=customer.ts
                    )
                )
            )
        await asyncio.gather(*sends)

        # Slack retries an event delivery; the load balancer sends the retry to the other
        # replica while the first is still handling it.
        ticket = tickets[0]
        customer = await chat.thread_of(core, ticket_id=ticket.id, audience=Audience.CUSTOMER)
        assert customer is not None
        owner = CUSTOMER if ticket.title.startswith("Printer") else CUSTOMER_2
        event = stage.user(owner).says(
            customer.channel_id, "Sent twice by Slack", thread_ts=customer.ts
        )
        await asyncio.gather(a.send(event), b.send(event, retry_num=1, retry_reason="http_timeout"))
        await quiesce(core, a, b)
    finally:
        stop.set()
        await asyncio.gather(*workers)

    async with core.db.transaction() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
        bodies = Counter(await session.scalars(select(Reply.body)))
        ticket_count = await session.scalar(select(func.count()).select_from(Ticket))
    # Nothing stored twice: six tickets, each reply once, the retried event once.
    assert ticket_count == 6
    for index in range(6):
        assert bodies[f"Answer {index}"] == 1
        assert bodies[f"Thanks {index}"] == 1
    assert bodies["Sent twice by Slack"] == 1

    # Every outbox message delivered, none failed; each posted message went out exactly once.
    assert rows and all(r.delivered_at is not None and r.failed_at is None for r in rows)
    posted: Counter[int] = Counter()
    for call in stage.fake.calls_to("chat.postMessage"):
        metadata = call.params.get("metadata") or {}
        if call.ok and metadata.get("event_type") == EVENT_METADATA_TYPE:
            posted[int(metadata["event_payload"]["outbox_id"])] += 1
    assert posted and max(posted.values()) == 1, posted.most_common(3)
    posting = [r.id for r in rows if r.result and "ts" in r.result]
    assert sorted(posting) == sorted(posted)
    for index, ticket in enumerate(tickets):
        thread = await chat.thread_of(core, ticket_id=ticket.id, audience=Audience.CUSTOMER)
        assert thread is not None
        relayed = stage.fake.replies(thread.channel_id, thread.ts)
        assert sum(f"Answer {index}" in m.text_content for m in relayed) == 1

    # The work was shared: both workers delivered, and together exactly once per message.
    by_worker = Counter(r.locked_by for r in rows)
    assert a.worker.delivered > 0 and b.worker.delivered > 0, by_worker
    assert a.worker.delivered + b.worker.delivered == len(rows)
    assert by_worker == {"replica-a": a.worker.delivered, "replica-b": b.worker.delivered}
