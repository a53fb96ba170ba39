"""Migration 0004 gives every existing ticket its search document: tickets and replies written
before the upgrade are found after it (internal notes and deleted tickets still are not), and
the downgrade brings back what searched before."""

from __future__ import annotations

from sqlalchemy import text

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Role
from core.replies import add_reply, edit_reply
from core.search import search_tickets
from core.tickets import delete_ticket
from migrations import run_migrations
from tests.conftest import create_pg_database, drop_pg_database, settings_for
from tests.factories import make_ticket, make_user


async def numbers(core: Core, actor_id: int, query: str) -> list[int]:
    page = await search_tickets(core, actor_id=actor_id, query=query)
    return sorted(hit.ticket.number for hit in page.items)


async def test_tickets_written_before_the_upgrade_are_found_after_it(database_url, tmp_path):
    sqlite = database_url.startswith("sqlite")
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'search.db'}"
        if sqlite
        else await create_pg_database("ticketbot_search_migration")
    )
    database = Database(url)
    core = Core(db=database, settings=settings_for(url), clock=FrozenClock())
    try:
        await run_migrations(url, "upgrade", "0003")
        customer = await make_user(core)
        agent = await make_user(core, Role.AGENT)
        manager = await make_user(core, Role.MANAGER)
        kept = await make_ticket(core, customer, title="VPN drops", description="Since Monday.")
        reply = await add_reply(
            core, actor_id=agent.id, ticket=kept.number, body="Check the gatway.", internal=False
        )
        # Edited before the upgrade: on SQLite this used to corrupt replies_fts.
        await edit_reply(core, actor_id=agent.id, reply_id=reply.id, body="Check the gateway.")
        await add_reply(
            core, actor_id=agent.id, ticket=kept.number, body="Known reseller.", internal=True
        )
        gone = await make_ticket(core, customer, title="VPN gateway down", description="x")
        await delete_ticket(core, actor_id=manager.id, ticket=gone.number)

        await run_migrations(url)
        for actor in (customer, agent):
            assert await numbers(core, actor.id, "vpn gateway") == [kept.number]
            assert await numbers(core, actor.id, "reseller") == []
        page = await search_tickets(core, actor_id=customer.id, query="gateway")
        assert "gateway" in page.items[0].snippet

        await run_migrations(url, "downgrade", "0003")
        async with database.engine.connect() as connection:
            if sqlite:
                found = "SELECT name FROM sqlite_master WHERE name = 'replies_fts_au_old'"
            else:
                found = (
                    "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_replies_search_vector'"
                )
            assert (await connection.execute(text(found))).scalar() is not None
        await run_migrations(url)
        assert await numbers(core, customer.id, "vpn gateway") == [kept.number]
    finally:
        await database.dispose()
        if not sqlite:
            await drop_pg_database(url)
