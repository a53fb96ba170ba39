"""The SLA engine: the scan that alerts managers once per ticket and threshold, and the list of
tickets at risk or in breach for `/ticket sla`.

The scan is meant to run in every bot replica at once (core/ has no scheduler of its own; see
bot/scheduler.py). It is safe to do so:

- One query, served by the partial index ``ix_tickets_sla_next_alert``, finds the tickets whose
  next alert is due: still awaiting a first response, not deleted, resolved or closed. On
  PostgreSQL the rows are locked with ``FOR UPDATE SKIP LOCKED``: a concurrent scan skips them
  instead of waiting, and a first reply written meanwhile waits for this scan to commit, so an
  alert never goes out for a ticket that was answered before the alert was written.
- Every threshold that has passed is *claimed* by inserting ``(ticket_id, threshold)`` into
  ``sla_alerts`` (unique) with ON CONFLICT DO NOTHING ... RETURNING. Only the claims this scan
  inserted get outbox messages, written in the same transaction, so the claim decides: however
  many scans race, one alert per (ticket, threshold) ever reaches chat.
- The ticket's ``sla_next_alert_at`` then moves to its next threshold still ahead (the breach
  after a warning), or to NULL when none is left.
- A ticket whose warning and breach have both passed (a late scan, or a priority raised after
  creation) gets both alerts in one scan, the warning first: each threshold is a fact worth
  recording, and the delivery worker sends the messages of a ticket in that order.
- Items are processed in one batch inside a savepoint; when the batch fails, the scan rolls back
  to the savepoint and goes item by item, each in its own savepoint, so a failing ticket is
  logged and skipped while the others alert. The failed ticket stays due and is retried by the
  next scan. A failure of the query or of the commit (database unreachable) raises; the
  scheduler logs it and runs again at the next interval.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Row, Select, Uuid, any_, bindparam, case, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncSession

from core import repository
from core.access import load_actor, require_staff
from core.context import Core
from core.enums import Audience, SlaThreshold, Status
from core.models import Base, OutboxMessage, SlaAlert, Ticket
from core.outbox import OutboxKind, thread_key
from core.sla_policy import SlaPolicy
from core.validation import PAGE_SIZE_MAX, positive_int
from core.views import TicketView

log = logging.getLogger("core.sla")

_DONE = (Status.RESOLVED.value, Status.CLOSED.value)
# Core tables: the scan works on rows in bulk, without ORM objects or version bumps.
_tickets = Base.metadata.tables[Ticket.__tablename__]
_alerts = Base.metadata.tables[SlaAlert.__tablename__]
_outbox = Base.metadata.tables[OutboxMessage.__tablename__]


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

    `due`: tickets the query returned; `alerts`: alerts claimed and queued by this scan;
    `already_claimed`: passed thresholds another scan (or an earlier clock) had claimed;
    `failed`: tickets whose processing raised (logged; they stay due for the next scan).
    """

    due: int
    alerts: tuple[ClaimedAlert, ...]
    already_claimed: int
    failed: tuple[uuid.UUID, ...]
    limit: int

    @property
    def more(self) -> bool:
        """The batch was full: more tickets may be due right now."""
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
# the scan


def due_query(now: datetime, limit: int) -> Select[Any]:
    """Tickets whose next SLA alert is due at `now`, soonest first (uses the partial index)."""
    return (
        select(
            _tickets.c.id,
            _tickets.c.created_at,
            _tickets.c.assignee_id,
            _tickets.c.sla_started_at,
            _tickets.c.sla_warning_at,
            _tickets.c.sla_breach_at,
        )
        .where(
            _tickets.c.sla_next_alert_at.is_not(None),
            _tickets.c.sla_next_alert_at <= now,
            _tickets.c.deleted_at.is_(None),
            _tickets.c.status.not_in(_DONE),
            _tickets.c.first_response_at.is_(None),
        )
        .order_by(_tickets.c.sla_next_alert_at, _tickets.c.id)
        .limit(limit)
    )


async def scan(core: Core, *, limit: int = 500) -> ScanResult:
    """Claim and queue every due SLA alert (at most `limit` tickets); one transaction."""
    limit = positive_int(limit, field="limit")
    now = core.clock.now()
    policy = SlaPolicy(core.settings)
    async with core.db.transaction() as session:
        query = due_query(now, limit)
        if core.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=_tickets)
        rows = list((await session.execute(query)).all())
        if not rows:
            return ScanResult(due=0, alerts=(), already_claimed=0, failed=(), limit=limit)
        alerts: list[ClaimedAlert] = []
        already = 0
        failed: list[uuid.UUID] = []
        try:
            async with session.begin_nested():
                alerts, already = await _process(session, rows, now, policy)
        except Exception as error:
            if _connection_lost(error):
                raise
            log.warning(
                "sla batch failed; retrying ticket by ticket",
                exc_info=True,
                extra={"due": len(rows)},
            )
            for row in rows:
                try:
                    async with session.begin_nested():
                        claimed, duplicates = await _process(session, [row], now, policy)
                except Exception as error:
                    if _connection_lost(error):
                        raise
                    log.exception("sla alert failed", extra={"ticket_id": str(row.id)})
                    failed.append(row.id)
                    continue
                alerts.extend(claimed)
                already += duplicates
    if alerts or failed:
        log.info(
            "sla scan",
            extra={"due": len(rows), "alerts": len(alerts), "failed": len(failed)},
        )
    return ScanResult(
        due=len(rows),
        alerts=tuple(alerts),
        already_claimed=already,
        failed=tuple(failed),
        limit=limit,
    )


