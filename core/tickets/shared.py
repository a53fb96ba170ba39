"""Pieces the ticket services share: the closed-ticket guard, the category check, the start of
the SLA clock and the staff card refresh."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox
from core.enums import Audience, Status
from core.errors import TicketClosed, ValidationFailed
from core.models import Category, Ticket
from core.outbox import OutboxKind


def require_open_for_changes(row: Ticket) -> None:
    if row.status == Status.CLOSED.value:
        raise TicketClosed(f"Ticket #{row.number} is closed; reopen it first.")


async def active_category(session: AsyncSession, category_id: int | None) -> Category | None:
    if category_id is None:
        return None
    return usable_category(await session.get(Category, category_id))


def usable_category(category: Category | None) -> Category:
    """A category loaded by id: it must exist and be active."""
    if category is None or not category.is_active:
        raise ValidationFailed("That category does not exist.", field="category")
    return category


def sla_start(row: Ticket) -> datetime:
    """When the current first-response clock started: creation, or the latest reopening."""
    return row.sla_started_at or row.created_at


def refresh_card(session: AsyncSession, row: Ticket, now: datetime) -> None:
    outbox.enqueue(
        session,
        kind=OutboxKind.STAFF_CARD_REFRESH,
        ticket_id=row.id,
        key=outbox.thread_key(Audience.STAFF, row.id),
        now=now,
    )
