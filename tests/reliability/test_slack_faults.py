"""Slack fails a stretch of traffic (500, 503, 429 with Retry-After, time-outs, and time-outs
after which Slack had in fact posted the message) while customers open tickets and staff and
customers write in the threads. Afterwards every outbox message is delivered, exactly once, in
order within each thread."""

from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy import select

from core.clock import FrozenClock
from core.models import OutboxMessage, Reply
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket
from tests.factories import outbox_rows
from tests.reliability.conftest import SLACK_API_TIMEOUT
from tests.reliability.support import (
    POSTING_KINDS,
    FaultRotation,
    FaultStep,
    outbox_id_of,
    posts_per_outbox_id,
    wait_for_slack,
)

# Longer than the bot's Slack time-out: the bot gives up before the fake answers.
HANG = SLACK_API_TIMEOUT + 0.3

# The first call in the stretch is the one Slack acts on while the bot gives up: how many calls
# follow depends on which threads earlier faults held back, and that case must happen.
ROTATION = [
    FaultStep("timeout", delay=HANG, then_process=True),  # Slack acted, the bot never heard
    FaultStep(500),
    FaultStep(429, retry_after=20),
    FaultStep(None),
    FaultStep(503),
    FaultStep("timeout", delay=HANG),  # lost on the way: Slack did nothing
    FaultStep(None),
    FaultStep(None),
]
OUTBOX_METHODS = (
    "chat.postMessage",
    "chat.update",
    "conversations.history",
    "conversations.replies",
)


@pytest.mark.slow
async def test_slack_outage_stretch_delivers_everything_once_and_in_order(
    stage: Stage, clock: FrozenClock
) -> None:
    first = await open_ticket(stage, CUSTOMER, title="Mail bounces")
    second = await open_ticket(stage, CUSTOMER_2, title="Printer jams")
    agent, alice, bob = stage.user(AGENT), stage.user(CUSTOMER), stage.user(CUSTOMER_2)

    trouble = FaultRotation(stage.fake, OUTBOX_METHODS, ROTATION)
    await stage.open_ticket(CUSTOMER, title="VPN down", description="Since the update")
    await stage.open_ticket(CUSTOMER_2, title="Laptop slow")
    for round_ in range(3):
        await stage.act(
            agent.says(STAFF_CHANNEL, f"!reply mail fix {round_}", thread_ts=first.card.ts)
        )
        await stage.act(
            alice.says(first.dm, f"mail answer {round_}", thread_ts=first.confirmation.ts)
        )
        await stage.act(
            agent.says(STAFF_CHANNEL, f"!reply printer fix {round_}", thread_ts=second.card.ts)
        )
        await stage.act(
            bob.says(second.dm, f"printer answer {round_}", thread_ts=second.confirmation.ts)
        )
        # Tickets whose card may not be in Slack yet: staff answer by command, not in a thread.
        for number in (3, 4):
            await stage.act(
                agent.slash_command(f"reply {number} update {round_}", channel_id=STAFF_CHANNEL)
            )
    await wait_for_slack(stage.fake)
    trouble.stop()
    hits = trouble.hits()
    assert all(hits.values()), f"every kind of fault must have been injected: {hits}"
    assert any(r.delivered_at is None for r in await outbox_rows(stage.runtime.core))

    # Slack is healthy again; time passes beyond every backoff and Retry-After.
    for _ in range(30):
        pending = [r for r in await outbox_rows(stage.runtime.core) if r.delivered_at is None]
        if not pending:
            break
        clock.advance(seconds=60)
        await stage.settle()
        await wait_for_slack(stage.fake)
    rows = await outbox_rows(stage.runtime.core)
    assert [r.id for r in rows if r.delivered_at is None] == []
    assert [(r.id, r.last_error) for r in rows if r.failed_at is not None] == []

    # None twice, none missing: every posting message is in Slack exactly once.
    posted = posts_per_outbox_id(stage.fake)
    doubled = {outbox_id: n for outbox_id, n in posted.items() if n != 1}
    assert doubled == {}, f"posted more than once: {doubled}"
    posting = [r for r in rows if r.kind in POSTING_KINDS]
    assert all("ts" in (r.result or {}) for r in posting)  # none skipped
    assert set(posted) == {r.id for r in posting}

    # The "Slack acted but the bot timed out" case really happened and was caught: the retry
    # found the earlier post by its metadata instead of posting again.
    acted = {
        outbox_id_of_call(call)
        for call in stage.fake.calls_to("chat.postMessage")
        if call.injected and call.ok
    }
    assert acted, "no time-out after which Slack had posted"
    attempts = {r.id: r.attempts for r in rows}
    assert all(attempts[outbox_id] >= 2 for outbox_id in acted)

    await assert_threads_in_reply_order(stage, rows)


def outbox_id_of_call(call: object) -> int:
    params = getattr(call, "params", {})
    return int(params["metadata"]["event_payload"]["outbox_id"])


async def assert_threads_in_reply_order(stage: Stage, rows: list[OutboxMessage]) -> None:
    """In every Slack thread, relayed replies appear in the order the replies were written."""
    by_id = {r.id: r for r in rows}
    relays: dict[tuple[str, str], list[int]] = defaultdict(list)  # thread -> reply ids
    for message in stage.fake.messages():
        outbox_id = outbox_id_of(message)
        row = by_id.get(outbox_id) if outbox_id is not None else None
        if row is None or (row.payload or {}).get("event") != "reply":
            continue
        assert message.thread_ts is not None, "a reply relay outside a thread"
        relays[(message.channel, message.thread_ts)].append(int(row.payload["reply_id"]))
    async with stage.runtime.core.db.transaction() as session:
        written = list(await session.scalars(select(Reply.id).order_by(Reply.created_at, Reply.id)))
    assert len(relays) >= 8  # two threads for each of the four tickets
    for thread, reply_ids in relays.items():
        in_db_order = [reply_id for reply_id in written if reply_id in set(reply_ids)]
        assert reply_ids == in_db_order, f"thread {thread} out of order"
    relayed_rows = [r for r in rows if (r.payload or {}).get("event") == "reply"]
    assert sum(map(len, relays.values())) == len(relayed_rows)
