"""Two schedulers in two OS processes, started at the same moment against the same PostgreSQL
database and the same due tickets, send exactly one alert per (ticket, threshold): each timer
is fired (claimed) by one scan, and the fan-out of the claims writes each alert once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import queue
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy import func, select, text

from bot.scheduler import build_scheduler
from core import sla
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Role
from core.models import OutboxMessage, SlaTimer
from core.outbox import OutboxKind
from core.settings import CoreSettings
from tests.factories import fan_out_sla_alerts, make_user

pytestmark = pytest.mark.slow

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
TICKETS = 200
PROCESSES = 2


class _UnlockedDatabase(Database):
    """Reports a dialect name the scan does not recognise: it takes the portable steps, without
    row locks, so that only the claim (the conditional update firing a timer) can decide."""

    @property
    def dialect(self) -> str:
        return "postgresql-without-row-locks"


def _scheduler_process(url: str, barrier: Any, results: Any, lock_rows: bool) -> None:
    asyncio.run(_run_scheduler(url, barrier, results, lock_rows))


async def _run_scheduler(url: str, barrier: Any, results: Any, lock_rows: bool) -> None:
    settings = CoreSettings(_env_file=None, database_url=url)  # type: ignore[call-arg]
    core = Core.from_settings(settings, clock=FrozenClock(NOW))
    if not lock_rows:
        core.db.__class__ = _UnlockedDatabase
    try:
        async with core.db.engine.connect() as connection:  # connect before the start line
            await connection.execute(text("SELECT 1"))
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        outcome: dict[str, Any] = {}

        def finished(event: JobExecutionEvent) -> None:
            outcome["event"] = event
            loop.call_soon_threadsafe(done.set)

        scheduler = build_scheduler(core, interval_seconds=3600, batch_size=20)
        scheduler.add_listener(finished, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
        barrier.wait(timeout=60)  # both processes start their scheduler together
        scheduler.start()
        try:
            await asyncio.wait_for(done.wait(), timeout=90)
        finally:
            scheduler.shutdown(wait=False)
        event = outcome["event"]
        runs = event.retval or []
        results.put(
            {
                "pid": os.getpid(),
                "error": repr(event.exception) if event.exception else None,
                "ok": event.retval is not None,
                "alerts": [
                    (str(alert.ticket_id), alert.threshold.value)
                    for run in runs
                    for alert in await sla.scan_alerts(core, run.scan_id)
                ],
                "fired": sum(run.fired for run in runs),
            }
        )
    finally:
        await core.close()


async def _seed_due_tickets(core: Core) -> int:
    """TICKETS due tickets: all past the warning, every other one past the breach too."""
    customer = await make_user(core, Role.CUSTOMER)
    async with core.db.transaction() as session:
        await session.execute(
            text(
                """
                INSERT INTO tickets (id, number, title, status, priority, customer_id,
                    created_by_id, created_at, updated_at, sla_started_at,
                    sla_warning_at, sla_breach_at)
                SELECT gen_random_uuid(), g, 'race ' || g, 'open', 'urgent', :c, :c,
                    n - interval '1 hour', n - interval '1 hour', n - interval '1 hour',
                    n - interval '30 minutes',
                    CASE WHEN g % 2 = 0 THEN n - interval '1 minute' ELSE n + interval '1 hour' END
                FROM generate_series(1, :count) AS g, CAST(:now AS timestamptz) AS n
                """
            ),
            {"c": customer.id, "now": NOW, "count": TICKETS},
        )
        await session.execute(
            text(
                """
                INSERT INTO sla_timers (ticket_id, threshold, due_at)
                SELECT id, 'warning', sla_warning_at FROM tickets
                UNION ALL SELECT id, 'breach', sla_breach_at FROM tickets
                """
            )
        )
    return TICKETS + TICKETS // 2


@pytest.mark.parametrize("lock_rows", [True, False], ids=["skip-locked", "claims-only"])
async def test_two_scheduler_processes_send_one_alert_per_ticket_and_threshold(
    core, clock, database_url, lock_rows
):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL-only: SQLite serialises every writer, there is no race")
    expected = await _seed_due_tickets(core)

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_scheduler_process, args=(database_url, barrier, results, lock_rows))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    reports = []
    try:
        for _ in processes:
            reports.append(await asyncio.to_thread(results.get, timeout=120))
    except queue.Empty:
        pytest.fail("a scheduler process did not report in time")
    finally:
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.kill()
    assert [p.exitcode for p in processes] == [0] * PROCESSES
    assert all(r["ok"] for r in reports), reports

    sent = [alert for report in reports for alert in report["alerts"]]
    assert len(sent) == expected
    assert len(set(sent)) == expected  # no (ticket, threshold) reported by both processes
    clock.set(NOW)  # the schedulers' time: their messages are due
    fanned = await fan_out_sla_alerts(core)
    assert sum(len(result.alerts) for result in fanned) == expected
    async with core.db.transaction() as session:
        fired = await session.scalar(
            select(func.count()).select_from(SlaTimer).where(SlaTimer.fired_at.is_not(None))
        )
        payloads = await session.execute(
            select(OutboxMessage.ticket_id, OutboxMessage.payload).where(
                OutboxMessage.kind == OutboxKind.MANAGER_ALERT.value
            )
        )
        alert_counts = Counter((str(tid), payload["threshold"]) for tid, payload in payloads)
    assert fired == expected
    assert set(alert_counts) == set(sent) and set(alert_counts.values()) == {1}
