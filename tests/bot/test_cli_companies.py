"""`python -m bot companies …` on a temporary SQLite database: the operator's changes are made,
audited as the CLI's, and bad input is refused in plain words without changing anything."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.__main__ import main
from bot.cli_companies import companies_command
from bot.settings import BotSettings
from core import admin
from core.context import Core
from core.models import AuditEntry


def _settings(tmp_path: Path) -> BotSettings:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketbot.db'}"
    return BotSettings(_env_file=None, database_url=url)  # type: ignore[call-arg]


async def _run(settings: BotSettings, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    from bot.cli_companies import add_parser

    add_parser(commands)
    return await companies_command(settings, parser.parse_args(["companies", *argv]))


async def test_the_operator_adds_lists_shows_and_grants(tmp_path, capsys):
    settings = _settings(tmp_path)
    assert await _run(settings, "add", "Acme Corp", "acme.example") == 0
    assert capsys.readouterr().out.strip() == "added Acme Corp (acme.example)"
    assert await _run(settings, "domain", "add", "acme corp", "acme.test") == 0
    assert "acme.example, acme.test" in capsys.readouterr().out
    core = Core.from_settings(settings)
    try:
        await admin.set_role_as_operator(core, slack_user_id="UCORP0001", role="corporate")
    finally:
        await core.close()
    assert await _run(settings, "grant", "UCORP0001", "Acme Corp") == 0
    assert "now covers Acme Corp" in capsys.readouterr().out
    assert await _run(settings, "show", "Acme Corp") == 0
    shown = capsys.readouterr().out
    assert "corporate: UCORP0001 (UCORP0001)" in shown and "open:      0" in shown
    assert await _run(settings, "list") == 0
    assert capsys.readouterr().out.split()[:2] == ["Acme", "Corp"]
    core = Core.from_settings(settings)
    try:
        async with core.db.transaction() as session:
            entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
    finally:
        await core.close()
    company_entries = [e for e in entries if e.action.startswith("company.")]
    assert [e.action for e in company_entries] == [
        "company.created",
        "company.domain_added",
        "company.access_granted",
    ]
    assert all(e.details.get("via") == "cli" and e.actor_id is None for e in company_entries)


async def test_bad_input_is_refused_in_plain_words(tmp_path, capsys):
    settings = _settings(tmp_path)
    assert await _run(settings, "add", "Acme", "not-a-domain") == 1
    assert "refused: 'not-a-domain' is not an email domain." in capsys.readouterr().out
    assert await _run(settings, "grant", "UNOBODY01", "Acme") == 1
    assert "There is no company named Acme" in capsys.readouterr().out
    assert await _run(settings, "list") == 0
    assert "no companies yet" in capsys.readouterr().out


def test_help_lists_the_companies_verbs(capsys):
    with pytest.raises(SystemExit):
        main(["companies", "--help"])
    out = capsys.readouterr().out
    for verb in ("add", "domain", "list", "show", "grant", "revoke"):
        assert verb in out
