"""Alembic migrations, runnable from code (bot start-up, tests) and from the alembic CLI."""

from __future__ import annotations

import asyncio
import fcntl
from pathlib import Path
from typing import IO

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, make_url

from core.db import create_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent

# Any constant works; replicas that start together queue on it so that one migrates at a time.
MIGRATION_LOCK_ID = 74_210_615


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def _run(connection: Connection, action: str, target: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(config, target)
    else:
        command.downgrade(config, target)


async def run_migrations(url: str, action: str = "upgrade", target: str = "head") -> None:
    """Upgrade (or downgrade) the database at `url`; processes that start together take turns
    (a PostgreSQL advisory lock, or a lock file beside a SQLite database)."""
    sqlite_file = sqlite_path(url)
    if sqlite_file is None:
        await _migrate(url, action, target)
        return
    lock_path = sqlite_file.with_name(sqlite_file.name + ".migrate-lock")
    handle = await asyncio.to_thread(_lock_file, lock_path)
    try:
        await _migrate(url, action, target)
    finally:
        handle.close()  # closing the file releases the lock


def sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite"):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve()


def _lock_file(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


async def _migrate(url: str, action: str, target: str) -> None:
    # core.db's engine: on SQLite every transaction starts with BEGIN IMMEDIATE.
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")
                await connection.commit()
            try:
                await connection.run_sync(_run, action, target)
                await connection.commit()
            finally:
                if connection.dialect.name == "postgresql":
                    await connection.exec_driver_sql(
                        f"SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})"
                    )
                    await connection.commit()
    finally:
        await engine.dispose()
