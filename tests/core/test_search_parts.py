"""Migration 0010: a ticket's search is kept in parts (the ticket with its first replies, then
each later public reply), so one reply's change writes a bounded document; conversations
written before the upgrade are found after it, and the downgrade brings back what searched
before."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from sqlalchemy import text

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Role
from core.replies import add_reply, delete_reply, edit_reply
from core.search import search_tickets
from core.tickets import delete_ticket, update_ticket
from migrations import run_migrations
from tests.conftest import create_pg_database, drop_pg_database, settings_for
from tests.factories import make_ticket, make_user


def _inline_replies() -> int:
    path = Path(__file__).parents[2] / "migrations/versions/2026_12_03_0010_search_parts.py"
    spec = importlib.util.spec_from_file_location("ticketbot_migration_0010", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.INLINE_REPLIES)


# How many of a ticket's first replies are searched inside its part 0 (PostgreSQL).
INLINE = _inline_replies()


async def numbers(core: Core, actor_id: int, query: str) -> list[int]:
    page = await search_tickets(core, actor_id=actor_id, query=query)
    return sorted(hit.ticket.number for hit in page.items)


async def search_rows(core: Core) -> dict[tuple[int, int], int]:
    """PostgreSQL: every search row, (number, part) -> the transaction that last wrote it."""
    async with core.db.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT number, part, xmin::text::bigint FROM ticket_search")
        )
        return {(row[0], row[1]): row[2] for row in rows}


async def overflowing(core: Core) -> set[int]:
    """PostgreSQL: the tickets whose part 0 says they have rows of later replies."""
    async with core.db.engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT number FROM ticket_search WHERE part = 0 AND overflow")
        )
        return {row[0] for row in rows}


async def test_conversations_written_before_the_upgrade_are_found_after_it(database_url, tmp_path):
    sqlite = database_url.startswith("sqlite")
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'parts.db'}"
        if sqlite
        else await create_pg_database("ticketbot_search_parts")
    )
    database = Database(url)
    core = Core(db=database, settings=settings_for(url), clock=FrozenClock())
    try:
        await run_migrations(url, "upgrade", "0009")
        customer = await make_user(core)
        agent = await make_user(core, Role.AGENT)
        manager = await make_user(core, Role.MANAGER)
        kept = await make_ticket(core, customer, title="VPN drops", description="Since Monday.")
        gone = await make_ticket(core, customer, title="VPN gateway down", description="x")
        for body, internal in (
            ("Check the gatway.", False),
            ("Known reseller.", True),
            ("Try the firmware update.", False),
        ):
            reply = await add_reply(
                core, actor_id=agent.id, ticket=kept.number, body=body, internal=internal
            )
            if body.startswith("Check"):
                await edit_reply(
                    core, actor_id=agent.id, reply_id=reply.id, body="Check the gateway."
                )
            if body.startswith("Try"):
                await delete_reply(core, actor_id=agent.id, reply_id=reply.id)
        await add_reply(
            core, actor_id=agent.id, ticket=gone.number, body="Zeppelin.", internal=False
        )
        await delete_ticket(core, actor_id=manager.id, ticket=gone.number)
        # A conversation longer than part 0 holds: its later replies get rows of their own.
        long = await make_ticket(core, customer, title="Plotter smears", description="Ink.")
        later = []
        for n in range(INLINE + 2):
            body = "Escalated to tier two." if n == INLINE + 1 else f"Step {n}."
            reply = await add_reply(
                core, actor_id=agent.id, ticket=long.number, body=body, internal=False
            )
            later.append(reply.id)
        later = later[INLINE:]

        await run_migrations(url)
        for actor in (customer, agent):
            assert await numbers(core, actor.id, "vpn gateway") == [kept.number]
            assert await numbers(core, actor.id, "reseller") == []
            assert await numbers(core, actor.id, "firmware") == []
            assert await numbers(core, actor.id, "zeppelin") == []
        page = await search_tickets(core, actor_id=customer.id, query="gateway")
        assert "gateway" in page.items[0].snippet
        if not sqlite:
            assert set(await search_rows(core)) == {
                (kept.number, 0),
                (long.number, 0),
                *((long.number, reply_id) for reply_id in later),
            }
            assert await overflowing(core) == {long.number}
        assert await numbers(core, customer.id, "plotter escalated") == [long.number]
        # A reply after the upgrade is found with the ticket's own words.
        await add_reply(
            core, actor_id=agent.id, ticket=kept.number, body="Replaced the dongle.", internal=False
        )
        assert await numbers(core, customer.id, "vpn dongle") == [kept.number]

        await run_migrations(url, "downgrade", "0009")
        async with database.engine.connect() as connection:
            found = (
                "SELECT name FROM sqlite_master WHERE name = 'ticket_search_fts'"
                if sqlite
                else "SELECT 1 FROM pg_proc WHERE proname = 'ticket_search_document'"
            )
            assert (await connection.execute(text(found))).scalar() is not None
            if not sqlite:  # revision 0004's documents, rebuilt with the whole conversation
                document = await connection.execute(
                    text("SELECT document::text FROM ticket_search WHERE number = :n"),
                    {"n": kept.number},
                )
                assert "'dongl'" in document.scalar_one()
        await run_migrations(url)
        assert await numbers(core, customer.id, "vpn dongle") == [kept.number]
    finally:
        await database.dispose()
        if not sqlite:
            await drop_pg_database(url)


async def _reply_id(core: Core, body: str) -> int:
    async with core.db.engine.connect() as connection:
        result = await connection.execute(
            text("SELECT id FROM replies WHERE body = :b"), {"b": body}
        )
        return int(result.scalar_one())


async def test_every_reply_change_is_searched_as_the_conversation_now_reads(core, database_url):
    postgres = database_url.startswith("postgresql")
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    manager = await make_user(core, Role.MANAGER)
    ticket = await make_ticket(core, customer, title="Scanner offline", description="Floor 3.")
    other = await make_ticket(core, customer, title="Scanner jams", description="Floor 5.")
    first = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Power cycle it.", internal=False
    )
    second = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Firmware flashed.", internal=False
    )
    note = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Quarantined vendor.", internal=True
    )
    assert await numbers(core, customer.id, "scanner firmware") == [ticket.number]
    assert await numbers(core, agent.id, "quarantined") == []  # notes: never, for staff too
    if postgres:  # a short conversation is all in its ticket's part 0
        assert set(await search_rows(core)) == {(ticket.number, 0), (other.number, 0)}

    # Edit: the new words match, the old ones no longer do.
    await edit_reply(core, actor_id=agent.id, reply_id=second.id, body="Firmware rolled back.")
    assert await numbers(core, customer.id, "scanner rolled") == [ticket.number]
    assert await numbers(core, customer.id, "flashed") == []

    # Delete, then undelete (a repair by hand): the reply leaves search and comes back.
    await delete_reply(core, actor_id=agent.id, reply_id=first.id)
    assert await numbers(core, customer.id, "power cycle") == []
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text("UPDATE replies SET deleted_at = NULL WHERE id = :id"), {"id": first.id}
        )
    assert await numbers(core, customer.id, "power cycle") == [ticket.number]

    # A note turned public by hand (the services never do) becomes searchable, and back.
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text("UPDATE replies SET is_internal = :flag WHERE id = :id"),
            {"flag": False, "id": note.id},
        )
    assert await numbers(core, customer.id, "quarantined") == [ticket.number]
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text("UPDATE replies SET is_internal = :flag WHERE id = :id"),
            {"flag": True, "id": note.id},
        )
    assert await numbers(core, customer.id, "quarantined") == []

    # The ticket's own words: an edit is searched as it reads, the replies stay.
    await update_ticket(core, actor_id=agent.id, ticket=ticket.number, title="Plotter offline")
    assert await numbers(core, customer.id, "plotter firmware") == [ticket.number]
    assert await numbers(core, customer.id, "scanner") == [other.number]

    # Deleting the ticket takes every part of it out of search; its neighbour stays.
    await delete_ticket(core, actor_id=manager.id, ticket=ticket.number)
    assert await numbers(core, agent.id, "firmware") == []
    assert await numbers(core, agent.id, "cycle") == []
    assert await numbers(core, agent.id, "scanner") == [other.number]
    if postgres:
        assert set(await search_rows(core)) == {(other.number, 0)}
        # A reply added to a deleted ticket (only a bypass of the services could) stays out.
        async with core.db.engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO replies (ticket_id, author_id, body, is_internal, created_at) "
                    "SELECT id, :a, 'Ghost reply.', false, now() FROM tickets WHERE number = :n"
                ),
                {"a": agent.id, "n": ticket.number},
            )
        assert set(await search_rows(core)) == {(other.number, 0)}


async def test_replies_past_the_first_ones_are_searched_from_rows_of_their_own(core, database_url):
    """Reply number INLINE + 1 and later ones: found with the ticket's words, edited, deleted,
    undeleted, and a note made public and back, exactly as the first replies are."""
    postgres = database_url.startswith("postgresql")
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="Badge reader", description="Door 4.")
    other = await make_ticket(core, customer, title="Badge printer", description="Lobby.")
    first = []
    for n in range(INLINE):
        body = "Rebooted the controller." if n == 0 else f"Checked item {n}."
        reply = await add_reply(
            core, actor_id=agent.id, ticket=ticket.number, body=body, internal=False
        )
        first.append(reply)
    note = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Vendor blacklisted.", internal=True
    )
    assert await numbers(core, customer.id, "badge rebooted") == [ticket.number]
    if postgres:
        assert set(await search_rows(core)) == {(ticket.number, 0), (other.number, 0)}
        assert await overflowing(core) == set()

    late = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Swapped the antenna.", internal=False
    )
    assert await numbers(core, customer.id, "badge swapped") == [ticket.number]
    assert await numbers(core, customer.id, "antenna rebooted") == [ticket.number]
    assert await numbers(core, customer.id, "antenna lobby") == []  # not one ticket
    assert await numbers(core, agent.id, "antenna blacklisted") == []  # notes never match
    if postgres:
        assert set(await search_rows(core)) == {
            (ticket.number, 0),
            (ticket.number, late.id),
            (other.number, 0),
        }
        assert await overflowing(core) == {ticket.number}

    # Ranking: the other ticket's title word beats this ticket's late reply.
    await add_reply(
        core, actor_id=agent.id, ticket=other.number, body="Printer ribbon.", internal=False
    )
    await update_ticket(core, actor_id=agent.id, ticket=other.number, title="Badge antenna")
    page = await search_tickets(core, actor_id=customer.id, query="badge antenna")
    assert [hit.ticket.number for hit in page.items] == [other.number, ticket.number]

    # Edit and delete a late reply, then undelete it by hand.
    await edit_reply(core, actor_id=agent.id, reply_id=late.id, body="Swapped the reader.")
    assert await numbers(core, customer.id, "badge antenna") == [other.number]
    assert await numbers(core, customer.id, "reader swapped") == [ticket.number]
    await delete_reply(core, actor_id=agent.id, reply_id=late.id)
    assert await numbers(core, customer.id, "swapped") == []
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text("UPDATE replies SET deleted_at = NULL WHERE id = :id"), {"id": late.id}
        )
    assert await numbers(core, customer.id, "door swapped") == [ticket.number]

    # Edit and delete one of the first replies: part 0 is rewritten, the late row stays.
    await edit_reply(core, actor_id=agent.id, reply_id=first[0].id, body="Reflashed it.")
    assert await numbers(core, customer.id, "rebooted") == []
    assert await numbers(core, customer.id, "reflashed swapped") == [ticket.number]
    await delete_reply(core, actor_id=agent.id, reply_id=first[0].id)
    assert await numbers(core, customer.id, "reflashed") == []
    assert await numbers(core, customer.id, "swapped") == [ticket.number]

    # A note past the first replies made public by hand, and back.
    late_note = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Quarantined lot.", internal=True
    )
    for flag, expected in ((False, [ticket.number]), (True, [])):
        async with core.db.engine.begin() as connection:
            await connection.execute(
                text("UPDATE replies SET is_internal = :flag WHERE id = :id"),
                {"flag": flag, "id": late_note.id},
            )
        assert await numbers(core, customer.id, "badge quarantined") == expected
    assert note.id < late.id  # the early note stays out too
    assert await numbers(core, agent.id, "blacklisted") == []

    if postgres:
        # Rows removed among the first replies (only a repair by hand could) move the next
        # reply (past the early note) into part 0: it is found once, from there.
        async with core.db.engine.begin() as connection:
            for reply in first[1:3]:
                await connection.execute(
                    text("DELETE FROM replies WHERE id = :id"), {"id": reply.id}
                )
        assert await numbers(core, customer.id, "door swapped") == [ticket.number]
        assert set(await search_rows(core)) == {(ticket.number, 0), (other.number, 0)}


async def test_a_reply_writes_a_bounded_part_of_the_search(core, database_url):
    """The cost of a reply does not grow with the conversation: one of the first replies
    rewrites only its ticket's part 0 (at most INLINE replies long), a later one only its own
    row; every other ticket and reply row is left untouched."""
    if not database_url.startswith("postgresql"):
        # SQLite keeps one FTS5 row per reply (replies_fts); nothing else is written.
        async with core.db.engine.connect() as connection:
            result = await connection.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'ticket_search_fts'")
            )
            assert result.scalar_one() == 0
        return
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="Long thread", description="Many replies.")
    neighbour = await make_ticket(core, customer, title="Short thread", description="One.")
    replies = [
        await add_reply(
            core, actor_id=agent.id, ticket=ticket.number, body=f"Reply {n}.", internal=False
        )
        for n in range(INLINE + 3)
    ]
    head = (ticket.number, 0)
    before = await search_rows(core)

    def changed(old: dict[tuple[int, int], int], new: dict[tuple[int, int], int]) -> set[Any]:
        return {key for key in new.keys() | old.keys() if old.get(key) != new.get(key)}

    await edit_reply(core, actor_id=agent.id, reply_id=replies[2].id, body="Reply two, edited.")
    edited = await search_rows(core)
    assert changed(before, edited) == {head}

    added = await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="One more.", internal=False
    )
    after = await search_rows(core)
    assert changed(edited, after) == {(ticket.number, added.id)}

    late = replies[INLINE + 1]
    await edit_reply(core, actor_id=agent.id, reply_id=late.id, body="Late, edited.")
    late_edited = await search_rows(core)
    assert changed(after, late_edited) == {(ticket.number, late.id)}

    await delete_reply(core, actor_id=agent.id, reply_id=late.id)
    deleted = await search_rows(core)
    assert changed(late_edited, deleted) == {(ticket.number, late.id)}
    assert (neighbour.number, 0) in deleted

    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="A note.", internal=True)
    assert await search_rows(core) == deleted  # a note writes nothing
