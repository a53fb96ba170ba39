"""The operator commands: `python -m bot --help`, `check` against a stand-in Slack and a real
database, and `roles set|list` on a temporary SQLite database."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.cli import check_command, roles_command
from bot.settings import BotSettings
from core.context import Core
from core.models import AuditEntry
from devslack.server import FakeSlack
from migrations import run_migrations

STAFF = "CSTAFF0001"
MANAGERS = "CMANAGER01"
NOT_INVITED = "CNOBOT0001"
PUBLIC = "CGENERAL01"
UNREACHABLE_DB = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    fake.add_user("UAGENT0001", "Dana Agent")
    fake.add_channel(STAFF, "support-triage", is_private=True, members=["UAGENT0001"])
    fake.add_channel(MANAGERS, "support-managers", is_private=True, members=[])
    fake.add_channel(
        NOT_INVITED, "elsewhere", is_private=False, members=["UAGENT0001"], bot_member=False
    )
    fake.add_channel(PUBLIC, "general", is_private=False, members=[])
    yield fake
    await fake.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ticketbot.db'}"


def environment(slack: FakeSlack, database_url: str, **overrides: str) -> dict[str, str]:
    """A clean environment (no settings inherited from the caller) for `python -m bot`."""
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": "s3cret-for-tests",
            "SLACK_API_URL": slack.api_url,
            "STAFF_CHANNEL_ID": STAFF,
            "MANAGER_CHANNEL_ID": MANAGERS,
            "DATABASE_URL": database_url,
        }
    )
    env.update(overrides)
    return env


async def run_bot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """`python -m bot ARGS` in a subprocess (while this loop keeps serving the fake Slack)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


def settings_for(slack: FakeSlack, database_url: str, **overrides: Any) -> BotSettings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.bot_token,
        "slack_signing_secret": "s3cret-for-tests",
        "slack_api_url": slack.api_url,
        "staff_channel_id": STAFF,
        "manager_channel_id": MANAGERS,
        "database_url": database_url,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)  # type: ignore[call-arg]


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(prefix)]


async def test_help_lists_every_command(tmp_path):
    code, output = await run_bot("--help", env={"PATH": os.environ["PATH"]}, cwd=tmp_path)
    assert code == 0
    for command in ("serve", "demo", "migrate", "scheduler", "roles", "check"):
        assert f"    {command} " in output or f"    {command}\n" in output, command


async def test_check_prints_ok_lines_when_slack_and_the_database_answer(
    slack, sqlite_url, tmp_path
):
    code, output = await run_bot("check", env=environment(slack, sqlite_url), cwd=tmp_path)
    assert code == 0, output
    assert not lines(output, "FAIL")
    oks = lines(output, "ok ")
    assert "ok   configuration complete (HTTP mode)" in oks
    assert any(line.startswith("ok   database reachable (sqlite") for line in oks)
    assert "ok   Slack accepts the token (workspace Fake Workspace, bot @ticketbot)" in oks
    assert (
        f"ok   STAFF_CHANNEL_ID {STAFF} (#support-triage) is private and the bot is a member" in oks
    )
    assert any(line.startswith(f"ok   MANAGER_CHANNEL_ID {MANAGERS}") for line in oks)
    assert "note database schema is empty" in output  # nothing migrated yet: said, not failed


async def test_check_fails_in_plain_words_for_a_public_staff_channel(slack, sqlite_url, tmp_path):
    env = environment(slack, sqlite_url, STAFF_CHANNEL_ID=PUBLIC)
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 1
    assert lines(output, "FAIL") == [
        f"FAIL STAFF_CHANNEL_ID {PUBLIC} (#general) is a public channel: internal notes are "
        "posted there, so it must be private. Create a private channel, invite the bot and use "
        "its id"
    ]


async def test_check_fails_for_a_staff_channel_shared_with_another_organisation(
    slack, sqlite_url, tmp_path
):
    slack.share_channel(STAFF, team_id="T0OTHERORG")
    code, output = await run_bot("check", env=environment(slack, sqlite_url), cwd=tmp_path)
    assert code == 1
    assert lines(output, "FAIL") == [
        f"FAIL STAFF_CHANNEL_ID {STAFF} (#support-triage) is shared with another organisation "
        "(Slack Connect): internal notes are posted there. Stop sharing it or use another "
        "private channel"
    ]


async def test_check_fails_for_a_token_slack_refuses(slack, sqlite_url, tmp_path):
    env = environment(slack, sqlite_url, SLACK_BOT_TOKEN="xoxb-not-the-right-token")
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 1
    assert lines(output, "FAIL") == [
        "FAIL SLACK_BOT_TOKEN: Slack answered invalid_auth: the token is not valid: copy the Bot "
        "User OAuth Token (xoxb-...) from OAuth & Permissions again"
    ]
    assert "xoxb-not-the-right-token" not in output


