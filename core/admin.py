"""Administration: roles, activation, companies and their email domains, categories."""

from __future__ import annotations

import logging
import re

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.access import Actor, denied, load_actor, require_role
from core.context import Core
from core.enums import Role
from core.errors import Conflict, NotFound, ValidationFailed
from core.models import Category, Company, CompanyDomain, CorporateMembership, User
from core.repository import user_view
from core.results import CategoryView, CompanyView, UserView
from core.tickets import release_assignments
from core.validation import NAME_MAX, optional_text, parse_enum, single_line

log = logging.getLogger("core.admin")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


async def _admin(session: AsyncSession, actor_id: int, action: str) -> Actor:
    actor = await load_actor(session, actor_id)
    require_role(actor, action, Role.ADMIN)
    return actor


async def _user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFound("That user was not found.")
    return user


# ------------------------------------------------------------------------------ people


async def change_role(core: Core, *, actor_id: int, user_id: int, role: Role | str) -> UserView:
    """An admin sets someone's role; the last active admin cannot be demoted."""
    new_role = parse_enum(Role, role, field="role")
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "user.role")
        user = await _user(session, user_id)
        _guests_stay_customers(user, new_role)
        if user.role == new_role.value:
            return user_view(user)
        if user.role == Role.ADMIN.value:
            await _keep_one_admin(session, user)
        now = core.clock.now()
        audit.record(
            session,
            actor_id=actor.id,
            action="user.role_changed",
            now=now,
            user_id=user.id,
            previous=user.role,
            role=new_role.value,
        )
        log.info(
            "role changed",
            extra={"actor_id": actor.id, "user_id": user.id, "role": new_role.value},
        )
        user.role = new_role.value
        user.updated_at = now
        await release_assignments(session, user, actor_id=actor.id, now=now)
        return user_view(user)


async def list_staff(core: Core) -> list[UserView]:
    """Everyone who is not a customer, by role and name: the operator's `roles list` (no
    actor: whoever runs commands on the server is trusted with the database already)."""
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(User)
            .where(User.role != Role.CUSTOMER.value)
            .order_by(User.role, User.display_name)
        )
        return [user_view(user) for user in rows]


async def set_role_as_operator(core: Core, *, slack_user_id: str, role: Role | str) -> UserView:
    """The operator's `roles set`, which bootstraps the first admin: no actor, audited as
    `via="cli"`. A Slack user the desk has not seen yet is added with their id as the name
    (filled in from Slack on their first request)."""
    new_role = parse_enum(Role, role, field="role")
    async with core.db.transaction() as session:
        user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        now = core.clock.now()
        if user is not None:
            _guests_stay_customers(user, new_role)
        if user is None:
            user = User(
                slack_user_id=slack_user_id,
                display_name=slack_user_id,
                role=Role.CUSTOMER.value,
                is_active=True,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
        audit.record(
            session,
            actor_id=None,
            action="user.role_changed",
            now=now,
            user_id=user.id,
            previous=user.role,
            role=new_role.value,
            via="cli",
        )
        user.role = new_role.value
        user.updated_at = now
        await release_assignments(session, user, actor_id=None, now=now)
        return user_view(user)


def _guests_stay_customers(user: User, role: Role) -> None:
    """Someone of another organisation (Slack Connect) is only ever a customer."""
    if user.chat_team_id is not None and role is not Role.CUSTOMER:
        raise ValidationFailed(
            f"{user.display_name} belongs to another organisation (Slack Connect) and can only "
            "be a customer.",
            field="role",
        )


async def set_active(core: Core, *, actor_id: int, user_id: int, active: bool) -> UserView:
    """An admin activates or deactivates a user; deactivated users can do nothing."""
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "user.active")
        user = await _user(session, user_id)
        if user.is_active == active:
            return user_view(user)
        if not active and user.role == Role.ADMIN.value:
            await _keep_one_admin(session, user)
        now = core.clock.now()
        user.is_active = active
        user.updated_at = now
        audit.record(
            session,
            actor_id=actor.id,
            action="user.activated" if active else "user.deactivated",
            now=now,
            user_id=user.id,
        )
        if not active:
            await release_assignments(session, user, actor_id=actor.id, now=now)
        return user_view(user)


async def _keep_one_admin(session: AsyncSession, leaving: User) -> None:
    others = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.role == Role.ADMIN.value,
            User.is_active.is_(True),
            User.chat_account_deleted.is_(False),
            User.id != leaving.id,
        )
    )
    if not others:
        raise Conflict("This is the last active admin; make someone else admin first.")


