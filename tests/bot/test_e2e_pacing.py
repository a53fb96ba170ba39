"""Delivery at Slack's rate limits, end to end: a 429 pauses its method (for chat.postMessage,
its channel) and nothing else; pending refreshes of a card become one chat.update showing the
latest state, every thread keeping its order."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from sqlalchemy import select

from bot.delivery import OutboxWorker
from core import budget
from core.clock import SystemClock
from core.context import Core
from core.db import Database
from core.enums import Audience
from core.models import Ticket
from core.outbox import OutboxKind, thread_key
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket
from tests.conftest import settings_for, truncate_all
from tests.factories import outbox_rows


def staff_posts(stage: Stage) -> list[Any]:
    return [
        c
        for c in stage.fake.calls_to("chat.postMessage")
        if c.params.get("channel") == STAFF_CHANNEL
    ]


def outbox_ids(messages: list[Any]) -> list[int]:
    """The outbox ids the bot's posts carry, in the order they appear in chat."""
    ids = []
    for message in messages:
        payload = (message.metadata or {}).get("event_payload") or {}
        if "outbox_id" in payload:
            ids.append(int(payload["outbox_id"]))
    return ids


def on_channel(channel: str):
    def matcher(method: str, params: Mapping[str, Any]) -> bool:
        return method == "chat.postMessage" and params.get("channel") == channel

    return matcher


async def test_429_on_a_channel_pauses_posting_there_and_nothing_else(stage, clock):
    earlier = await open_ticket(stage, title="Mail is slow")
    first = await open_ticket(stage, CUSTOMER)
    stage.fake.fail_for(on_channel(STAFF_CHANNEL), until=1, status=429, retry_after=30)
    # The customer writes in their thread: the relay to the staff thread gets the 429.
    await stage.act(
        stage.user(CUSTOMER).says(first.dm, "Still broken", thread_ts=first.confirmation.ts)
    )
    refused = [c for c in staff_posts(stage) if c.status == 429]
    assert len(refused) == 1
    paused = await budget.paused_until(stage.runtime.core, key=f"chat.postMessage:{STAFF_CHANNEL}")
    assert paused > clock.now().timestamp() + 25  # recorded for every replica

    calls_before = len(staff_posts(stage))
    updates_before = len(stage.fake.calls_to("chat.update"))
    # Meanwhile: a new ticket (its card goes to the paused channel, its confirmation to the
    # customer's DM) and an assignment (the card of another ticket is updated).
    await stage.open_ticket(CUSTOMER_2, title="Printer jammed")
    await stage.act(
        stage.user(AGENT).click(
            "ticket_assign_to_me", message=earlier.card, channel_id=STAFF_CHANNEL
        )
    )
    assert len(staff_posts(stage)) == calls_before  # the paused channel was not called
    dm_2 = stage.dm(CUSTOMER_2)
    assert any("Printer jammed" in m.text_content for m in stage.fake.messages(dm_2) if m.bot_id)
    updates = stage.fake.calls_to("chat.update")[updates_before:]
    assert [c.params["ts"] for c in updates if c.ok] == [earlier.card.ts]
    waiting = [
        r
        for r in await outbox_rows(stage.runtime.core)
        if r.delivered_at is None and r.failed_at is None
    ]
    assert {r.kind for r in waiting} == {OutboxKind.STAFF_THREAD_POST, OutboxKind.STAFF_CARD_CREATE}

    clock.advance(seconds=31)
    await stage.settle()
    relayed = [m for m in stage.fake.replies(STAFF_CHANNEL, first.card.ts)]
    assert [m.text_content.count("Still broken") > 0 for m in relayed].count(True) == 1
    cards = [m for m in stage.fake.messages(STAFF_CHANNEL) if not m.is_reply]
    assert sum("Printer jammed" in m.text_content for m in cards) == 1
    assert [c for c in staff_posts(stage) if c.status == 429] == refused  # no second 429


