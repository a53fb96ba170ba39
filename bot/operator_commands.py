"""The parts of `python -m bot` beyond the basic commands: `help [command]`, the `audit`
command's arguments, and `check` when the settings themselves are invalid."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bot.settings import SettingsError


def add_audit_parser(commands: Any) -> None:
    """`audit [--ticket N] [--user U…] [--since …] [--page N] [--limit N]`."""
    audit = commands.add_parser(
        "audit",
        help="read the audit log: who changed what and when, newest first",
        description="Read the audit log, newest first. Without options: every entry.",
    )
    audit.add_argument("--ticket", type=_positive, metavar="N", help="entries of ticket N")
    audit.add_argument(
        "--user",
        metavar="U…",
        help="entries by or about a person: a Slack user id (U0123ABCD) or <@U0123ABCD>",
    )
    audit.add_argument(
        "--since",
        metavar="WHEN",
        help="entries from then on: 2026-11-30, 2026-11-30T14:00 (UTC unless a zone is "
        "given) or a time ago: 90m, 24h, 7d",
    )
    audit.add_argument("--page", type=_positive, default=1, metavar="N", help="page (1)")
    audit.add_argument(
        "--limit",
        type=_positive,
        default=50,
        metavar="N",
        help="entries per page (50, at most 200)",
    )


def _positive(text: str) -> int:
    value = text.strip().lstrip("#")
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of 1 or more, got {text!r}")
    return int(value)


def show_help(parser: argparse.ArgumentParser, commands: Any, topic: str | None) -> int:
    """`help`: the overall help; `help roles`: that command's."""
    if topic is None:
        parser.print_help()
        return 0
    command = commands.choices.get(topic)
    if command is None:
        names = ", ".join(name for name in commands.choices if name != "help")
        parser.error(f"no command {topic!r}; the commands are: {names}")
    command.print_help()
    return 0


def check_with_invalid_settings(error: SettingsError) -> int:
    """`check` with invalid settings: every problem of the configuration is listed, and the
    database and Slack are still checked with what could be read."""
    if error.partial is None:
        for problem in error.problems:
            print(f"FAIL {problem}")
        return 1
    from bot.cli import check_command

    return asyncio.run(check_command(error.partial, error.problems))
