"""Loading rows and turning them into views. Repositories add and query; they never commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import attachments
from core.enums import Priority, Role, Status
from core.models import Category, Reply, StatusChange, Ticket, TicketCounter, User
from core.results import ReplyView, StatusChangeView, TicketView, UserView


def user_view(user: User) -> UserView:
    return UserView(
        id=user.id,
        slack_user_id=user.slack_user_id,
        display_name=user.display_name,
        email=user.email,
        role=Role(user.role),
        company_id=user.company_id,
        is_active=user.can_act,
    )


async def users_by_id(session: AsyncSession, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(sorted(wanted))))
    return {user.id: user for user in rows}


async def ticket_views(session: AsyncSession, tickets: Sequence[Ticket]) -> list[TicketView]:
    """Views of tickets with their people and category, loaded in two queries."""
    users = await users_by_id(
        session, [t.customer_id for t in tickets] + [t.assignee_id for t in tickets]
    )
    category_ids = sorted({t.category_id for t in tickets if t.category_id is not None})
    categories: dict[int, str] = {}
    if category_ids:
        rows = await session.execute(
            select(Category.id, Category.name).where(Category.id.in_(category_ids))
        )
        categories = {row.id: row.name for row in rows}
    return [
        view_of(
            t,
            customer=users[t.customer_id],
            assignee=users[t.assignee_id] if t.assignee_id else None,
            category_name=categories.get(t.category_id) if t.category_id else None,
        )
        for t in tickets
    ]


def view_of(
    t: Ticket, *, customer: User, assignee: User | None, category_name: str | None
) -> TicketView:
    """The view of a ticket whose people and category name the caller has loaded already."""
    return TicketView(
        id=t.id,
        number=t.number,
        title=t.title,
        description=t.description,
        status=Status(t.status),
        priority=Priority(t.priority),
        category_id=t.category_id,
        category_name=category_name,
        customer=user_view(customer),
        company_id=t.company_id,
        assignee=user_view(assignee) if assignee is not None else None,
        created_by_id=t.created_by_id,
        created_at=t.created_at,
        updated_at=t.updated_at,
        first_response_at=t.first_response_at,
        resolved_at=t.resolved_at,
        closed_at=t.closed_at,
        status_reason=t.status_reason,
        sla_warning_at=t.sla_warning_at,
        sla_breach_at=t.sla_breach_at,
        deleted_at=t.deleted_at,
    )


async def ticket_view(session: AsyncSession, ticket: Ticket) -> TicketView:
    return (await ticket_views(session, [ticket]))[0]


async def reply_views(session: AsyncSession, replies: Sequence[Reply]) -> list[ReplyView]:
    users = await users_by_id(session, [r.author_id for r in replies])
    files = await attachments.views_by_reply(session, [r.id for r in replies])
    return [
        ReplyView(
            id=r.id,
            ticket_id=r.ticket_id,
            author=user_view(users[r.author_id]),
            body=r.body,
            is_internal=r.is_internal,
            created_at=r.created_at,
            edited_at=r.edited_at,
            attachments=files.get(r.id, ()),
        )
        for r in replies
    ]


async def visible_replies(
    session: AsyncSession, ticket_id: uuid.UUID, *, include_internal: bool
) -> list[Reply]:
    """Replies of a ticket, oldest first; internal notes only when asked for, in the query."""
    query = select(Reply).where(Reply.ticket_id == ticket_id, Reply.deleted_at.is_(None))
    if not include_internal:
        query = query.where(Reply.is_internal.is_(False))
    rows = await session.scalars(query.order_by(Reply.created_at, Reply.id))
    return list(rows)


async def status_history(session: AsyncSession, ticket_id: uuid.UUID) -> list[StatusChangeView]:
    rows = await session.scalars(
        select(StatusChange)
        .where(StatusChange.ticket_id == ticket_id)
        .order_by(StatusChange.changed_at, StatusChange.id)
    )
    return [
        StatusChangeView(
            from_status=Status(r.from_status) if r.from_status else None,
            to_status=Status(r.to_status),
            reason=r.reason,
            changed_by_id=r.changed_by_id,
            changed_at=r.changed_at,
        )
        for r in rows
    ]


async def next_ticket_number(session: AsyncSession) -> int:
    """A unique, increasing ticket number: a sequence on PostgreSQL, a locked counter on SQLite."""
    bind = session.bind
    if bind is not None and bind.dialect.name == "postgresql":
        value = await session.scalar(select(func.nextval("ticket_number_seq")))
    else:
        result = await session.execute(
            update(TicketCounter)
            .where(TicketCounter.id == 1)
            .values(value=TicketCounter.value + 1)
            .returning(TicketCounter.value)
        )
        value = result.scalar_one()
    if value is None:
        raise RuntimeError("ticket number source returned nothing")
    return int(value)
