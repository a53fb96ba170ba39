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
from bot.settings import BotSettings, SettingsError, load_settings
from core import channels, companies
from core.context import Core
from core.enums import Role
from core.models import AuditEntry
from devslack.server import FakeSlack
from migrations import run_migrations
from tests.factories import make_user

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
    for command in ("serve", "demo", "migrate", "scheduler", "roles", "audit", "check", "help"):
        assert f"    {command} " in output or f"    {command}\n" in output, command
    assert "housekeeping" in " ".join(output.split())  # what `scheduler` also runs


async def test_help_is_a_command_too_with_a_topic(tmp_path):
    env = {"PATH": os.environ["PATH"]}
    code, output = await run_bot("help", env=env, cwd=tmp_path)
    assert code == 0 and "invalid choice" not in output
    assert "usage: python -m bot" in output and "audit" in output
    code, output = await run_bot("help", "audit", env=env, cwd=tmp_path)
    assert code == 0 and "--ticket N" in output and "--since WHEN" in output
    code, output = await run_bot("help", "nonsense", env=env, cwd=tmp_path)
    assert code == 2 and "no command 'nonsense'" in output


async def test_check_prints_ok_lines_when_slack_and_the_database_answer(
    slack, sqlite_url, tmp_path
):
    (tmp_path / "ticketbot.db").touch()  # an empty database: `check` never creates one
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
        "FAIL STAFF_CHANNEL_ID: '#support-triage' is a channel name; use the channel's id (C…): "
        "open the channel's details, it is at the bottom of the About tab"
    ]


async def test_check_lists_every_invalid_and_missing_setting_at_once_and_checks_the_rest(
    slack, sqlite_url, tmp_path
):
    env = environment(
        slack,
        sqlite_url,
        STAFF_CHANNEL_ID="C1",
        SLACK_SIGNING_SECRET="x",
        PORT="eighty",
        SLA_TARGETS="urgent=30m,high=2h",
    )
    del env["MANAGER_CHANNEL_ID"]
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 1
    failures = lines(output, "FAIL")
    assert failures == [
        "FAIL SLA_TARGETS: missing SLA target for: low, medium",
        "FAIL SLACK_SIGNING_SECRET: too short to be a Slack signing secret (1 character; "
        "Slack's have 32): copy it from Basic Information > App Credentials > Signing Secret",
        "FAIL STAFF_CHANNEL_ID: 'C1' is too short for a Slack channel id (they look like "
        "C0123ABCD)",
        "FAIL PORT: Input should be a valid integer, unable to parse string as an integer "
        "(got 'eighty')",
        "FAIL missing settings: MANAGER_CHANNEL_ID",
    ]
    assert not any("Value error" in line for line in failures)
    assert "ok   Slack accepts the token" in output  # the valid rest is still checked
    assert "x" not in {word.strip(",.:()") for word in output.split()}  # no secret echoed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("C1", "'C1' is too short for a Slack channel id (they look like C0123ABCD)"),
        ("#triage", "'#triage' is a channel name; use the channel's id (C…)"),
        ("c0123abcd", "'c0123abcd' is not a Slack channel id: ids are in capitals"),
        ("https://x.slack.com/archives/C0123", "is not a Slack channel id: ids start with C"),
    ],
)
def test_a_wrong_channel_id_is_explained_for_what_was_given(value, expected):
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, staff_channel_id=value)
    [problem] = [p for p in error.value.problems if p.startswith("STAFF_CHANNEL_ID")]
    assert expected in problem
    assert "Value error" not in problem and "#name" not in problem.replace(value, "")


async def test_check_fails_when_the_manager_channel_is_a_customer_channel(
    slack, sqlite_url, tmp_path
):
    await run_migrations(sqlite_url)
    core = Core.from_settings(settings_for(slack, sqlite_url))
    try:
        boss = await make_user(core, Role.ADMIN)
        await companies.add_company(core, actor_id=boss.id, name="Acme")
        # Linked before the desk was configured to alert there (the link itself refuses it).
        await channels.link_channel(
            core, actor_id=boss.id, channel_id=MANAGERS, company="Acme", reserved=set()
        )
    finally:
        await core.close()
    code, output = await run_bot("check", env=environment(slack, sqlite_url), cwd=tmp_path)
    assert code == 1, output
    assert any(
        f"MANAGER_CHANNEL_ID {MANAGERS} is a customer channel" in line
        for line in lines(output, "FAIL")
    ), output


async def test_check_neither_creates_the_database_file_nor_prints_migration_logs(slack, tmp_path):
    database = tmp_path / "not-yet.db"
    env = environment(slack, f"sqlite+aiosqlite:///{database}")
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 0, output
    assert not database.exists()
    assert "does not exist yet: `serve` creates and migrates it at start" in output

    await run_migrations(f"sqlite+aiosqlite:///{database}")
    code, output = await run_bot("check", env=env, cwd=tmp_path)
    assert code == 0, output
    assert "ok   database schema is up to date" in output
    assert "Context impl" not in output and "Will assume" not in output
    assert all(line.startswith(("ok ", "note ")) for line in output.splitlines()), output


