"""Operator commands: `roles list|set` and `check`."""

from __future__ import annotations

import argparse

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select, text

from bot.settings import BotSettings
from core import audit
from core.context import Core
from core.enums import Role
from core.models import User
from migrations import run_migrations


async def roles_command(settings: BotSettings, args: argparse.Namespace) -> int:
    """List staff, or set a role by Slack user id (an operator's action, audited as such)."""
    await run_migrations(settings.database_url)
    core = Core.from_settings(settings)
    try:
        async with core.db.transaction() as session:
            if args.roles_command == "list":
                rows = await session.scalars(
                    select(User)
                    .where(User.role != Role.CUSTOMER.value)
                    .order_by(User.role, User.display_name)
                )
                found = list(rows)
                for user in found:
                    state = "" if user.is_active else " (inactive)"
                    print(f"{user.slack_user_id:12} {user.role:10} {user.display_name}{state}")
                if not found:
                    print("no staff yet: python -m bot roles set U0123ABCD admin")
                return 0
            user = await session.scalar(
                select(User).where(User.slack_user_id == args.slack_user_id)
            )
            now = core.clock.now()
            if user is None:
                user = User(
                    slack_user_id=args.slack_user_id,
                    display_name=args.slack_user_id,
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
                role=args.role,
                via="cli",
            )
            user.role = args.role
            user.updated_at = now
            print(f"{args.slack_user_id} is now {args.role}")
            return 0
    finally:
        await core.close()


async def check_command(settings: BotSettings) -> int:
    """Validate configuration, then reach the database and Slack; print what is wrong."""
    problems: list[str] = []
    missing = settings.missing_for_serving()
    if missing:
        problems.append("missing settings: " + ", ".join(missing))
    core = Core.from_settings(settings)
    try:
        async with core.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        print(f"ok   database reachable ({core.db.dialect})")
    except Exception as error:
        problems.append(f"database unreachable at DATABASE_URL: {type(error).__name__}: {error}")
    finally:
        await core.close()
    if settings.slack_bot_token is not None:
        client = AsyncWebClient(
            token=settings.bot_token, base_url=settings.slack_api_url, timeout=10
        )
        try:
            auth = await client.auth_test()
            print(f"ok   Slack token works (team {auth.get('team')}, bot {auth.get('user')})")
            for name, channel in (
                ("STAFF_CHANNEL_ID", settings.staff_channel_id),
                ("MANAGER_CHANNEL_ID", settings.manager_channel_id),
            ):
                if not channel:
                    continue
                try:
                    info = await client.conversations_info(channel=channel)
                    private = info["channel"].get("is_private")
                    if name == "STAFF_CHANNEL_ID" and not private:
                        problems.append(f"{name} {channel} is public: it must be a private channel")
                    else:
                        print(f"ok   {name} {channel} reachable")
                except SlackApiError as error:
                    problems.append(
                        f"{name} {channel}: {error.response.get('error')} "
                        "(is the bot invited to the channel?)"
                    )
        except SlackApiError as error:
            problems.append(f"Slack refused the token: {error.response.get('error')}")
        except Exception as error:
            problems.append(f"Slack unreachable at SLACK_API_URL: {type(error).__name__}")
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0
