"""The SLA engine: the timers the ticket services arm and disarm, the scan that fires them
(alerting managers once per ticket and threshold), and the list of tickets at risk or in
breach for `/ticket sla`.

Timers. Every alert still ahead of a ticket is a row of ``sla_timers``: (ticket, threshold,
due_at), indexed by ``due_at``. The ticket services keep them in step with the ticket in the
same transaction as the change (``schedule`` and ``stop`` below): created and reopened tickets
get a warning and a breach timer, a priority change moves them, and the first public staff
reply, resolving, closing and deleting remove them. The table holds only tickets still
awaiting a first response, so the due ones are one short index range away, and the scan never
writes to the wide, heavily indexed tickets table.

The scan is meant to run in every bot replica at once (core/ has no scheduler of its own; see
bot/scheduler.py). It is safe to do so:

- It takes the due timers, soonest first, with their tickets, locking the timers with
  ``FOR UPDATE SKIP LOCKED`` and the tickets with ``FOR KEY SHARE SKIP LOCKED`` (the lock the
  foreign keys of the claims and messages take anyway): a concurrent scan skips them instead of
  waiting, and so does the scan for a ticket that a service is changing right now. A first
  reply written meanwhile waits for the scan to commit before it removes the timers, so an
  alert never goes out for a ticket that was answered before the alert was written.
- It deletes the timers it took, and claims each of their alerts by inserting
  ``(ticket_id, threshold)`` into ``sla_alerts`` (unique) with ON CONFLICT DO NOTHING ...
  RETURNING. Only the claims this scan inserted get outbox messages, written in the same
  transaction, so the claim decides: however many scans race, and whatever timers are armed
  again later, one alert per (ticket, threshold) ever reaches chat.
- The ticket is checked again as the timer fires (not deleted, resolved or closed, no first
  response); a timer left behind on a ticket that no longer qualifies is removed silently.
- A ticket whose warning and breach have both passed (a late scan, or a priority raised after
  creation) gets both alerts in one scan, the warning first: each threshold is a fact worth
  recording, and the delivery worker sends the messages of a thread in the order written.
- On PostgreSQL all of it is one statement (data-modifying CTEs: take the due timers, delete
  them, claim, queue the messages) in one transaction. When that statement fails, the scan
  retries in a new transaction ticket by ticket, each in its own savepoint, so a failing
  ticket is logged and skipped while the others alert; its timers stay due and the next scan
  retries it. Elsewhere (SQLite) the same steps run as portable statements: the batch in a
  savepoint first, then ticket by ticket when it fails. A failure of the database itself
  (connection lost, database unavailable) raises; the scheduler logs it and runs again at the
  next interval.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Select, delete, insert, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core import repository
from core.access import load_actor, require_staff
from core.context import Core
from core.enums import Audience, Priority, SlaThreshold, Status
from core.errors import Unavailable
from core.models import Base, OutboxMessage, SlaAlert, SlaTimer, Ticket
from core.outbox import OutboxKind, thread_key
from core.sla_policy import SlaPolicy
from core.validation import PAGE_SIZE_MAX, positive_int
from core.views import TicketView

log = logging.getLogger("core.sla")

_DONE = (Status.RESOLVED.value, Status.CLOSED.value)
# Core tables: the scan works on rows in bulk, without ORM objects or version bumps.
_tickets = Base.metadata.tables[Ticket.__tablename__]
_timers = Base.metadata.tables[SlaTimer.__tablename__]
_alerts = Base.metadata.tables[SlaAlert.__tablename__]
_outbox = Base.metadata.tables[OutboxMessage.__tablename__]
# Thresholds in the order they fall due (and are alerted).
_THRESHOLDS = (SlaThreshold.WARNING, SlaThreshold.BREACH)


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ClaimedAlert:
    """An alert this scan claimed, and therefore wrote to the outbox."""

    ticket_id: uuid.UUID
    threshold: SlaThreshold
    due_at: datetime


@dataclass(frozen=True)
class ScanResult:
    """What one scan did.

    `due`: timers (ticket, threshold) the scan took, at most `limit`; `alerts`: alerts claimed
    and queued by this scan; `already_claimed`: due thresholds of qualifying tickets that had
    been claimed before (by another scan, or before the clock restarted); `failed`: tickets
    whose processing raised (logged; their timers stay due for the next scan).
    """

    due: int
    alerts: tuple[ClaimedAlert, ...]
    already_claimed: int
    failed: tuple[uuid.UUID, ...]
    limit: int

    @property
    def more(self) -> bool:
        """The batch was full: more timers may be due right now."""
        return self.due >= self.limit


class SlaState(StrEnum):
    """Where a ticket stands against its first-response target."""

    NONE = "none"  # no clock: done without a first response, or no deadline
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"  # past the warning threshold
    BREACHED = "breached"
    MET = "met"  # answered (the first public staff reply exists)


@dataclass(frozen=True)
class SlaTicket:
    """A ticket of `/ticket sla` with its deadlines; `remaining` is negative once breached."""

    ticket: TicketView
    state: SlaState
    started_at: datetime
    warning_at: datetime
    breach_at: datetime
    waited: timedelta
    remaining: timedelta


def sla_state(ticket: TicketView, now: datetime) -> SlaState:
    """The SLA state of a ticket at `now` (for the staff card and lists)."""
    if ticket.first_response_at is not None:
        return SlaState.MET
    if ticket.status.is_done or ticket.deleted_at is not None or ticket.sla_breach_at is None:
        return SlaState.NONE
    if ticket.sla_breach_at <= now:
        return SlaState.BREACHED
    if ticket.sla_warning_at is not None and ticket.sla_warning_at <= now:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


# --------------------------------------------------------------------------------------------
# the ticket services' side: deadlines and timers


def awaits_first_response(ticket: Ticket) -> bool:
    """Whether the ticket's first-response clock runs: live, not done, not answered yet."""
    return (
        ticket.first_response_at is None
        and ticket.deleted_at is None
        and ticket.status not in _DONE
    )