def _connection_lost(error: BaseException) -> bool:
    """Not the item's fault: the database went away, so the whole scan fails (and retries)."""
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, OSError)
    ):
        return True
    return isinstance(error, InterfaceError | OSError)


async def _process(
    session: AsyncSession, rows: Sequence[Row[Any]], now: datetime, policy: SlaPolicy
) -> tuple[list[ClaimedAlert], int]:
    """Claim the passed thresholds of `rows`, queue the claimed alerts, advance the tickets."""
    candidates: list[dict[str, Any]] = []
    for row in rows:
        for threshold, due_at in (
            (SlaThreshold.WARNING, row.sla_warning_at),
            (SlaThreshold.BREACH, row.sla_breach_at),
        ):
            if due_at is not None and due_at <= now:
                candidates.append(
                    {"ticket_id": row.id, "threshold": threshold.value, "due_at": due_at}
                )
    connection = await session.connection()
    claimed: set[tuple[uuid.UUID, str]] = set()
    if candidates:
        insert_ = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert_(_alerts)
            .values(created_at=now)
            .on_conflict_do_nothing(index_elements=["ticket_id", "threshold"])
            .returning(_alerts.c.ticket_id, _alerts.c.threshold)
        )
        result = await connection.execute(statement, candidates)
        claimed = {(ticket_id, threshold) for ticket_id, threshold in result.all()}

    alerts: list[ClaimedAlert] = []
    messages: list[dict[str, Any]] = []
    by_id = {row.id: row for row in rows}
    for candidate in candidates:
        ticket_id, threshold = candidate["ticket_id"], candidate["threshold"]
        if (ticket_id, threshold) not in claimed:
            continue
        row = by_id[ticket_id]
        alert = ClaimedAlert(
            ticket_id=ticket_id, threshold=SlaThreshold(threshold), due_at=candidate["due_at"]
        )
        alerts.append(alert)
        messages.extend(_alert_messages(row, alert, now, policy))
    if messages:
        # RETURNING makes SQLAlchemy send multi-row INSERTs instead of one per row.
        await connection.execute(insert(_outbox).returning(_outbox.c.id), messages)

    next_alert = case(
        (_tickets.c.sla_warning_at > now, _tickets.c.sla_warning_at),
        (_tickets.c.sla_breach_at > now, _tickets.c.sla_breach_at),
        else_=None,
    )
    ids = [row.id for row in rows]
    if connection.dialect.name == "postgresql":
        # One array parameter instead of one parameter per ticket.
        chosen = _tickets.c.id == any_(bindparam("ids", ids, type_=postgresql.ARRAY(Uuid)))
    else:
        chosen = _tickets.c.id.in_(ids)
    await connection.execute(
        update(_tickets)
        .where(chosen, _tickets.c.sla_next_alert_at <= now)
        .values(sla_next_alert_at=next_alert)
    )
    return alerts, len(candidates) - len(alerts)


def _alert_messages(
    row: Row[Any], alert: ClaimedAlert, now: datetime, policy: SlaPolicy
) -> list[dict[str, Any]]:
    """Outbox rows for one claimed alert: the manager alert; on breach also the assignee's DM
    and a staff card refresh, so that the card shows the breach. (A card shows "at risk" from
    the warning time on whenever it is next rendered; the warning alone does not re-render it,
    which keeps a backlog scan to one message per warning.)"""
    payload = _alert_payload(row, alert, now, policy)
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


def _alert_payload(
    row: Row[Any], alert: ClaimedAlert, now: datetime, policy: SlaPolicy
) -> dict[str, Any]:
    """What the alert renderer needs besides the ticket itself (which it loads by id)."""
    started: datetime = row.sla_started_at or row.created_at
    return {
        "threshold": alert.threshold.value,
        "due_at": alert.due_at.isoformat(),
        "breach_at": row.sla_breach_at.isoformat() if row.sla_breach_at else None,
        "waited_seconds": int((now - started).total_seconds()),
        "working_seconds": int(policy.working_time_between(started, now).total_seconds()),
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
