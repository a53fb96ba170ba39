"""The rows a new ticket writes, described once, and the two ways of writing them.

`TICKET_ROW` and `DEPENDANT_ROWS` name every row and column a creation writes and where each
value comes from: a parameter of the creation (`parameters`), a constant, or the ticket row
just inserted (its id and number). Both writes are built from them, so a new column is added
there and nowhere else:

- PostgreSQL: `CREATE_PG`, generated from them once at import, counts the creation against
  the rate limit and writes every row in one statement (one round trip).
- SQLite: `write_step_by_step` counts it and inserts the same rows one table after the other
  (its single writer makes the extra statements cheap).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table, TextClause, Uuid, bindparam, insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from core import outbox, ratelimit, repository
from core.context import Core
from core.db import UTCDateTime
from core.enums import Audience, SlaThreshold, Status
from core.models import Base
from core.outbox import OutboxKind

CREATE_BUCKET = "ticket_create"
CREATE_ACTION = "ticket.created"
CREATE_WHAT = "open a ticket"


@dataclass(frozen=True)
class Const:
    """A constant: `value` in the step-by-step write, the SQL literal `sql` in `CREATE_PG`."""

    value: Any
    sql: str


@dataclass(frozen=True)
class FromTicket:
    """A column of the ticket row just inserted (`id`, or `number`, which the write assigns)."""

    column: str


@dataclass(frozen=True)
class WithNumber:
    """The JSON object parameter `parameter` with the ticket's number added as "number"."""

    parameter: str


# A value: the name of a parameter, or one of the above.
Source = str | Const | FromTicket | WithNumber

NULL = Const(None, "NULL")

# The ticket row, column by column (its number excepted: the sequence on PostgreSQL, the
# locked counter on SQLite gives it): column -> parameter.
TICKET_ROW: dict[str, str] = {
    "id": "id",
    "title": "title",
    "description": "description",
    "status": "status",
    "priority": "priority",
    "category_id": "category_id",
    "customer_id": "customer_id",
    "company_id": "company_id",
    "created_by_id": "actor_id",
    "created_at": "now",
    "updated_at": "now",
    "sla_started_at": "now",
    "sla_warning_at": "warning_at",
    "sla_breach_at": "breach_at",
    "idempotency_key": "idempotency_key",
}

_TICKET_ID = FromTicket("id")


def _message(kind: str, key: str) -> dict[str, Source]:
    """An outbox row as core.outbox.enqueue writes it, with an empty payload."""
    return {
        "kind": kind,
        "ticket_id": _TICKET_ID,
        "thread_key": key,
        "payload": Const({}, "CAST('{}' AS jsonb)"),
        "created_at": "now",
        "next_attempt_at": "now",
        "attempts": Const(0, "0"),
    }


# Its dependants, in the order written (name of the CTE in CREATE_PG, table, rows): the first
# status-history row, the audit entry (its details get the number), the staff card and
# customer thread messages (in that order) and the warning and breach SLA timers (as
# core.sla.schedule arms them for a ticket awaiting its first response).
DEPENDANT_ROWS: tuple[tuple[str, str, tuple[dict[str, Source], ...]], ...] = (
    (
        "history",
        "status_history",
        (
            {
                "ticket_id": _TICKET_ID,
                "from_status": NULL,
                "to_status": "status",
                "reason": NULL,
                "changed_by_id": "actor_id",
                "changed_at": "now",
            },
        ),
    ),
    (
        "audit",
        "audit_log",
        (
            {
                "actor_id": "actor_id",
                "action": "action",
                "ticket_id": _TICKET_ID,
                "details": WithNumber("details"),
                "created_at": "now",
            },
        ),
    ),
    (
        "messages",
        "outbox",
        (_message("staff_kind", "staff_key"), _message("customer_kind", "customer_key")),
    ),
    (
        "timers",
        "sla_timers",
        (
            {"ticket_id": _TICKET_ID, "threshold": "warning", "due_at": "warning_at"},
            {"ticket_id": _TICKET_ID, "threshold": "breach", "due_at": "breach_at"},
        ),
    ),
)


