"""`python -m bot companies …`: the operator manages companies as admins do with
`/ticket company` (audited as `via="cli"`)."""

from __future__ import annotations

import argparse

from sqlalchemy.exc import SQLAlchemyError

from bot import channel_guard
from bot.settings import BotSettings
from core import companies
from core.context import Core
from core.errors import DomainError, Unavailable
from migrations import run_migrations, sqlite_path


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("companies", help="manage companies, domains and coverage")
    verbs = parser.add_subparsers(dest="companies_command", required=True)
    add = verbs.add_parser("add", help="add a company with its email domains")
    add.add_argument("name")
    add.add_argument("domains", nargs="*")
    domain = verbs.add_parser("domain", help="add or remove an email domain")
    domain.add_argument("change", choices=["add", "remove"])
    domain.add_argument("name")
    domain.add_argument("domain")
    verbs.add_parser("list", help="list companies and their domains")
    show = verbs.add_parser("show", help="a company's domains, channels, staff, open tickets")
    show.add_argument("name")
    for verb, what in (("grant", "let"), ("revoke", "stop")):
        coverage = verbs.add_parser(verb, help=f"{what} a corporate staff member cover a company")
        coverage.add_argument("slack_user_id")
        coverage.add_argument("name")


async def companies_command(settings: BotSettings, args: argparse.Namespace) -> int:
    await run_migrations(settings.database_url)
    core = Core.from_settings(settings)
    try:
        return await _run(core, args)
    except DomainError as error:
        print(f"refused: {error.message}")
        return 1
    finally:
        await core.close()


async def _run(core: Core, args: argparse.Namespace) -> int:
    verb = args.companies_command
    if verb == "add":
        change = await companies.add_company(
            core, actor_id=None, name=args.name, domains=args.domains
        )
        print(f"added {change.company.name} ({', '.join(change.company.domains) or 'no domain'})")
        if change.matched:
            print(f"{change.matched} people joined it by their email domain")
    elif verb == "domain":
        service = companies.add_domain if args.change == "add" else companies.remove_domain
        change = await service(core, actor_id=None, company=args.name, domain=args.domain)
        print(f"{change.company.name}: {', '.join(change.company.domains) or 'no domain'}")
        if change.matched:
            print(f"{change.matched} people joined it by their email domain")
    elif verb == "list":
        found = await companies.list_companies(core, actor_id=None)
        for company in found:
            print(f"{company.name:30} {', '.join(company.domains)}")
        if not found:
            print("no companies yet: python -m bot companies add 'Acme' acme.example")
    elif verb == "show":
        detail = await companies.show_company(core, actor_id=None, company=args.name)
        print(detail.company.name)
        print(f"  domains:   {', '.join(detail.company.domains) or 'none'}")
        print(f"  channels:  {', '.join(detail.channel_ids) or 'none'}")
        staff = ", ".join(f"{u.display_name} ({u.slack_user_id})" for u in detail.corporate)
        print(f"  corporate: {staff or 'none'}")
        numbers = ", ".join(f"#{n}" for n in detail.open_numbers)
        print(f"  open:      {detail.open_tickets}" + (f" ({numbers})" if numbers else ""))
    else:
        changer = companies.grant_coverage if verb == "grant" else companies.revoke_coverage
        user = await changer(
            core, actor_id=None, company=args.name, slack_user_id=args.slack_user_id
        )
        state = "now covers" if verb == "grant" else "no longer covers"
        print(f"{user.display_name} ({user.slack_user_id}) {state} {args.name}")
    return 0


async def reserved_channel_problems(settings: BotSettings) -> list[str]:
    """`check`: the staff and manager channels must not be customer channels (a database
    that cannot be reached is reported by the database check, and a SQLite file that does not
    exist yet is not created by looking)."""
    sqlite_file = sqlite_path(settings.database_url)
    if sqlite_file is not None and not sqlite_file.exists():
        return []
    core = Core.from_settings(settings)
    try:
        problem = await channel_guard.reserved_channel_problem(
            core,
            staff_channel_id=settings.staff_channel_id,
            manager_channel_id=settings.manager_channel_id,
        )
    except (
        SQLAlchemyError,
        OSError,
        Unavailable,
    ):  # (unreachable or not migrated: said by the other checks)
        return []
    finally:
        await core.close()
    return [problem] if problem else []
