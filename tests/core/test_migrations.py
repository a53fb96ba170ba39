"""Migrations: the same revisions build the schema on both databases, go down and up again,
agree with the models, and may be run by several replicas at once."""

from __future__ import annotations

import asyncio
import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from core.models import Base
from migrations import alembic_config, run_migrations
from migrations.filters import include_object
from tests.conftest import create_pg_database, drop_pg_database


async def _fresh_url(database_url: str, tmp_path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    return await create_pg_database("ticketbot_migration")


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def _versions(url: str) -> list[str]:
    engine = create_async_engine(url)
    async with engine.connect() as connection:
        versions = list(await connection.scalars(text("SELECT version_num FROM alembic_version")))
    await engine.dispose()
    return versions


async def test_upgrade_downgrade_upgrade(database_url, tmp_path):
    url = await _fresh_url(database_url, tmp_path)
    try:
        await run_migrations(url)
        first = await _tables(url)
        assert {"tickets", "replies", "audit_log", "outbox", "sla_timers"} <= first
        await run_migrations(url, "downgrade", "base")
        assert await _tables(url) <= {"alembic_version"}
        await run_migrations(url)
        assert await _tables(url) == first
    finally:
        if not url.startswith("sqlite"):
            await drop_pg_database(url)


async def test_models_match_the_migrated_schema(database_url):
    engine = create_async_engine(database_url)

    def diff(connection):
        context = MigrationContext.configure(
            connection, opts={"include_object": include_object, "compare_type": True}
        )
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    await engine.dispose()
    assert differences == []


async def test_replicas_starting_together_migrate_once(database_url, tmp_path):
    url = await _fresh_url(database_url, tmp_path)
    creates: list[str] = []

    def count_creates(conn, cursor, statement, parameters, context, executemany) -> None:
        if re.match(r"\s*CREATE TABLE tickets\b", statement):
            creates.append(statement)

    try:
        event.listen(Engine, "before_cursor_execute", count_creates)
        try:
            await asyncio.gather(*(run_migrations(url) for _ in range(3)))
        finally:
            event.remove(Engine, "before_cursor_execute", count_creates)
        # One replica built the schema; the others found it at head and did nothing.
        assert len(creates) == 1
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert await _versions(url) == [head]
    finally:
        if not url.startswith("sqlite"):
            await drop_pg_database(url)