def parameters(
    *,
    ticket_id: Any,
    actor_id: int,
    title: str,
    description: str,
    priority: str,
    category_id: int | None,
    customer_id: int,
    company_id: int | None,
    now: datetime,
    warning_at: datetime,
    breach_at: datetime,
    idempotency_key: str | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    """The values of a creation, by the parameter names the row descriptions use."""
    return {
        "id": ticket_id,
        "actor_id": actor_id,
        "title": title,
        "description": description,
        "status": Status.OPEN.value,
        "priority": priority,
        "category_id": category_id,
        "customer_id": customer_id,
        "company_id": company_id,
        "now": now,
        "warning_at": warning_at,
        "breach_at": breach_at,
        "idempotency_key": idempotency_key,
        "action": CREATE_ACTION,
        "details": details,
        "staff_kind": OutboxKind.STAFF_CARD_CREATE.value,
        "staff_key": outbox.thread_key(Audience.STAFF, ticket_id),
        "customer_kind": OutboxKind.CUSTOMER_THREAD_CREATE.value,
        "customer_key": outbox.thread_key(Audience.CUSTOMER, ticket_id),
        "warning": SlaThreshold.WARNING.value,
        "breach": SlaThreshold.BREACH.value,
    }


def ticket_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The ticket row's columns (number excepted) from the creation's parameters."""
    return {column: params[parameter] for column, parameter in TICKET_ROW.items()}


# --------------------------------------------------------------------------------------------
# PostgreSQL: one statement


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _pg_type(table: Table, column: str) -> str:
    return str(table.c[column].type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def _pg_value(source: Source) -> str:
    if isinstance(source, str):
        return f":{source}"
    if isinstance(source, Const):
        return source.sql
    if isinstance(source, FromTicket):
        return f"ticket.{source.column}"
    return f":{source.parameter} || jsonb_build_object('number', ticket.number)"


def _pg_dependant(name: str, table_name: str, rows: tuple[dict[str, Source], ...]) -> str:
    """The CTE inserting `rows` from the inserted ticket: columns whose value differs from row
    to row come from a VALUES list (in the rows' order), the others are written directly."""
    table = _table(table_name)
    columns = list(rows[0])
    varying = [column for column in columns if len({repr(row[column]) for row in rows}) > 1]
    selected = [
        f"each.{column}" if column in varying else _pg_value(rows[0][column]) for column in columns
    ]
    head = f"""{name} AS (
    INSERT INTO {table_name} ({", ".join(columns)})
    SELECT {", ".join(selected)}
    FROM ticket"""
    if not varying:
        return head + "\n)"
    values = ",\n        ".join(
        "({}, {})".format(
            position,
            ", ".join(
                f"CAST({_pg_value(row[column])} AS {_pg_type(table, column)})" for column in varying
            ),
        )
        for position, row in enumerate(rows, start=1)
    )
    return (
        f"{head} CROSS JOIN (\n        VALUES {values}\n    )"
        f" AS each (position, {', '.join(varying)})\n    ORDER BY each.position\n)"
    )


def _typed_parameters() -> dict[str, Any]:
    """The parameters that need a bind type (ids, times, JSON), from the columns they fill."""
    types: dict[str, Any] = {"window_start": UTCDateTime()}
    placed: list[tuple[str, str, Source]] = [
        ("tickets", column, source) for column, source in TICKET_ROW.items()
    ]
    for _, table_name, rows in DEPENDANT_ROWS:
        placed += [(table_name, column, source) for row in rows for column, source in row.items()]
    for table_name, column, source in placed:
        parameter = source if isinstance(source, str) else getattr(source, "parameter", None)
        column_type = _table(table_name).c[column].type
        if parameter is None or parameter in types:
            continue
        if isinstance(column_type, Uuid | UTCDateTime):
            types[parameter] = column_type
        elif isinstance(column_type, JSON):
            types[parameter] = postgresql.JSONB()
    return types


def _create_pg() -> TextClause:
    ticket_columns = ", ".join(["number", *TICKET_ROW])
    ticket_values_sql = ", ".join(
        ["nextval('ticket_number_seq')", *(f":{source}" for source in TICKET_ROW.values())]
    )
    ctes = [
        """counted AS (
    INSERT INTO rate_limit_counters AS counter (actor_id, bucket, window_start, count)
    VALUES (:actor_id, :bucket, :window_start, 1)
    ON CONFLICT (actor_id, bucket, window_start) DO UPDATE SET count = counter.count + 1
    RETURNING counter.count
)""",
        f"""ticket AS (
    INSERT INTO tickets ({ticket_columns})
    SELECT {ticket_values_sql}
    FROM counted
    WHERE counted.count <= CAST(:limit AS bigint)
    RETURNING id, number
)""",
        *(_pg_dependant(name, table, rows) for name, table, rows in DEPENDANT_ROWS),
    ]
    sql = (
        "WITH "
        + ", ".join(ctes)
        + "\nSELECT counted.count AS used, ticket.number FROM counted LEFT JOIN ticket ON true\n"
    )
    return text(sql).bindparams(
        *(bindparam(name, type_=type_) for name, type_ in _typed_parameters().items())
    )


# Opening a ticket on PostgreSQL in one round trip. `counted` counts the creation in the
# actor's fixed-window rate-limit counter (the same upsert as core.ratelimit.consume: its row
# lock serialises concurrent requests of every process); only within the limit does `ticket`
# insert the ticket, numbered by the sequence, and the other CTEs (`DEPENDANT_ROWS`) write its
# dependants from the inserted row. A refused count inserts nothing; the caller raises and the
# transaction rolls back, increment included. An idempotency key used meanwhile by a
# concurrent call violates the unique constraint (IntegrityError, answered by create_ticket
# with that call's ticket).
CREATE_PG = _create_pg()


async def write_in_one_statement(core: Core, session: AsyncSession, params: dict[str, Any]) -> int:
    """Count the creation and write every row with `CREATE_PG`; returns the ticket's number."""
    limit = core.settings.ticket_create_limit
    window_seconds = core.settings.ticket_create_window_seconds
    window_start, retry_after = ratelimit.window(params["now"], window_seconds)
    row = (
        await session.execute(
            CREATE_PG,
            {**params, "bucket": CREATE_BUCKET, "window_start": window_start, "limit": limit},
        )
    ).one()
    if row.number is None:
        if row.used > limit:
            raise ratelimit.refusal(
                what=CREATE_WHAT,
                limit=limit,
                window_seconds=window_seconds,
                retry_after=retry_after,
            )
        raise RuntimeError("the ticket insert wrote no row")
    return int(row.number)


# --------------------------------------------------------------------------------------------
# SQLite: step by step


async def write_step_by_step(core: Core, session: AsyncSession, params: dict[str, Any]) -> int:
    """The same count and rows as `write_in_one_statement`, one write after the other (SQLite,
    whose single writer makes the extra statements cheap); returns the ticket's number."""
    await ratelimit.consume(
        session,
        actor_id=params["actor_id"],
        bucket=CREATE_BUCKET,
        limit=core.settings.ticket_create_limit,
        window_seconds=core.settings.ticket_create_window_seconds,
        now=params["now"],
        what=CREATE_WHAT,
    )
    number = await repository.next_ticket_number(session)
    ticket = {**ticket_values(params), "number": number}
    await session.execute(insert(_table("tickets")).values(ticket))

    def value(source: Source) -> Any:
        if isinstance(source, str):
            return params[source]
        if isinstance(source, Const):
            return source.value
        if isinstance(source, FromTicket):
            return ticket[source.column]
        return {"number": number, **params[source.parameter]}

    for _, table_name, rows in DEPENDANT_ROWS:
        await session.execute(
            insert(_table(table_name)),
            [{column: value(source) for column, source in row.items()} for row in rows],
        )
    return number
