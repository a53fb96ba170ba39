"""Reading tickets: one ticket with its replies and history, filtered and personal lists (with
a COUNT total), and the system reads the delivery worker makes before it tells someone."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import repository
from core.access import Actor, TicketRef, actor_of, load_actor, load_ticket
from core.context import Core
from core.enums import Priority, Role, Status
from core.errors import ValidationFailed
from core.models import Category, Ticket, User
from core.results import Page, TicketDetail, TicketView
from core.validation import PAGE_SIZE_MAX, positive_int

log = logging.getLogger("core.tickets")


@dataclass(frozen=True)
class UserRef:
    """A person a list filter names, resolved by the listing on rows it loads: the actor
    (`me`), a desk user id, or the person's chat user id. Exactly one is given."""

    me: bool = False
    user_id: int | None = None
    chat_user_id: str | None = None

    def __post_init__(self) -> None:
        if sum((self.me, self.user_id is not None, self.chat_user_id is not None)) != 1:
            raise ValueError("a UserRef names exactly one person")


@dataclass(frozen=True)
class TicketFilters:
    """Filters of a ticket list, typed (nothing in them is parsed again); None means 'any'.
    People and the category by name are resolved in the listing's transaction."""

    status: Status | None = None
    priority: Priority | None = None
    assignee: UserRef | None = None
    unassigned: bool = False
    customer: UserRef | None = None
    company_id: int | None = None
    category_id: int | None = None
    category_name: str | None = None  # matched without regard to case, inactive ones too


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
        conditions = [actor.visible_tickets(), *await _filter_conditions(session, actor, filters)]
        return await _page(session, conditions, page=page, page_size=page_size)


async def my_tickets(
    core: Core, *, actor_id: int, open_only: bool = False, page: int = 1, page_size: int = 20
) -> Page[TicketView]:
    """Customers: the tickets they requested, and those raised in their company's customer
    channels. Staff: the tickets assigned to them."""
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=PAGE_SIZE_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        conditions = [actor.visible_tickets()]
        if actor.role is not Role.CUSTOMER:  # (a customer's visible tickets are theirs)
            conditions.append(Ticket.assignee_id == actor.id)
        if open_only:
            conditions.append(Ticket.status.not_in([Status.RESOLVED.value, Status.CLOSED.value]))
        return await _page(session, conditions, page=page, page_size=page_size)


async def _filter_conditions(
    session: AsyncSession, actor: Actor, filters: TicketFilters
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Ticket.status == filters.status.value)
    if filters.priority is not None:
        conditions.append(Ticket.priority == filters.priority.value)
    if filters.unassigned:
        conditions.append(Ticket.assignee_id.is_(None))
    elif filters.assignee is not None:
        assignee_id = await _user_id(session, actor, filters.assignee, field="assignee")
        conditions.append(Ticket.assignee_id == assignee_id)
    if filters.customer is not None:
        customer_id = await _user_id(session, actor, filters.customer, field="customer")
        conditions.append(Ticket.customer_id == customer_id)
    if filters.company_id is not None:
        conditions.append(Ticket.company_id == filters.company_id)
    if filters.category_id is not None:
        conditions.append(Ticket.category_id == filters.category_id)
    if filters.category_name is not None:
        conditions.append(Ticket.category_id == await _category_id(session, filters.category_name))
    return conditions


async def _user_id(session: AsyncSession, actor: Actor, ref: UserRef, *, field: str) -> int:
    if ref.me:
        return actor.id
    if ref.user_id is not None:
        return ref.user_id
    found = await session.scalar(select(User.id).where(User.slack_user_id == ref.chat_user_id))
    if found is None:
        raise ValidationFailed("That person has never used the help desk.", field=field)
    return found


async def _category_id(session: AsyncSession, name: str) -> int:
    wanted = name.strip().lower()
    found = await session.scalar(
        select(Category.id).where(func.lower(Category.name) == wanted).order_by(Category.id)
    )
    if found is None:
        raise ValidationFailed(f"There is no category named {name!r}.", field="category")
    return found


async def _page(
    session: AsyncSession, conditions: list[ColumnElement[bool]], *, page: int, page_size: int
) -> Page[TicketView]:
    offset = (page - 1) * page_size
    rows = list(
        await session.scalars(
            select(Ticket)
            .where(*conditions)
            .order_by(Ticket.created_at.desc(), Ticket.number.desc())
            .offset(offset)
            .limit(page_size)
        )
    )
    if len(rows) < page_size and (rows or page == 1):
        # A page that is not full is the last one: the total needs no COUNT (the usual
        # answer for a customer's own list).
        total = offset + len(rows)
    else:
        total = int(
            await session.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0
        )
    views = await repository.ticket_views(session, rows)
    return Page.of(views, total=total, page=page, page_size=page_size)


async def count_by_status(core: Core) -> dict[Status, int]:
    """System read for metrics: live (not deleted) tickets by status, every status present."""
    async with core.db.transaction() as session:
        rows = await session.execute(
            select(Ticket.status, func.count())
            .where(Ticket.deleted_at.is_(None))
            .group_by(Ticket.status)
        )
        counts = {str(status): int(count) for status, count in rows}
    return {status: counts.get(status.value, 0) for status in Status}


async def ticket_snapshot(core: Core, *, ticket_id: uuid.UUID) -> TicketView | None:
    """System read for delivery: the ticket as staff see it (deleted ones too), None if unknown."""
    async with core.db.transaction() as session:
        row = await session.get(Ticket, ticket_id)
        if row is None:
            return None
        return await repository.ticket_view(session, row)


async def ticket_for_recipient(
    core: Core, *, ticket_id: uuid.UUID, user_id: int | None = None
) -> TicketView | None:
    """System read for delivery: the ticket, if the person about to be told about it (None:
    the ticket's customer) may see it now (active, not deleted in chat, by their role and
    companies as they are at this moment); None otherwise, and the message is not sent."""
    async with core.db.transaction() as session:
        row = await session.get(Ticket, ticket_id)
        if row is None:
            return None
        user_id = row.customer_id if user_id is None else user_id
        user = await session.get(User, user_id)
        if user is None or not user.can_act:
            return None
        actor = await actor_of(session, user_id, user)
        if not actor.can_see(row):
            log.info(
                "not telling someone who may not see the ticket",
                extra={"user_id": user_id, "ticket": row.number},
            )
            return None
        return await repository.ticket_view(session, row)
