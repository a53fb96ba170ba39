"""Test data factories: rows that tests need, made in one line."""

from __future__ import annotations

import itertools
import uuid

from sqlalchemy import select

from core import outbox, sla
from core.context import Core
from core.enums import Priority, Role
from core.models import (
    Category,
    Company,
    CompanyDomain,
    CorporateMembership,
    OutboxMessage,
    User,
)
from core.outbox import OutboxKind
from core.repository import user_view
from core.results import TicketView, UserView
from core.tickets import create_ticket

_sequence = itertools.count(1)


async def make_company(core: Core, name: str | None = None, *domains: str) -> int:
    async with core.db.transaction() as session:
        company = Company(name=name or f"Company {next(_sequence)}")
        session.add(company)
        await session.flush()
        for domain in domains:
            session.add(CompanyDomain(domain=domain.lower(), company_id=company.id))
        return company.id


async def make_user(
    core: Core,
    role: Role | str = Role.CUSTOMER,
    *,
    name: str | None = None,
    company_id: int | None = None,
    extra_companies: tuple[int, ...] = (),
    active: bool = True,
    email: str | None = None,
    slack_user_id: str | None = None,
) -> UserView:
    n = next(_sequence)
    async with core.db.transaction() as session:
        user = User(
            slack_user_id=slack_user_id or f"U{n:08d}",
            display_name=name or f"{Role(role).value.title()} {n}",
            email=email,
            role=Role(role).value,
            company_id=company_id,
            is_active=active,
            created_at=core.clock.now(),
            updated_at=core.clock.now(),
        )
        session.add(user)
        await session.flush()
        for company in extra_companies:
            session.add(CorporateMembership(user_id=user.id, company_id=company))
        return user_view(user)


async def make_category(core: Core, name: str | None = None) -> int:
    async with core.db.transaction() as session:
        category = Category(name=name or f"Category {next(_sequence)}")
        session.add(category)
        await session.flush()
        return category.id


async def make_ticket(
    core: Core,
    customer: UserView,
    *,
    title: str = "Printer is on fire",
    description: str = "It started this morning.",
    priority: Priority | str = Priority.MEDIUM,
    by: UserView | None = None,
    category_id: int | None = None,
) -> TicketView:
    creator = by or customer
    return await create_ticket(
        core,
        actor_id=creator.id,
        title=title,
        description=description,
        priority=priority,
        category_id=category_id,
        customer_id=None if creator.id == customer.id else customer.id,
    )


async def user_row(core: Core, user_id: int) -> User:
    async with core.db.transaction() as session:
        user = await session.scalar(select(User).where(User.id == user_id))
        assert user is not None
        return user


async def outbox_rows(core: Core, ticket_id: uuid.UUID | None = None) -> list[OutboxMessage]:
    """The outbox, oldest first (only `ticket_id`'s messages when given), detached from the
    session so that a test may read them after it has ended."""
    async with core.db.transaction() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        if ticket_id is not None:
            query = query.where(OutboxMessage.ticket_id == ticket_id)
        rows = list(await session.scalars(query))
        session.expunge_all()
        return rows


async def fan_out_sla_alerts(
    core: Core, *, worker_id: str = "test-worker"
) -> list[sla.FanOutResult]:
    """Deliver the queued `sla_alerts` messages the way the delivery worker does."""
    results: list[sla.FanOutResult] = []
    while claimed := await outbox.claim_batch(
        core, worker_id=worker_id, limit=50, kinds=[OutboxKind.SLA_ALERTS]
    ):
        for message in claimed:
            results.append(await sla.fan_out(core, message_id=message.id, worker_id=worker_id))
    return results
