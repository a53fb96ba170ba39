"""Housekeeping: prune the tables that only grow, on a schedule (bot.scheduler runs `prune`).

What goes, and when:

- inbound delivery claims (`inbound_events`) received more than two days ago
  (core.chat.DELIVERY_CLAIM_RETENTION: long past any retry of the chat platform);
- rate-limit counters (`rate_limit_counters`) whose window ended more than a day ago. A counter
  does not record its window's length, so the cut-off assumes the longest configured window:
  a counter goes once it started more than one day plus that window ago, and no counter that
  could still count (nor one of the last day) is ever touched;
- outbox messages delivered or given up (failed) more than `outbox_retention_days` ago. A
  message still waiting for delivery is never deleted, however old.

Each call is one transaction and deletes at most `limit` rows per table, oldest first (the
default, 5000, keeps the transaction short and its locks few even when a first run meets years
of backlog); `PruneResult.more` says that a table still had more to prune, and the caller may
call again (bot.scheduler does, a bounded number of times per run). On PostgreSQL the rows are
taken with SKIP LOCKED, so replicas pruning at the same moment share the work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from core import chat, ratelimit
from core.context import Core
from core.db import delete_where
from core.models import OutboxMessage

log = logging.getLogger("core.housekeeping")

DEFAULT_LIMIT = 5000
# A rate-limit counter is kept this long after its window ended (on top of the longest window).
RATE_LIMIT_COUNTER_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class PruneResult:
    """How many rows one `prune` deleted, per table; `more` when any table hit the limit."""

    inbound_events: int
    rate_limit_counters: int
    outbox: int
    more: bool

    @property
    def total(self) -> int:
        return self.inbound_events + self.rate_limit_counters + self.outbox


async def prune(core: Core, *, limit: int = DEFAULT_LIMIT) -> PruneResult:
    """Delete what is no longer needed (see the module docstring), at most `limit` rows per
    table, in one transaction; log and return the counts."""
    if limit < 1:
        raise ValueError("the prune limit must be positive")
    now = core.clock.now()
    settings = core.settings
    async with core.db.transaction() as session:
        claims = await chat.delete_claims(
            session, received_before=now - chat.DELIVERY_CLAIM_RETENTION, limit=limit
        )
        counters = await ratelimit.prune(
            session,
            older_than=now - settings.longest_rate_limit_window - RATE_LIMIT_COUNTER_GRACE,
            limit=limit,
        )
        messages = await _delete_finished_messages(
            session, finished_before=now - settings.outbox_retention, limit=limit
        )
    result = PruneResult(
        inbound_events=claims,
        rate_limit_counters=counters,
        outbox=messages,
        more=limit in (claims, counters, messages),
    )
    log.info(
        "housekeeping pruned old rows",
        extra={
            "inbound_events": result.inbound_events,
            "rate_limit_counters": result.rate_limit_counters,
            "outbox": result.outbox,
            "more": result.more,
        },
    )
    return result


async def _delete_finished_messages(
    session: AsyncSession, *, finished_before: datetime, limit: int
) -> int:
    """Delete outbox messages delivered or failed before `finished_before` (each of the two
    times that is set must be older). A message with neither set is pending: it always stays."""
    delivered, failed = OutboxMessage.delivered_at, OutboxMessage.failed_at
    return await delete_where(
        session,
        OutboxMessage,
        or_(delivered.is_not(None), failed.is_not(None)),
        or_(delivered.is_(None), delivered < finished_before),
        or_(failed.is_(None), failed < finished_before),
        oldest_first=OutboxMessage.id,
        limit=limit,
    )