async def test_check_fails_for_an_unreachable_database_and_still_checks_slack(
    slack, tmp_path, capsys
):
    code = await check_command(settings_for(slack, UNREACHABLE_DB))
    output = capsys.readouterr().out
    assert code == 1
    [failure] = lines(output, "FAIL")
    assert failure.startswith(
        "FAIL cannot reach the database at postgresql+asyncpg://postgres@127.0.0.1:1/nowhere "
        "(DATABASE_URL): "
    )
    assert "ok   Slack accepts the token" in output


async def test_check_hides_the_database_password(slack, capsys):
    url = "postgresql+asyncpg://ticketbot:hunter2-password@127.0.0.1:1/desk"
    assert await check_command(settings_for(slack, url)) == 1
    output = capsys.readouterr().out
    assert "hunter2-password" not in output and "ticketbot:***@127.0.0.1:1/desk" in output


async def test_check_fails_when_the_bot_is_not_in_a_channel_or_a_channel_is_unknown(
    slack, sqlite_url, capsys
):
    settings = settings_for(slack, sqlite_url, manager_channel_id=NOT_INVITED)
    assert await check_command(settings) == 1
    assert lines(capsys.readouterr().out, "FAIL") == [
        f"FAIL MANAGER_CHANNEL_ID {NOT_INVITED} (#elsewhere): the bot is not a member: invite it "
        "with /invite @ticketbot"
    ]
    settings = settings_for(slack, sqlite_url, manager_channel_id="CMISSING01")
    assert await check_command(settings) == 1
    [failure] = lines(capsys.readouterr().out, "FAIL")
    assert failure.startswith(
        "FAIL MANAGER_CHANNEL_ID CMISSING01: Slack answered channel_not_found: no such channel"
    )


async def test_check_reports_missing_and_malformed_settings(slack, sqlite_url, tmp_path):
    env = environment(slack, sqlite_url)
    del env["MANAGER_CHANNEL_ID"]
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 1
    assert "FAIL missing settings: MANAGER_CHANNEL_ID" in output
    assert "ok   Slack accepts the token" in output  # the rest is still checked

    env = environment(slack, sqlite_url, STAFF_CHANNEL_ID="#support-triage")
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 1
    assert lines(output, "FAIL") == [
        "FAIL STAFF_CHANNEL_ID: Value error, must be a Slack channel id such as C0123ABCD "
        "(not a #name)"
    ]


async def test_check_says_when_slack_cannot_be_reached(sqlite_url, capsys):
    async with FakeSlack() as stopped_soon:
        url = stopped_soon.api_url
        token = stopped_soon.bot_token
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token=token,
        slack_signing_secret="s",
        slack_api_url=url,
        staff_channel_id=STAFF,
        manager_channel_id=MANAGERS,
        database_url=sqlite_url,
    )
    assert await check_command(settings) == 1
    [failure] = lines(capsys.readouterr().out, "FAIL")
    assert failure.startswith(f"FAIL cannot reach Slack at {url} (SLACK_API_URL): ")


async def test_roles_set_then_list_on_a_temporary_database(sqlite_url, capsys):
    settings = BotSettings(_env_file=None, database_url=sqlite_url)  # type: ignore[call-arg]
    listing = argparse.Namespace(roles_command="list")
    assert await roles_command(settings, listing) == 0
    assert "no staff yet" in capsys.readouterr().out

    for user_id, role in (("UAGENT0001", "agent"), ("UMANAGER01", "manager")):
        change = argparse.Namespace(roles_command="set", slack_user_id=user_id, role=role)
        assert await roles_command(settings, change) == 0
        assert capsys.readouterr().out.strip() == f"{user_id} is now {role}"
    demote = argparse.Namespace(roles_command="set", slack_user_id="UAGENT0001", role="customer")
    assert await roles_command(settings, demote) == 0
    capsys.readouterr()

    assert await roles_command(settings, listing) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1 and listed[0].split()[:2] == ["UMANAGER01", "manager"]

    core = Core.from_settings(settings)
    try:
        async with core.db.transaction() as session:
            entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    finally:
        await core.close()
    changes = [e for e in entries if e.action == "user.role_changed"]
    assert [(c.details["previous"], c.details["role"]) for c in changes] == [
        ("customer", "agent"),
        ("customer", "manager"),
        ("agent", "customer"),
    ]
    assert all(c.actor_id is None and c.details["via"] == "cli" for c in changes)


async def test_roles_set_refuses_an_unknown_role_through_the_command_line(sqlite_url, tmp_path):
    await run_migrations(sqlite_url)
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": sqlite_url}
    code, output = await run_bot("roles", "set", "UAGENT0001", "superuser", env=env, cwd=tmp_path)
    assert code == 2
    assert "invalid choice: 'superuser'" in output
    code, output = await run_bot("roles", "set", "UAGENT0001", "agent", env=env, cwd=tmp_path)
    assert code == 0 and "UAGENT0001 is now agent" in output
