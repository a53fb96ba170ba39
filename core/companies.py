"""Companies as admins manage them: names, email domains, corporate coverage, and what a
company has (its domains, customer channels, corporate staff and open tickets).

Every service is one transaction and every change is audited. `actor_id=None` is the operator
(`python -m bot companies ...`), trusted with the database already and audited as `via="cli"`.
Users are matched to a company by their email's domain on first contact (core.users) and
again here when a domain is added: people who have no company yet and write from that domain
join it; people of another organisation (Slack Connect) are matched by their channel only."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.access import load_actor, require_role, require_staff
from core.admin import _domain as clean_domain
from core.context import Core
from core.enums import Role, Status
from core.errors import Conflict, NotFound, ValidationFailed
from core.models import ChannelLink, Company, CompanyDomain, CorporateMembership, Ticket, User
from core.repository import user_view
from core.results import CompanyView, UserView
from core.tickets import release_assignments
from core.validation import single_line

log = logging.getLogger("core.companies")

NAME_MAX = 120
# How many open ticket numbers `show` lists (the count is exact).
OPEN_LISTED = 10


@dataclass(frozen=True)
class CompanyDetail:
    company: CompanyView
    channel_ids: tuple[str, ...]
    corporate: tuple[UserView, ...]
    open_tickets: int
    open_numbers: tuple[int, ...]


@dataclass(frozen=True)
class DomainChange:
    company: CompanyView
    domain: str
    # People who had no company and joined this one by the domain added.
    matched: int = 0


async def _operator_or_admin(session: AsyncSession, actor_id: int | None, action: str) -> None:
    if actor_id is None:
        return
    actor = await load_actor(session, actor_id)
    require_role(actor, action, Role.ADMIN)


def _via(actor_id: int | None) -> dict[str, Any]:
    return {"via": "cli"} if actor_id is None else {}


def _name(name: str) -> str:
    return single_line(name, field="company", max_length=NAME_MAX)


async def company_named(session: AsyncSession, name: str, *, for_update: bool = False) -> Company:
    """The company with this name in any case, or NotFound naming it."""
    wanted = _name(name)
    query = select(Company).where(func.lower(Company.name) == wanted.lower())
    if for_update:
        query = query.with_for_update()
    company = await session.scalar(query)
    if company is None:
        raise NotFound(
            f"There is no company named {wanted}. `/ticket company list` shows them all."
        )
    return company


async def _domains(session: AsyncSession, company_id: int) -> tuple[str, ...]:
    rows = await session.scalars(
        select(CompanyDomain.domain)
        .where(CompanyDomain.company_id == company_id)
        .order_by(CompanyDomain.domain)
    )
    return tuple(rows)


async def _view(session: AsyncSession, company: Company) -> CompanyView:
    return CompanyView(
        id=company.id, name=company.name, domains=await _domains(session, company.id)
    )


async def _match_users(
    session: AsyncSession,
    company: Company,
    domains: Sequence[str],
    *,
    actor_id: int | None,
    now: Any,
) -> int:
    """People without a company whose email is at one of `domains` join `company`."""
    matched = 0
    for domain in domains:
        rows = await session.scalars(
            select(User)
            .where(
                User.company_id.is_(None),
                User.chat_team_id.is_(None),
                func.lower(User.email).like(f"%@{domain}"),
            )
            .with_for_update()
        )
        for user in rows:
            user.company_id = company.id
            user.updated_at = now
            audit.record(
                session,
                actor_id=actor_id,
                action="user.company_matched",
                now=now,
                user_id=user.id,
                company_id=company.id,
                domain=domain,
            )
            matched += 1
    return matched


async def add_company(
    core: Core, *, actor_id: int | None, name: str, domains: Sequence[str] = ()
) -> DomainChange:
    """Add a company with its email domains (admins, or the operator); people already known
    who have no company and write from those domains join it."""
    clean_name = _name(name)
    clean_domains = sorted({clean_domain(d) for d in domains})
    async with core.db.transaction() as session:
        await _operator_or_admin(session, actor_id, "company.create")
        same = await session.scalar(
            select(Company.name).where(func.lower(Company.name) == clean_name.lower())
        )
        if same is not None:
            raise Conflict(f"A company named {same} already exists.")
        await _domains_free(session, clean_domains)
        now = core.clock.now()
        company = Company(name=clean_name, created_at=now)
        session.add(company)
        await session.flush()
        for domain in clean_domains:
            session.add(CompanyDomain(domain=domain, company_id=company.id))
        audit.record(
            session,
            actor_id=actor_id,
            action="company.created",
            now=now,
            company_id=company.id,
            domains=clean_domains,
            **_via(actor_id),
        )
        await session.flush()
        matched = await _match_users(session, company, clean_domains, actor_id=actor_id, now=now)
        log.info("company added", extra={"company_id": company.id, "matched": matched})
        view = CompanyView(id=company.id, name=company.name, domains=tuple(clean_domains))
        return DomainChange(company=view, domain=", ".join(clean_domains), matched=matched)


async def _domains_free(session: AsyncSession, domains: Sequence[str]) -> None:
    if not domains:
        return
    rows = await session.execute(
        select(CompanyDomain.domain, Company.name)
        .join(Company, Company.id == CompanyDomain.company_id)
        .where(CompanyDomain.domain.in_(list(domains)))
    )
    clashes = [f"{domain} ({owner})" for domain, owner in rows]
    if clashes:
        raise ValidationFailed(
            f"Already the domain of another company: {', '.join(clashes)}.", field="domain"
        )


async def add_domain(
    core: Core, *, actor_id: int | None, company: str, domain: str
) -> DomainChange:
    """Add an email domain to a company; people without a company who write from it join."""
    clean = clean_domain(domain)
    async with core.db.transaction() as session:
        await _operator_or_admin(session, actor_id, "company.domain")
        row = await company_named(session, company, for_update=True)
        owner = await session.scalar(
            select(CompanyDomain.company_id).where(CompanyDomain.domain == clean)
        )
        if owner == row.id:
            return DomainChange(company=await _view(session, row), domain=clean)
        await _domains_free(session, [clean])
        now = core.clock.now()
        session.add(CompanyDomain(domain=clean, company_id=row.id))
        audit.record(
            session,
            actor_id=actor_id,
            action="company.domain_added",
            now=now,
            company_id=row.id,
            domain=clean,
            **_via(actor_id),
        )
        await session.flush()
        matched = await _match_users(session, row, [clean], actor_id=actor_id, now=now)
        return DomainChange(company=await _view(session, row), domain=clean, matched=matched)


async def remove_domain(
    core: Core, *, actor_id: int | None, company: str, domain: str
) -> DomainChange:
    """Remove an email domain from a company. People already in the company stay in it (an
    admin moves a person explicitly); new people from the domain are no longer matched."""
    clean = clean_domain(domain)
    async with core.db.transaction() as session:
        await _operator_or_admin(session, actor_id, "company.domain")
        row = await company_named(session, company, for_update=True)
        existing = await session.get(CompanyDomain, clean)
        if existing is None or existing.company_id != row.id:
            raise ValidationFailed(f"{clean} is not a domain of {row.name}.", field="domain")
        await session.delete(existing)
        audit.record(
            session,
            actor_id=actor_id,
            action="company.domain_removed",
            now=core.clock.now(),
            company_id=row.id,
            domain=clean,
            **_via(actor_id),
        )
        await session.flush()
        return DomainChange(company=await _view(session, row), domain=clean)


async def list_companies(core: Core, *, actor_id: int | None) -> list[CompanyView]:
    """Every company with its domains, by name (staff, or the operator)."""
    async with core.db.transaction() as session:
        if actor_id is not None:
            require_staff(await load_actor(session, actor_id), "company.list")
        companies = list(await session.scalars(select(Company).order_by(Company.name)))
        domains = await session.execute(select(CompanyDomain.company_id, CompanyDomain.domain))
        by_company: dict[int, list[str]] = {}
        for company_id, domain in domains:
            by_company.setdefault(company_id, []).append(domain)
        return [
            CompanyView(id=c.id, name=c.name, domains=tuple(sorted(by_company.get(c.id, []))))
            for c in companies
        ]


async def show_company(core: Core, *, actor_id: int | None, company: str) -> CompanyDetail:
    """A company's domains, customer channels, corporate staff and open tickets (admins, or
    corporate staff who cover it; or the operator)."""
    async with core.db.transaction() as session:
        row = await company_named(session, company)
        if actor_id is not None:
            actor = await load_actor(session, actor_id)
            if actor.role is not Role.ADMIN and not (
                actor.role is Role.CORPORATE and actor.covers_company(row.id)
            ):
                require_role(actor, "company.show", Role.ADMIN)
        channels = await session.scalars(
            select(ChannelLink.channel_id)
            .where(ChannelLink.company_id == row.id)
            .order_by(ChannelLink.channel_id)
        )
        corporate = await session.scalars(
            select(User)
            .where(
                User.role == Role.CORPORATE.value,
                (User.company_id == row.id)
                | User.id.in_(
                    select(CorporateMembership.user_id).where(
                        CorporateMembership.company_id == row.id
                    )
                ),
            )
            .order_by(User.display_name)
        )
        live = (
            Ticket.company_id == row.id,
            Ticket.deleted_at.is_(None),
            Ticket.status.not_in([Status.RESOLVED.value, Status.CLOSED.value]),
        )
        count = await session.scalar(select(func.count()).select_from(Ticket).where(*live))
        numbers = await session.scalars(
            select(Ticket.number).where(*live).order_by(Ticket.number.desc()).limit(OPEN_LISTED)
        )
        return CompanyDetail(
            company=await _view(session, row),
            channel_ids=tuple(channels),
            corporate=tuple(user_view(u) for u in corporate),
            open_tickets=int(count or 0),
            open_numbers=tuple(numbers),
        )


async def _person(session: AsyncSession, user_id: int | None, slack_user_id: str | None) -> User:
    if user_id is not None:
        user = await session.get(User, user_id, with_for_update=True)
    else:
        user = await session.scalar(
            select(User).where(User.slack_user_id == slack_user_id).with_for_update()
        )
    if user is None:
        raise NotFound(
            "That person has not used the desk yet: they appear once they open it in Slack."
        )
    return user


async def grant_coverage(
    core: Core,
    *,
    actor_id: int | None,
    company: str,
    user_id: int | None = None,
    slack_user_id: str | None = None,
) -> UserView:
    """Let a corporate staff member cover one more company (their tickets become visible)."""
    async with core.db.transaction() as session:
        await _operator_or_admin(session, actor_id, "company.grant")
        row = await company_named(session, company)
        user = await _person(session, user_id, slack_user_id)
        if user.role != Role.CORPORATE.value:
            raise ValidationFailed(
                f"{user.display_name} is {user.role}, not corporate staff: make them corporate "
                "first (`/ticket role @user corporate`).",
                field="user",
            )
        covered = await session.get(CorporateMembership, (user.id, row.id))
        if user.company_id == row.id or covered is not None:
            return user_view(user)
        session.add(CorporateMembership(user_id=user.id, company_id=row.id))
        audit.record(
            session,
            actor_id=actor_id,
            action="company.access_granted",
            now=core.clock.now(),
            user_id=user.id,
            company_id=row.id,
            **_via(actor_id),
        )
        return user_view(user)


async def revoke_coverage(
    core: Core,
    *,
    actor_id: int | None,
    company: str,
    user_id: int | None = None,
    slack_user_id: str | None = None,
) -> UserView:
    """Take a company's coverage from a corporate staff member; the tickets of that company
    assigned to them are released. Their own company is changed with the user's company, not
    here."""
    async with core.db.transaction() as session:
        await _operator_or_admin(session, actor_id, "company.revoke")
        row = await company_named(session, company)
        user = await _person(session, user_id, slack_user_id)
        membership = await session.get(CorporateMembership, (user.id, row.id))
        if membership is None:
            if user.company_id == row.id and user.role == Role.CORPORATE.value:
                raise ValidationFailed(
                    f"{row.name} is {user.display_name}'s own company: move them to another "
                    "company or change their role instead.",
                    field="user",
                )
            raise ValidationFailed(f"{user.display_name} does not cover {row.name}.", field="user")
        await session.delete(membership)
        await session.flush()
        now = core.clock.now()
        audit.record(
            session,
            actor_id=actor_id,
            action="company.access_revoked",
            now=now,
            user_id=user.id,
            company_id=row.id,
            **_via(actor_id),
        )
        await release_assignments(session, user, actor_id=actor_id, now=now)
        return user_view(user)
