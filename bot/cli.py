"""Operator commands: `roles list|set`, `audit` and `check`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import sys
from collections.abc import Iterator

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks.audit import plain_lines
from bot.cli_companies import reserved_channel_problems
from bot.notify import slack_error_code
from bot.operator_input import OperatorInputError, point_in_time, slack_user_id
from bot.settings import BotSettings
from bot.slack_reach import SlackUnreachable, ask_slack
from core import admin
from core.audit_log import AuditFilters, read_audit_log
from core.context import Core
from core.errors import DomainError
from migrations import alembic_config, run_migrations, sqlite_path


async def roles_command(settings: BotSettings, args: argparse.Namespace) -> int:
    """List staff, or set a role by Slack user id (an operator's action, audited as such)."""
    if args.roles_command == "set":
        try:
            args.slack_user_id = slack_user_id(args.slack_user_id)
        except OperatorInputError as error:
            print(f"roles set: {error}", file=sys.stderr)
            return 2
    await run_migrations(settings.database_url)
    core = Core.from_settings(settings)
    try:
        if args.roles_command == "list":
            staff = await admin.list_staff(core)
            for member in staff:
                state = "" if member.is_active else " (inactive)"
                print(
                    f"{member.slack_user_id:12} {member.role.value:10} {member.display_name}{state}"
                )
            if not staff:
                print("no staff yet: python -m bot roles set U0123ABCD admin")
            return 0
        await admin.set_role_as_operator(core, slack_user_id=args.slack_user_id, role=args.role)
        print(f"{args.slack_user_id} is now {args.role}")
        return 0
    finally:
        await core.close()


# How long `check` waits for the database or Slack before calling it unreachable.
CHECK_TIMEOUT_SECONDS = 10

# What Slack's error codes mean for an operator, in plain words.
SLACK_ADVICE = {
    "invalid_auth": "the token is not valid: copy the Bot User OAuth Token (xoxb-...) from "
    "OAuth & Permissions again",
    "not_authed": "no token was sent: set SLACK_BOT_TOKEN",
    "token_revoked": "the token was revoked: reinstall the app and use the new token",
    "account_inactive": "the app was uninstalled or its user deactivated: reinstall the app",
    "missing_scope": "the app lacks a permission scope: update the app from app_manifest.yml "
    "and reinstall it",
    "channel_not_found": "no such channel for the bot: check the id (C...), and invite the bot "
    "if it is a private channel (/invite @ticketbot)",
    "not_in_channel": "the bot is not a member: invite it with /invite @ticketbot",
}


def _slack_problem(what: str, error: SlackApiError) -> str:
    data = getattr(error.response, "data", None)
    code = slack_error_code(error) or ""
    advice = SLACK_ADVICE.get(code, "see the README's troubleshooting section")
    needed = data.get("needed") if isinstance(data, dict) else None
    if code == "missing_scope" and needed:
        advice += f" (needed: {needed})"
    return f"{what}: Slack answered {code or 'an error'}: {advice}"


async def check_command(settings: BotSettings, problems: list[str] | None = None) -> int:
    """Validate configuration, then reach the database and Slack; print one `ok` line per
    check that passed and one `FAIL` line, in plain words, per problem. Exit status 1 when
    anything failed. `problems` are the configuration's (invalid and missing settings, with
    `settings` holding the defaults in their place): the rest is still checked."""
    configuration = list(problems or [])
    problems = configuration[:]
    missing = settings.missing_for_serving()
    if missing and not configuration:
        problems.append(
            "missing settings: " + ", ".join(missing) + " (see Configuration in README.md)"
        )
    elif not configuration:
        mode = "Socket Mode" if settings.socket_mode else "HTTP mode"
        print(f"ok   configuration complete ({mode})")
    problems += await _check_database(settings)
    problems += await reserved_channel_problems(settings)
    if settings.slack_bot_token is not None:
        problems += await _check_slack(settings)
    for problem in problems:
        print(f"FAIL {problem}")
    if not problems:
        print("ok   ticketbot can serve")
    return 1 if problems else 0


async def _check_database(settings: BotSettings) -> list[str]:
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    sqlite_file = sqlite_path(settings.database_url)
    if sqlite_file is not None and not sqlite_file.exists():
        # Checking must not create it: a mistyped path would leave an empty database behind.
        if not sqlite_file.parent.is_dir():
            return [
                f"the folder of the SQLite database {where} (DATABASE_URL) does not exist: "
                "create it or fix the path"
            ]
        print(
            f"note database {where} does not exist yet: `serve` creates and migrates it at "
            "start, or run `python -m bot migrate`"
        )
        return []
    core = Core.from_settings(settings)

    async def reach() -> tuple[str | None, tuple[str, ...]]:
        async with core.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            current = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
        heads = tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
        return current, heads

    try:
        with _quiet("alembic.runtime.migration"):  # "Context impl …": noise in a check
            current, heads = await asyncio.wait_for(reach(), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return [f"database at {where} did not answer within {CHECK_TIMEOUT_SECONDS:g} s"]
    except Exception as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        detail = f"{type(error).__name__}: {reason}" if reason else type(error).__name__
        return [f"cannot reach the database at {where} (DATABASE_URL): {detail}"]
    finally:
        await core.close()
    print(f"ok   database reachable ({core.db.dialect}, {where})")
    if current in heads:
        print("ok   database schema is up to date")
    else:
        state = f"at revision {current}" if current else "empty"
        print(
            f"note database schema is {state}: `serve` migrates at start, "
            "or run `python -m bot migrate`"
        )
    return []


async def _check_slack(settings: BotSettings) -> list[str]:
    client = AsyncWebClient(
        token=settings.bot_token, base_url=settings.slack_api_url, timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        auth = await ask_slack(
            client.auth_test,
            method="auth.test",
            api_url=settings.slack_api_url,
            timeout_seconds=CHECK_TIMEOUT_SECONDS,
        )
    except SlackApiError as error:
        return [_slack_problem("SLACK_BOT_TOKEN", error)]
    except SlackUnreachable as failure:
        return [str(failure)]
    print(f"ok   Slack accepts the token (workspace {auth.get('team')}, bot @{auth.get('user')})")
    problems: list[str] = []
    for name, channel in (
        ("STAFF_CHANNEL_ID", settings.staff_channel_id),
        ("MANAGER_CHANNEL_ID", settings.manager_channel_id),
    ):
        if not channel:
            continue
        try:
            answer = await ask_slack(
                functools.partial(client.conversations_info, channel=channel),
                method="conversations.info",
                api_url=settings.slack_api_url,
                timeout_seconds=CHECK_TIMEOUT_SECONDS,
            )
            info = answer["channel"]
        except SlackApiError as error:
            problems.append(_slack_problem(f"{name} {channel}", error))
            continue
        except SlackUnreachable as failure:
            problems.append(str(failure))
            break
        label = f"{name} {channel} (#{info.get('name', '?')})"
        if name == "STAFF_CHANNEL_ID" and not info.get("is_private"):
            problems.append(
                f"{label} is a public channel: internal notes are posted there, so it must be "
                "private. Create a private channel, invite the bot and use its id"
            )
        elif name == "STAFF_CHANNEL_ID" and info.get("is_ext_shared"):
            problems.append(
                f"{label} is shared with another organisation (Slack Connect): internal notes "
                "are posted there. Stop sharing it or use another private channel"
            )
        elif info.get("is_archived"):
            problems.append(f"{label} is archived: unarchive it or use another channel")
        elif not info.get("is_member"):
            problems.append(f"{label}: the bot is not a member: invite it with /invite @ticketbot")
        else:
            kind = "private" if info.get("is_private") else "public"
            print(f"ok   {label} is {kind} and the bot is a member")
    return problems


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


async def audit_command(settings: BotSettings, args: argparse.Namespace) -> int:
    """Print audit entries, newest first: all of them, or a ticket's, a person's (what they
    did and what was done to them), since a time. Reading changes nothing and migrates
    nothing: a database that is behind is reported."""
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    sqlite_file = sqlite_path(settings.database_url)
    if sqlite_file is not None and not sqlite_file.exists():
        print(f"audit: there is no database at {where} (DATABASE_URL)", file=sys.stderr)
        return 1
    core = Core.from_settings(settings)
    try:
        try:
            since = point_in_time(args.since, now=core.clock.now()) if args.since else None
            user = slack_user_id(args.user) if args.user else None
        except OperatorInputError as error:
            print(f"audit: {error}", file=sys.stderr)
            return 2
        filters = AuditFilters(ticket_number=args.ticket, user=user, since=since)
        try:
            page = await read_audit_log(
                core, actor_id=None, filters=filters, page=args.page, page_size=args.limit
            )
        except DomainError as error:
            print(f"audit: {error.message}", file=sys.stderr)
            return 1
        except (SQLAlchemyError, OSError) as error:
            reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
            print(
                f"audit: cannot read the audit log at {where} (DATABASE_URL): "
                f"{type(error).__name__}: {reason} (a database that was never migrated has "
                "none: run `python -m bot migrate`)",
                file=sys.stderr,
            )
            return 1
        for line in plain_lines(page):
            print(line)
        return 0
    finally:
        await core.close()