async def restart(
    session: AsyncSession, ticket: Ticket, policy: SlaPolicy, start: datetime
) -> None:
    """(Re)compute the ticket's deadlines for a clock started at `start` (creation, or the
    latest reopening) from its current priority, and arm its timers accordingly."""
    warning_at, breach_at = policy.deadlines(Priority(ticket.priority), start)
    ticket.sla_started_at = start
    ticket.sla_warning_at = warning_at
    ticket.sla_breach_at = breach_at
    await schedule(session, ticket)


async def schedule(session: AsyncSession, ticket: Ticket) -> None:
    """Arm a warning and a breach timer at the ticket's deadlines, replacing the timers it had;
    disarm them instead when the ticket does not await a first response (or has no deadline).

    The ticket row must exist in the database (flush a new one first). A threshold that was
    alerted before is armed again all the same: when it fires, its claim already exists and
    no second alert goes out."""
    warning_at, breach_at = ticket.sla_warning_at, ticket.sla_breach_at
    if not awaits_first_response(ticket) or warning_at is None or breach_at is None:
        await stop(session, ticket.id)
        return
    connection = await session.connection()
    insert_ = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert_(_timers).values(
        [
            {"ticket_id": ticket.id, "threshold": SlaThreshold.WARNING.value, "due_at": warning_at},
            {"ticket_id": ticket.id, "threshold": SlaThreshold.BREACH.value, "due_at": breach_at},
        ]
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=["ticket_id", "threshold"],
            set_={"due_at": statement.excluded.due_at},
        )
    )


async def stop(session: AsyncSession, ticket_id: uuid.UUID) -> None:
    """Disarm the ticket's timers: no SLA alert for it from now on (until `schedule` again).

    Waits for a scan that holds them to commit, so an alert is either written before this
    transaction or not at all."""
    connection = await session.connection()
    await connection.execute(delete(_timers).where(_timers.c.ticket_id == ticket_id))


