"""Shared pieces of the ticket and reply tests: a small cast of users, and readers of the rows
the services wrote (audit, outbox, history) straight from the tables."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select, update

from core.context import Core
from core.enums import Role, Status
from core.errors import DomainError
from core.models import AuditEntry, Reply, SlaTimer, StatusChange, Ticket, User
from core.results import TicketView, UserView
from core.tickets import change_status
from tests.factories import make_company, make_user


@dataclass(frozen=True)
class Cast:
    """Two companies and one user of each kind that matters to the permission matrix."""

    company_a: int
    company_b: int
    alice: UserView  # customer of company A
    bob: UserView  # customer of company B
    carol: UserView  # customer without a company
    corp_a: UserView  # corporate staff of company A (users.company_id)
    corp_b_plus_a: UserView  # corporate staff of company B with a membership of company A
    corp_none: UserView  # corporate staff without any company
    agent: UserView
    manager: UserView
    admin: UserView


async def make_cast(core: Core) -> Cast:
    company_a = await make_company(core)
    company_b = await make_company(core)
    return Cast(
        company_a=company_a,
        company_b=company_b,
        alice=await make_user(core, Role.CUSTOMER, name="Alice", company_id=company_a),
        bob=await make_user(core, Role.CUSTOMER, name="Bob", company_id=company_b),
        carol=await make_user(core, Role.CUSTOMER, name="Carol"),
        corp_a=await make_user(core, Role.CORPORATE, name="Corp A", company_id=company_a),
        corp_b_plus_a=await make_user(
            core,
            Role.CORPORATE,
            name="Corp B+A",
            company_id=company_b,
            extra_companies=(company_a,),
        ),
        corp_none=await make_user(core, Role.CORPORATE, name="Corp none"),
        agent=await make_user(core, Role.AGENT, name="Agent"),
        manager=await make_user(core, Role.MANAGER, name="Manager"),
        admin=await make_user(core, Role.ADMIN, name="Admin"),
    )


async def ticket_row(core: Core, ticket_id: uuid.UUID) -> Ticket:
    """The raw ticket row, deleted or not."""
    async with core.db.transaction() as session:
        row = await session.get(Ticket, ticket_id)
        assert row is not None
        return row


async def sla_next_alert(core: Core, ticket_id: uuid.UUID) -> datetime | None:
    """When the ticket's next SLA alert falls due: its earliest armed timer (None: none)."""
    async with core.db.transaction() as session:
        return await session.scalar(
            select(func.min(SlaTimer.due_at)).where(SlaTimer.ticket_id == ticket_id)
        )


async def count_rows(core: Core, model: type[Any], *where: Any) -> int:
    async with core.db.transaction() as session:
        total = await session.scalar(select(func.count()).select_from(model).where(*where))
        return int(total or 0)


async def audit_actions(core: Core, ticket_id: uuid.UUID | None = None) -> list[str]:
    async with core.db.transaction() as session:
        query = select(AuditEntry.action).order_by(AuditEntry.id)
        if ticket_id is not None:
            query = query.where(AuditEntry.ticket_id == ticket_id)
        return list(await session.scalars(query))


async def audit_entries(core: Core, ticket_id: uuid.UUID) -> list[AuditEntry]:
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.ticket_id == ticket_id).order_by(AuditEntry.id)
        )
        return list(rows)


async def history_rows(core: Core, ticket_id: uuid.UUID) -> list[StatusChange]:
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(StatusChange)
            .where(StatusChange.ticket_id == ticket_id)
            .order_by(StatusChange.id)
        )
        return list(rows)


async def reply_row(core: Core, reply_id: int) -> Reply:
    async with core.db.transaction() as session:
        row = await session.get(Reply, reply_id)
        assert row is not None
        return row


async def set_role(core: Core, user_id: int, role: Role) -> None:
    """Change a role behind the services' back (role changes belong to the admin module)."""
    async with core.db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(role=role.value))


async def deactivate(core: Core, user_id: int) -> None:
    async with core.db.transaction() as session:
        await session.execute(update(User).where(User.id == user_id).values(is_active=False))


# The staff path from a new (open) ticket to each status.
PATH_TO: dict[Status, tuple[Status, ...]] = {
    Status.OPEN: (),
    Status.IN_PROGRESS: (Status.IN_PROGRESS,),
    Status.WAITING_ON_CUSTOMER: (Status.WAITING_ON_CUSTOMER,),
    Status.RESOLVED: (Status.RESOLVED,),
    Status.CLOSED: (Status.CLOSED,),
}


async def bring_to(core: Core, ticket: TicketView, status: Status, *, by: UserView) -> None:
    """Move a freshly opened ticket to `status` through the staff service."""
    for step in PATH_TO[status]:
        await change_status(
            core, actor_id=by.id, ticket=ticket.number, status=step, reason=f"to {step.value}"
        )


def error_shape(error: DomainError, *, number: int | None = None) -> tuple[object, ...]:
    """What a caller can observe of an error, with the ticket number asked for blanked out."""
    message = error.message
    if number is not None:
        message = message.replace(f"#{number}", "#N")
    return (type(error), error.code, error.field, message)


@contextmanager
def captured_sql(core: Core) -> Iterator[list[str]]:
    """Every SQL statement sent to the database while the block runs."""
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(" ".join(statement.split()))

    engine = core.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
