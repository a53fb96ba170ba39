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
from core.results import UserView
from core.tickets import release_assignments
from core.validation import single_line

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
    chat_account_deleted: bool = False,
    bootstrap_admin_ids: Collection[str] = (),
) -> UserView:
    """Create or refresh the user behind a chat id from their chat profile.

    The profile supplies the name, the email, the company (while the user has none) and
    whether the chat account was deleted. It never changes what the desk decided: the role
    and the desk's own active flag. A new user is a customer, or an admin when listed in
    `bootstrap_admin_ids`: that list is read on first contact only, so an admin who demotes
    a bootstrap admin is not undone by the demoted person's next request."""
    name = single_line(display_name or slack_user_id, field="name", max_length=200)
    email = (email or "").strip()[:320] or None
    args = (slack_user_id, name, email, chat_account_deleted, bootstrap_admin_ids)
    try:
        return await _provision(core, *args)
    except IntegrityError:
        # Another replica provisioned the same user a moment ago: the retry finds the row.
        return await _provision(core, *args)


async def _provision(
    core: Core,
    slack_user_id: str,
    name: str,
    email: str | None,
    chat_account_deleted: bool,
    bootstrap_admin_ids: Collection[str],
) -> UserView:
    now = core.clock.now()
    async with core.db.transaction() as session:
        user = await session.scalar(
            select(User).where(User.slack_user_id == slack_user_id).with_for_update()
        )
        if user is None:
            bootstrap = slack_user_id in bootstrap_admin_ids and not chat_account_deleted
            user = User(
                slack_user_id=slack_user_id,
                display_name=name,
                email=email,
                role=(Role.ADMIN if bootstrap else Role.CUSTOMER).value,
                company_id=await company_for_email(session, email),
                is_active=True,
                chat_account_deleted=chat_account_deleted,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
            audit.record(
                session, actor_id=None, action="user.provisioned", now=now, user_id=user.id
            )
            if bootstrap:
                audit.record(
                    session,
                    actor_id=None,
                    action="user.role_changed",
                    now=now,
                    user_id=user.id,
                    previous=Role.CUSTOMER.value,
                    role=Role.ADMIN.value,
                    via="ADMIN_USER_IDS",
                )
                log.info("bootstrap admin", extra={"user_id": user.id})
            return user_view(user)
        if (user.display_name, user.email) != (name, email):
            user.display_name, user.email = name, email
            user.updated_at = now
        if user.company_id is None:
            company_id = await company_for_email(session, email)
            if company_id is not None:
                user.company_id = company_id
                user.updated_at = now
        if chat_account_deleted and not user.chat_account_deleted:
            user.chat_account_deleted = True
            audit.record(
                session,
                actor_id=None,
                action="user.chat_account_deleted",
                now=now,
                user_id=user.id,
            )
            # Gone from chat: their assignments are released like a deactivation's.
            await release_assignments(session, user, actor_id=None, now=now)
        elif not chat_account_deleted and user.chat_account_deleted:
            user.chat_account_deleted = False
            audit.record(
                session,
                actor_id=None,
                action="user.chat_account_restored",
                now=now,
                user_id=user.id,
            )
        return user_view(user)


async def find_by_slack_id(core: Core, *, slack_user_id: str) -> UserView | None:
    async with core.db.single_statement() as session:  # read on every request: one round trip
        user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        return user_view(user) if user else None


async def get_user(core: Core, *, user_id: int) -> UserView | None:
    async with core.db.transaction() as session:
        user = await session.get(User, user_id)
        return user_view(user) if user else None
