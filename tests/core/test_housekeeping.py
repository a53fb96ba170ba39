"""Housekeeping: old delivery claims, rate-limit counters and finished outbox messages are
pruned on a schedule, recent and pending rows are kept, and a failing run never escapes."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from bot import scheduler as sched
from core import chat, housekeeping, ratelimit
from core.context import Core
from core.enums import Role
from core.housekeeping import PruneResult, prune
from core.models import InboundEvent, OutboxMessage, RateLimitCounter
from tests.conftest import settings_for
from tests.factories import make_user


def core_with(core: Core, database_url: str, **settings: object) -> Core:
    """The test's Core (same database and clock) with other settings."""
    return Core(db=core.db, settings=settings_for(database_url, **settings), clock=core.clock)


async def claim_keys(core: Core) -> set[str]:
    async with core.db.transaction() as session:
        return set(await session.scalars(select(InboundEvent.key)))


async def counters(core: Core) -> set[tuple[str, datetime]]:
    async with core.db.transaction() as session:
        rows = await session.execute(select(RateLimitCounter.bucket, RateLimitCounter.window_start))
        return {(r.bucket, r.window_start) for r in rows}


async def count(core: Core, actor_id: int, bucket: str, window_seconds: int) -> None:
    async with core.db.transaction() as session:
        await ratelimit.consume(
            session,
            actor_id=actor_id,
            bucket=bucket,
            limit=1000,
            window_seconds=window_seconds,
            now=core.clock.now(),
            what="test",
        )


async def add_message(
    core: Core,
    name: str,
    *,
    created_at: datetime,
    delivered_at: datetime | None = None,
    failed_at: datetime | None = None,
    locked_until: datetime | None = None,
) -> None:
    async with core.db.transaction() as session:
        session.add(
            OutboxMessage(
                kind="manager_alert",
                ticket_id=None,
                thread_key=f"test:{name}",
                payload={"name": name},
                created_at=created_at,
                next_attempt_at=created_at,
                attempts=1 if delivered_at or failed_at or locked_until else 0,
                locked_until=locked_until,
                locked_by="worker" if locked_until else None,
                delivered_at=delivered_at,
                failed_at=failed_at,
            )
        )


async def message_names(core: Core) -> set[str]:
    async with core.db.transaction() as session:
        return {m.payload["name"] for m in await session.scalars(select(OutboxMessage))}


# --------------------------------------------------------------------------------------------
# inbound delivery claims


async def test_delivery_claims_older_than_two_days_are_pruned_and_recent_ones_kept(core, clock):
    assert await chat.claim_delivery(core, key="old")
    clock.advance(days=1)
    assert await chat.claim_delivery(core, key="yesterday")
    clock.advance(days=1, seconds=1)  # "old" is now two days and a second old

    result = await prune(core)

    assert result.inbound_events == 1
    assert await claim_keys(core) == {"yesterday"}


async def test_the_old_one_shot_prune_deliveries_still_works(core, clock):
    assert await chat.claim_delivery(core, key="old")
    clock.advance(days=3)
    assert await chat.claim_delivery(core, key="new")

    assert await chat.prune_deliveries(core) == 1
    assert await claim_keys(core) == {"new"}


# --------------------------------------------------------------------------------------------
# rate-limit counters


async def test_counters_go_only_a_day_after_the_longest_window_ended(core, clock, database_url):
    # The clock starts on a whole hour, so both windows start now.
    core = core_with(
        core, database_url, ticket_create_window_seconds=3600, search_window_seconds=60
    )
    actor = await make_user(core, Role.CUSTOMER)
    start = clock.now()
    await count(core, actor.id, "create", 3600)
    await count(core, actor.id, "search", 60)

    # The hour window ended 23h59m ago: both counters stay, even the search one whose own
    # (minute) window ended more than a day ago, since a counter does not record its window.
    clock.set(start + timedelta(hours=25, minutes=-1))
    assert (await prune(core)).rate_limit_counters == 0
    assert len(await counters(core)) == 2

    clock.set(start + timedelta(hours=25, seconds=1))
    await count(core, actor.id, "create", 3600)  # the current window: still counts
    result = await prune(core)

    assert result.rate_limit_counters == 2
    assert await counters(core) == {("create", start + timedelta(hours=25))}


