"""Migrations: the same revisions build the schema on both databases, go down and up again,
agree with the models, and may be run by several replicas at once."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from core.models import Base
from migrations import run_migrations
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
    try:
        await asyncio.gather(*(run_migrations(url) for _ in range(3)))
        assert "tickets" in await _tables(url)
    finally:
        if not url.startswith("sqlite"):
            await drop_pg_database(url)
