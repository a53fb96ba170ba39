"""The permission model: who the actor is, which tickets they may see, what they may do.

Every check runs inside the service's transaction on rows loaded in it, so a role changed or a
ticket moved a moment ago is what counts. A ticket the actor may not see is reported exactly
like one that does not exist."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from core.enums import Role
from core.errors import Forbidden, NotFound
from core.models import CorporateMembership, Ticket, User

log = logging.getLogger("core.access")

TicketRef = int | uuid.UUID


@dataclass(frozen=True)
class Actor:
    """The user performing a call, with what their role and companies allow."""

    user: User
    role: Role
    company_ids: frozenset[int]

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def is_staff(self) -> bool:
        return self.role.is_staff

    def can_see(self, ticket: Ticket) -> bool:
        if ticket.deleted_at is not None:
            return False
        if self.role.is_global_staff:
            return True
        if self.role is Role.CORPORATE:
            return ticket.company_id is not None and ticket.company_id in self.company_ids
        if ticket.customer_id == self.user.id:
            return True
        # A ticket raised in a customer channel belongs to the channel's company.
        return bool(ticket.shared_with_company) and (
            self.user.company_id is not None and ticket.company_id == self.user.company_id
        )

    def covers_company(self, company_id: int | None) -> bool:
        """Whether a staff actor's scope includes a company (global staff: every company)."""
        if self.role.is_global_staff:
            return True
        return (
            self.role is Role.CORPORATE
            and company_id is not None
            and company_id in self.company_ids
        )

    def visible_tickets(self) -> ColumnElement[bool]:
        """SQL condition: the tickets this actor may see (never deleted ones)."""
        alive = Ticket.deleted_at.is_(None)
        if self.role.is_global_staff:
            return alive & true()
        if self.role is Role.CORPORATE:
            if not self.company_ids:
                return false()
            return alive & Ticket.company_id.in_(sorted(self.company_ids))
        own = Ticket.customer_id == self.user.id
        if self.user.company_id is None:
            return alive & own
        company = Ticket.shared_with_company.is_(True) & (Ticket.company_id == self.user.company_id)
        return alive & (own | company)


async def company_scope(session: AsyncSession, user: User) -> frozenset[int]:
    """A corporate user's companies: their own plus their memberships."""
    ids = set(
        await session.scalars(
            select(CorporateMembership.company_id).where(CorporateMembership.user_id == user.id)
        )
    )
    if user.company_id is not None:
        ids.add(user.company_id)
    return frozenset(ids)


async def load_actor(session: AsyncSession, actor_id: int) -> Actor:
    """Load the acting user in this transaction; unknown or deactivated users may do nothing."""
    return await actor_of(session, actor_id, await session.get(User, actor_id))


async def actor_of(session: AsyncSession, actor_id: int, user: User | None) -> Actor:
    """The actor for the user row `actor_id` loaded in this transaction (None: no such user),
    for services that load it together with other rows; the same checks as `load_actor`."""
    if user is None or not user.can_act:
        log.warning("permission denied", extra={"actor_id": actor_id, "reason": "inactive"})
        raise Forbidden("Your account is not active in the support desk.")
    role = Role(user.role)
    scope = await company_scope(session, user) if role is Role.CORPORATE else frozenset()
    return Actor(user=user, role=role, company_ids=scope)


def denied(actor: Actor, action: str, message: str, **context: object) -> Forbidden:
    """Log a permission denial and return the error to raise."""
    log.warning(
        "permission denied",
        extra={"actor_id": actor.id, "role": actor.role.value, "action": action, **context},
    )
    return Forbidden(message)


def not_found(ticket_ref: TicketRef) -> NotFound:
    """The one error for a ticket that is missing, deleted or hidden from the actor."""
    if isinstance(ticket_ref, int):
        return NotFound(f"Ticket #{ticket_ref} was not found.")
    return NotFound("That ticket was not found.")


async def load_ticket(
    session: AsyncSession, actor: Actor, ref: TicketRef, *, for_update: bool = False
) -> Ticket:
    """The ticket if the actor may see it; NotFound otherwise (deleted, hidden or missing alike).

    With `for_update`, the row is locked (PostgreSQL) so that concurrent changes serialise.
    """
    condition = Ticket.number == ref if isinstance(ref, int) else Ticket.id == ref
    query = select(Ticket).where(condition, actor.visible_tickets())
    if for_update:
        query = query.with_for_update(of=Ticket)
    ticket = await session.scalar(query)
    if ticket is None:
        log.info("ticket not visible", extra={"actor_id": actor.id, "ticket": str(ref)})
        raise not_found(ref)
    return ticket


def require_staff(actor: Actor, action: str) -> None:
    if not actor.is_staff:
        raise denied(actor, action, "Only support staff can do that.")


def require_role(actor: Actor, action: str, *roles: Role) -> None:
    if actor.role not in roles:
        names = " or ".join(r.value for r in roles)
        raise denied(actor, action, f"Only a {names} can do that.")
