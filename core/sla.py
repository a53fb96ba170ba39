"""The SLA engine: the timers the ticket services arm and disarm, the scan that fires them
(alerting managers once per ticket and threshold), and the list of tickets at risk or in
breach for `/ticket sla`.

Timers. Every alert of a ticket is a row of ``sla_timers``: (ticket, threshold, due_at,
fired_at). The ticket services keep the armed ones (``fired_at`` empty) in step with the
ticket in the same transaction as the change (``schedule`` and ``stop`` below): created and
reopened tickets get a warning and a breach timer, a priority change moves them, and the first
public staff reply, resolving, closing and deleting remove them. Only armed timers are in the
due index, so the due ones are one short index range away, and the scan never writes to the
wide, heavily indexed tickets table.

The scan is meant to run in every bot replica at once (core/ has no scheduler of its own; see
bot/scheduler.py). It is safe to do so. On PostgreSQL it is one statement:

- It takes the due armed timers, soonest first, locking them ``FOR UPDATE SKIP LOCKED``: a
  concurrent scan skips them instead of waiting, and so does the scan for a ticket whose
  timers a service is changing right now (the services lock them as they move or remove them).
- It fires them: ``fired_at`` is set, and that row, unique per (ticket, threshold), is the
  claim. A fired timer is never armed again (``schedule`` leaves it; ``stop`` keeps it), so
  however many scans race and whatever happens to the ticket later, a (ticket, threshold) is
  claimed once in the ticket's life.
- The timers it fires are marked with the scan's id (``fired_by``), and in the same
  transaction it queues one ``sla_alerts`` outbox message naming that id. Delivering it
  (``fan_out``, run by the delivery worker) writes each alert's own messages in one
  transaction that also records the delivery, so it happens once: the manager alert; on
  breach the assignee's DM and a staff card refresh. That is where the ticket is checked
  again: an alert of a ticket answered, resolved, closed or deleted since the scan is
  dropped. So the scan writes one row per alert and one message however many alerts it
  fires (the per-alert messages cost more than everything else together), and an alert is
  never written for a ticket that was answered before it was written.
- A ticket whose warning and breach have both passed (a late scan, or a priority raised after
  creation) gets both alerts, the warning first: each threshold is a fact worth recording, and
  the messages of a thread are delivered in the order written.
- A failure of the database itself (connection lost, database unavailable) raises; the
  scheduler logs it and runs again at the next interval. In ``fan_out`` an alert whose
  messages the database refuses is logged and its timer armed again (the next scan retries
  it), while the other alerts of the batch go out.

Elsewhere (SQLite) the scan runs the same steps as portable statements; SQLite has one writer
at a time, so there is nothing to race.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Select, delete, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from core import repository
from core.access import load_actor, require_staff
from core.context import Core
from core.enums import Audience, Priority, SlaThreshold, Status
from core.errors import Unavailable
from core.models import Base, OutboxMessage, SlaTimer, Ticket
from core.outbox import OutboxKind, thread_key
from core.sla_policy import SlaPolicy
from core.validation import PAGE_SIZE_MAX, positive_int
from core.views import TicketView

log = logging.getLogger("core.sla")

_DONE = (Status.RESOLVED.value, Status.CLOSED.value)
# Core tables: the scan works on rows in bulk, without ORM objects or version bumps.
_tickets = Base.metadata.tables[Ticket.__tablename__]
_timers = Base.metadata.tables[SlaTimer.__tablename__]
_outbox = Base.metadata.tables[OutboxMessage.__tablename__]
# Thresholds in the order they fall due (and are alerted).
_THRESHOLDS = (SlaThreshold.WARNING, SlaThreshold.BREACH)


# --------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class ClaimedAlert:
    """An alert a scan claimed (its timer fired) and queued for `fan_out`."""

    ticket_id: uuid.UUID
    threshold: SlaThreshold
    due_at: datetime


@dataclass(frozen=True)
class ScanResult:
    """What one scan did: it fired `fired` timers (at most `limit`), marked with `scan_id`
    (`scan_alerts` lists them)."""

    scan_id: uuid.UUID
    fired: int
    limit: int

    @property
    def more(self) -> bool:
        """The batch was full: more timers may be due right now."""
        return self.fired >= self.limit


@dataclass(frozen=True)
class FanOutResult:
    """What `fan_out` did with one `sla_alerts` message.

    `recorded`: False when the message was not this worker's to deliver any more (its lease
    lapsed, or another worker delivered it): nothing was written. `alerts`: the alerts whose
    messages were queued; `dropped`: alerts of tickets no longer awaiting a first response;
    `failed`: alerts whose messages the database refused (logged; their timers armed again)."""

    recorded: bool
    alerts: tuple[ClaimedAlert, ...] = ()
    dropped: int = 0
    failed: tuple[ClaimedAlert, ...] = ()


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
    """Arm a warning and a breach timer at the ticket's deadlines, moving the armed ones it
    has; disarm them instead when the ticket does not await a first response (or has no
    deadline).

    The ticket row must exist in the database (flush a new one first). A threshold that has
    fired before stays fired: its alert went out once and never goes out again. Waits for a
    scan holding the timers to commit (then sees them fired)."""
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
            where=_timers.c.fired_at.is_(None),
        )
    )


async def stop(session: AsyncSession, ticket_id: uuid.UUID) -> None:
    """Disarm the ticket's armed timers: no SLA alert for it from now on (until `schedule`
    again). Fired timers stay: they are the claims of the alerts already sent.

    Waits for a scan that holds them to commit, so an alert is either claimed before this
    transaction or not at all."""
    connection = await session.connection()
    await connection.execute(
        delete(_timers).where(_timers.c.ticket_id == ticket_id, _timers.c.fired_at.is_(None))
    )


# --------------------------------------------------------------------------------------------
# the scan

_FAN_OUT_KEY = "sla"


async def scan(core: Core, *, limit: int = 500) -> ScanResult:
    """Fire the due SLA timers (at most `limit`, soonest first): claim their alerts and queue
    them for `fan_out`, in one transaction."""
    limit = positive_int(limit, field="limit")
    now = core.clock.now()
    scan_id = uuid.uuid4()
    if core.db.dialect == "postgresql":
        fired = await _scan_in_one_statement(core, now, limit, scan_id)
    else:
        fired = await _scan_step_by_step(core, now, limit, scan_id)
    result = ScanResult(scan_id=scan_id, fired=fired, limit=limit)
    if fired:
        log.info("sla scan", extra={"scan_id": str(scan_id), "fired": fired, "more": result.more})
    return result


async def scan_alerts(core: Core, scan_id: uuid.UUID) -> tuple[ClaimedAlert, ...]:
    """The alerts the scan `scan_id` claimed, soonest first."""
    async with core.db.bulk_transaction() as connection:
        return await _fired_by(connection, scan_id)


async def _fired_by(connection: AsyncConnection, scan_id: uuid.UUID) -> tuple[ClaimedAlert, ...]:
    rows = await connection.execute(
        select(_timers.c.ticket_id, _timers.c.threshold, _timers.c.due_at)
        .where(_timers.c.fired_by == scan_id)
        .order_by(_timers.c.due_at, _timers.c.ticket_id)
    )
    return tuple(_claimed(row) for row in rows)


def _connection_lost(error: BaseException) -> bool:
    """Not the item's fault: the database went away, so the whole fan-out fails (and retries)."""
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