async def test_check_says_when_slack_cannot_be_reached(sqlite_url, capsys):
    async with FakeSlack() as stopped_soon:
        url = stopped_soon.api_url
        token = stopped_soon.bot_token
    settings = BotSettings(  # type: ignore[call-arg]
        _env_file=None,
        slack_bot_token=token,
        slack_signing_secret="s3cret-for-tests",
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


@pytest.mark.parametrize(
    "given", ["@dana", "dana", "Dana Agent", "u0123abcd", "<@dana>", "C0123ABCD"]
)
async def test_roles_set_refuses_what_is_not_a_user_id_and_writes_nothing(
    given, sqlite_url, capsys
):
    settings = BotSettings(_env_file=None, database_url=sqlite_url)  # type: ignore[call-arg]
    change = argparse.Namespace(roles_command="set", slack_user_id=given, role="manager")
    assert await roles_command(settings, change) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"roles set: {given!r} is ")
    assert "U0123ABCD" in err and "<@U0123ABCD>" in err  # the expected form
    assert not Path(sqlite_url.split(":///", 1)[1]).exists()  # noqa: ASYNC240 - nothing created


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("<@U0999MAX1|max>", "U0999MAX1"),
        ("<@W0123ABCD>", "W0123ABCD"),
        (" U0AGENT01 ", "U0AGENT01"),
    ],
)
async def test_roles_set_takes_the_user_id_out_of_a_mention(given, stored, sqlite_url, capsys):
    settings = BotSettings(_env_file=None, database_url=sqlite_url)  # type: ignore[call-arg]
    change = argparse.Namespace(roles_command="set", slack_user_id=given, role="manager")
    assert await roles_command(settings, change) == 0
    assert capsys.readouterr().out.strip() == f"{stored} is now manager"
    assert await roles_command(settings, argparse.Namespace(roles_command="list")) == 0
    assert capsys.readouterr().out.split()[:2] == [stored, "manager"]


async def test_audit_prints_entries_by_ticket_person_and_time(sqlite_url, tmp_path):
    await run_migrations(sqlite_url)
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": sqlite_url}
    for user, role in (("U0AGENT01", "agent"), ("U0MANAGER1", "manager"), ("U0AGENT01", "admin")):
        code, output = await run_bot("roles", "set", user, role, env=env, cwd=tmp_path)
        assert code == 0, output

    code, output = await run_bot("audit", env=env, cwd=tmp_path)
    assert code == 0, output
    entries = output.splitlines()
    assert len(entries) == 4 and entries[-1].startswith("page 1 of 1, 3 entries in all")
    assert "user.role_changed  by the operator (cli)  about U0AGENT01" in entries[0]
    assert "previous=agent role=admin" in entries[0]
    assert "about U0MANAGER1" in entries[1]

    code, output = await run_bot("audit", "--user", "<@U0MANAGER1>", env=env, cwd=tmp_path)
    assert code == 0 and len(output.splitlines()) == 2 and "about U0MANAGER1" in output

    code, output = await run_bot(
        "audit", "--user", "U0AGENT01", "--limit", "1", env=env, cwd=tmp_path
    )
    assert code == 0
    assert output.splitlines()[-1] == "page 1 of 2, 2 entries in all, newest first; next: page 2"

    code, output = await run_bot("audit", "--since", "2999-01-01", env=env, cwd=tmp_path)
    assert code == 0 and output.strip() == "no audit entries match"
    code, output = await run_bot("audit", "--since", "1h", env=env, cwd=tmp_path)
    assert code == 0 and "3 entries in all" in output


async def test_audit_refuses_bad_input_in_plain_words(sqlite_url, tmp_path):
    await run_migrations(sqlite_url)
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": sqlite_url}
    code, output = await run_bot("audit", "--ticket", "42", env=env, cwd=tmp_path)
    assert (code, output.strip()) == (1, "audit: Ticket #42 was not found.")
    code, output = await run_bot("audit", "--since", "last tuesday", env=env, cwd=tmp_path)
    assert code == 2 and "audit: 'last tuesday' is not a time: use a date (2026-11-30)" in output
    code, output = await run_bot("audit", "--user", "@dana", env=env, cwd=tmp_path)
    assert code == 2 and "is a name, not a Slack user id" in output
    code, output = await run_bot("audit", "--ticket", "0", env=env, cwd=tmp_path)
    assert code == 2 and "expected a number of 1 or more" in output
    missing = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    code, output = await run_bot("audit", env=missing, cwd=tmp_path)
    assert code == 1 and "there is no database at" in output and "Traceback" not in output
    assert not (tmp_path / "x.db").exists()
