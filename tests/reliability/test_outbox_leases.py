"""Outbox leases: a worker that is still delivering keeps its messages however slow Slack is
(the lease is renewed), and the messages of a worker that died are taken over once its short
lease runs out, without being posted twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.delivery import OutboxWorker
from core import outbox
from core.clock import FrozenClock
from devslack.stage import AGENT, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket
from tests.factories import outbox_rows
from tests.reliability.conftest import SHORT_LEASE
from tests.reliability.support import posts_per_outbox_id, wait_for_slack


async def wait_until(
    condition: Callable[[], Awaitable[bool]], failure: str, *, within: float = 5.0
) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.01)


async def test_a_live_worker_keeps_its_lease_while_slack_is_slow(
    short_lease_stage: Stage, clock: FrozenClock
) -> None:
    stage = short_lease_stage
    opened = await open_ticket(stage)
    stage.fake.fail_for("chat.postMessage", status="timeout", delay=1.0, then_process=True)
    await stage.send(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Rebooting now", thread_ts=opened.card.ts)
    )
    await stage.runtime.wait_idle()
    relay = next(
        r for r in await outbox_rows(stage.runtime.core) if r.kind == "customer_thread_post"
    )

    worker = stage.worker
    assert worker is not None
    delivering = asyncio.create_task(worker.run_once())

    async def posting() -> bool:
        return any(
            call.params.get("metadata", {}).get("event_payload", {}).get("outbox_id") == relay.id
            for call in stage.fake.calls_to("chat.postMessage")
        )

    await wait_until(posting, "the relay was never posted")
    clock.advance(seconds=10)  # far beyond the lease, while the post is still on its way

    async def renewed() -> bool:
        row = next(r for r in await outbox_rows(stage.runtime.core) if r.id == relay.id)
        return row.locked_until is not None and row.locked_until > clock.now()

    await wait_until(renewed, "the lease was not renewed while the post was on its way")
    replica = OutboxWorker(stage.runtime, worker_id="replica-2")
    assert await replica.run_once() == 0  # the message is still the first worker's
    assert await delivering >= 1
    await wait_for_slack(stage.fake)
    assert posts_per_outbox_id(stage.fake)[relay.id] == 1
    row = next(r for r in await outbox_rows(stage.runtime.core) if r.id == relay.id)
    assert row.delivered_at is not None and row.locked_by == worker.worker_id


async def test_a_dead_workers_messages_are_taken_over_after_the_lease(
    short_lease_stage: Stage, clock: FrozenClock
) -> None:
    stage = short_lease_stage
    opened = await open_ticket(stage)
    await stage.send(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Fixed", thread_ts=opened.card.ts)
    )
    await stage.runtime.wait_idle()
    # A worker claims the relay and dies before delivering it.
    claimed = await outbox.claim_batch(
        stage.runtime.core, worker_id="dead-worker", lease=timedelta(seconds=SHORT_LEASE)
    )
    assert claimed  # the relay to the customer, and the card refresh (first response)
    replica = OutboxWorker(stage.runtime, worker_id="replica-2")
    assert await replica.run_once() == 0  # still leased
    clock.advance(seconds=1)
    assert await replica.run_once() == len(claimed)
    rows = {r.id: r for r in await outbox_rows(stage.runtime.core)}
    for message in claimed:
        assert rows[message.id].delivered_at is not None and rows[message.id].attempts == 2
    relays = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if "Fixed" in m.text_content
    ]
    assert len(relays) == 1