# $1 is the scan's "now", $2 its limit, $3 its id; `s` the timers.
DUE_CONDITION = "s.due_at <= $1::timestamptz"
DUE_ORDER = "s.due_at, s.ticket_id"


def fire_sql(condition: str = DUE_CONDITION, order: str = DUE_ORDER) -> str:
    """The whole scan as one statement: take the due armed timers, soonest first, locked (FOR
    UPDATE SKIP LOCKED: see the module doc); fire them, marked with the scan's id; queue one
    `sla_alerts` message naming the scan (the same row as `_fan_out_message`); return how
    many fired. `condition` and `order` select the due timers, soonest first (the benchmark
    swaps in a version the index cannot serve)."""
    now = "$1::timestamptz"
    return f"""
    WITH due AS MATERIALIZED (
        SELECT s.ctid AS row FROM sla_timers AS s
        WHERE s.fired_at IS NULL AND {condition}
        ORDER BY {order}
        LIMIT $2
        FOR UPDATE SKIP LOCKED
    ),
    -- By row address: each row is locked above, so it cannot have moved meanwhile.
    fired AS (
        UPDATE sla_timers AS s SET fired_at = {now}, fired_by = $3::uuid
        WHERE s.ctid = ANY (ARRAY(SELECT row FROM due)) AND s.fired_at IS NULL
        RETURNING 1
    ),
    counted AS MATERIALIZED (SELECT count(*) AS fired FROM fired),
    queued AS (
        INSERT INTO outbox (kind, ticket_id, thread_key, payload, created_at,
            next_attempt_at, attempts)
        SELECT '{OutboxKind.SLA_ALERTS.value}', NULL, '{_FAN_OUT_KEY}:' || $3::text,
            jsonb_build_object('scan_id', $3::text, 'fired_at', {_iso(now)}, 'alerts', fired),
            {now}, {now}, 0
        FROM counted WHERE fired > 0
    )
    SELECT fired FROM counted
    """


