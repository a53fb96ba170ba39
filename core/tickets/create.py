"""Opening a ticket: the permission read (one query), the checks of the creation rules, and
the write of its rows (`core.tickets.new_rows`: one statement on PostgreSQL, step by step on
SQLite)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core import repository
from core.access import Actor, actor_of, denied, load_actor, not_found
from core.context import Core
from core.enums import Priority, Role
from core.errors import Conflict, ValidationFailed
from core.models import Category, Ticket, User
from core.results import TicketView
from core.sla_policy import SlaPolicy
from core.tickets.new_rows import (
    parameters,
    ticket_values,
    write_in_one_statement,
    write_step_by_step,
)
from core.tickets.shared import usable_category
from core.validation import (
    BODY_MAX,
    TITLE_MAX,
    clean_text,
    opaque_key,
    parse_enum,
    single_line,
)

log = logging.getLogger("core.tickets")

IDEMPOTENCY_KEY_MAX = 200


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
    statement (`new_rows.CREATE_PG`): the rate-limit count and every row of the new ticket."""
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
            category = usable_category(chosen) if category_id is not None else None
            now = core.clock.now()
            warning_at, breach_at = SlaPolicy(core.settings).deadlines(level, now)
            details: dict[str, Any] = {"customer_id": customer.id, "priority": level.value}
            if copied_from_staff:
                details["copied_from_staff"] = True  # (and confirmed by the actor)
            params = parameters(
                ticket_id=uuid.uuid4(),
                actor_id=actor.id,
                title=title,
                description=description,
                priority=level.value,
                category_id=category.id if category else None,
                customer_id=customer.id,
                company_id=customer.company_id,
                now=now,
                warning_at=warning_at,
                breach_at=breach_at,
                idempotency_key=idempotency_key,
                details=details,
            )
            if core.db.dialect == "postgresql":
                number = await write_in_one_statement(core, session, params)
            else:
                number = await write_step_by_step(core, session, params)
            ticket = Ticket(number=number, **ticket_values(params))
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
