"""Reading the audit log: who changed what, when, newest first, for managers and admins (and
for the operator on the server, like `roles set`). Filters by ticket, by person (what they did
and what was done to them) and by time; paged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import load_actor, require_role
from core.context import Core
from core.enums import Role
from core.errors import NotFound, ValidationFailed
from core.models import AuditEntry, Ticket, User
from core.results import Page
from core.validation import positive_int

AUDIT_PAGE_SIZE_MAX = 200


@dataclass(frozen=True)
class AuditFilters:
    """Which entries to read; None means any. `user` is a person's chat user id: entries they
    made and entries about them (a role change, a deactivation) both match."""

    ticket_number: int | None = None
    user: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class AuditPerson:
    chat_user_id: str
    name: str


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry with the people and ticket it names resolved. `actor` is None for the
    system and the operator (`details["via"]` says which command, e.g. "cli")."""

    id: int
    at: datetime
    action: str
    actor: AuditPerson | None
    ticket_number: int | None
    subject: AuditPerson | None  # the person the entry is about (details["user_id"])
    details: Mapping[str, Any]


async def read_audit_log(
    core: Core,
    *,
    actor_id: int | None,
    filters: AuditFilters | None = None,
    page: int = 1,
    page_size: int = 50,
) -> Page[AuditRecord]:
    """A page of audit entries matching `filters`, newest first, with a COUNT total.

    `actor_id` None is the operator on the server (trusted with the database already); any
    other reader must be a manager or an admin. A ticket is found by number even when deleted
    (its history is what the log is for); an unknown ticket or person is NotFound."""
    filters = filters or AuditFilters()
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=AUDIT_PAGE_SIZE_MAX)
    if filters.since is not None and filters.since.tzinfo is None:
        raise ValidationFailed("The start time needs a time zone.", field="since")
    async with core.db.transaction() as session:
        if actor_id is not None:
            actor = await load_actor(session, actor_id)
            require_role(actor, "audit.read", Role.MANAGER, Role.ADMIN)
        condition: ColumnElement[bool] = true()
        if filters.ticket_number is not None:
            ticket_id = await session.scalar(
                select(Ticket.id).where(Ticket.number == filters.ticket_number)
            )
            if ticket_id is None:
                raise NotFound(f"Ticket #{filters.ticket_number} was not found.")
            condition = condition & (AuditEntry.ticket_id == ticket_id)
        if filters.user is not None:
            user_id = await session.scalar(
                select(User.id).where(User.slack_user_id == filters.user)
            )
            if user_id is None:
                raise NotFound(f"No person with the id {filters.user} is known to the desk.")
            condition = condition & (
                (AuditEntry.actor_id == user_id)
                | (AuditEntry.details["user_id"].as_integer() == user_id)
            )
        if filters.since is not None:
            condition = condition & (AuditEntry.created_at >= filters.since)
        total = await session.scalar(select(func.count()).select_from(AuditEntry).where(condition))
        entries = list(
            await session.scalars(
                select(AuditEntry)
                .where(condition)
                .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
                .offset((page - 1) * page_size)
                .limit(page_size)
            )
        )
        people = await _people(session, entries)
        numbers = await _ticket_numbers(session, entries)
        records = [_record(entry, people, numbers) for entry in entries]
        return Page.of(records, total=total or 0, page=page, page_size=page_size)


def _record(
    entry: AuditEntry, people: dict[int, AuditPerson], numbers: dict[Any, int]
) -> AuditRecord:
    subject = _subject_id(entry)
    return AuditRecord(
        id=entry.id,
        at=entry.created_at,
        action=entry.action,
        actor=people.get(entry.actor_id) if entry.actor_id is not None else None,
        ticket_number=numbers.get(entry.ticket_id) if entry.ticket_id is not None else None,
        subject=people.get(subject) if subject is not None else None,
        details=dict(entry.details or {}),
    )


def _subject_id(entry: AuditEntry) -> int | None:
    value = (entry.details or {}).get("user_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def _people(session: AsyncSession, entries: list[AuditEntry]) -> dict[int, AuditPerson]:
    ids = {e.actor_id for e in entries if e.actor_id is not None}
    ids |= {s for s in (_subject_id(e) for e in entries) if s is not None}
    if not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.slack_user_id, User.display_name).where(User.id.in_(sorted(ids)))
    )
    return {row.id: AuditPerson(row.slack_user_id, row.display_name) for row in rows}


async def _ticket_numbers(session: AsyncSession, entries: list[AuditEntry]) -> dict[Any, int]:
    ids = {e.ticket_id for e in entries if e.ticket_id is not None}
    if not ids:
        return {}
    rows = await session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids)))
    return {row.id: row.number for row in rows}
