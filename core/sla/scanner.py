"""The scan: fire the due armed timers (the claim of their alerts) and queue one `sla_alerts`
message naming the scan, in one transaction. On PostgreSQL one statement (`FIRE_SQL`), locking
what it fires ``FOR UPDATE SKIP LOCKED``; elsewhere (SQLite, one writer) portable steps."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, insert, select, tuple_, update

from core.context import Core
from core.outbox import OutboxKind
from core.sla.claims import OUTBOX, TIMERS, ClaimedAlert, fired_by
from core.validation import positive_int

log = logging.getLogger("core.sla")

FAN_OUT_KEY = "sla"


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
        return await fired_by(connection, scan_id)


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
        SELECT '{OutboxKind.SLA_ALERTS.value}', NULL, '{FAN_OUT_KEY}:' || $3::text,
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


# ---------------------------------------------------------------- portable: step by step


def due_query(now: datetime, limit: int) -> Select[Any]:
    """The due armed timers, soonest first (`fire_sql`'s selection, without the lock)."""
    return (
        select(TIMERS.c.ticket_id, TIMERS.c.threshold, TIMERS.c.due_at)
        .where(TIMERS.c.fired_at.is_(None), TIMERS.c.due_at <= now)
        .order_by(TIMERS.c.due_at, TIMERS.c.ticket_id)
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
                update(TIMERS)
                .where(
                    tuple_(TIMERS.c.ticket_id, TIMERS.c.threshold).in_(due[start : start + 500]),
                    TIMERS.c.fired_at.is_(None),
                )
                .values(fired_at=now, fired_by=scan_id)
            )
            fired += int(getattr(result, "rowcount", 0) or 0)
        if fired:
            await connection.execute(insert(OUTBOX).values(_fan_out_message(scan_id, fired, now)))
    return fired


def _fan_out_message(scan_id: uuid.UUID, fired: int, now: datetime) -> dict[str, Any]:
    """The `sla_alerts` outbox row queuing the alerts of a scan (`fire_sql` writes the same)."""
    return {
        "kind": OutboxKind.SLA_ALERTS.value,
        "ticket_id": None,
        "thread_key": f"{FAN_OUT_KEY}:{scan_id}",
        "payload": {"scan_id": str(scan_id), "fired_at": now.isoformat(), "alerts": fired},
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }
