"""Engine, sessions and the unit of work: one service call is one transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, delete, event, exc, inspect, select, tuple_
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.types import TypeDecorator

from core.errors import Conflict, Unavailable

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    """An async engine configured for our two databases."""
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    # Up to pool_size + max_overflow connections, each kept once opened: SQLAlchemy closes an
    # overflow connection as soon as it is returned, and under a burst the outbox worker's
    # deliveries, starting together, took the pool past its size every two seconds, so six
    # PostgreSQL backends were forked and dropped each time (about 200 connects a minute in
    # bench.burst; the create-ticket acks nearby took 70-130 ms instead of under 30).
    engine = create_async_engine(
        url, pool_size=pool_size + max_overflow, max_overflow=0, pool_recycle=1800
    )
    _ping_idle_connections(engine)
    return engine


# A pooled connection back in use within this many seconds is not pinged first.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Ping a pooled connection before use only when it sat idle for PING_AFTER_IDLE_SECONDS.

    SQLAlchemy's pool_pre_ping pings on every checkout: with asyncpg that is three round trips
    (BEGIN, an empty query, ROLLBACK) in front of every unit of work, about a third of the
    round trips of creating a ticket. A connection returned moments ago is almost always
    alive; one the driver already knows to be closed is replaced without a round trip; if the
    server went away unnoticed meanwhile, the unit of work fails as Unavailable (nothing
    written), SQLAlchemy discards every connection of the pool that predates the failure, and
    the next attempt connects afresh. A connection that has been idle longer (the server may
    have restarted, or a proxy dropped it) is pinged, and replaced when the ping fails."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        is_closed = getattr(driver, "is_closed", None)
        if callable(is_closed) and is_closed():
            # Known dead without asking the server (the driver saw the socket close, or a
            # cancelled query made it give up the connection).
            raise exc.DisconnectionError("a pooled connection was closed")
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool drops this connection and checks out (or opens) another one.
            raise exc.DisconnectionError("a pooled connection failed its ping") from error


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling begins lazily and deferred, so two writers can both
    # read and then fail to upgrade their lock. We take over: BEGIN IMMEDIATE makes every unit
    # of work take the write lock up front and wait (busy_timeout) instead of failing.
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        try:
            # WAL lets readers work beside the writer. Switching needs a moment without other
            # writers; a database already in WAL mode (the usual case) does not need it.
            cursor.execute("PRAGMA journal_mode=WAL")
        except Exception:
            log.info("sqlite journal mode left unchanged (database busy)")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


# SQLSTATEs that mean "the server cannot serve this connection right now": class 08 (connection
# exceptions), 57P01-57P03 (terminated by an administrator or a crash, "the database system is
# starting up / shutting down" while PostgreSQL restarts), 53300 (too many connections).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})


class Database:
    """Owns the engine and the session factory; `transaction()` is the unit of work."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        # PostgreSQL: sessions whose statements each commit on their own (single_statement()).
        self._autocommit_sessions = (
            async_sessionmaker(
                self.engine.execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
                autoflush=False,
            )
            if self.engine.dialect.name == "postgresql"
            else None
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Open a session in a transaction: commit on normal exit, roll back on any exception."""
        async with _errors_mapped(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def single_statement(self) -> AsyncIterator[AsyncSession]:
        """The unit of work of a service that runs exactly one statement (a read by key, an
        INSERT ... ON CONFLICT): the statement is its own transaction. On PostgreSQL it runs
        in autocommit, which saves the BEGIN and COMMIT round trips of `transaction()` (two of
        three); on SQLite it is `transaction()`. Only for a single statement: two statements
        in one such session would not see one snapshot nor commit together."""
        if self._autocommit_sessions is None:
            async with self.transaction() as session:
                yield session
            return
        async with _errors_mapped(), self._autocommit_sessions() as session:
            yield session

    @asynccontextmanager
    async def bulk_transaction(self) -> AsyncIterator[AsyncConnection]:
        """The unit of work of a service that writes in bulk statements and needs no ORM
        session (the SLA scan): a connection in a transaction, committed or rolled back like
        `transaction()`, with the same errors."""
        async with _errors_mapped(), self.engine.begin() as connection:
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()


async def delete_where(
    session: AsyncSession,
    model: type[DeclarativeBase],
    *conditions: ColumnElement[bool],
    oldest_first: QueryableAttribute[Any],
    limit: int | None = None,
) -> int:
    """Delete the rows of `model` matching `conditions` and return how many went.

    With a `limit`, at most that many rows go (`oldest_first` picks which), so that a large
    backlog is removed over several short transactions instead of one long one. On PostgreSQL
    the chosen rows are locked with SKIP LOCKED: two processes pruning at the same moment
    share the rows instead of waiting on (or deadlocking over) each other's."""
    if limit is None:
        statement = delete(model).where(*conditions)
    else:
        if limit < 1:
            raise ValueError("the delete limit must be positive")
        keys = list(inspect(model).primary_key)
        chosen = select(*keys).where(*conditions).order_by(oldest_first).limit(limit)
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            chosen = chosen.with_for_update(skip_locked=True)
        target = keys[0] if len(keys) == 1 else tuple_(*keys)
        statement = delete(model).where(target.in_(chosen))
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


@asynccontextmanager
async def _errors_mapped() -> AsyncIterator[None]:
    """Turn what the database says about a failed unit of work into the core's errors."""
    try:
        yield
    except StaleDataError as error:
        # A versioned row (tickets.version) changed since this transaction read it: the
        # write would have overwritten a concurrent change. Nothing of this one is saved.
        log.warning("concurrent change detected", extra={"error": str(error)[:200]})
        raise Conflict(
            "Someone else changed this ticket at the same moment; nothing was saved. "
            "Please try again."
        ) from error
    except exc.DBAPIError as error:
        if _is_conflict(error):
            log.warning("concurrent transactions collided", extra={"error": _state(error)})
            raise Conflict(
                "Another change got in the way at the same moment; nothing was saved. "
                "Please try again."
            ) from error
        if _is_unavailable(error):
            log.warning("database unavailable", extra={"error": type(error).__name__})
            raise Unavailable(
                "The ticket database is unavailable right now; nothing was saved. "
                "Please try again in a moment."
            ) from error
        raise
    except (OSError, ConnectionError) as error:
        log.warning("database unreachable", extra={"error": type(error).__name__})
        raise Unavailable(
            "The ticket database is unavailable right now; nothing was saved. "
            "Please try again in a moment."
        ) from error


def _state(error: exc.DBAPIError) -> str | None:
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _is_conflict(error: exc.DBAPIError) -> bool:
    """A deadlock (40P01) or serialisation failure (40001): the database aborted this
    transaction in favour of a concurrent one; retrying with fresh data is safe."""
    return _state(error) in ("40P01", "40001")


def _is_unavailable(error: exc.DBAPIError) -> bool:
    """Whether a driver error means the database is unreachable or busy (nothing was written:
    the transaction is gone with its connection) rather than a bug or a constraint."""
    if error.connection_invalidated:
        return True
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if isinstance(state, str) and (state.startswith("08") or state in _UNAVAILABLE_SQLSTATES):
        return True
    if not isinstance(error, (exc.OperationalError, exc.InterfaceError)):
        return False
    text = str(error.orig).lower()
    return any(
        marker in text
        for marker in (
            "connection",
            "closed",
            "terminat",
            "shutdown",
            "shutting down",
            "database is locked",
            "could not connect",
            "refused",
            "starting up",
        )
    )