async def test_429_on_a_method_pauses_that_method_in_every_channel_only(stage, clock):
    one = await open_ticket(stage, title="VPN drops")
    two = await open_ticket(stage, CUSTOMER_2, title="Laptop fan")
    stage.fake.fail_next("chat.update", status=429, retry_after=30)
    agent = stage.user(AGENT)
    await stage.act(agent.click("ticket_assign_to_me", message=one.card, channel_id=STAFF_CHANNEL))
    assert [c.status for c in stage.fake.calls_to("chat.update")] == [429]
    # The other ticket's card waits too (same method, other message), its relay does not.
    await stage.act(agent.click("ticket_assign_to_me", message=two.card, channel_id=STAFF_CHANNEL))
    await stage.act(agent.says(STAFF_CHANNEL, "!reply Fan replaced", thread_ts=two.card.ts))
    assert [c.status for c in stage.fake.calls_to("chat.update")] == [429]
    assert any(
        "Fan replaced" in m.text_content for m in stage.fake.replies(two.dm, two.confirmation.ts)
    )

    clock.advance(seconds=31)
    await stage.settle()
    updated = {c.params["ts"] for c in stage.fake.calls_to("chat.update") if c.ok}
    assert updated == {one.card.ts, two.card.ts}
    for opened in (one, two):
        card = stage.fake.message(STAFF_CHANNEL, opened.card.ts)
        assert f"<@{AGENT.user_id}>" in json.dumps(card.blocks)


async def test_pending_card_refreshes_become_one_update_with_the_latest_state_in_thread_order(
    stage,
):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    updates_before = len(stage.fake.calls_to("chat.update"))
    # Four changes while the worker is not delivering: each queues a refresh of the card, and
    # messages for the staff and the customer threads between them.
    for request in (
        agent.click("ticket_assign_to_me", message=opened.card, channel_id=STAFF_CHANNEL),
        agent.slash_command(
            f"status {opened.number} waiting_on_customer Need logs", channel_id=STAFF_CHANNEL
        ),
        agent.says(STAFF_CHANNEL, "!reply Please send the logs", thread_ts=opened.card.ts),
        agent.slash_command(f"status {opened.number} in_progress", channel_id=STAFF_CHANNEL),
    ):
        await stage.send(request)
        await stage.runtime.wait_idle()
    pending_refreshes = [
        r
        for r in await outbox_rows(stage.runtime.core)
        if r.kind == OutboxKind.STAFF_CARD_REFRESH and r.delivered_at is None
    ]
    assert len(pending_refreshes) >= 3
    await stage.settle()

    updates = stage.fake.calls_to("chat.update")[updates_before:]
    assert [c.params["ts"] for c in updates] == [opened.card.ts]  # one update for all
    card = json.dumps(stage.fake.message(STAFF_CHANNEL, opened.card.ts).blocks)
    assert f"<@{AGENT.user_id}>" in card and "In progress" in card  # the latest state
    rows = {r.id: r for r in await outbox_rows(stage.runtime.core)}
    last = max(r.id for r in pending_refreshes)
    assert rows[last].result == {"updated": opened.card.ts}
    for row in pending_refreshes:
        if row.id != last:
            assert rows[row.id].result == {"coalesced_into": last}
    # Nothing people read was coalesced, and every thread shows its messages in written order.
    for audience, channel, root in (
        (Audience.STAFF, STAFF_CHANNEL, opened.card.ts),
        (Audience.CUSTOMER, opened.dm, opened.confirmation.ts),
    ):
        written = [
            r.id
            for r in rows.values()
            if r.thread_key == thread_key(audience, _ticket_id(rows))
            and r.kind in (OutboxKind.STAFF_THREAD_POST, OutboxKind.CUSTOMER_THREAD_POST)
        ]
        shown = outbox_ids(stage.fake.replies(channel, root))
        assert len(written) >= 2
        assert shown == sorted(written)


