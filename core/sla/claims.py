"""The rows the SLA engine works on in bulk (Core tables: no ORM objects, no version bumps),
and the claim: a fired timer, unique per (ticket, threshold), read back as a `ClaimedAlert`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.enums import SlaThreshold, Status
from core.models import Base, OutboxMessage, SlaTimer, Ticket

# Statuses that stop the first-response clock.
DONE = (Status.RESOLVED.value, Status.CLOSED.value)
TICKETS = Base.metadata.tables[Ticket.__tablename__]
TIMERS = Base.metadata.tables[SlaTimer.__tablename__]
OUTBOX = Base.metadata.tables[OutboxMessage.__tablename__]


@dataclass(frozen=True)
class ClaimedAlert:
    """An alert a scan claimed (its timer fired) and queued for `fan_out`."""

    ticket_id: uuid.UUID
    threshold: SlaThreshold
    due_at: datetime


async def fired_by(connection: AsyncConnection, scan_id: uuid.UUID) -> tuple[ClaimedAlert, ...]:
    """The alerts the scan `scan_id` claimed, soonest first."""
    rows = await connection.execute(
        select(TIMERS.c.ticket_id, TIMERS.c.threshold, TIMERS.c.due_at)
        .where(TIMERS.c.fired_by == scan_id)
        .order_by(TIMERS.c.due_at, TIMERS.c.ticket_id)
    )
    return tuple(claimed(row) for row in rows)


_THRESHOLD = {threshold.value: threshold for threshold in SlaThreshold}


def claimed(row: Any) -> ClaimedAlert:
    return ClaimedAlert(
        ticket_id=row.ticket_id, threshold=_THRESHOLD[row.threshold], due_at=row.due_at
    )
