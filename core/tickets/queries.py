"""Reading tickets: one ticket with its replies and history, filtered and personal lists (with
a COUNT total), and the system reads the delivery worker makes before it tells someone."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import repository
from core.access import TicketRef, actor_of, load_actor, load_ticket
from core.context import Core
from core.enums import Priority, Role, Status
from core.models import Ticket, User
from core.validation import PAGE_SIZE_MAX, parse_enum, positive_int
from core.views import Page, TicketDetail, TicketView

log = logging.getLogger("core.tickets")


@dataclass(frozen=True)
class TicketFilters:
    """Filters of a ticket list; None means 'any'."""

    status: Status | str | None = None
    priority: Priority | str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    customer_id: int | None = None
    company_id: int | None = None
    category_id: int | None = None


async def get_ticket(core: Core, *, actor_id: int, ticket: TicketRef) -> TicketDetail:
    """A ticket with its replies (internal notes for staff only) and status history."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket)
        replies = await repository.visible_replies(session, row.id, include_internal=actor.is_staff)
        return TicketDetail(
            ticket=await repository.ticket_view(session, row),
            replies=tuple(await repository.reply_views(session, replies)),
            history=tuple(await repository.status_history(session, row.id)),
        )


async def list_tickets(
    core: Core,
    *,
    actor_id: int,
    filters: TicketFilters | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page[TicketView]:
    """The actor's visible tickets matching `filters`, newest first, with a COUNT total."""
    filters = filters or TicketFilters()
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=PAGE_SIZE_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        conditions = [actor.visible_tickets(), *_filter_conditions(filters)]
        return await _page(session, conditions, page=page, page_size=page_size)


async def my_tickets(
    core: Core, *, actor_id: int, open_only: bool = False, page: int = 1, page_size: int = 20
) -> Page[TicketView]:
    """Customers: the tickets they requested. Staff: the tickets assigned to them."""
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=PAGE_SIZE_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        mine = Ticket.customer_id if actor.role is Role.CUSTOMER else Ticket.assignee_id
        conditions = [actor.visible_tickets(), mine == actor.id]
        if open_only:
            conditions.append(Ticket.status.not_in([Status.RESOLVED.value, Status.CLOSED.value]))
        return await _page(session, conditions, page=page, page_size=page_size)


def _filter_conditions(filters: TicketFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        state = parse_enum(Status, filters.status, field="status")
        conditions.append(Ticket.status == state.value)
    if filters.priority is not None:
        level = parse_enum(Priority, filters.priority, field="priority")
        conditions.append(Ticket.priority == level.value)
    if filters.unassigned:
        conditions.append(Ticket.assignee_id.is_(None))
    elif filters.assignee_id is not None:
        conditions.append(Ticket.assignee_id == filters.assignee_id)
    if filters.customer_id is not None:
        conditions.append(Ticket.customer_id == filters.customer_id)
    if filters.company_id is not None:
        conditions.append(Ticket.company_id == filters.company_id)
    if filters.category_id is not None:
        conditions.append(Ticket.category_id == filters.category_id)
    return conditions


async def _page(
    session: AsyncSession, conditions: list[ColumnElement[bool]], *, page: int, page_size: int
) -> Page[TicketView]:
    total = await session.scalar(select(func.count()).select_from(Ticket).where(*conditions))
    rows = await session.scalars(
        select(Ticket)
        .where(*conditions)
        .order_by(Ticket.created_at.desc(), Ticket.number.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    views = await repository.ticket_views(session, list(rows))
    return Page.of(views, total=int(total or 0), page=page, page_size=page_size)


async def ticket_snapshot(core: Core, *, ticket_id: uuid.UUID) -> TicketView | None:
    """System read for delivery: the ticket as staff see it (deleted ones too), None if unknown."""
    async with core.db.transaction() as session:
        row = await session.get(Ticket, ticket_id)
        if row is None:
            return None
        return await repository.ticket_view(session, row)


async def ticket_for_recipient(
    core: Core, *, ticket_id: uuid.UUID, user_id: int
) -> TicketView | None:
    """System read for delivery: the ticket, if the person about to be told about it may see
    it now (active, not deleted in chat, by their role and companies as they are at this
    moment); None otherwise, and the message is not sent."""
    async with core.db.transaction() as session:
        row = await session.get(Ticket, ticket_id)
        user = await session.get(User, user_id)
        if row is None or user is None or not user.can_act:
            return None
        actor = await actor_of(session, user_id, user)
        if not actor.can_see(row):
            log.info(
                "not telling someone who may not see the ticket",
                extra={"user_id": user_id, "ticket": row.number},
            )
            return None
        return await repository.ticket_view(session, row)