async def test_refreshes_queued_before_the_card_is_posted_are_absorbed_by_it(stage):
    customer = stage.user(CUSTOMER)
    await stage.act(customer.slash_command("new Disk full", channel_id=stage.dm(CUSTOMER)))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    values = {
        "title_block": {"title": "Disk full"},
        "description_block": {"description": "C: has 0 bytes free"},
        "priority_block": {"priority": "high"},
    }
    agent = stage.user(AGENT)
    await stage.send(customer.submit(view.to_api(), values))
    await stage.runtime.wait_idle()
    async with stage.runtime.core.db.transaction() as session:
        number = await session.scalar(select(Ticket.number).where(Ticket.title == "Disk full"))
    for request in (
        agent.slash_command(f"assign {number} <@{AGENT.user_id}>", channel_id=STAFF_CHANNEL),
        agent.slash_command(f"status {number} in_progress", channel_id=STAFF_CHANNEL),
    ):
        await stage.send(request)
        await stage.runtime.wait_idle()
    await stage.settle()

    assert stage.fake.calls_to("chat.update") == []
    card = next(m for m in stage.fake.messages(STAFF_CHANNEL) if "Disk full" in m.text_content)
    blocks = json.dumps(card.blocks)
    assert f"<@{AGENT.user_id}>" in blocks and "In progress" in blocks
    refreshes = [
        r for r in await outbox_rows(stage.runtime.core) if r.kind == OutboxKind.STAFF_CARD_REFRESH
    ]
    create = next(
        r for r in await outbox_rows(stage.runtime.core) if r.kind == OutboxKind.STAFF_CARD_CREATE
    )
    assert len(refreshes) == 2
    assert all(r.result == {"coalesced_into": create.id} for r in refreshes)


def _ticket_id(rows: Mapping[int, Any]) -> Any:
    return next(r.ticket_id for r in rows.values() if r.kind == OutboxKind.STAFF_CARD_CREATE)


# --------------------------------------------------------------------------- two replicas

# Slack's limits four times faster (a channel takes 4 posts a second), and the bot's pacing a
# quarter below them: on a loaded machine a request can reach Slack a slot late, and this test
# is about two replicas spending one budget, not about that jitter.
SPEED = 4.0
BOT_SPEED = 0.75 * SPEED


@pytest.fixture
async def fast_stage(database: Database, database_url: str) -> AsyncIterator[Stage]:
    """The bot on the wall clock: pacing is about real time, and a message put back for its
    slot must come due again while the test waits."""
    if database.dialect != "postgresql":
        pytest.skip("several replicas need PostgreSQL (SQLite allows one replica)")
    clock = SystemClock()
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    try:
        async with Stage(
            database_url=database_url,
            clock=clock,
            core=core,
            settings_overrides={"slack_pacing_speed": BOT_SPEED},
        ) as running:
            yield running
    finally:
        await truncate_all(database)


async def _deliver_until(worker: OutboxWorker, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if not await worker.run_once():
            await asyncio.sleep(0.01)


async def test_two_replicas_together_stay_within_the_shared_budget(fast_stage):
    stage = fast_stage
    second = await stage.start_replica()
    stage.fake.rate_limits.enable(speed=SPEED)
    assert stage.worker is not None
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(_deliver_until(worker, stop))
        for worker in (stage.worker, second.worker)
    ]
    try:
        # Twenty tickets at once through either replica: forty posts for the staff channel and
        # the customers' DMs, more than a burst, while both workers deliver.
        requests = []
        for n in range(20):
            person = CUSTOMER if n % 2 else CUSTOMER_2
            view = {"id": f"VBURST{n:04d}", "callback_id": "create_ticket", "blocks": []}
            values = {
                "title_block": {"title": f"Outage {n}"},
                "priority_block": {"priority": "high"},
            }
            request = stage.user(person).submit(view, values)
            requests.append(second.send(request) if n % 2 else stage.send(request))
        answers = await asyncio.gather(*requests)
        assert all(a.status == 200 for a in answers)
        deadline = time.monotonic() + 60
        while await _backlog(stage):
            assert time.monotonic() < deadline, "the outbox did not drain"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*workers)

    # Each replica pacing itself alone gets a dozen 429s here. The stand-in runs in this test's
    # event loop with both bots, so a request can be counted a slot late: one is tolerated.
    assert sum(stage.fake.rate_limits.refused.values()) <= 1
    cards = [m for m in stage.fake.messages(STAFF_CHANNEL) if not m.is_reply]
    assert len(cards) == 20
    assert stage.worker.delivered > 0 and second.worker.delivered > 0  # both spent the budget
    rows = await outbox_rows(stage.runtime.core)
    assert all(r.delivered_at is not None and r.failed_at is None for r in rows)


async def _backlog(stage: Stage) -> int:
    return sum(
        1
        for r in await outbox_rows(stage.runtime.core)
        if r.delivered_at is None and r.failed_at is None
    )
