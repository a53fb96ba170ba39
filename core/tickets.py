"""Ticket services: create, read, list, update, status, priority, assignment, deletion.

Each public function is one transaction: it loads the actor and the rows it needs, checks the
permission matrix on them, changes state, writes the audit entry and the outbox messages, and
commits all of it or nothing."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Uuid, bindparam, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core import audit, outbox, ratelimit, repository, sla
from core.access import (
    Actor,
    TicketRef,
    actor_of,
    company_scope,
    denied,
    load_actor,
    load_ticket,
    not_found,
    require_role,
    require_staff,
)
from core.context import Core
from core.db import UTCDateTime
from core.enums import Audience, Priority, Role, SlaThreshold, Status
from core.errors import Conflict, InvalidTransition, TicketClosed, ValidationFailed
from core.models import Category, StatusChange, Ticket, User
from core.outbox import OutboxKind
from core.sla_policy import SlaPolicy
from core.validation import (
    BODY_MAX,
    PAGE_SIZE_MAX,
    REASON_MAX,
    TITLE_MAX,
    clean_text,
    opaque_key,
    optional_text,
    parse_enum,
    positive_int,
    single_line,
)
from core.views import Page, TicketDetail, TicketView

log = logging.getLogger("core.tickets")

IDEMPOTENCY_KEY_MAX = 200

# Allowed status changes. Who may make them is decided in `_check_transition`.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.OPEN: frozenset(
        {Status.IN_PROGRESS, Status.WAITING_ON_CUSTOMER, Status.RESOLVED, Status.CLOSED}
    ),
    Status.IN_PROGRESS: frozenset(
        {Status.OPEN, Status.WAITING_ON_CUSTOMER, Status.RESOLVED, Status.CLOSED}
    ),
    Status.WAITING_ON_CUSTOMER: frozenset(
        {Status.OPEN, Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED}
    ),
    Status.RESOLVED: frozenset({Status.OPEN, Status.IN_PROGRESS, Status.CLOSED}),
    Status.CLOSED: frozenset({Status.OPEN}),
}


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


# --------------------------------------------------------------------------------------------
# create


async def create_ticket(
    core: Core,
    *,
    actor_id: int,
    title: str,
    description: str = "",
    priority: Priority | str = Priority.MEDIUM,
    category_id: int | None = None,
    customer_id: int | None = None,
    idempotency_key: str | None = None,
    copied_from_staff: bool = False,
    customer_may_see_confirmed: bool = False,
) -> TicketView:
    """Open a ticket for `customer_id` (default: the actor); a repeated idempotency key returns
    the ticket the first call created.

    `copied_from_staff`: the title and description were copied from a staff surface (a note,
    the staff channel). Such text is internal until the person opening the ticket confirms
    that the customer, who is shown both, may read it (`customer_may_see_confirmed`).

    The reads are one query (the actor, with the ticket of an earlier call with the same key,
    the customer named and the category chosen) and, on PostgreSQL, the writes are one
    statement (`_CREATE_PG`): the rate-limit count and every row of the new ticket."""
    title = single_line(title, field="title", max_length=TITLE_MAX)
    description = clean_text(description, field="description", max_length=BODY_MAX, required=False)
    level = parse_enum(Priority, priority, field="priority")
    idempotency_key = clean_idempotency_key(idempotency_key)
    if copied_from_staff and not customer_may_see_confirmed:
        raise ValidationFailed(
            "This text was copied from a staff conversation and the customer will see it: "
            "remove anything internal, then confirm.",
            field="customer_may_see",
        )
    try:
        async with core.db.transaction() as session:
            actor, existing, named, chosen = await _load_for_creation(
                session,
                actor_id=actor_id,
                customer_id=customer_id,
                category_id=category_id,
                idempotency_key=idempotency_key,
            )
            if existing is not None:
                return await repository.ticket_view(session, _replayed(actor, existing))
            customer = _ticket_customer(actor, customer_id, named)
            category = _usable_category(chosen) if category_id is not None else None
            now = core.clock.now()
            warning_at, breach_at = SlaPolicy(core.settings).deadlines(level, now)
            ticket = Ticket(
                id=uuid.uuid4(),
                title=title,
                description=description,
                status=Status.OPEN.value,
                priority=level.value,
                category_id=category.id if category else None,
                customer_id=customer.id,
                company_id=customer.company_id,
                created_by_id=actor.id,
                created_at=now,
                updated_at=now,
                sla_started_at=now,
                sla_warning_at=warning_at,
                sla_breach_at=breach_at,
                idempotency_key=idempotency_key,
            )
            details: dict[str, Any] = {"customer_id": customer.id, "priority": level.value}
            if copied_from_staff:
                details["copied_from_staff"] = True  # (and confirmed by the actor)
            if core.db.dialect == "postgresql":
                await _write_in_one_statement(core, session, ticket, details)
            else:
                await _write_step_by_step(core, session, ticket, details)
            log.info(
                "ticket created",
                extra={"actor_id": actor.id, "ticket": ticket.number, "customer_id": customer.id},
            )
            return repository.view_of(
                ticket,
                customer=customer,
                assignee=None,
                category_name=category.name if category else None,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent call with the same key won the race: answer with its ticket.
        async with core.db.transaction() as session:
            actor = await load_actor(session, actor_id)
            existing = await session.scalar(
                select(Ticket).where(Ticket.idempotency_key == idempotency_key)
            )
            if existing is None:
                raise
            return await repository.ticket_view(session, _replayed(actor, existing))


CREATE_BUCKET = "ticket_create"
CREATE_ACTION = "ticket.created"
CREATE_WHAT = "open a ticket"

# Opening a ticket on PostgreSQL in one round trip. `counted` counts the creation in the
# actor's fixed-window rate-limit counter (the same upsert as core.ratelimit.consume: its row
# lock serialises concurrent requests of every process); only within the limit does `ticket`
# insert the ticket, numbered by the sequence, and the other inserts write its dependants from
# the inserted row: the first status-history row, the audit entry (its details get the
# number), the staff card and customer thread messages (in that order) and the warning and
# breach SLA timers (as core.sla.schedule arms them for a ticket awaiting its first response).
# A refused count inserts nothing; the caller raises and the transaction rolls back, increment
# included. An idempotency key used meanwhile by a concurrent call violates the unique
# constraint (IntegrityError, answered by create_ticket with that call's ticket).
_CREATE_PG = text(
    """
