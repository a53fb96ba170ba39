"""People: provisioning from the chat platform's profile, lookup, bootstrap admins."""

from __future__ import annotations

import logging
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit
from core.context import Core
from core.enums import Role
from core.models import CompanyDomain, User
from core.repository import user_view
from core.validation import single_line
from core.views import UserView

log = logging.getLogger("core.users")


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


async def company_for_email(session: AsyncSession, email: str | None) -> int | None:
    domain = email_domain(email)
    if domain is None:
        return None
    return await session.scalar(
        select(CompanyDomain.company_id).where(CompanyDomain.domain == domain)
    )


async def provision_user(
    core: Core,
    *,
    slack_user_id: str,
    display_name: str,
    email: str | None,
    active: bool,
    bootstrap_admin_ids: Collection[str] = (),
) -> UserView:
    """Create or refresh the user behind a chat id from their profile.

    New users are customers, except bootstrap admins. The company comes from the email domain
    when the user has none yet. A deleted or bot profile makes the user inactive."""
    name = single_line(display_name or slack_user_id, field="name", max_length=200)
    email = (email or "").strip()[:320] or None
    try:
        return await _provision(core, slack_user_id, name, email, active, bootstrap_admin_ids)
    except IntegrityError:
        # Another replica provisioned the same user a moment ago: the retry finds the row.
        return await _provision(core, slack_user_id, name, email, active, bootstrap_admin_ids)


async def _provision(
    core: Core,
    slack_user_id: str,
    name: str,
    email: str | None,
    active: bool,
    bootstrap_admin_ids: Collection[str],
) -> UserView:
    now = core.clock.now()
    async with core.db.transaction() as session:
        user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        if user is None:
            user = User(
                slack_user_id=slack_user_id,
                display_name=name,
                email=email,
                role=Role.CUSTOMER.value,
                company_id=await company_for_email(session, email),
                is_active=active,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
            audit.record(
                session, actor_id=None, action="user.provisioned", now=now, user_id=user.id
            )
        else:
            changed = (user.display_name, user.email, user.is_active) != (name, email, active)
            user.display_name, user.email, user.is_active = name, email, active
            if user.company_id is None:
                company_id = await company_for_email(session, email)
                if company_id is not None:
                    user.company_id = company_id
                    changed = True
            if changed:
                user.updated_at = now
        if slack_user_id in bootstrap_admin_ids and user.role != Role.ADMIN.value and active:
            audit.record(
                session,
                actor_id=None,
                action="user.role_changed",
                now=now,
                user_id=user.id,
                previous=user.role,
                role=Role.ADMIN.value,
                via="ADMIN_USER_IDS",
            )
            log.info("bootstrap admin", extra={"user_id": user.id})
            user.role = Role.ADMIN.value
            user.updated_at = now
        return user_view(user)


async def find_by_slack_id(core: Core, *, slack_user_id: str) -> UserView | None:
    async with core.db.transaction() as session:
        user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        return user_view(user) if user else None


async def get_user(core: Core, *, user_id: int) -> UserView | None:
    async with core.db.transaction() as session:
        user = await session.get(User, user_id)
        return user_view(user) if user else None