# --------------------------------------------------------------------------------------------
# the scan


async def scan(core: Core, *, limit: int = 500) -> ScanResult:
    """Fire the due SLA timers (at most `limit`, soonest first): claim and queue their alerts."""
    limit = positive_int(limit, field="limit")
    now = core.clock.now()
    if core.db.dialect == "postgresql":
        try:
            result = await _scan_in_one_statement(core, now, limit)
        except Exception as error:
            if _connection_lost(error):
                raise
            log.warning("sla batch failed; retrying ticket by ticket", exc_info=True)
            result = await _scan_step_by_step(core, now, limit, lock=True, batch=False)
    else:
        result = await _scan_step_by_step(core, now, limit, lock=False, batch=True)
    if result.alerts or result.failed:
        log.info(
            "sla scan",
            extra={"due": result.due, "alerts": len(result.alerts), "failed": len(result.failed)},
        )
    return result


def _connection_lost(error: BaseException) -> bool:
    """Not the item's fault: the database went away, so the whole scan fails (and retries)."""
    if isinstance(error, Unavailable):
        return True
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, OSError)
    ):
        return True
    return isinstance(error, InterfaceError | OSError)


# ---------------------------------------------------------------- PostgreSQL: one statement


def _iso(column: str) -> str:
    """SQL for the ISO 8601 text Python's datetime.isoformat() gives a UTC time."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"extract(microseconds FROM {utc})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || '+00:00'"
    )


# $1 is the scan's "now", $2 its limit; `s` the timers.
DUE_CONDITION = "s.due_at <= $1::timestamptz"
DUE_ORDER = "s.due_at, s.ticket_id"


def due_sql(condition: str = DUE_CONDITION, order: str = DUE_ORDER) -> str:
    """The due timers with what their alerts need of the ticket, soonest first, locked: the
    timers FOR UPDATE and their tickets FOR KEY SHARE, both SKIP LOCKED (see the module doc).
    The tickets are looked up by primary key, one probe per timer (a join could choose to read
    the whole tickets table instead). A timer whose ticket is skipped is left for a later scan.
    `condition` and `order` select the due timers, soonest first (the benchmark swaps in a
    version the index cannot serve)."""
    return f"""
    WITH timers AS MATERIALIZED (
        SELECT s.ticket_id, s.threshold, s.due_at FROM sla_timers AS s
        WHERE {condition}
        ORDER BY {order}
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ),
    held AS MATERIALIZED (
        SELECT t.id, t.assignee_id, t.sla_breach_at,
            COALESCE(t.sla_started_at, t.created_at) AS started_at,
            (t.deleted_at IS NULL AND t.first_response_at IS NULL
                AND t.status NOT IN ('{_DONE[0]}', '{_DONE[1]}')) AS live
        FROM tickets AS t
        WHERE t.id = ANY (ARRAY(SELECT ticket_id FROM timers))
        FOR KEY SHARE SKIP LOCKED
    )
    SELECT m.ticket_id, m.threshold, m.due_at, h.assignee_id, h.sla_breach_at, h.started_at,
        h.live
    FROM timers AS m JOIN held AS h ON h.id = m.ticket_id
    ORDER BY m.due_at, m.ticket_id
    """


def fire_sql(condition: str = DUE_CONDITION, order: str = DUE_ORDER) -> str:
    """The whole scan as one statement: take the due timers (`due_sql`), delete them, claim
    the alerts of the live tickets, queue the messages of the claims this statement inserted
    (the same rows as `_alert_messages`), and return the counts with the claimed alerts."""
    now = "$1::timestamptz"
    breach = SlaThreshold.BREACH.value
    return f"""
    WITH due AS MATERIALIZED ({due_sql(condition, order)}),
    fired AS (
        DELETE FROM sla_timers AS s USING due AS d
        WHERE s.ticket_id = d.ticket_id AND s.threshold = d.threshold
    ),
    claimed AS (
        INSERT INTO sla_alerts (ticket_id, threshold, due_at, created_at)
        SELECT ticket_id, threshold, due_at, {now} FROM due WHERE live
        ORDER BY due_at, ticket_id
        ON CONFLICT (ticket_id, threshold) DO NOTHING
        RETURNING ticket_id, threshold
    ),
    alerts AS MATERIALIZED (
        SELECT d.ticket_id, d.threshold, d.due_at, d.assignee_id,
            jsonb_build_object(
                'threshold', d.threshold,
                'due_at', {_iso("d.due_at")},
                'breach_at', {_iso("d.sla_breach_at")},
                'waited_seconds', trunc(extract(epoch FROM {now} - d.started_at))::bigint
            ) AS payload
        FROM due AS d JOIN claimed AS c USING (ticket_id, threshold)
    ),
    queued AS (
        INSERT INTO outbox (kind, ticket_id, thread_key, payload, created_at,
            next_attempt_at, attempts)
        SELECT m.kind, a.ticket_id, m.thread_key, m.payload, {now}, {now}, 0
        FROM alerts AS a CROSS JOIN LATERAL (VALUES
            (1, '{OutboxKind.MANAGER_ALERT.value}', 'manager:' || a.ticket_id, a.payload),
            (2, '{OutboxKind.ASSIGNEE_DM.value}', 'user:' || a.assignee_id,
                a.payload || jsonb_build_object(
                    'event', 'sla_breach', 'assignee_id', a.assignee_id)),
            (3, '{OutboxKind.STAFF_CARD_REFRESH.value}',
                '{Audience.STAFF.value}:' || a.ticket_id, '{{"event": "sla_breach"}}'::jsonb)
        ) AS m (rank, kind, thread_key, payload)
        WHERE m.rank = 1
            OR (a.threshold = '{breach}' AND (m.rank = 3 OR a.assignee_id IS NOT NULL))
        ORDER BY a.due_at, a.ticket_id, m.rank
    )
    SELECT n.due, n.live, a.ticket_id, a.threshold, a.due_at
    FROM (SELECT count(*) AS due, count(*) FILTER (WHERE live) AS live FROM due) AS n
    LEFT JOIN alerts AS a ON true
    ORDER BY a.due_at, a.ticket_id
    """


FIRE_SQL = fire_sql()


async def _scan_in_one_statement(core: Core, now: datetime, limit: int) -> ScanResult:
    async with core.db.transaction() as session:
        connection = await session.connection()
        result = await connection.exec_driver_sql(FIRE_SQL, (now, limit))
        rows = result.all()
    due, live = rows[0].due, rows[0].live
    alerts = tuple(
        ClaimedAlert(
            ticket_id=row.ticket_id,
            threshold=SlaThreshold(row.threshold),
            due_at=row.due_at,
        )
        for row in rows
        if row.ticket_id is not None
    )
    return ScanResult(
        due=due, alerts=alerts, already_claimed=live - len(alerts), failed=(), limit=limit
    )


# ---------------------------------------------------------------- portable: step by step


def due_query(now: datetime, limit: int) -> Select[Any]:
    """`due_sql` for any database, without the locks (added by the caller where it can)."""
    return (
        select(
            _timers.c.ticket_id,
            _timers.c.threshold,
            _timers.c.due_at,
            _tickets.c.assignee_id,
            _tickets.c.sla_breach_at,
            _tickets.c.sla_started_at,
            _tickets.c.created_at,
            _tickets.c.deleted_at,
            _tickets.c.first_response_at,
            _tickets.c.status,
        )
        .join_from(_timers, _tickets, _tickets.c.id == _timers.c.ticket_id)
        .where(_timers.c.due_at <= now)
        .order_by(_timers.c.due_at, _timers.c.ticket_id)
        .limit(limit)
    )


async def _scan_step_by_step(
    core: Core, now: datetime, limit: int, *, lock: bool, batch: bool
) -> ScanResult:
    """The scan in portable statements. With `batch`, all the due timers are fired together in
    a savepoint first; ticket by ticket (a savepoint each) without it or when that fails."""
    alerts: list[ClaimedAlert] = []
    already = 0
    failed: list[uuid.UUID] = []
    async with core.db.transaction() as session:
        query = due_query(now, limit)
        if lock:
            # Stronger than the one-statement path (FOR UPDATE of the tickets too): this path
            # only runs after that one failed.
            query = query.with_for_update(skip_locked=True, of=[_timers, _tickets])
        rows = list((await session.execute(query)).all())
        if not rows:
            return ScanResult(due=0, alerts=(), already_claimed=0, failed=(), limit=limit)
        if batch:
            try:
                async with session.begin_nested():
                    alerts, already = await _fire(session, rows, now)
            except Exception as error:
                if _connection_lost(error):
                    raise
                log.warning(
                    "sla batch failed; retrying ticket by ticket",
                    exc_info=True,
                    extra={"due": len(rows)},
                )
            else:
                return _result(rows, alerts, already, failed, limit)
        by_ticket: dict[uuid.UUID, list[Row[Any]]] = {}
        for row in rows:
            by_ticket.setdefault(row.ticket_id, []).append(row)
        for ticket_id, ticket_rows in by_ticket.items():
            try:
                async with session.begin_nested():
                    claimed, duplicates = await _fire(session, ticket_rows, now)
            except Exception as error:
                if _connection_lost(error):
                    raise
                log.exception("sla alert failed", extra={"ticket_id": str(ticket_id)})
                failed.append(ticket_id)
                continue
            alerts.extend(claimed)
            already += duplicates
    alerts.sort(key=lambda alert: (alert.due_at, str(alert.ticket_id)))
    return _result(rows, alerts, already, failed, limit)


def _result(
    rows: Sequence[Row[Any]],
    alerts: list[ClaimedAlert],
    already: int,
    failed: list[uuid.UUID],
    limit: int,
) -> ScanResult:
    return ScanResult(
        due=len(rows),
        alerts=tuple(alerts),
        already_claimed=already,
        failed=tuple(failed),
        limit=limit,
    )


def _live(row: Row[Any]) -> bool:
    return row.deleted_at is None and row.first_response_at is None and row.status not in _DONE


async def _fire(
    session: AsyncSession, rows: Sequence[Row[Any]], now: datetime
) -> tuple[list[ClaimedAlert], int]:
    """Delete the timers of `rows`, claim the alerts of the live tickets among them, and queue
    the claimed alerts' messages. Returns the claimed alerts and the count already claimed."""
    connection = await session.connection()
    await connection.execute(
        delete(_timers).where(
            tuple_(_timers.c.ticket_id, _timers.c.threshold).in_(
                [(row.ticket_id, row.threshold) for row in rows]
            )
        )
    )
    live = [row for row in rows if _live(row)]
    claimed = await _claim(connection, live, now)
    alerts: list[ClaimedAlert] = []
    messages: list[dict[str, Any]] = []
    for row in live:
        if (row.ticket_id, row.threshold) not in claimed:
            continue
        alert = ClaimedAlert(
            ticket_id=row.ticket_id, threshold=SlaThreshold(row.threshold), due_at=row.due_at
        )
        alerts.append(alert)
        messages.extend(_alert_messages(row, alert, now))
    if messages:
        # RETURNING makes SQLAlchemy send multi-row INSERTs instead of one per row.
        await connection.execute(insert(_outbox).returning(_outbox.c.id), messages)
    return alerts, len(live) - len(alerts)