WITH counted AS (
    INSERT INTO rate_limit_counters AS counter (actor_id, bucket, window_start, count)
    VALUES (:actor_id, :bucket, :window_start, 1)
    ON CONFLICT (actor_id, bucket, window_start) DO UPDATE SET count = counter.count + 1
    RETURNING counter.count
), ticket AS (
    INSERT INTO tickets (id, number, title, description, status, priority, category_id,
        customer_id, company_id, created_by_id, created_at, updated_at, sla_started_at,
        sla_warning_at, sla_breach_at, idempotency_key)
    SELECT :id, nextval('ticket_number_seq'), :title, :description, :status, :priority,
        :category_id, :customer_id, :company_id, :actor_id, :now, :now, :now,
        :warning_at, :breach_at, :idempotency_key
    FROM counted
    WHERE counted.count <= CAST(:limit AS bigint)
    RETURNING id, number
), history AS (
    INSERT INTO status_history (ticket_id, from_status, to_status, reason, changed_by_id,
        changed_at)
    SELECT ticket.id, NULL, :status, NULL, :actor_id, :now FROM ticket
), audit AS (
    INSERT INTO audit_log (actor_id, action, ticket_id, details, created_at)
    SELECT :actor_id, :action, ticket.id,
        :details || jsonb_build_object('number', ticket.number), :now
    FROM ticket
), messages AS (
    INSERT INTO outbox (kind, ticket_id, thread_key, payload, created_at, next_attempt_at,
        attempts)
    SELECT message.kind, ticket.id, message.thread_key, CAST('{}' AS jsonb), :now, :now, 0
    FROM ticket CROSS JOIN (
        VALUES (1, CAST(:staff_kind AS text), CAST(:staff_key AS text)),
            (2, CAST(:customer_kind AS text), CAST(:customer_key AS text))
    ) AS message (position, kind, thread_key)
    ORDER BY message.position
), timers AS (
    INSERT INTO sla_timers (ticket_id, threshold, due_at)
    SELECT ticket.id, timer.threshold, timer.due_at
    FROM ticket CROSS JOIN (
        VALUES (CAST(:warning AS text), :warning_at), (CAST(:breach AS text), :breach_at)
    ) AS timer (threshold, due_at)
)
SELECT counted.count AS used, ticket.number FROM counted LEFT JOIN ticket ON true
"""
).bindparams(
    bindparam("id", type_=Uuid()),
    bindparam("window_start", type_=UTCDateTime()),
    bindparam("now", type_=UTCDateTime()),
    bindparam("warning_at", type_=UTCDateTime()),
    bindparam("breach_at", type_=UTCDateTime()),
    bindparam("details", type_=postgresql.JSONB()),
)


async def _write_in_one_statement(
    core: Core, session: AsyncSession, ticket: Ticket, details: dict[str, Any]
) -> None:
    """Count the creation and write every row of `ticket` with `_CREATE_PG`; sets its number."""
    limit = core.settings.ticket_create_limit
    window_seconds = core.settings.ticket_create_window_seconds
    now = ticket.created_at
    window_start, retry_after = ratelimit.window(now, window_seconds)
    row = (
        await session.execute(
            _CREATE_PG,
            {
                "actor_id": ticket.created_by_id,
                "bucket": CREATE_BUCKET,
                "window_start": window_start,
                "limit": limit,
                "id": ticket.id,
                "title": ticket.title,
                "description": ticket.description,
                "status": ticket.status,
                "priority": ticket.priority,
                "category_id": ticket.category_id,
                "customer_id": ticket.customer_id,
                "company_id": ticket.company_id,
                "now": now,
                "warning_at": ticket.sla_warning_at,
                "breach_at": ticket.sla_breach_at,
                "idempotency_key": ticket.idempotency_key,
                "action": CREATE_ACTION,
                "details": details,
                "staff_kind": OutboxKind.STAFF_CARD_CREATE.value,
                "staff_key": outbox.thread_key(Audience.STAFF, ticket.id),
                "customer_kind": OutboxKind.CUSTOMER_THREAD_CREATE.value,
                "customer_key": outbox.thread_key(Audience.CUSTOMER, ticket.id),
                "warning": SlaThreshold.WARNING.value,
                "breach": SlaThreshold.BREACH.value,
            },
        )
    ).one()
    if row.number is None:
        if row.used > limit:
            raise ratelimit.refusal(
                what=CREATE_WHAT,
                limit=limit,
                window_seconds=window_seconds,
                retry_after=retry_after,
            )
        raise RuntimeError("the ticket insert wrote no row")
    ticket.number = int(row.number)


async def _write_step_by_step(
    core: Core, session: AsyncSession, ticket: Ticket, details: dict[str, Any]
) -> None:
    """The same count and rows as `_write_in_one_statement`, one write after the other (SQLite,
    whose single writer makes the extra statements cheap); sets the ticket's number."""
    now = ticket.created_at
    await ratelimit.consume(
        session,
        actor_id=ticket.created_by_id,
        bucket=CREATE_BUCKET,
        limit=core.settings.ticket_create_limit,
        window_seconds=core.settings.ticket_create_window_seconds,
        now=now,
        what=CREATE_WHAT,
    )
    ticket.number = await repository.next_ticket_number(session)
    session.add(ticket)
    await session.flush()  # dependants below reference the new row
    await sla.schedule(session, ticket)
    session.add(
        StatusChange(
            ticket_id=ticket.id,
            from_status=None,
            to_status=ticket.status,
            reason=None,
            changed_by_id=ticket.created_by_id,
            changed_at=now,
        )
    )
    audit.record(
        session,
        actor_id=ticket.created_by_id,
        action=CREATE_ACTION,
        ticket_id=ticket.id,
        now=now,
        number=ticket.number,
        **details,
    )
    for kind, audience in (
        (OutboxKind.STAFF_CARD_CREATE, Audience.STAFF),
        (OutboxKind.CUSTOMER_THREAD_CREATE, Audience.CUSTOMER),
    ):
        outbox.enqueue(
            session,
            kind=kind,
            ticket_id=ticket.id,
            key=outbox.thread_key(audience, ticket.id),
            now=now,
        )
    await session.flush()