async def test_a_counter_of_a_long_window_is_kept_while_it_can_still_count(
    core, clock, database_url
):
    week = 7 * 24 * 3600
    core = core_with(core, database_url, ticket_create_window_seconds=week)
    actor = await make_user(core, Role.CUSTOMER)
    await count(core, actor.id, "create", week)
    [(_, window_start)] = await counters(core)
    clock.advance(days=2)  # more than a day later, but the weekly window is still open
    assert ratelimit.window(clock.now(), week)[0] == window_start

    assert (await prune(core)).rate_limit_counters == 0
    assert len(await counters(core)) == 1

    clock.set(window_start + timedelta(days=7 + 1, seconds=1))  # ended a day and a second ago
    assert (await prune(core)).rate_limit_counters == 1
    assert await counters(core) == set()


# --------------------------------------------------------------------------------------------
# outbox


async def test_finished_outbox_messages_go_after_the_retention_and_recent_ones_stay(core, clock):
    now = clock.now()
    await add_message(core, "delivered-15d", created_at=now, delivered_at=now)
    await add_message(core, "failed-15d", created_at=now, failed_at=now)
    clock.advance(days=2)
    await add_message(core, "delivered-13d", created_at=clock.now(), delivered_at=clock.now())
    await add_message(core, "failed-13d", created_at=clock.now(), failed_at=clock.now())
    clock.advance(days=13, seconds=1)

    result = await prune(core)  # default retention: 14 days

    assert result.outbox == 2
    assert await message_names(core) == {"delivered-13d", "failed-13d"}


async def test_undelivered_outbox_messages_are_never_pruned_however_old(core, clock):
    long_ago = clock.now()
    await add_message(core, "pending", created_at=long_ago)
    await add_message(core, "leased", created_at=long_ago, locked_until=long_ago)
    await add_message(core, "delivered", created_at=long_ago, delivered_at=long_ago)
    clock.advance(days=3650)

    result = await prune(core)

    assert result.outbox == 1
    assert await message_names(core) == {"pending", "leased"}


async def test_outbox_retention_follows_the_setting(core, clock, database_url):
    core = core_with(core, database_url, outbox_retention_days=1)
    await add_message(core, "delivered", created_at=clock.now(), delivered_at=clock.now())
    clock.advance(hours=23)
    assert (await prune(core)).outbox == 0
    clock.advance(hours=1, seconds=1)
    assert (await prune(core)).outbox == 1
    assert await message_names(core) == set()


def test_outbox_retention_and_housekeeping_interval_must_be_positive():
    settings = settings_for("sqlite+aiosqlite:///x.db")
    assert settings.outbox_retention_days == 14
    assert settings.housekeeping_interval_seconds == 3600
    for name in ("outbox_retention_days", "housekeeping_interval_seconds"):
        with pytest.raises(ValueError, match=name):
            settings_for("sqlite+aiosqlite:///x.db", **{name: 0})


# --------------------------------------------------------------------------------------------
# one transaction, bounded batches, logging


async def test_prune_is_one_transaction_nothing_is_deleted_when_a_table_fails(
    core, clock, monkeypatch
):
    await chat.claim_delivery(core, key="old")
    clock.advance(days=3)

    async def broken(*args, **kwargs):
        raise RuntimeError("outbox prune failed")

    monkeypatch.setattr(housekeeping, "_delete_finished_messages", broken)
    with pytest.raises(RuntimeError):
        await prune(core)
    assert await claim_keys(core) == {"old"}


