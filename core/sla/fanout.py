"""Fan-out: one `sla_alerts` message becomes each alert's own messages (the manager alert;
on breach the assignee's DM and a staff card refresh), written once, in the transaction that
records the message as delivered; alerts of tickets answered, closed or deleted since the scan
are dropped."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.context import Core
from core.enums import Audience, SlaThreshold
from core.errors import Unavailable
from core.outbox import OutboxKind, thread_key
from core.sla.claims import DONE, OUTBOX, TICKETS, TIMERS, ClaimedAlert, fired_by

log = logging.getLogger("core.sla")


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


async def fan_out(core: Core, *, message_id: int, worker_id: str) -> FanOutResult:
    """Deliver the `sla_alerts` outbox message `message_id`, leased by `worker_id`: write the
    messages of each alert of its scan whose ticket still awaits a first response, and record
    the message as delivered, in one transaction (so its alerts are written once, whoever
    retries)."""
    now = core.clock.now()
    async with core.db.bulk_transaction() as connection:
        taken = (
            await connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.id == message_id,
                    OUTBOX.c.kind == OutboxKind.SLA_ALERTS.value,
                    OUTBOX.c.locked_by == worker_id,
                    OUTBOX.c.delivered_at.is_(None),
                    OUTBOX.c.failed_at.is_(None),
                )
                .values(delivered_at=now, locked_until=None, last_error=None)
                .returning(OUTBOX.c.payload)
            )
        ).first()
        if taken is None:
            return FanOutResult(recorded=False)
        payload: dict[str, Any] = taken.payload
        fired_at = datetime.fromisoformat(str(payload["fired_at"]))
        alerts = await fired_by(connection, uuid.UUID(str(payload["scan_id"])))
        tickets = await _tickets_of(connection, {alert.ticket_id for alert in alerts})
        live = [
            alert
            for alert in alerts
            if alert.ticket_id in tickets and _live(tickets[alert.ticket_id])
        ]
        sent, failed = await _write_alert_messages(connection, live, tickets, fired_at, now)
        outcome = {"alerts": len(sent), "dropped": len(alerts) - len(live), "failed": len(failed)}
        await connection.execute(
            update(OUTBOX).where(OUTBOX.c.id == message_id).values(result=outcome)
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
            TICKETS.c.id,
            TICKETS.c.assignee_id,
            TICKETS.c.sla_breach_at,
            TICKETS.c.sla_started_at,
            TICKETS.c.created_at,
            TICKETS.c.deleted_at,
            TICKETS.c.first_response_at,
            TICKETS.c.status,
        ).where(TICKETS.c.id.in_(ids))
    )
    return {row.id: row for row in rows}


def _live(row: Row[Any]) -> bool:
    return row.deleted_at is None and row.first_response_at is None and row.status not in DONE


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
            await connection.execute(insert(OUTBOX).returning(OUTBOX.c.id), messages(alerts))
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
                await connection.execute(insert(OUTBOX), messages([alert]))
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
            update(TIMERS)
            .where(
                TIMERS.c.ticket_id == alert.ticket_id,
                TIMERS.c.threshold == alert.threshold.value,
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


def _connection_lost(error: BaseException) -> bool:
    """Not the item's fault: the database went away, so the whole fan-out fails (and retries)."""
    if isinstance(error, Unavailable):
        return True
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, OSError)
    ):
        return True
    return isinstance(error, InterfaceError | OSError)