def clean_idempotency_key(key: str | None) -> str | None:
    """An idempotency key as stored: blank means none, and it must fit its column; one with
    characters the database cannot store (NUL) is stored as its digest."""
    if key is None or not key.strip():
        return None
    key = key.strip()
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise ValidationFailed(
            f"Idempotency key is longer than {IDEMPOTENCY_KEY_MAX} characters.",
            field="idempotency_key",
        )
    return opaque_key(key, max_length=IDEMPOTENCY_KEY_MAX)


def _replayed(actor: Actor, ticket: Ticket) -> Ticket:
    """The ticket an earlier call with the same key created: only its creator gets it back."""
    if ticket.created_by_id != actor.id:
        log.warning(
            "idempotency key reused by another actor",
            extra={"actor_id": actor.id, "ticket": ticket.number},
        )
        raise Conflict("That request was already used by someone else; nothing was created.")
    if not actor.can_see(ticket):
        raise not_found(ticket.id)
    return ticket


async def _load_for_creation(
    session: AsyncSession,
    *,
    actor_id: int,
    customer_id: int | None,
    category_id: int | None,
    idempotency_key: str | None,
) -> tuple[Actor, Ticket | None, User | None, Category | None]:
    """The actor and, in the same query, the ticket an earlier call with `idempotency_key`
    created, the customer named (when it is not the actor) and the category chosen: each None
    when not asked for or not found. Nothing is checked here but the actor (`actor_of`)."""
    customer = aliased(User, name="customer")
    wanted: list[Any] = [User]
    joins: list[tuple[Any, ColumnElement[bool]]] = []
    if idempotency_key:
        joins.append((Ticket, Ticket.idempotency_key == idempotency_key))
    if customer_id is not None and customer_id != actor_id:
        joins.append((customer, customer.id == customer_id))
    if category_id is not None:
        joins.append((Category, Category.id == category_id))
    query = select(User).where(User.id == actor_id)
    for entity, condition in joins:
        wanted.append(entity)
        query = query.add_columns(entity).outerjoin_from(User, entity, condition)
    row = (await session.execute(query)).first()
    loaded: dict[Any, Any] = dict(zip(wanted, row, strict=True)) if row is not None else {}
    actor = await actor_of(session, actor_id, loaded.get(User))
    return actor, loaded.get(Ticket), loaded.get(customer), loaded.get(Category)


