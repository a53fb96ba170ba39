"""Periodic jobs of the bot process, on APScheduler's asyncio scheduler: the SLA scan, and
housekeeping (pruning the tables that only grow, core.housekeeping; keeping the search index of
the newest tickets up to date, core.search.recent).

Every replica may run the scheduler: the scan claims each alert in the database (core.sla), so
replicas racing on the same due tickets still send one alert per ticket and threshold, and
replicas pruning at the same moment share the rows (SKIP LOCKED) instead of colliding. This
module only runs core services; it never talks to Slack (the outbox worker delivers the alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from core.context import Core
from core.housekeeping import DEFAULT_LIMIT, PruneResult, prune
from core.search.recent import refresh_recent_index
from core.settings import CoreSettings
from core.sla import ScanResult, scan

log = logging.getLogger("bot.scheduler")

SLA_JOB_ID = "sla_scan"
# One run keeps scanning while batches come back full, up to this many batches (a backlog
# after downtime drains in one run instead of one batch per interval).
MAX_BATCHES_PER_RUN = 20

HOUSEKEEPING_JOB_ID = "housekeeping"
# Likewise, one housekeeping run prunes again while a table still had more, up to this many
# times (each prune is one short transaction of at most `batch_size` rows per table).
MAX_PRUNES_PER_RUN = 10
# The first housekeeping run comes this long after start (or after one interval, if shorter):
# not at once, so that restarting replicas do not all prune together, yet not a whole interval
# later either, so that replicas restarted more often than the interval still prune.
HOUSEKEEPING_FIRST_RUN_DELAY_SECONDS = 300.0


async def run_sla_scan(
    core: Core, *, batch_size: int = 500, on_alerts: Callable[[], object] | None = None
) -> list[ScanResult] | None:
    """One scheduled run of the SLA scan. Errors are logged, never raised, so that the
    scheduler keeps its job; None means the run failed and the next interval will retry.
    `on_alerts` is called after every batch that queued alerts (e.g. to wake the outbox
    worker in this process)."""
    results: list[ScanResult] = []
    try:
        for _ in range(MAX_BATCHES_PER_RUN):
            result = await scan(core, limit=batch_size)
            results.append(result)
            if result.fired and on_alerts is not None:
                on_alerts()
            if not result.more:
                break
    except Exception:
        log.exception("sla scan failed; the next run retries", extra={"batches": len(results)})
        return None
    return results


async def run_housekeeping(
    core: Core, *, batch_size: int = DEFAULT_LIMIT
) -> list[PruneResult] | None:
    """One scheduled housekeeping run: prune, and again while a table had more to prune (up to
    MAX_PRUNES_PER_RUN times), then move the recent search index on if it lags. Errors are
    logged, never raised, so that the scheduler keeps its job; None means pruning failed (what
    earlier prunes deleted stays deleted) and the next interval will retry."""
    results: list[PruneResult] = []
    try:
        for _ in range(MAX_PRUNES_PER_RUN):
            result = await prune(core, limit=batch_size)
            results.append(result)
            if not result.more:
                break
    except Exception:
        log.exception("housekeeping failed; the next run retries", extra={"prunes": len(results)})
        return None
    try:
        await refresh_recent_index(core)
    except Exception:
        log.exception("the recent search index was not refreshed; the next run retries")
    return results


def build_scheduler(
    core: Core,
    *,
    interval_seconds: float,
    batch_size: int = 500,
    on_alerts: Callable[[], object] | None = None,
    housekeeping_interval_seconds: float | None = None,
) -> AsyncIOScheduler:
    """A scheduler (not started) with two jobs: the SLA scan every `interval_seconds`, first
    run at start, and housekeeping every `housekeeping_interval_seconds` (by default the
    setting of that name), first run after HOUSEKEEPING_FIRST_RUN_DELAY_SECONDS or one
    interval, whichever is shorter. Each job never runs twice at once in this process
    (max_instances=1), and its missed runs are collapsed into one (coalesce)."""
    if interval_seconds <= 0:
        raise ValueError("the scan interval must be positive")
    if housekeeping_interval_seconds is None:
        housekeeping_interval_seconds = core.settings.housekeeping_interval_seconds
    if housekeeping_interval_seconds <= 0:
        raise ValueError("the housekeeping interval must be positive")
    started = datetime.now(UTC)
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        run_sla_scan,
        trigger=IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        args=[core],
        kwargs={"batch_size": batch_size, "on_alerts": on_alerts},
        id=SLA_JOB_ID,
        name="SLA scan",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_seconds)),
        next_run_time=started,
        replace_existing=True,
    )
    first_prune = min(housekeeping_interval_seconds, HOUSEKEEPING_FIRST_RUN_DELAY_SECONDS)
    scheduler.add_job(
        run_housekeeping,
        trigger=IntervalTrigger(seconds=housekeeping_interval_seconds, timezone=UTC),
        args=[core],
        id=HOUSEKEEPING_JOB_ID,
        name="Housekeeping",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(housekeeping_interval_seconds)),
        next_run_time=started + timedelta(seconds=first_prune),
        replace_existing=True,
    )
    return scheduler


async def run_scheduler_forever(core: Core, settings: CoreSettings) -> None:
    """Run the scheduler alone (`python -m bot scheduler`) until SIGINT/SIGTERM or
    cancellation; the caller owns `core` and closes it afterwards."""
    scheduler = build_scheduler(
        core,
        interval_seconds=settings.sla_scan_interval_seconds,
        housekeeping_interval_seconds=settings.housekeeping_interval_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    scheduler.start()
    log.info(
        "scheduler started",
        extra={
            "interval_seconds": settings.sla_scan_interval_seconds,
            "housekeeping_interval_seconds": settings.housekeeping_interval_seconds,
        },
    )
    try:
        await stop.wait()
    finally:
        scheduler.shutdown(wait=False)
        for sig in installed:
            loop.remove_signal_handler(sig)
        log.info("scheduler stopped")
