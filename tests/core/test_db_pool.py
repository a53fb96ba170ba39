"""The connection pool pings a connection only after it sat idle (core.db): one back in use at
once costs no round trip, and one the driver knows is closed or an idle one that died is
replaced before use. (A server restart under live connections: tests/reliability.)"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from core import db as db_module
from core.context import Core
from core.db import Database


def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a server that drops connections is a PostgreSQL matter")


async def _backend_pid(core) -> int:
    async with core.db.transaction() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")))


async def _terminate(database_url: str, pid: int) -> None:
    admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


def _count_pings(core, monkeypatch) -> list[int]:
    dialect = core.db.engine.sync_engine.dialect
    pings: list[int] = []
    original = dialect.do_ping

    def counting(dbapi_connection):
        pings.append(1)
        return original(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counting)
    return pings


async def test_a_connection_back_in_use_at_once_is_not_pinged(core, database_url, monkeypatch):
    _postgresql_only(database_url)
    pings = _count_pings(core, monkeypatch)
    for _ in range(5):
        async with core.db.transaction() as session:
            await session.execute(text("SELECT 1"))
    assert pings == []


async def test_an_idle_connection_that_died_is_replaced_before_use(core, database_url, monkeypatch):
    _postgresql_only(database_url)
    first = await _backend_pid(core)
    await _terminate(database_url, first)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # everything counts as idle
    pings = _count_pings(core, monkeypatch)

    second = await _backend_pid(core)  # no error: the ping failed, the pool reconnected

    assert second != first and len(pings) >= 1


async def test_a_connection_the_driver_knows_is_closed_is_replaced_without_a_ping(
    core, database_url, monkeypatch
):
    _postgresql_only(database_url)
    single = Core(db=Database(database_url, pool_size=1, max_overflow=0), settings=core.settings)
    try:
        async with single.db.engine.connect() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            first = await driver.fetchval("SELECT pg_backend_pid()")
        await driver.close()  # what a cancelled query does to an asyncpg connection
        pings = _count_pings(single, monkeypatch)

        assert await _backend_pid(single) != first
        assert pings == []
    finally:
        await single.db.dispose()