def _ticket_customer(actor: Actor, customer_id: int | None, customer: User | None) -> User:
    """Who the new ticket is for (`customer`: the row of `customer_id`, loaded in this
    transaction), checked against the creation rules of the matrix."""
    if customer_id is None or customer_id == actor.id:
        if actor.role is not Role.CUSTOMER:
            raise ValidationFailed(
                "Staff open tickets on behalf of a customer: choose the customer.",
                field="customer",
            )
        return actor.user
    if actor.role is Role.CUSTOMER:
        raise denied(
            actor,
            "ticket.create",
            "You can only open tickets for yourself.",
            customer_id=customer_id,
        )
    if customer is None or not customer.can_act or customer.role != Role.CUSTOMER.value:
        raise ValidationFailed("Choose an active customer for the ticket.", field="customer")
    if not actor.covers_company(customer.company_id):
        raise denied(
            actor,
            "ticket.create",
            "You can only open tickets for customers of your companies.",
            customer_id=customer_id,
        )
    return customer


async def _active_category(session: AsyncSession, category_id: int | None) -> Category | None:
    if category_id is None:
        return None
    return _usable_category(await session.get(Category, category_id))


def _usable_category(category: Category | None) -> Category:
    """A category loaded by id: it must exist and be active."""
    if category is None or not category.is_active:
        raise ValidationFailed("That category does not exist.", field="category")
    return category


