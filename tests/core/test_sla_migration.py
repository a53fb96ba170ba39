"""Migration 0003 moves the scan's bookkeeping from tickets.sla_next_alert_at to sla_timers:
the alerts still ahead of each ticket survive the upgrade, and the downgrade puts them back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Integer, String, Uuid, column, insert, inspect, select, table
from sqlalchemy.ext.asyncio import create_async_engine

from core.db import UTCDateTime
from core.models import SlaTimer
from migrations import run_migrations
from tests.conftest import create_pg_database, drop_pg_database

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
WARNING_AT = NOW + timedelta(hours=1)
BREACH_AT = NOW + timedelta(hours=3)

# tickets as revision 0002 knows them (the models describe the head)
old_tickets = table(
    "tickets",
    column("id", Uuid),
    column("number", Integer),
    column("title", String),
    column("status", String),
    column("priority", String),
    column("customer_id", Integer),
    column("created_by_id", Integer),
    column("created_at", UTCDateTime()),
    column("updated_at", UTCDateTime()),
    column("first_response_at", UTCDateTime()),
    column("deleted_at", UTCDateTime()),
    column("sla_started_at", UTCDateTime()),
    column("sla_warning_at", UTCDateTime()),
    column("sla_breach_at", UTCDateTime()),
    column("sla_next_alert_at", UTCDateTime()),
)
users = table("users", column("id", Integer), column("slack_user_id"), column("display_name"))

# name -> (status, next alert, answered, deleted)
CASES = {
    "warning_ahead": ("open", WARNING_AT, False, False),
    "breach_ahead": ("in_progress", BREACH_AT, False, False),
    "both_alerted": ("open", None, False, False),
    "answered": ("open", WARNING_AT, True, False),
    "closed": ("closed", WARNING_AT, False, False),
    "deleted": ("open", BREACH_AT, False, True),
}


async def test_upgrade_turns_pending_alerts_into_timers_and_downgrade_restores_them(
    database_url, tmp_path
):
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'sla.db'}"
    else:
        url = await create_pg_database("ticketbot_sla_migration")
    engine = create_async_engine(url)
    try:
        await run_migrations(url, "upgrade", "0002")
        ids = {name: uuid.uuid4() for name in CASES}
        async with engine.begin() as connection:
            await connection.execute(
                insert(users).values(id=1, slack_user_id="U1", display_name="Ann")
            )
            for number, (name, (status, next_alert, answered, deleted)) in enumerate(
                CASES.items(), start=1
            ):
                await connection.execute(
                    insert(old_tickets).values(
                        id=ids[name],
                        number=number,
                        title=name,
                        status=status,
                        priority="medium",
                        customer_id=1,
                        created_by_id=1,
                        created_at=NOW,
                        updated_at=NOW,
                        first_response_at=NOW if answered else None,
                        deleted_at=NOW if deleted else None,
                        sla_started_at=NOW,
                        sla_warning_at=WARNING_AT,
                        sla_breach_at=BREACH_AT,
                        sla_next_alert_at=next_alert,
                    )
                )

        await run_migrations(url)
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(SlaTimer.ticket_id, SlaTimer.threshold, SlaTimer.due_at)
            )
            timers = {(ticket_id, threshold): due_at for ticket_id, threshold, due_at in rows}
        assert timers == {
            (ids["warning_ahead"], "warning"): WARNING_AT,
            (ids["warning_ahead"], "breach"): BREACH_AT,
            (ids["breach_ahead"], "breach"): BREACH_AT,
        }

        await run_migrations(url, "downgrade", "0002")
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(old_tickets.c.id, old_tickets.c.sla_next_alert_at)
            )
            next_alerts = dict(rows.all())
        assert next_alerts == {
            **{ids[name]: None for name in CASES},
            ids["warning_ahead"]: WARNING_AT,
            ids["breach_ahead"]: BREACH_AT,
        }
    finally:
        await engine.dispose()
        if not url.startswith("sqlite"):
            await drop_pg_database(url)


async def test_upgrade_turns_alert_claims_into_fired_timers_and_downgrade_restores_them(
    database_url, tmp_path
):
    """Migration 0005: each claim of sla_alerts becomes its fired timer (replacing an armed
    timer of the same threshold, which would otherwise alert again); the downgrade gives the
    claims back and keeps only the armed timers."""
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'claims.db'}"
    else:
        url = await create_pg_database("ticketbot_sla_claims_migration")
    engine = create_async_engine(url)
    claimed_at = NOW + timedelta(hours=2)
    ticket_id = uuid.uuid4()
    tickets_0004 = table(
        "tickets",
        *(column(name, String) for name in ("title", "status", "priority")),
        column("id", Uuid),
        column("number", Integer),
        column("customer_id", Integer),
        column("created_by_id", Integer),
        column("created_at", UTCDateTime()),
        column("updated_at", UTCDateTime()),
    )
    timers_0004 = table(
        "sla_timers",
        column("ticket_id", Uuid),
        column("threshold"),
        column("due_at", UTCDateTime()),
    )
    alerts_0004 = table(
        "sla_alerts",
        column("ticket_id", Uuid),
        column("threshold"),
        column("due_at", UTCDateTime()),
        column("created_at", UTCDateTime()),
    )
    try:
        await run_migrations(url, "upgrade", "0004")
        async with engine.begin() as connection:
            await connection.execute(
                insert(users).values(id=1, slack_user_id="U1", display_name="Ann")
            )
            await connection.execute(
                insert(tickets_0004).values(
                    id=ticket_id,
                    number=1,
                    title="t",
                    status="open",
                    priority="medium",
                    customer_id=1,
                    created_by_id=1,
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            await connection.execute(
                insert(timers_0004),
                [  # the warning armed again after it was claimed (a restarted clock)
                    {"ticket_id": ticket_id, "threshold": "warning", "due_at": WARNING_AT},
                    {"ticket_id": ticket_id, "threshold": "breach", "due_at": BREACH_AT},
                ],
            )
            await connection.execute(
                insert(alerts_0004).values(
                    ticket_id=ticket_id, threshold="warning", due_at=NOW, created_at=claimed_at
                )
            )

        await run_migrations(url)
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(SlaTimer.threshold, SlaTimer.due_at, SlaTimer.fired_at).order_by(
                    SlaTimer.threshold
                )
            )
            assert [tuple(row) for row in rows] == [
                ("breach", BREACH_AT, None),
                ("warning", NOW, claimed_at),
            ]
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert "sla_alerts" not in tables

        await run_migrations(url, "downgrade", "0004")
        async with engine.connect() as connection:
            claims = (await connection.execute(select(alerts_0004))).all()
            armed = (await connection.execute(select(timers_0004))).all()
        assert [tuple(row) for row in claims] == [(ticket_id, "warning", NOW, claimed_at)]
        assert [tuple(row) for row in armed] == [(ticket_id, "breach", BREACH_AT)]
    finally:
        await engine.dispose()
        if not url.startswith("sqlite"):
            await drop_pg_database(url)
