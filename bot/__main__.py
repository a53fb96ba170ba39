"""`python -m bot`: serve (default), demo, migrate, scheduler, roles, audit, check, help."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bot.cli_companies import add_parser as add_companies_parser
from bot.logs import configure_logging
from bot.operator_commands import add_audit_parser, check_with_invalid_settings, show_help
from bot.settings import BotSettings, SettingsError, load_settings

NO_CREDENTIALS = """\
ticketbot cannot serve Slack yet: these settings are missing: {missing}.

  SLACK_BOT_TOKEN       the app's Bot User OAuth Token (xoxb-...), from "OAuth & Permissions"
  SLACK_SIGNING_SECRET  from "Basic Information" > "App Credentials" (not needed in Socket Mode)
  STAFF_CHANNEL_ID      the private triage channel's id (C...), with the bot invited
  MANAGER_CHANNEL_ID    the channel for SLA alerts (C...)

Create the app from app_manifest.yml (see README.md), then export those variables or put them
in a .env file (.env.example lists every setting). To see ticketbot work without any Slack
workspace, run from the repository:

  ./scripts/run demo
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot", description="ticketbot: a Slack support desk"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser(
        "serve", help="serve Slack (HTTP mode, or Socket Mode with SLACK_APP_TOKEN)"
    )
    demo = commands.add_parser(
        "demo", help="play a support story against a local stand-in for Slack"
    )
    demo.add_argument("--quiet", action="store_true", help="print only the summary")
    commands.add_parser("migrate", help="apply database migrations and exit")
    commands.add_parser(
        "scheduler",
        help="run only the scheduler: the SLA scan and housekeeping (pruning old delivery "
        "claims, rate-limit counters and finished outbox messages)",
    )
    commands.add_parser("check", help="validate configuration and reach Slack and the database")
    help_command = commands.add_parser("help", help="show this help, or a command's")
    help_command.add_argument("topic", nargs="?", help="a command, e.g. roles")
    roles = commands.add_parser("roles", help="list or set user roles")
    role_commands = roles.add_subparsers(dest="roles_command", required=True)
    role_commands.add_parser("list", help="list staff and their roles")
    role_set = role_commands.add_parser("set", help="set a user's role")
    role_set.add_argument(
        "slack_user_id", help="a Slack user id (U0123ABCD) or a mention (<@U0123ABCD>)"
    )
    role_set.add_argument("role", choices=["customer", "corporate", "agent", "manager", "admin"])
    add_audit_parser(commands)
    add_companies_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "help":
        return show_help(parser, commands, args.topic)
    if args.command == "demo":
        return play_demo(quiet=args.quiet)

    try:
        settings = load_settings()
    except SettingsError as error:
        if args.command == "check":
            return check_with_invalid_settings(error)
        print(error, file=sys.stderr)
        return 2
    configure_logging(
        json_lines=settings.log_json,
        level=settings.log_level,
        secrets=tuple(
            s.get_secret_value()
            for s in (
                settings.slack_bot_token,
                settings.slack_signing_secret,
                settings.slack_app_token,
            )
            if s is not None
        ),
    )
    command = args.command or "serve"
    if command == "migrate":
        from bot.startup import database_problem
        from migrations import run_migrations

        try:
            asyncio.run(run_migrations(settings.database_url))
        except Exception as error:
            problem = database_problem(settings.database_url, error)
            if problem is None:
                raise
            print(f"migrate: {problem}", file=sys.stderr)
            return 2
        print("database is up to date")
        return 0
    if command == "scheduler":
        from bot.scheduler import run_scheduler_forever
        from core.context import Core

        async def scheduler_only() -> None:
            from migrations import run_migrations

            await run_migrations(settings.database_url)
            core = Core.from_settings(settings)
            try:
                await run_scheduler_forever(core, settings)
            finally:
                await core.close()

        try:
            asyncio.run(scheduler_only())
        except Exception as error:
            from bot.startup import database_problem

            problem = database_problem(settings.database_url, error)
            if problem is None:
                raise
            print(f"scheduler did not start: {problem}", file=sys.stderr)
            return 2
        return 0
    if command == "roles":
        from bot.cli import roles_command

        return asyncio.run(roles_command(settings, args))
    if command == "companies":
        from bot.cli_companies import companies_command

        return asyncio.run(companies_command(settings, args))
    if command == "check":
        from bot.cli import check_command

        return asyncio.run(check_command(settings))
    if command == "audit":
        from bot.cli import audit_command

        return asyncio.run(audit_command(settings, args))
    return serve(settings)


def play_demo(*, quiet: bool) -> int:
    """The demo needs no settings: it brings its own Slack and its own throwaway database."""
    try:
        from devslack.demo import run_demo
    except ModuleNotFoundError:
        # The stand-in Slack ships with the source checkout, not with the package or image.
        print(
            "The demo needs a source checkout of ticketbot (its devslack/ folder): run "
            "./scripts/run demo from the repository.",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(run_demo(quiet=quiet))


def serve(settings: BotSettings) -> int:
    missing = settings.missing_for_serving()
    if missing:
        print(NO_CREDENTIALS.format(missing=", ".join(missing)), file=sys.stderr)
        return 2
    from bot.process import run

    return run(_serve(settings))


async def _serve(settings: BotSettings) -> int:
    from bot.app import BotServer
    from bot.process import settle_heap
    from bot.startup import start_or_explain

    server = BotServer(settings)
    if not await start_or_explain(server):
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if settings.socket_mode:
        await server.connect_socket_mode()
    settle_heap()
    print(f"ticketbot is serving on {server.base_url}", file=sys.stderr)
    await stop.wait()
    await server.stop()
    await server.core.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