FIRE_SQL = fire_sql()


async def _scan_in_one_statement(core: Core, now: datetime, limit: int, scan_id: uuid.UUID) -> int:
    async with core.db.bulk_transaction() as connection:
        result = await connection.exec_driver_sql(FIRE_SQL, (now, limit, scan_id))
        return int(result.scalar_one())


_THRESHOLD = {threshold.value: threshold for threshold in SlaThreshold}


def _claimed(row: Any) -> ClaimedAlert:
    return ClaimedAlert(
        ticket_id=row.ticket_id, threshold=_THRESHOLD[row.threshold], due_at=row.due_at
    )


# ---------------------------------------------------------------- portable: step by step


def due_query(now: datetime, limit: int) -> Select[Any]:
    """The due armed timers, soonest first (`fire_sql`'s selection, without the lock)."""
    return (
        select(_timers.c.ticket_id, _timers.c.threshold, _timers.c.due_at)
        .where(_timers.c.fired_at.is_(None), _timers.c.due_at <= now)
        .order_by(_timers.c.due_at, _timers.c.ticket_id)
        .limit(limit)
    )


async def _scan_step_by_step(core: Core, now: datetime, limit: int, scan_id: uuid.UUID) -> int:
    """The scan in portable statements, in one transaction (SQLite: one writer at a time)."""
    async with core.db.bulk_transaction() as connection:
        due = [
            (row.ticket_id, row.threshold)
            for row in await connection.execute(due_query(now, limit))
        ]
        fired = 0
        for start in range(0, len(due), 500):
            # Only the timers this update fires are claimed (a concurrent scan may have fired
            # some since they were read): the claim decides, not the read.
            result = await connection.execute(
                update(_timers)
                .where(
                    tuple_(_timers.c.ticket_id, _timers.c.threshold).in_(due[start : start + 500]),
                    _timers.c.fired_at.is_(None),
                )
                .values(fired_at=now, fired_by=scan_id)
            )
            fired += int(getattr(result, "rowcount", 0) or 0)
        if fired:
            await connection.execute(insert(_outbox).values(_fan_out_message(scan_id, fired, now)))
    return fired


def _fan_out_message(scan_id: uuid.UUID, fired: int, now: datetime) -> dict[str, Any]:
    """The `sla_alerts` outbox row queuing the alerts of a scan (`fire_sql` writes the same)."""
    return {
        "kind": OutboxKind.SLA_ALERTS.value,
        "ticket_id": None,
        "thread_key": f"{_FAN_OUT_KEY}:{scan_id}",
        "payload": {"scan_id": str(scan_id), "fired_at": now.isoformat(), "alerts": fired},
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }


# --------------------------------------------------------------------------------------------
# fan-out: one `sla_alerts` message becomes each alert's own messages


async def fan_out(core: Core, *, message_id: int, worker_id: str) -> FanOutResult:
    """Deliver the `sla_alerts` outbox message `message_id`, leased by `worker_id`: write the
    messages of each alert of its scan whose ticket still awaits a first response, and record
    the message as delivered, in one transaction (so its alerts are written once, whoever
    retries)."""
    now = core.clock.now()
    async with core.db.bulk_transaction() as connection:
        taken = (
            await connection.execute(
                update(_outbox)
                .where(
                    _outbox.c.id == message_id,
                    _outbox.c.kind == OutboxKind.SLA_ALERTS.value,
                    _outbox.c.locked_by == worker_id,
                    _outbox.c.delivered_at.is_(None),
                    _outbox.c.failed_at.is_(None),
                )
                .values(delivered_at=now, locked_until=None, last_error=None)
                .returning(_outbox.c.payload)
            )
        ).first()
        if taken is None:
            return FanOutResult(recorded=False)
        payload: dict[str, Any] = taken.payload
        fired_at = datetime.fromisoformat(str(payload["fired_at"]))
        alerts = await _fired_by(connection, uuid.UUID(str(payload["scan_id"])))
        tickets = await _tickets_of(connection, {alert.ticket_id for alert in alerts})
        live = [
            alert
            for alert in alerts
            if alert.ticket_id in tickets and _live(tickets[alert.ticket_id])
        ]
        sent, failed = await _write_alert_messages(connection, live, tickets, fired_at, now)
        outcome = {"alerts": len(sent), "dropped": len(alerts) - len(live), "failed": len(failed)}
        await connection.execute(
            update(_outbox).where(_outbox.c.id == message_id).values(result=outcome)
        )
    log.info("sla alerts fanned out", extra={"outbox_id": message_id, **outcome})
    return FanOutResult(
        recorded=True, alerts=tuple(sent), dropped=outcome["dropped"], failed=tuple(failed)
    )


