"""Where tickets stand against their first-response target: the state shown on cards and
lists, and `/ticket sla` (the tickets at risk or in breach)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select

from core import repository
from core.access import load_actor, require_staff
from core.context import Core
from core.models import Ticket
from core.results import TicketView
from core.sla.claims import DONE
from core.validation import PAGE_SIZE_MAX, positive_int


class SlaState(StrEnum):
    """Where a ticket stands against its first-response target."""

    NONE = "none"  # no clock: done without a first response, or no deadline
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"  # past the warning threshold
    BREACHED = "breached"
    MET = "met"  # answered (the first public staff reply exists)


@dataclass(frozen=True)
class SlaTicket:
    """A ticket of `/ticket sla` with its deadlines; `remaining` is negative once breached."""

    ticket: TicketView
    state: SlaState
    started_at: datetime
    warning_at: datetime
    breach_at: datetime
    waited: timedelta
    remaining: timedelta


def sla_state(ticket: TicketView, now: datetime) -> SlaState:
    """The SLA state of a ticket at `now` (for the staff card and lists)."""
    if ticket.first_response_at is not None:
        return SlaState.MET
    if ticket.status.is_done or ticket.deleted_at is not None or ticket.sla_breach_at is None:
        return SlaState.NONE
    if ticket.sla_breach_at <= now:
        return SlaState.BREACHED
    if ticket.sla_warning_at is not None and ticket.sla_warning_at <= now:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


async def at_risk(core: Core, *, actor_id: int, limit: int = 50) -> list[SlaTicket]:
    """Staff: the visible open tickets without a first response that are past their warning
    (at risk) or their breach (breached), soonest breach first."""
    limit = positive_int(limit, field="limit", maximum=PAGE_SIZE_MAX)
    now = core.clock.now()
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        require_staff(actor, "sla.list")
        rows = list(
            await session.scalars(
                select(Ticket)
                .where(
                    actor.visible_tickets(),
                    Ticket.first_response_at.is_(None),
                    Ticket.status.not_in(DONE),
                    Ticket.sla_warning_at.is_not(None),
                    Ticket.sla_breach_at.is_not(None),
                    Ticket.sla_warning_at <= now,
                )
                .order_by(Ticket.sla_breach_at, Ticket.number)
                .limit(limit)
            )
        )
        views = await repository.ticket_views(session, rows)
    result: list[SlaTicket] = []
    for row, view in zip(rows, views, strict=True):
        assert row.sla_warning_at is not None and row.sla_breach_at is not None
        started = row.sla_started_at or row.created_at
        result.append(
            SlaTicket(
                ticket=view,
                state=sla_state(view, now),
                started_at=started,
                warning_at=row.sla_warning_at,
                breach_at=row.sla_breach_at,
                waited=now - started,
                remaining=row.sla_breach_at - now,
            )
        )
    return result
