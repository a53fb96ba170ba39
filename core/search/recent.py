"""PostgreSQL: a second GIN index over the search parts of the newest tickets only.

A common word is held by a large share of all tickets, and the GIN index of ``ticket_search``
answers it with every part that holds it, however old: at a million tickets, ranking the
newest 500 matches of `email` cost a bitmap of 19,000 parts, most of them years old. A search
reads the newest tickets first, in ranges of numbers (core.search.postgres); for a range that
lies within the newest tickets, the planner can use ``ix_ticket_search_recent_<start>``
instead: a partial GIN index over part 0 of the tickets numbered above <start>, whose lists
hold only those tickets.

An index's predicate is a constant, so the index cannot follow the newest ticket: housekeeping
(`refresh_recent_index`, which the scheduler runs every hour) builds a new one starting
RECENT_WINDOW numbers below the newest ticket once the one in place spans more than
RECENT_WINDOW + RECENT_SLACK numbers, then drops the old one. Both are done CONCURRENTLY:
nothing waits for them (a search plans with whichever indexes are valid at that moment, and
the results are the same either way). A desk smaller than that needs none: its whole index is
as small. A build that failed half-way leaves an invalid index, dropped on the next run.
Replicas take turns through an advisory lock; one that finds it taken leaves the work to the
other. Migration 0012 builds the first one when a desk upgrades.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from core.context import Core

log = logging.getLogger("core.search")

# The newest this many ticket numbers are in the recent index (and up to RECENT_SLACK more,
# before housekeeping builds the next one). A word in at least 1 ticket in 200 finds its newest
# 500 matches within them, which is what makes a common word cheap.
RECENT_WINDOW = 131_072
RECENT_SLACK = RECENT_WINDOW // 4
INDEX_PREFIX = "ix_ticket_search_recent_"
# pg_try_advisory_lock(LOCK_KEY): one replica at a time builds or drops.
LOCK_KEY = 70_012


@dataclass(frozen=True)
class RecentIndex:
    """What one housekeeping run found and did: the lower bound of the index in place after it
    (None: the desk needs none yet), whether it built that index, how many it dropped."""

    start: int | None
    built: bool
    dropped: int


async def refresh_recent_index(core: Core) -> RecentIndex | None:
    """Build the recent index anew when the one in place lags (see the module docstring), and
    drop the ones it replaces or that a failed build left invalid. None on SQLite (FTS5 has no
    such index) and when another replica holds the lock."""
    if core.db.dialect != "postgresql":
        return None
    async with core.db.engine.connect() as connection:
        # CREATE and DROP INDEX CONCURRENTLY run outside any transaction.
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        if not await autocommit.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}
        ):
            log.info("recent search index: another replica is refreshing it")
            return None
        try:
            return await _refresh(autocommit)
        finally:
            await autocommit.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})


async def _refresh(connection: AsyncConnection) -> RecentIndex:
    newest = await connection.scalar(text("SELECT max(number) FROM tickets"))
    rows = (
        await connection.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'ticket_search'::regclass AND c.relname LIKE :prefix"
            ),
            {"prefix": INDEX_PREFIX + "%"},
        )
    ).all()
    valid = {int(name.removeprefix(INDEX_PREFIX)): name for name, ok in rows if ok}
    stale = [name for name, ok in rows if not ok]
    start = max(valid, default=None)
    built = False
    span = RECENT_WINDOW + RECENT_SLACK
    # (An index above the newest ticket, say after restoring an older backup, lags too.)
    if newest is not None and newest > span and (start is None or not 0 < newest - start <= span):
        start = int(newest) - RECENT_WINDOW
        for leftover in stale:  # a failed build of this very name must go first
            await _drop(connection, leftover)
        stale = []
        await connection.execute(
            text(
                f"CREATE INDEX CONCURRENTLY {INDEX_PREFIX}{start} ON ticket_search "
                "USING gin (document) WITH (fastupdate = off) "
                f"WHERE NOT overflow AND number > {start}"
            )
        )
        built = True
    replaced = [name for bound, name in valid.items() if bound != start]
    for name in stale + replaced:
        await _drop(connection, name)
    result = RecentIndex(start=start, built=built, dropped=len(stale) + len(replaced))
    if built or result.dropped:
        log.info(
            "recent search index refreshed",
            extra={"start": start, "built": built, "dropped": result.dropped},
        )
    return result


async def _drop(connection: AsyncConnection, name: str) -> None:
    assert name.startswith(INDEX_PREFIX) and name.removeprefix(INDEX_PREFIX).isdigit(), name
    await connection.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {name}"))
