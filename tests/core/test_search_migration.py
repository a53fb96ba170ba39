"""Migration 0004 gives every existing ticket its search document: tickets and replies written
before the upgrade are found after it (internal notes and deleted tickets still are not), and
the downgrade brings back what searched before."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, Integer, String, Uuid, column, insert, table, text, update

from core.clock import FrozenClock
from core.context import Core
from core.db import Database, UTCDateTime
from core.enums import Role
from core.search import search_tickets
from migrations import run_migrations
from tests.conftest import create_pg_database, drop_pg_database, settings_for

NOW = datetime(2026, 2, 2, 9, 0, tzinfo=UTC)

# The rows as revision 0003 stores them, written directly: the services follow the head schema.
tickets_0003 = table(
    "tickets",
    column("id", Uuid),
    column("number", Integer),
    *(column(name, String) for name in ("title", "description", "status", "priority")),
    column("customer_id", Integer),
    column("created_by_id", Integer),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
    column("deleted_at", UTCDateTime()),
    column("deleted_by_id", Integer),
)
users_0003 = table(
    "users",
    column("id", Integer),
    *(column(name, String) for name in ("slack_user_id", "display_name", "role")),
    column("is_active", Boolean),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
)
replies_0003 = table(
    "replies",
    column("id", Integer),
    column("ticket_id", Uuid),
    column("author_id", Integer),
    column("body", String),
    column("is_internal", Boolean),
    column("created_at", UTCDateTime()),
    column("edited_at", UTCDateTime()),
)


@dataclass(frozen=True)
class Person:
    id: int


async def user_0003(core: Core, role: Role) -> Person:
    async with core.db.transaction() as session:
        result = await session.execute(
            insert(users_0003)
            .values(
                slack_user_id=f"U{role.value.upper()}",
                display_name=role.value,
                role=role.value,
                is_active=True,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(users_0003.c.id)
        )
        return Person(id=int(result.scalar_one()))


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
        customer = await user_0003(core, Role.CUSTOMER)
        agent = await user_0003(core, Role.AGENT)
        manager = await user_0003(core, Role.MANAGER)
        kept, gone = uuid.uuid4(), uuid.uuid4()
        ticket = {
            "status": "open",
            "priority": "medium",
            "customer_id": customer.id,
            "created_by_id": customer.id,
            "created_at": NOW,
            "updated_at": NOW,
        }
        reply = {"ticket_id": kept, "author_id": agent.id, "created_at": NOW}
        async with database.engine.begin() as connection:
            await connection.execute(
                insert(tickets_0003),
                [
                    {**ticket, "id": kept, "number": 1, "title": "VPN drops"}
                    | {"description": "Since Monday."},
                    {**ticket, "id": gone, "number": 2, "title": "VPN gateway down"}
                    | {"description": "x"},
                ],
            )
            await connection.execute(
                insert(replies_0003).values(
                    id=1, body="Check the gatway.", is_internal=False, **reply
                )
            )
            # Edited before the upgrade: on SQLite this used to corrupt replies_fts.
            await connection.execute(
                update(replies_0003)
                .where(replies_0003.c.id == 1)
                .values(body="Check the gateway.", edited_at=NOW)
            )
            await connection.execute(
                insert(replies_0003).values(id=2, body="Known reseller.", is_internal=True, **reply)
            )
            await connection.execute(
                update(tickets_0003)
                .where(tickets_0003.c.id == gone)
                .values(deleted_at=NOW, deleted_by_id=manager.id)
            )

        await run_migrations(url)
        for actor in (customer, agent):
            assert await numbers(core, actor.id, "vpn gateway") == [1]
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
        assert await numbers(core, customer.id, "vpn gateway") == [1]
    finally:
        await database.dispose()
        if not sqlite:
            await drop_pg_database(url)
