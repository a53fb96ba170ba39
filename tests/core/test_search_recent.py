"""PostgreSQL keeps a second GIN index over the newest tickets' search parts (core.search.recent,
migration 0012): housekeeping builds it, moves it on as tickets come and drops the old one, and
the planner reads it for ranges of numbers within it. Results never depend on it."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, text

from bot.scheduler import run_housekeeping
from core import search
from core.context import Core
from core.enums import Role
from core.search import recent, search_tickets
from core.search.postgres import PostgresSearch
from core.search.query import parse_query
from core.search.recent import INDEX_PREFIX, LOCK_KEY, refresh_recent_index
from tests.factories import make_user


@pytest.fixture
async def small_window(core, monkeypatch):
    """A window of 40 numbers (and 10 more before the next index is built); the recent indexes
    a test built are dropped after it (emptying the tables leaves them)."""
    monkeypatch.setattr(recent, "RECENT_WINDOW", 40)
    monkeypatch.setattr(recent, "RECENT_SLACK", 10)
    yield
    if core.db.dialect == "postgresql":
        async with core.db.engine.begin() as connection:
            for name in await _recent_indexes(core):
                await connection.execute(text(f"DROP INDEX {name}"))


async def _recent_indexes(core: Core) -> dict[str, bool]:
    async with core.db.engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'ticket_search'::regclass AND c.relname LIKE :prefix"
            ),
            {"prefix": INDEX_PREFIX + "%"},
        )
        return {row[0]: row[1] for row in rows}


async def _add_tickets(
    core: Core, customer_id: int, count: int, word: str, *, every: int = 5
) -> None:
    """`count` more tickets (numbers from the sequence), one in `every` about `word`."""
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text(
                """
                INSERT INTO tickets (id, number, title, description, status, priority,
                    customer_id, created_by_id, created_at, updated_at)
                SELECT gen_random_uuid(), n, 'Ticket ' || n,
                    CASE WHEN n % :every = 0 THEN :word ELSE 'paper jam' END,
                    'open', 'medium', :customer, :customer, now(), now()
                FROM (SELECT nextval('ticket_number_seq') AS n FROM generate_series(1, :count)) s
                """
            ),
            {"word": word, "customer": customer_id, "count": count, "every": every},
        )
        await connection.execute(text("ANALYZE ticket_search"))


async def test_housekeeping_builds_the_recent_index_and_moves_it_on(core, small_window):
    if core.db.dialect != "postgresql":
        assert await refresh_recent_index(core) is None  # FTS5 keeps no such index
        return
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    await _add_tickets(core, customer.id, 50, "toner smudge")
    assert (await refresh_recent_index(core)).start is None  # 50: small enough without one
    assert await _recent_indexes(core) == {}

    await _add_tickets(core, customer.id, 5, "toner smudge")  # 55 > 40 + 10
    assert await run_housekeeping(core) is not None
    assert await _recent_indexes(core) == {f"{INDEX_PREFIX}15": True}

    await _add_tickets(core, customer.id, 5, "toner smudge")  # 60: spans 45, not over 50
    state = await refresh_recent_index(core)
    assert (state.start, state.built, state.dropped) == (15, False, 0)

    await _add_tickets(core, customer.id, 1, "toner smudge")  # 61: spans 46... still in place
    await _add_tickets(core, customer.id, 5, "toner smudge")  # 66: spans 51
    state = await refresh_recent_index(core)
    assert (state.start, state.built, state.dropped) == (26, True, 1)
    assert await _recent_indexes(core) == {f"{INDEX_PREFIX}26": True}
    # Old and new tickets alike are found, newest first.
    page = await search_tickets(core, actor_id=agent.id, query="toner smudge")
    assert [hit.ticket.number for hit in page.items] == list(range(65, 0, -5))


async def test_a_search_of_the_newest_tickets_reads_the_recent_index(core, small_window):
    """For a range of numbers within the index's, the planner can and does read the small
    index (its predicate is implied by the range); for an older range it cannot."""
    if core.db.dialect != "postgresql":
        return
    customer = await make_user(core)
    await _add_tickets(core, customer.id, 3000, "toner smudge", every=50)
    recent.RECENT_WINDOW, recent.RECENT_SLACK = 400, 100
    state = await refresh_recent_index(core)
    assert state.start == 2600
    assert f"{INDEX_PREFIX}2600" in await _slice_plan(core, 3000, 2800, "enable_seqscan = off")
    assert f"{INDEX_PREFIX}2600" not in await _slice_plan(core, 3000, 2000, "enable_seqscan = off")


async def test_an_older_range_is_narrowed_by_the_number_brin_index(core):
    """A range of numbers below the recent index (migration 0013): the planner takes the pages
    that hold it from the BRIN index of numbers and ANDs them with the GIN index's matches,
    instead of reading every entry of the primary key in the range."""
    if core.db.dialect != "postgresql":
        return
    customer = await make_user(core)
    await _add_tickets(core, customer.id, 20000, "toner smudge", every=20)
    async with core.db.engine.begin() as connection:
        await connection.execute(
            text("SELECT brin_summarize_new_values('ix_ticket_search_number_brin')")
        )
        await connection.execute(text("ANALYZE ticket_search"))
    plan = await _slice_plan(core, 15000, 5000, "random_page_cost = 1.1")
    assert "ix_ticket_search_number_brin" in plan, plan
    assert "pk_ticket_search" not in plan, plan


async def _slice_plan(core: Core, upper: int, lower: int, setting: str) -> str:
    """EXPLAIN of a staff search's range statement for "toner smudge" over (lower, upper],
    with `setting` (SET LOCAL) in its transaction."""
    engine = PostgresSearch(parse_query("toner smudge"))
    statement = engine._best_of_slice("everyone", True).compile(dialect=core.db.engine.dialect)
    values = engine.values | {
        "range_upper": upper,
        "range_lower": lower,
        "wanted": 50,
        "wanted_and_one": 51,
        "best": 20,
    }
    params = statement.construct_params(values)
    positional = tuple(params[name] for name in statement.positiontup or ())
    async with core.db.engine.begin() as connection:
        await connection.execute(text(f"SET LOCAL {setting}"))
        rows = await connection.exec_driver_sql("EXPLAIN " + str(statement), positional)
        return "\n".join(row[0] for row in rows)


async def test_a_build_that_failed_half_way_is_replaced(core, small_window):
    if core.db.dialect != "postgresql":
        return
    customer = await make_user(core)
    await _add_tickets(core, customer.id, 60, "toner smudge")
    assert (await refresh_recent_index(core)).built
    async with core.db.engine.begin() as connection:  # as an interrupted CONCURRENTLY leaves it
        await connection.execute(
            text("UPDATE pg_index SET indisvalid = false WHERE indexrelid = :name ::regclass"),
            {"name": f"{INDEX_PREFIX}20"},
        )
    state = await refresh_recent_index(core)
    assert (state.start, state.built) == (20, True)
    assert await _recent_indexes(core) == {f"{INDEX_PREFIX}20": True}


async def test_a_replica_finding_another_at_work_leaves_it_alone(core, small_window):
    if core.db.dialect != "postgresql":
        return
    customer = await make_user(core)
    await _add_tickets(core, customer.id, 60, "toner smudge")
    async with core.db.engine.connect() as other:
        await other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
        assert await asyncio.wait_for(refresh_recent_index(core), 10) is None
        assert await _recent_indexes(core) == {}
        await other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
    assert (await refresh_recent_index(core)).built


async def test_a_common_words_first_range_stops_at_the_recent_index(
    core, small_window, monkeypatch
):
    """A range the estimate would extend past the recent index's bound ends at it, so that the
    small index answers it; the older range after it completes the newest matches."""
    if core.db.dialect != "postgresql":
        return
    monkeypatch.setattr(search.service, "RANKED_LIMIT", 50)
    monkeypatch.setattr(search.postgres, "STREAM_SHARE", 2.0)  # never read newest first
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    # 75 matches: common enough for ranges (over 50 and a margin), the first one 2,500 wide.
    await _add_tickets(core, customer.id, 3000, "toner smudge", every=40)
    recent.RECENT_WINDOW, recent.RECENT_SLACK = 400, 100
    assert (await refresh_recent_index(core)).start == 2600
    lower_bounds: list[object] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "ticket_search.document @@" in statement and "OFFSET" in statement:
            lower_bounds.append(context.compiled_parameters[0].get("range_lower"))

    event.listen(core.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        page = await search_tickets(core, actor_id=agent.id, query="smudge", page_size=50)
    finally:
        event.remove(core.db.engine.sync_engine, "before_cursor_execute", record)
    assert lower_bounds[0] == 2600 and len(lower_bounds) >= 2
    assert [hit.ticket.number for hit in page.items] == list(range(3000, 1000, -40))
    assert page.total == 50 and page.capped