# --------------------------------------------------------------------------------------------
# read


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


# --------------------------------------------------------------------------------------------
# change


async def update_ticket(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    title: str | None = None,
    description: str | None = None,
    category_id: int | None = None,
    clear_category: bool = False,
) -> TicketView:
    """Edit title, description or category: the customer of the ticket or staff who see it."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        _require_open_for_changes(row)
        changes: dict[str, object] = {}
        if title is not None:
            new_title = single_line(title, field="title", max_length=TITLE_MAX)
            if new_title != row.title:
                changes["title"] = new_title
        if description is not None:
            new_description = clean_text(
                description, field="description", max_length=BODY_MAX, required=False
            )
            if new_description != row.description:
                changes["description"] = new_description
        if clear_category and row.category_id is not None:
            changes["category_id"] = None
        elif category_id is not None and category_id != row.category_id:
            category = await _active_category(session, category_id)
            changes["category_id"] = category.id if category else None
        if not changes:
            return await repository.ticket_view(session, row)
        now = core.clock.now()
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = now
        audit.record(
            session,
            actor_id=actor.id,
            action="ticket.updated",
            ticket_id=row.id,
            now=now,
            fields=sorted(changes),
        )
        _refresh_card(session, row, now)
        await session.flush()
        return await repository.ticket_view(session, row)


async def change_priority(
    core: Core, *, actor_id: int, ticket: TicketRef, priority: Priority | str
) -> TicketView:
    """Staff set the priority; the first-response deadline is recomputed from the creation time."""
    level = parse_enum(Priority, priority, field="priority")
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        require_staff(actor, "ticket.priority")
        _require_open_for_changes(row)
        if row.priority == level.value:
            return await repository.ticket_view(session, row)
        now = core.clock.now()
        previous = row.priority
        row.priority = level.value
        row.updated_at = now
        if row.first_response_at is None and row.sla_breach_at is not None:
            # Resolved without an answer: the new deadlines are recorded, but no timer is
            # armed until the ticket is reopened (which restarts the clock anyway).
            await sla.restart(session, row, SlaPolicy(core.settings), _sla_start(row))
        audit.record(
            session,
            actor_id=actor.id,
            action="ticket.priority_changed",
            ticket_id=row.id,
            now=now,
            previous=previous,
            priority=level.value,
        )
        _refresh_card(session, row, now)
        await session.flush()
        return await repository.ticket_view(session, row)


async def change_status(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    status: Status | str,
    reason: str | None = None,
) -> TicketView:
    """Move a ticket along its life cycle, storing the reason and the history entry."""
    target = parse_enum(Status, status, field="status")
    clean_reason = optional_text(reason, field="reason", max_length=REASON_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        _check_transition(actor, row, target)
        now = core.clock.now()
        await apply_status(core, session, row, target, reason=clean_reason, actor=actor, now=now)
        await session.flush()
        return await repository.ticket_view(session, row)


def _check_transition(actor: Actor, row: Ticket, target: Status) -> None:
    current = Status(row.status)
    if current is Status.CLOSED and not actor.is_staff:
        # Closed is final for customers, whatever status they ask for.
        raise TicketClosed(
            f"Ticket #{row.number} is closed. Please open a new ticket if you need more help."
        )
    if current is target:
        raise InvalidTransition(f"Ticket #{row.number} is already {_label(target)}.")
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(
            f"Ticket #{row.number} cannot go from {_label(current)} to {_label(target)}."
        )
    if actor.is_staff:
        return
    # Customers may close their own ticket, and reopen it while it is only resolved.
    if target is Status.CLOSED or (current is Status.RESOLVED and target is Status.OPEN):
        return
    raise denied(
        actor,
        "ticket.status",
        "Only support staff can set that status.",
        ticket=row.number,
        target=target.value,
    )


async def apply_status(
    core: Core,
    session: AsyncSession,
    row: Ticket,
    target: Status,
    *,
    reason: str | None,
    actor: Actor,
    now: datetime,
) -> None:
    """Set the status with its timestamps, SLA clock, history, audit and notifications."""
    previous = Status(row.status)
    row.status = target.value
    row.status_reason = reason
    row.updated_at = now
    if target is Status.RESOLVED:
        row.resolved_at = now
    elif target is Status.CLOSED:
        row.closed_at = now
        if row.resolved_at is None:
            row.resolved_at = now
    elif previous.is_done:
        row.resolved_at = None
        row.closed_at = None
    if target.is_done:
        await sla.stop(session, row.id)
    elif previous.is_done and row.first_response_at is None:
        # Reopened without ever being answered: the first-response clock starts again now.
        await sla.restart(session, row, SlaPolicy(core.settings), now)
    session.add(
        StatusChange(
            ticket_id=row.id,
            from_status=previous.value,
            to_status=target.value,
            reason=reason,
            changed_by_id=actor.id,
            changed_at=now,
        )
    )
    audit.record(
        session,
        actor_id=actor.id,
        action="ticket.status_changed",
        ticket_id=row.id,
        now=now,
        previous=previous.value,
        status=target.value,
        reason=reason,
    )
    log.info(
        "ticket status changed",
        extra={
            "actor_id": actor.id,
            "ticket": row.number,
            "from": previous.value,
            "to": target.value,
        },
    )
    for audience, kind in (
        (Audience.STAFF, OutboxKind.STAFF_THREAD_POST),
        (Audience.CUSTOMER, OutboxKind.CUSTOMER_THREAD_POST),
    ):
        outbox.enqueue(
            session,
            kind=kind,
            ticket_id=row.id,
            key=outbox.thread_key(audience, row.id),
            now=now,
            event="status_changed",
            previous=previous.value,
            status=target.value,
            reason=reason,
            actor_id=actor.id,
        )
    _refresh_card(session, row, now)


async def assign_ticket(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    assignee_id: int | None,
    note: str | None = None,
) -> TicketView:
    """Assign (or transfer, or unassign with None) a ticket to an active staff member."""
    clean_note = optional_text(note, field="note", max_length=REASON_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        require_staff(actor, "ticket.assign")
        _require_open_for_changes(row)
        if assignee_id is not None:
            await _check_assignee(session, await session.get(User, assignee_id), row)
        if row.assignee_id == assignee_id:
            return await repository.ticket_view(session, row)
        now = core.clock.now()
        previous = row.assignee_id
        row.assignee_id = assignee_id
        row.updated_at = now
        action = (
            "ticket.unassigned"
            if assignee_id is None
            else "ticket.assigned"
            if previous is None
            else "ticket.transferred"
        )
        audit.record(
            session,
            actor_id=actor.id,
            action=action,
            ticket_id=row.id,
            now=now,
            previous_assignee_id=previous,
            assignee_id=assignee_id,
            note=clean_note,
        )
        if assignee_id is not None and assignee_id != actor.id:
            outbox.enqueue(
                session,
                kind=OutboxKind.ASSIGNEE_DM,
                ticket_id=row.id,
                key=f"user:{assignee_id}",
                now=now,
                assignee_id=assignee_id,
                assigned_by_id=actor.id,
                event="assigned",
                note=clean_note,
            )
        _refresh_card(session, row, now)
        await session.flush()
        return await repository.ticket_view(session, row)


async def _check_assignee(session: AsyncSession, assignee: User | None, ticket: Ticket) -> None:
    if assignee is None:
        raise ValidationFailed("That user does not exist.", field="assignee")
    problem = await _assignee_problem(session, assignee, ticket)
    if problem is not None:
        raise ValidationFailed(problem, field="assignee")


async def _assignee_problem(session: AsyncSession, assignee: User, ticket: Ticket) -> str | None:
    """Why `assignee` may not hold `ticket` (None: they may), decided on rows loaded now."""
    if not assignee.can_act:
        return f"{assignee.display_name} is deactivated and cannot be assigned."
    role = Role(assignee.role)
    if role.is_global_staff:
        return None
    if role is Role.CORPORATE:
        # Corporate staff may take tickets of their own companies only (checked on fresh rows).
        if ticket.company_id is not None and ticket.company_id in await company_scope(
            session, assignee
        ):
            return None
        return f"{assignee.display_name} does not cover this ticket's company."
    return f"{assignee.display_name} is not support staff and cannot be assigned."


async def release_assignments(
    session: AsyncSession, user: User, *, actor_id: int | None, now: datetime
) -> int:
    """Unassign every ticket `user` may no longer hold (after a demotion, a deactivation, a
    lost company): audited, cards refreshed. Part of the caller's transaction, on its rows;
    returns how many tickets were released."""
    rows = await session.scalars(
        select(Ticket)
        .where(Ticket.assignee_id == user.id, Ticket.deleted_at.is_(None))
        .order_by(Ticket.number)
        .with_for_update(of=Ticket)
    )
    released = 0
    for row in list(rows):
        reason = await _assignee_problem(session, user, row)
        if reason is None:
            continue
        row.assignee_id = None
        row.updated_at = now
        audit.record(
            session,
            actor_id=actor_id,
            action="ticket.unassigned",
            ticket_id=row.id,
            now=now,
            previous_assignee_id=user.id,
            assignee_id=None,
            reason=reason,
        )
        _refresh_card(session, row, now)
        released += 1
    if released:
        log.info("assignments released", extra={"user_id": user.id, "tickets": released})
    return released


async def delete_ticket(
    core: Core, *, actor_id: int, ticket: TicketRef, reason: str | None = None
) -> None:
    """Soft-delete a ticket (manager or admin): it vanishes from every query and refuses changes."""
    clean_reason = optional_text(reason, field="reason", max_length=REASON_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        require_role(actor, "ticket.delete", Role.MANAGER, Role.ADMIN)
        now = core.clock.now()
        row.deleted_at = now
        row.deleted_by_id = actor.id
        await sla.stop(session, row.id)
        row.updated_at = now
        audit.record(
            session,
            actor_id=actor.id,
            action="ticket.deleted",
            ticket_id=row.id,
            now=now,
            number=row.number,
            reason=clean_reason,
        )
        _refresh_card(session, row, now)
        log.info("ticket deleted", extra={"actor_id": actor.id, "ticket": row.number})


# --------------------------------------------------------------------------------------------
# shared pieces


def _require_open_for_changes(row: Ticket) -> None:
    if row.status == Status.CLOSED.value:
        raise TicketClosed(f"Ticket #{row.number} is closed; reopen it first.")


def _sla_start(row: Ticket) -> datetime:
    """When the current first-response clock started: creation, or the latest reopening."""
    return row.sla_started_at or row.created_at


def _refresh_card(session: AsyncSession, row: Ticket, now: datetime) -> None:
    outbox.enqueue(
        session,
        kind=OutboxKind.STAFF_CARD_REFRESH,
        ticket_id=row.id,
        key=outbox.thread_key(Audience.STAFF, row.id),
        now=now,
    )


def _label(status: Status) -> str:
    return status.value.replace("_", " ")


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
