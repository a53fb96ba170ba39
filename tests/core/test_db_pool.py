"""The connection pool pings a connection only after it sat idle (core.db): one back in use at
once costs no round trip, an idle one that died is replaced before use, and a dead one used at
once fails its unit of work as Unavailable, after which the next one works."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import text

from core import db as db_module
from core.context import Core
from core.db import Database
from core.errors import Unavailable


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


async def test_a_dead_connection_used_at_once_fails_as_unavailable_then_recovers(
    core, database_url
):
    _postgresql_only(database_url)
    single = Core(db=Database(database_url, pool_size=1, max_overflow=0), settings=core.settings)
    try:
        first = await _backend_pid(single)
        await _terminate(database_url, first)

        with pytest.raises(Unavailable):
            await _backend_pid(single)  # in the idle window: no ping, the query finds it dead
        assert await _backend_pid(single) != first
    finally:
        await single.db.dispose()
