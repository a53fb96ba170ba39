"""Test fixtures: the same suite runs on SQLite and PostgreSQL, each migrated once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.models import Base
from core.settings import CoreSettings
from migrations import run_migrations

DATABASES = [
    name.strip()
    for name in os.environ.get("TICKETBOT_TEST_DATABASES", "sqlite,postgresql").split(",")
    if name.strip()
]
PG_SERVER = os.environ.get("TICKETBOT_TEST_PG", "postgres@127.0.0.1:5432")


async def create_pg_database(prefix: str = "ticketbot_test") -> str:
    """Create a uniquely named PostgreSQL database; fail loudly when the server is unreachable."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        connection = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres", timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"PostgreSQL at {PG_SERVER} is unreachable ({error}). The suite runs on both "
            "databases; start PostgreSQL or set TICKETBOT_TEST_DATABASES=sqlite explicitly.",
            pytrace=False,
        )
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return f"postgresql+asyncpg://{PG_SERVER}/{name}"


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(f"postgresql://{PG_SERVER}/postgres", timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session", params=DATABASES)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A freshly migrated database of each kind, shared by the session's tests."""
    kind = request.param
    if kind == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "ticketbot.db"
        url = f"sqlite+aiosqlite:///{path}"
        await run_migrations(url)
        yield url
    elif kind == "postgresql":
        url = await create_pg_database()
        try:
            await run_migrations(url)
            yield url
        finally:
            await drop_pg_database(url)
    else:
        raise ValueError(f"unknown test database {kind!r}")


@pytest.fixture(scope="session")
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=5, max_overflow=20)
    yield db
    await db.dispose()


def settings_for(database_url: str, **overrides: object) -> CoreSettings:
    values: dict[str, object] = {
        "database_url": database_url,
        "ticket_create_limit": 10_000,
        "search_limit": 10_000,
        "message_limit": 10_000,
    }
    values.update(overrides)
    return CoreSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def core(database: Database, database_url: str, clock: FrozenClock) -> AsyncIterator[Core]:
    """A Core on the session's database; every table is emptied after the test."""
    yield Core(db=database, settings=settings_for(database_url), clock=clock)
    await truncate_all(database)


async def truncate_all(database: Database) -> None:
    """Empty every table and restart the counters, so the next test sees ticket #1 again.

    DELETE, not TRUNCATE: on PostgreSQL a TRUNCATE of every table cost more than a median test
    body (it rewrites every table and waits for exclusive locks); deleting the few rows a test
    wrote costs a few ms."""
    async with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            await connection.execute(text(_POSTGRES_RESET))
        else:
            for table in _TABLES:
                await connection.execute(text(f"DELETE FROM {table}"))
            await connection.execute(text("UPDATE ticket_counter SET value = 0"))
            if await _has_sqlite_sequence(connection):
                await connection.execute(text("DELETE FROM sqlite_sequence"))


# Children before parents (the foreign keys allow no other order); ticket_counter keeps its row.
_TABLES = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "ticket_counter"]

# One round trip: PostgreSQL's search documents first (so that deleting replies does not
# rebuild them), every table in foreign-key order, then each sequence a test advanced (ticket
# numbers, identity columns) back to its start.
_POSTGRES_RESET = f"""
DO $$
DECLARE
    name text;
BEGIN
    DELETE FROM ticket_search;
    FOREACH name IN ARRAY ARRAY[{", ".join(f"'{t}'" for t in _TABLES)}] LOOP
        EXECUTE format('DELETE FROM %I', name);
    END LOOP;
    PERFORM setval(format('%I.%I', schemaname, sequencename), start_value, false)
    FROM pg_sequences
    WHERE schemaname = current_schema() AND last_value IS NOT NULL;
END
$$
"""


async def _has_sqlite_sequence(connection: object) -> bool:
    result = await connection.execute(  # type: ignore[attr-defined]
        text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
    )
    return result.first() is not None
