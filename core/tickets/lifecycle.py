"""A ticket's life after creation: status changes along `TRANSITIONS`, assignment (and its
release when someone may no longer hold a ticket), edits, priority, soft deletion."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, outbox, repository, sla
from core.access import (
    Actor,
    TicketRef,
    company_scope,
    denied,
    load_actor,
    load_ticket,
    require_role,
    require_staff,
)
from core.context import Core
from core.enums import Audience, Priority, Role, Status
from core.errors import InvalidTransition, TicketClosed, ValidationFailed
from core.models import StatusChange, Ticket, User
from core.outbox import OutboxKind
from core.results import TicketView
from core.sla_policy import SlaPolicy
from core.tickets.shared import active_category, refresh_card, require_open_for_changes, sla_start
from core.validation import (
    BODY_MAX,
    REASON_MAX,
    TITLE_MAX,
    clean_text,
    optional_text,
    parse_enum,
    single_line,
)

log = logging.getLogger("core.tickets")

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


async def update_ticket(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    title: str | None = None,
    description: str | None = None,
    category_id: int | None = None,
    clear_category: bool = False,
    priority: Priority | str | None = None,
) -> TicketView:
    """Edit title, description or category (the customer of the ticket or staff who see it)
    and, for staff, the priority: one form's changes in one transaction."""
    level = parse_enum(Priority, priority, field="priority") if priority is not None else None
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        require_requester_or_staff(actor, row, "ticket.update")
        require_open_for_changes(row)
        now = core.clock.now()
        reprioritised = level is not None and await _set_priority(
            core, session, actor, row, level, now
        )
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
            category = await active_category(session, category_id)
            changes["category_id"] = category.id if category else None
        if not changes:
            if reprioritised:
                refresh_card(session, row, now)
                await session.flush()
            return await repository.ticket_view(session, row)
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
        refresh_card(session, row, now)
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
        require_open_for_changes(row)
        now = core.clock.now()
        if await _set_priority(core, session, actor, row, level, now):
            refresh_card(session, row, now)
            await session.flush()
        return await repository.ticket_view(session, row)


async def _set_priority(
    core: Core, session: AsyncSession, actor: Actor, row: Ticket, level: Priority, now: datetime
) -> bool:
    """Staff set the priority (audited, SLA deadlines recomputed); False when it is unchanged."""
    if row.priority == level.value:
        return False
    require_staff(actor, "ticket.priority")
    previous = row.priority
    row.priority = level.value
    row.updated_at = now
    if row.first_response_at is None and row.sla_breach_at is not None:
        # Resolved without an answer: the new deadlines are recorded, but no timer is
        # armed until the ticket is reopened (which restarts the clock anyway).
        await sla.restart(session, row, SlaPolicy(core.settings), sla_start(row))
    audit.record(
        session,
        actor_id=actor.id,
        action="ticket.priority_changed",
        ticket_id=row.id,
        now=now,
        previous=previous,
        priority=level.value,
    )
    return True


@dataclass(frozen=True)
class StatusChoices:
    """What an actor may do with a ticket's status now: the statuses it may move to (in the
    order of `TRANSITIONS`) and those of them that need a reason."""

    ticket: TicketView
    targets: tuple[Status, ...]
    reason_required: frozenset[Status]


async def allowed_transitions(core: Core, *, actor_id: int, ticket: TicketRef) -> StatusChoices:
    """The statuses this actor may move this ticket to now, by the rules `change_status`
    enforces (one definition, `_may_move`), for a form to offer."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket)
        current = Status(row.status)
        own = actor.is_staff or row.customer_id == actor.id
        targets = tuple(s for s in TRANSITIONS if own and _may_move(actor, current, s))
        return StatusChoices(
            ticket=await repository.ticket_view(session, row),
            targets=targets,
            reason_required=frozenset(s for s in targets if needs_reason(actor, row, s)),
        )


async def change_status(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    status: Status | str,
    reason: str | None = None,
) -> TicketView:
    """Move a ticket along its life cycle, storing the reason and the history entry.

    Closing someone else's ticket needs a reason (the customer is told why); a customer
    closing their own ticket may leave it out: it is their request that ends."""
    target = parse_enum(Status, status, field="status")
    clean_reason = optional_text(reason, field="reason", max_length=REASON_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket, for_update=True)
        _check_transition(actor, row, target)
        if clean_reason is None and needs_reason(actor, row, target):
            raise ValidationFailed(
                f"Say why ticket #{row.number} is closed; the customer sees the reason.",
                field="reason",
            )
        now = core.clock.now()
        await apply_status(core, session, row, target, reason=clean_reason, actor=actor, now=now)
        await session.flush()
        return await repository.ticket_view(session, row)


def needs_reason(actor: Actor, row: Ticket, target: Status) -> bool:
    """Whether moving `row` to `target` needs a reason: closing anyone's ticket but one's own."""
    return target is Status.CLOSED and row.customer_id != actor.id


def require_requester_or_staff(actor: Actor, row: Ticket, action: str) -> None:
    """A customer changes only the tickets they asked for: a ticket of their company's
    customer channel is visible to them, not theirs to change."""
    if not actor.is_staff and row.customer_id != actor.id:
        raise denied(
            actor,
            action,
            "Only the person who asked for this ticket, or support staff, can change it.",
            ticket=row.number,
        )


def _customer_may(current: Status, target: Status) -> bool:
    """Customers may close their own ticket, and reopen it while it is only resolved."""
    return target is Status.CLOSED or (current is Status.RESOLVED and target is Status.OPEN)


def _may_move(actor: Actor, current: Status, target: Status) -> bool:
    """The one definition of who may move a ticket from `current` to `target`."""
    if target not in TRANSITIONS[current]:
        return False
    return actor.is_staff or _customer_may(current, target)


def _check_transition(actor: Actor, row: Ticket, target: Status) -> None:
    """Raise the error that says why `_may_move` refuses (nothing when it allows)."""
    require_requester_or_staff(actor, row, "ticket.status")
    current = Status(row.status)
    if _may_move(actor, current, target):
        return
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
    refresh_card(session, row, now)


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
        require_open_for_changes(row)
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
        refresh_card(session, row, now)
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
        refresh_card(session, row, now)
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
        refresh_card(session, row, now)
        log.info("ticket deleted", extra={"actor_id": actor.id, "ticket": row.number})


def _label(status: Status) -> str:
    return status.value.replace("_", " ")