async def list_users(
    core: Core, *, actor_id: int, role: Role | str | None = None, limit: int = 200
) -> list[UserView]:
    """Staff list people (for pickers and `roles list`); customers may not."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        if not actor.is_staff:
            raise denied(actor, "user.list", "Only support staff can list users.")
        query = select(User).order_by(User.display_name).limit(min(limit, 1000))
        if role is not None:
            query = query.where(User.role == parse_enum(Role, role, field="role").value)
        return [user_view(u) for u in await session.scalars(query)]


# ------------------------------------------------------------------------------ companies


def _domain(value: str) -> str:
    domain = value.strip().lower().lstrip("@")
    if not _DOMAIN.match(domain):
        raise ValidationFailed(f"{value!r} is not an email domain.", field="domain")
    return domain


async def create_company(
    core: Core, *, actor_id: int, name: str, domains: list[str] | tuple[str, ...] = ()
) -> CompanyView:
    """An admin adds a company; users with its email domains join it when first seen."""
    clean_name = single_line(name, field="name", max_length=120)
    clean_domains = sorted({_domain(d) for d in domains})
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "company.create")
        if await session.scalar(select(Company.id).where(Company.name == clean_name)):
            raise Conflict(f"A company named {clean_name} already exists.")
        taken = await session.scalars(
            select(CompanyDomain.domain).where(CompanyDomain.domain.in_(clean_domains))
        )
        if clashes := list(taken):
            raise ValidationFailed(
                f"Already used by another company: {', '.join(clashes)}.", field="domain"
            )
        now = core.clock.now()
        company = Company(name=clean_name, created_at=now)
        session.add(company)
        await session.flush()
        for domain in clean_domains:
            session.add(CompanyDomain(domain=domain, company_id=company.id))
        audit.record(
            session,
            actor_id=actor.id,
            action="company.created",
            now=now,
            company_id=company.id,
            domains=clean_domains,
        )
        return CompanyView(id=company.id, name=company.name, domains=tuple(clean_domains))


async def list_companies(core: Core, *, actor_id: int) -> list[CompanyView]:
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        if not actor.is_staff:
            raise denied(actor, "company.list", "Only support staff can list companies.")
        companies = list(await session.scalars(select(Company).order_by(Company.name)))
        domains = await session.execute(select(CompanyDomain.company_id, CompanyDomain.domain))
        by_company: dict[int, list[str]] = {}
        for company_id, domain in domains:
            by_company.setdefault(company_id, []).append(domain)
        return [
            CompanyView(id=c.id, name=c.name, domains=tuple(sorted(by_company.get(c.id, []))))
            for c in companies
        ]


async def set_user_company(
    core: Core, *, actor_id: int, user_id: int, company_id: int | None
) -> UserView:
    """An admin moves a user to a company (their tickets' company is fixed at creation)."""
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "user.company")
        user = await _user(session, user_id)
        if company_id is not None and await session.get(Company, company_id) is None:
            raise ValidationFailed("That company does not exist.", field="company")
        now = core.clock.now()
        audit.record(
            session,
            actor_id=actor.id,
            action="user.company_changed",
            now=now,
            user_id=user.id,
            previous=user.company_id,
            company_id=company_id,
        )
        user.company_id = company_id
        user.updated_at = now
        await release_assignments(session, user, actor_id=actor.id, now=now)
        return user_view(user)


async def grant_company_access(core: Core, *, actor_id: int, user_id: int, company_id: int) -> None:
    """An admin lets a corporate staff member cover one more company."""
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "company.grant")
        user = await _user(session, user_id)
        if user.role != Role.CORPORATE.value:
            raise ValidationFailed("Only corporate staff get company access.", field="user")
        if await session.get(Company, company_id) is None:
            raise ValidationFailed("That company does not exist.", field="company")
        if await session.get(CorporateMembership, (user.id, company_id)) is None:
            session.add(CorporateMembership(user_id=user.id, company_id=company_id))
            audit.record(
                session,
                actor_id=actor.id,
                action="company.access_granted",
                now=core.clock.now(),
                user_id=user.id,
                company_id=company_id,
            )


# ------------------------------------------------------------------------------ categories


async def create_category(
    core: Core, *, actor_id: int, name: str, description: str | None = None
) -> CategoryView:
    """An admin adds a ticket category."""
    clean_name = single_line(name, field="name", max_length=NAME_MAX)
    clean_description = optional_text(description, field="description", max_length=300)
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "category.create")
        existing = await session.scalar(
            select(Category).where(func.lower(Category.name) == clean_name.lower())
        )
        now = core.clock.now()
        if existing is not None:
            if existing.is_active:
                raise Conflict(f"The category {existing.name} already exists.")
            existing.is_active = True
            category = existing
        else:
            category = Category(name=clean_name, description=clean_description, created_at=now)
            session.add(category)
            await session.flush()
        audit.record(
            session, actor_id=actor.id, action="category.created", now=now, category_id=category.id
        )
        return _category_view(category)


async def deactivate_category(
    core: Core, *, actor_id: int, category_id: int | None = None, name: str | None = None
) -> CategoryView:
    """An admin retires a category, named by id or by name (any case): existing tickets keep
    it, new ones cannot pick it; `category add` with its name brings it back."""
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "category.deactivate")
        if name is not None:
            wanted = single_line(name, field="name", max_length=NAME_MAX).lower()
            category = await session.scalar(
                select(Category).where(func.lower(Category.name) == wanted)
            )
        else:
            category = await session.get(Category, category_id) if category_id else None
        if category is None:
            raise NotFound("That category was not found.")
        if not category.is_active:
            return _category_view(category)
        category.is_active = False
        audit.record(
            session,
            actor_id=actor.id,
            action="category.deactivated",
            now=core.clock.now(),
            category_id=category.id,
        )
        return _category_view(category)


async def list_categories(core: Core, *, include_inactive: bool = False) -> list[CategoryView]:
    """Categories for pickers (anyone may see the list)."""
    async with core.db.transaction() as session:
        query = select(Category).order_by(Category.name)
        if not include_inactive:
            query = query.where(Category.is_active.is_(True))
        return [_category_view(c) for c in await session.scalars(query)]


def _category_view(category: Category) -> CategoryView:
    return CategoryView(
        id=category.id,
        name=category.name,
        description=category.description,
        is_active=category.is_active,
    )