async def _claim(
    connection: AsyncConnection, rows: Sequence[Row[Any]], now: datetime
) -> set[tuple[uuid.UUID, str]]:
    """Insert the claims of `rows`; the ones this call inserted (not claimed before)."""
    if not rows:
        return set()
    insert_ = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert_(_alerts)
        .values(created_at=now)
        .on_conflict_do_nothing(index_elements=["ticket_id", "threshold"])
        .returning(_alerts.c.ticket_id, _alerts.c.threshold)
    )
    result = await connection.execute(
        statement,
        [
            {"ticket_id": row.ticket_id, "threshold": row.threshold, "due_at": row.due_at}
            for row in rows
        ],
    )
    return {(ticket_id, threshold) for ticket_id, threshold in result.all()}


def _alert_messages(row: Row[Any], alert: ClaimedAlert, now: datetime) -> list[dict[str, Any]]:
    """Outbox rows for one claimed alert: the manager alert; on breach also the assignee's DM
    and a staff card refresh, so that the card shows the breach. (A card shows "at risk" from
    the warning time on whenever it is next rendered; the warning alone does not re-render it,
    which keeps a backlog scan to one message per warning.) `fire_sql` writes the same rows."""
    payload = _alert_payload(row, alert, now)
    messages = [
        _message(OutboxKind.MANAGER_ALERT, row.ticket_id, f"manager:{row.ticket_id}", now, payload),
    ]
    if alert.threshold is SlaThreshold.BREACH:
        if row.assignee_id is not None:
            messages.append(
                _message(
                    OutboxKind.ASSIGNEE_DM,
                    row.ticket_id,
                    f"user:{row.assignee_id}",
                    now,
                    {**payload, "event": "sla_breach", "assignee_id": row.assignee_id},
                )
            )
        messages.append(
            _message(
                OutboxKind.STAFF_CARD_REFRESH,
                row.ticket_id,
                thread_key(Audience.STAFF, row.ticket_id),
                now,
                {"event": "sla_breach"},
            )
        )
    return messages


