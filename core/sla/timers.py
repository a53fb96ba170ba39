"""The ticket services' side: deadlines and timers. The services arm, move and disarm a
ticket's armed timers in the same transaction as the change (see core.sla)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.enums import Priority, SlaThreshold
from core.models import Ticket
from core.sla.claims import DONE, TIMERS
from core.sla_policy import SlaPolicy


def awaits_first_response(ticket: Ticket) -> bool:
    """Whether the ticket's first-response clock runs: live, not done, not answered yet."""
    return (
        ticket.first_response_at is None and ticket.deleted_at is None and ticket.status not in DONE
    )


async def restart(
    session: AsyncSession, ticket: Ticket, policy: SlaPolicy, start: datetime
) -> None:
    """(Re)compute the ticket's deadlines for a clock started at `start` (creation, or the
    latest reopening) from its current priority, and arm its timers accordingly."""
    warning_at, breach_at = policy.deadlines(Priority(ticket.priority), start)
    ticket.sla_started_at = start
    ticket.sla_warning_at = warning_at
    ticket.sla_breach_at = breach_at
    await schedule(session, ticket)


async def schedule(session: AsyncSession, ticket: Ticket) -> None:
    """Arm a warning and a breach timer at the ticket's deadlines, moving the armed ones it
    has; disarm them instead when the ticket does not await a first response (or has no
    deadline).

    The ticket row must exist in the database (flush a new one first). A threshold that has
    fired before stays fired: its alert went out once and never goes out again. Waits for a
    scan holding the timers to commit (then sees them fired)."""
    warning_at, breach_at = ticket.sla_warning_at, ticket.sla_breach_at
    if not awaits_first_response(ticket) or warning_at is None or breach_at is None:
        await stop(session, ticket.id)
        return
    connection = await session.connection()
    insert_ = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert_(TIMERS).values(
        [
            {"ticket_id": ticket.id, "threshold": SlaThreshold.WARNING.value, "due_at": warning_at},
            {"ticket_id": ticket.id, "threshold": SlaThreshold.BREACH.value, "due_at": breach_at},
        ]
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["ticket_id", "threshold"],
            set_={"due_at": statement.excluded.due_at},
            where=TIMERS.c.fired_at.is_(None),
        )
    )


async def stop(session: AsyncSession, ticket_id: uuid.UUID) -> None:
    """Disarm the ticket's armed timers: no SLA alert for it from now on (until `schedule`
    again). Fired timers stay: they are the claims of the alerts already sent.

    Waits for a scan that holds them to commit, so an alert is either claimed before this
    transaction or not at all."""
    connection = await session.connection()
    await connection.execute(
        delete(TIMERS).where(TIMERS.c.ticket_id == ticket_id, TIMERS.c.fired_at.is_(None))
    )