async def _tickets_of(connection: AsyncConnection, ids: set[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The ticket columns the alerts need, by id (ORM-free rows)."""
    if not ids:
        return {}
    rows = await connection.execute(
        select(
            _tickets.c.id,
            _tickets.c.assignee_id,
            _tickets.c.sla_breach_at,
            _tickets.c.sla_started_at,
            _tickets.c.created_at,
            _tickets.c.deleted_at,
            _tickets.c.first_response_at,
            _tickets.c.status,
        ).where(_tickets.c.id.in_(ids))
    )
    return {row.id: row for row in rows}


def _live(row: Row[Any]) -> bool:
    return row.deleted_at is None and row.first_response_at is None and row.status not in _DONE


async def _write_alert_messages(
    connection: AsyncConnection,
    alerts: Sequence[ClaimedAlert],
    tickets: dict[uuid.UUID, Any],
    fired_at: datetime,
    now: datetime,
) -> tuple[list[ClaimedAlert], list[ClaimedAlert]]:
    """Insert the messages of `alerts` (all at once; alert by alert, each in a savepoint, when
    that fails). An alert the database refuses is logged and its timer armed again."""
    if not alerts:
        return [], []

    def messages(batch: Sequence[ClaimedAlert]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for alert in batch:
            rows.extend(_alert_messages(tickets[alert.ticket_id], alert, fired_at, now))
        return rows

    try:
        async with connection.begin_nested():
            # RETURNING makes SQLAlchemy send multi-row INSERTs instead of one per row.
            await connection.execute(insert(_outbox).returning(_outbox.c.id), messages(alerts))
    except Exception as error:
        if _connection_lost(error):
            raise
        log.warning("sla alert batch failed; retrying alert by alert", exc_info=True)
    else:
        return list(alerts), []
    sent: list[ClaimedAlert] = []
    failed: list[ClaimedAlert] = []
    for alert in alerts:
        try:
            async with connection.begin_nested():
                await connection.execute(insert(_outbox), messages([alert]))
        except Exception as error:
            if _connection_lost(error):
                raise
            log.exception(
                "sla alert failed; the next scan retries it",
                extra={"ticket_id": str(alert.ticket_id), "threshold": alert.threshold.value},
            )
            failed.append(alert)
        else:
            sent.append(alert)
    for alert in failed:
        await connection.execute(
            update(_timers)
            .where(
                _timers.c.ticket_id == alert.ticket_id,
                _timers.c.threshold == alert.threshold.value,
            )
            .values(fired_at=None, fired_by=None)
        )
    return sent, failed


def _alert_messages(
    row: Row[Any], alert: ClaimedAlert, fired_at: datetime, now: datetime
) -> list[dict[str, Any]]:
    """Outbox rows for one alert: the manager alert; on breach also the assignee's DM and a
    staff card refresh, so that the card shows the breach. (A card shows "at risk" from the
    warning time on whenever it is next rendered; the warning alone does not re-render it,
    which keeps a backlog to one message per warning.)"""
    payload = _alert_payload(row, alert, fired_at)
    messages = [
        _message(OutboxKind.MANAGER_ALERT, row.id, f"manager:{row.id}", now, payload),
    ]
    if alert.threshold is SlaThreshold.BREACH:
        if row.assignee_id is not None:
            messages.append(
                _message(
                    OutboxKind.ASSIGNEE_DM,
                    row.id,
                    f"user:{row.assignee_id}",
                    now,
                    {**payload, "event": "sla_breach", "assignee_id": row.assignee_id},
                )
            )
        messages.append(
            _message(
                OutboxKind.STAFF_CARD_REFRESH,
                row.id,
                thread_key(Audience.STAFF, row.id),
                now,
                {"event": "sla_breach"},
            )
        )
    return messages


def _alert_payload(row: Row[Any], alert: ClaimedAlert, fired_at: datetime) -> dict[str, Any]:
    """What the alert renderer needs besides the ticket itself (which it loads by id): the
    wait is measured when the timer fired."""
    started: datetime = row.sla_started_at or row.created_at
    return {
        "threshold": alert.threshold.value,
        "due_at": alert.due_at.isoformat(),
        "breach_at": row.sla_breach_at.isoformat() if row.sla_breach_at else None,
        "waited_seconds": int((fired_at - started).total_seconds()),
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