def _alert_payload(row: Row[Any], alert: ClaimedAlert, now: datetime) -> dict[str, Any]:
    """What the alert renderer needs besides the ticket itself (which it loads by id)."""
    started: datetime = row.sla_started_at or row.created_at
    return {
        "threshold": alert.threshold.value,
        "due_at": alert.due_at.isoformat(),
        "breach_at": row.sla_breach_at.isoformat() if row.sla_breach_at else None,
        "waited_seconds": int((now - started).total_seconds()),
    }


def _message(
    kind: OutboxKind, ticket_id: uuid.UUID, key: str, now: datetime, payload: dict[str, Any]
) -> dict[str, Any]:
    # The same row core.outbox.enqueue adds, as a parameter set for one bulk INSERT.
    return {
        "kind": kind.value,
        "ticket_id": ticket_id,
        "thread_key": key,
        "payload": payload,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }


# --------------------------------------------------------------------------------------------
# /ticket sla


async def at_risk(core: Core, *, actor_id: int, limit: int = 50) -> list[SlaTicket]:
    """Staff: the visible open tickets without a first response that are past their warning
    (at risk) or their breach (breached), soonest breach first."""
    limit = positive_int(limit, field="limit", maximum=PAGE_SIZE_MAX)
    now = core.clock.now()
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        require_staff(actor, "sla.list")
        rows = list(
            await session.scalars(
                select(Ticket)
                .where(
                    actor.visible_tickets(),
                    Ticket.first_response_at.is_(None),
                    Ticket.status.not_in(_DONE),
                    Ticket.sla_warning_at.is_not(None),
                    Ticket.sla_breach_at.is_not(None),
                    Ticket.sla_warning_at <= now,
                )
                .order_by(Ticket.sla_breach_at, Ticket.number)
                .limit(limit)
            )
        )
        views = await repository.ticket_views(session, rows)
    result: list[SlaTicket] = []
    for row, view in zip(rows, views, strict=True):
        assert row.sla_warning_at is not None and row.sla_breach_at is not None
        started = row.sla_started_at or row.created_at
        result.append(
            SlaTicket(
                ticket=view,
                state=sla_state(view, now),
                started_at=started,
                warning_at=row.sla_warning_at,
                breach_at=row.sla_breach_at,
                waited=now - started,
                remaining=row.sla_breach_at - now,
            )
        )
    return result