async def test_a_prune_deletes_at_most_the_limit_per_table_oldest_first(core, clock):
    for n in range(5):
        await chat.claim_delivery(core, key=f"claim-{n}")
        clock.advance(minutes=1)
    clock.advance(days=3)

    first = await prune(core, limit=2)
    assert (first.inbound_events, first.more) == (2, True)
    assert await claim_keys(core) == {"claim-2", "claim-3", "claim-4"}
    second = await prune(core, limit=2)
    third = await prune(core, limit=2)
    assert (second.inbound_events, third.inbound_events, third.more) == (2, 1, False)
    assert await claim_keys(core) == set()


async def test_a_housekeeping_run_prunes_again_while_a_table_had_more(core, clock):
    for n in range(5):
        await chat.claim_delivery(core, key=f"claim-{n}")
    clock.advance(days=3)

    results = await sched.run_housekeeping(core, batch_size=2)

    assert results is not None
    assert [r.inbound_events for r in results] == [2, 2, 1]
    assert await claim_keys(core) == set()


async def test_prune_logs_the_counts_per_table(core, clock, caplog):
    await chat.claim_delivery(core, key="old")
    clock.advance(days=3)

    with caplog.at_level(logging.INFO, logger="core.housekeeping"):
        result = await prune(core)

    assert result == PruneResult(inbound_events=1, rate_limit_counters=0, outbox=0, more=False)
    [record] = [r for r in caplog.records if r.name == "core.housekeeping"]
    assert (record.inbound_events, record.rate_limit_counters, record.outbox) == (1, 0, 0)


# --------------------------------------------------------------------------------------------
# the scheduled job


async def test_scheduler_runs_housekeeping_hourly_by_default_never_overlapping(core):
    scheduler = sched.build_scheduler(core, interval_seconds=30)

    job = scheduler.get_job(sched.HOUSEKEEPING_JOB_ID)

    assert job is not None
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=3600)
    assert job.func is sched.run_housekeeping and job.args == (core,)
    assert scheduler.get_job(sched.SLA_JOB_ID) is not None


async def test_scheduler_takes_the_housekeeping_interval_from_the_settings(core, database_url):
    configured = core_with(core, database_url, housekeeping_interval_seconds=120)

    from_settings = sched.build_scheduler(configured, interval_seconds=30)
    explicit = sched.build_scheduler(core, interval_seconds=30, housekeeping_interval_seconds=45)

    assert from_settings.get_job(sched.HOUSEKEEPING_JOB_ID).trigger.interval == timedelta(
        seconds=120
    )
    assert explicit.get_job(sched.HOUSEKEEPING_JOB_ID).trigger.interval == timedelta(seconds=45)
    with pytest.raises(ValueError):
        sched.build_scheduler(core, interval_seconds=30, housekeeping_interval_seconds=0)


async def test_a_housekeeping_run_that_raises_is_logged_and_not_propagated(
    core, monkeypatch, caplog
):
    async def failing_prune(core_, *, limit):
        raise RuntimeError("boom")

    monkeypatch.setattr(sched, "prune", failing_prune)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        assert await sched.run_housekeeping(core) is None
    assert any("housekeeping failed" in r.message and r.exc_info for r in caplog.records)


async def test_scheduler_keeps_housekeeping_after_a_run_that_raises(core, monkeypatch, caplog):
    calls: list[int] = []
    second_run = asyncio.Event()

    async def flaky_prune(core_, *, limit):
        calls.append(limit)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second_run.set()
        return PruneResult(inbound_events=0, rate_limit_counters=0, outbox=0, more=False)

    async def no_scan(core_, **kwargs):
        return []

    monkeypatch.setattr(sched, "prune", flaky_prune)
    monkeypatch.setattr(sched, "run_sla_scan", no_scan)
    scheduler = sched.build_scheduler(
        core, interval_seconds=3600, housekeeping_interval_seconds=0.01
    )
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        scheduler.start()
        try:
            await asyncio.wait_for(second_run.wait(), timeout=10)
        finally:
            scheduler.shutdown(wait=False)
    assert len(calls) >= 2
    assert any("housekeeping failed" in r.message for r in caplog.records)
