"""The SLA scan and its fan-out: alerts once per ticket and threshold, only for tickets still
awaiting a first response, isolated failures, the scheduler around it, and `/ticket sla`.

On PostgreSQL `sla.scan` runs as one statement; on SQLite it takes the portable steps (both run
in this module). The scan queues its alerts as `sla_alerts` outbox messages; `scan` below also
delivers those the way the delivery worker does (`sla.fan_out`), so that the tests see each
alert's own messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.exc import OperationalError

from bot import scheduler as sched
from core import outbox, sla
from core.context import Core
from core.enums import Priority, Role, SlaThreshold, Status
from core.errors import Forbidden, Unavailable
from core.models import OutboxMessage, SlaTimer
from core.outbox import OutboxKind
from core.replies import add_reply
from core.tickets import assign_ticket, change_priority, change_status, delete_ticket
from tests.conftest import settings_for as settings_for
from tests.factories import fan_out_sla_alerts, make_company, make_ticket, make_user, outbox_rows

# Defaults: medium = 8 h target, warning at 75 % = 6 h.
WARNING = timedelta(hours=6)
BREACH = timedelta(hours=8)


WORKER = "test-worker"


async def fan_out_all(core: Core) -> list[sla.FanOutResult]:
    return await fan_out_sla_alerts(core, worker_id=WORKER)


@dataclass(frozen=True)
class Scanned:
    """A scan with the alerts it claimed."""

    alerts: tuple[sla.ClaimedAlert, ...]
    due: int
    more: bool
    scan_id: uuid.UUID


async def fire(core: Core, *, limit: int = 500) -> Scanned:
    """One scan, without the fan-out."""
    result = await sla.scan(core, limit=limit)
    alerts = await sla.scan_alerts(core, result.scan_id)
    assert len(alerts) == result.fired
    return Scanned(alerts, result.fired, result.more, result.scan_id)


async def scan(core: Core, *, limit: int = 500) -> Scanned:
    """One scan, then the fan-out of what it queued."""
    result = await fire(core, limit=limit)
    await fan_out_all(core)
    return result


async def claims(core: Core) -> list[tuple[uuid.UUID, str]]:
    """The fired timers (the claims), in the order they fired."""
    async with core.db.transaction() as session:
        rows = await session.execute(
            select(SlaTimer.ticket_id, SlaTimer.threshold)
            .where(SlaTimer.fired_at.is_not(None))
            .order_by(SlaTimer.fired_at, SlaTimer.due_at, SlaTimer.ticket_id)
        )
        return [(r.ticket_id, r.threshold) for r in rows]


async def messages(core: Core, kind: OutboxKind) -> list[OutboxMessage]:
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind.value).order_by(OutboxMessage.id)
        )
        return list(rows)


async def manager_alerts(core: Core) -> list[tuple[uuid.UUID, str]]:
    return [
        (m.ticket_id, m.payload["threshold"])
        for m in await messages(core, OutboxKind.MANAGER_ALERT)
    ]


async def next_alert_at(core: Core, ticket_id: uuid.UUID) -> datetime | None:
    """The ticket's earliest armed timer."""
    async with core.db.transaction() as session:
        return await session.scalar(
            select(func.min(SlaTimer.due_at)).where(
                SlaTimer.ticket_id == ticket_id, SlaTimer.fired_at.is_(None)
            )
        )


async def timer_count(core: Core) -> int:
    """Armed timers."""
    async with core.db.transaction() as session:
        return (
            await session.scalar(
                select(func.count()).select_from(SlaTimer).where(SlaTimer.fired_at.is_(None))
            )
            or 0
        )


async def force_due(core: Core, ticket_id: uuid.UUID, moment: datetime) -> None:
    """Arm a breach timer behind the services' back (defence-in-depth tests)."""
    async with core.db.transaction() as session:
        await session.execute(
            insert(SlaTimer).values(ticket_id=ticket_id, threshold="breach", due_at=moment)
        )


# --------------------------------------------------------------------------------------------
# thresholds


async def test_warning_then_breach_each_alert_exactly_once_over_repeated_scans(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    await assign_ticket(core, actor_id=agent.id, ticket=ticket.number, assignee_id=agent.id)
    start = clock.now()

    clock.set(start + WARNING - timedelta(seconds=1))
    assert (await scan(core)).alerts == ()

    clock.set(start + WARNING)
    result = await scan(core)
    assert [(a.ticket_id, a.threshold) for a in result.alerts] == [
        (ticket.id, SlaThreshold.WARNING)
    ]
    assert await next_alert_at(core, ticket.id) == start + BREACH
    for _ in range(3):
        clock.advance(minutes=30)
        assert (await scan(core)).alerts == ()

    clock.set(start + BREACH)
    assert [a.threshold for a in (await scan(core)).alerts] == [SlaThreshold.BREACH]
    for _ in range(3):
        clock.advance(hours=5)
        assert (await scan(core)).due == 0

    assert await claims(core) == [(ticket.id, "warning"), (ticket.id, "breach")]
    alerts = await messages(core, OutboxKind.MANAGER_ALERT)
    assert [m.payload["threshold"] for m in alerts] == ["warning", "breach"]
    assert alerts[0].payload["waited_seconds"] == WARNING.total_seconds()
    assert alerts[1].payload["due_at"] == (start + BREACH).isoformat()
    assert alerts[0].thread_key == alerts[1].thread_key  # one ticket's alerts stay in order
    dms = await messages(core, OutboxKind.ASSIGNEE_DM)  # self-assignment sent none
    assert [
        (m.payload["event"], m.payload["threshold"], m.payload["assignee_id"]) for m in dms
    ] == [("sla_breach", "breach", agent.id)]
    assert await next_alert_at(core, ticket.id) is None


async def test_ticket_past_both_thresholds_alerts_warning_then_breach_in_one_scan(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    clock.advance(BREACH + timedelta(hours=1))

    result = await scan(core)

    assert [a.threshold for a in result.alerts] == [SlaThreshold.WARNING, SlaThreshold.BREACH]
    assert await manager_alerts(core) == [(ticket.id, "warning"), (ticket.id, "breach")]
    assert await next_alert_at(core, ticket.id) is None


async def test_breach_without_assignee_sends_no_dm_but_refreshes_the_card_once(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    before = len(await messages(core, OutboxKind.STAFF_CARD_REFRESH))
    clock.advance(BREACH)

    await scan(core)

    assert await messages(core, OutboxKind.ASSIGNEE_DM) == []
    refreshes = await messages(core, OutboxKind.STAFF_CARD_REFRESH)
    assert [m.payload.get("event") for m in refreshes[before:]] == ["sla_breach"]
    assert all(m.ticket_id == ticket.id for m in refreshes)


async def test_a_fired_threshold_is_never_armed_or_alerted_again(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    async with core.db.transaction() as session:  # claimed by another scan
        await session.execute(
            update(SlaTimer)
            .where(SlaTimer.ticket_id == ticket.id, SlaTimer.threshold == "warning")
            .values(fired_at=clock.now())
        )
    # A priority change moves the armed breach timer, and leaves the fired warning alone.
    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.LOW)

    result = await scan(core)

    assert result.alerts == ()
    assert await manager_alerts(core) == []
    assert await claims(core) == [(ticket.id, "warning")]
    assert await next_alert_at(core, ticket.id) == ticket.created_at + timedelta(hours=24)


async def test_scan_batches_respect_the_limit_and_report_more(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    tickets = [await make_ticket(core, customer) for _ in range(5)]
    clock.advance(WARNING)

    first = await scan(core, limit=3)
    second = await scan(core, limit=3)

    assert (first.due, first.more, second.due, second.more) == (3, True, 2, False)
    assert sorted(t for t, _ in await manager_alerts(core)) == sorted(t.id for t in tickets)


# --------------------------------------------------------------------------------------------
# what stops or moves the clock


async def timers(core: Core) -> list[tuple[uuid.UUID, str, datetime]]:
    async with core.db.transaction() as session:
        rows = await session.execute(
            select(SlaTimer.ticket_id, SlaTimer.threshold, SlaTimer.due_at).order_by(
                SlaTimer.due_at, SlaTimer.ticket_id
            )
        )
        return [(r.ticket_id, r.threshold, r.due_at) for r in rows]


async def test_the_services_arm_move_and_remove_the_timers(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)  # medium: 6 h / 8 h
    created = clock.now()
    assert await timers(core) == [
        (ticket.id, "warning", created + WARNING),
        (ticket.id, "breach", created + BREACH),
    ]

    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.HIGH)
    assert await timers(core) == [
        (ticket.id, "warning", created + timedelta(minutes=90)),
        (ticket.id, "breach", created + timedelta(hours=2)),
    ]

    await change_status(core, actor_id=agent.id, ticket=ticket.number, status=Status.RESOLVED)
    assert await timers(core) == []
    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.LOW)
    assert await timers(core) == []  # deadlines recorded, nothing armed while resolved

    clock.advance(hours=1)
    await change_status(core, actor_id=customer.id, ticket=ticket.number, status=Status.OPEN)
    assert await timers(core) == [  # low: 24 h, counted from the reopening
        (ticket.id, "warning", clock.now() + timedelta(hours=18)),
        (ticket.id, "breach", clock.now() + timedelta(hours=24)),
    ]

    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Note", internal=True)
    assert len(await timers(core)) == 2
    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Hi", internal=False)
    assert await timers(core) == []


async def test_no_alert_after_a_first_public_staff_reply(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    await scan(core)  # warning sent
    clock.advance(minutes=10)
    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Looking", internal=False)

    clock.advance(days=3)
    result = await scan(core)

    assert result.due == 0
    assert await manager_alerts(core) == [(ticket.id, "warning")]


async def test_internal_note_does_not_stop_the_clock(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(hours=1)
    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Hmm", internal=True)
    await add_reply(
        core, actor_id=customer.id, ticket=ticket.number, body="Any news?", internal=False
    )

    clock.advance(BREACH)
    await scan(core)

    assert await manager_alerts(core) == [(ticket.id, "warning"), (ticket.id, "breach")]


async def test_raising_the_priority_recomputes_the_deadline_from_the_clock_start(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, priority=Priority.MEDIUM)
    clock.advance(minutes=25)
    assert (await scan(core)).due == 0

    # urgent: 30 min target, warning at 22.5 min, both counted from creation.
    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.URGENT)
    assert (await scan(core)).alerts[0].threshold is SlaThreshold.WARNING
    assert await next_alert_at(core, ticket.id) == ticket.created_at + timedelta(minutes=30)
    clock.advance(minutes=5)
    assert [a.threshold for a in (await scan(core)).alerts] == [SlaThreshold.BREACH]


async def test_lowering_the_priority_postpones_the_alerts(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, priority=Priority.HIGH)  # 2 h
    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.LOW)

    clock.advance(hours=17)  # past the high warning, before the low one (18 h)
    assert (await scan(core)).due == 0
    clock.advance(hours=1)
    assert [a.threshold for a in (await scan(core)).alerts] == [SlaThreshold.WARNING]


async def test_reopening_an_unanswered_ticket_restarts_the_clock(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(hours=1)
    await change_status(core, actor_id=agent.id, ticket=ticket.number, status=Status.RESOLVED)
    clock.advance(days=2)
    reopened_at = clock.now()
    await change_status(core, actor_id=customer.id, ticket=ticket.number, status=Status.OPEN)

    clock.set(reopened_at + WARNING - timedelta(seconds=1))
    assert (await scan(core)).due == 0
    clock.set(reopened_at + WARNING)
    assert [a.threshold for a in (await scan(core)).alerts] == [SlaThreshold.WARNING]


async def test_a_restarted_clock_does_not_repeat_an_alert_already_sent(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    await scan(core)  # warning sent
    await change_status(core, actor_id=agent.id, ticket=ticket.number, status=Status.RESOLVED)
    await change_status(core, actor_id=customer.id, ticket=ticket.number, status=Status.OPEN)

    clock.advance(BREACH)
    result = await scan(core)

    assert [a.threshold for a in result.alerts] == [SlaThreshold.BREACH]
    assert await manager_alerts(core) == [(ticket.id, "warning"), (ticket.id, "breach")]
    assert await claims(core) == [(ticket.id, "warning"), (ticket.id, "breach")]


async def assert_never_alerted_even_with_a_stale_timer(
    core: Core, clock, ticket_id: uuid.UUID
) -> None:
    """Days later no alert; and even a timer left behind does not alert: the scan fires it,
    the fan-out checks the ticket and drops it."""
    clock.advance(days=10)
    assert (await scan(core)).due == 0
    await force_due(core, ticket_id, clock.now() - timedelta(hours=1))
    assert (await sla.scan(core)).fired == 1
    assert [(r.alerts, r.dropped) for r in await fan_out_all(core)] == [((), 1)]
    assert await timer_count(core) == 0
    assert await manager_alerts(core) == []


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
async def test_resolved_and_closed_tickets_never_alert(core, clock, status):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    await change_status(core, actor_id=agent.id, ticket=ticket.number, status=status, reason="Done")
    assert await timer_count(core) == 0

    await assert_never_alerted_even_with_a_stale_timer(core, clock, ticket.id)


async def test_deleted_tickets_never_alert(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    manager = await make_user(core, Role.MANAGER)
    ticket = await make_ticket(core, customer)
    clock.advance(hours=7)
    await delete_ticket(core, actor_id=manager.id, ticket=ticket.number)
    assert await timer_count(core) == 0

    await assert_never_alerted_even_with_a_stale_timer(core, clock, ticket.id)


async def test_answered_ticket_with_a_stale_timer_is_not_alerted(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    await add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Hi", internal=False)
    assert await timer_count(core) == 0
    await force_due(core, ticket.id, clock.now())

    clock.advance(days=1)
    await scan(core)
    assert await manager_alerts(core) == [] and await timer_count(core) == 0


async def test_an_alert_of_a_ticket_answered_after_the_scan_is_dropped(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    answered, waiting = await make_ticket(core, customer), await make_ticket(core, customer)
    clock.advance(WARNING)
    assert (await sla.scan(core)).fired == 2
    await add_reply(core, actor_id=agent.id, ticket=answered.number, body="On it", internal=False)

    [result] = await fan_out_all(core)

    assert [a.ticket_id for a in result.alerts] == [waiting.id] and result.dropped == 1
    assert await manager_alerts(core) == [(waiting.id, "warning")]
    # Both timers fired: the answered ticket's warning is spent, not armed again.
    assert sorted(await claims(core)) == sorted([(answered.id, "warning"), (waiting.id, "warning")])


async def test_a_fan_out_is_written_once_whoever_retries_it(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    await sla.scan(core)
    [message] = await outbox.claim_batch(
        core, worker_id="first", kinds=[OutboxKind.SLA_ALERTS], lease=timedelta(seconds=30)
    )
    clock.advance(minutes=1)  # the first worker's lease lapses; a second one takes over
    [again] = await outbox.claim_batch(core, worker_id="second", kinds=[OutboxKind.SLA_ALERTS])
    assert again.id == message.id

    late = await sla.fan_out(core, message_id=message.id, worker_id="first")
    done = await sla.fan_out(core, message_id=message.id, worker_id="second")
    repeat = await sla.fan_out(core, message_id=message.id, worker_id="second")

    assert (late.recorded, done.recorded, repeat.recorded) == (False, True, False)
    assert [a.ticket_id for a in done.alerts] == [ticket.id]
    assert await manager_alerts(core) == [(ticket.id, "warning")]
    assert await outbox.claim_batch(core, worker_id="third", kinds=[OutboxKind.SLA_ALERTS]) == []


async def test_a_scan_queues_one_message_naming_it_however_many_alerts_it_claims(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    tickets = [await make_ticket(core, customer) for _ in range(5)]
    clock.advance(WARNING)

    result = await fire(core)

    [queued] = await messages(core, OutboxKind.SLA_ALERTS)
    assert queued.payload == {
        "scan_id": str(result.scan_id),
        "fired_at": clock.now().isoformat(),
        "alerts": 5,
    }
    assert (queued.ticket_id, queued.thread_key) == (None, f"sla:{result.scan_id}")
    assert sorted(a.ticket_id for a in result.alerts) == sorted(t.id for t in tickets)
    await fan_out_all(core)
    assert [t for t, _ in await manager_alerts(core)] == [a.ticket_id for a in result.alerts]
    assert (await sla.scan(core)).fired == 0  # nothing due: nothing queued
    assert len(await messages(core, OutboxKind.SLA_ALERTS)) == 1


# --------------------------------------------------------------------------------------------
# failures


@contextlib.asynccontextmanager
async def outbox_rejects(core: Core, ticket_id: uuid.UUID) -> AsyncIterator[None]:
    """A trigger that makes the database refuse every outbox row of one ticket: a real error
    that only that ticket's alerts hit."""
    if core.db.dialect == "postgresql":
        create = [
            f"""CREATE FUNCTION reject_one_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.ticket_id = '{ticket_id}' THEN RAISE EXCEPTION 'cannot queue this one';
                END IF;
                RETURN NEW;
            END $$""",
            "CREATE TRIGGER reject_one_ticket BEFORE INSERT ON outbox "
            "FOR EACH ROW EXECUTE FUNCTION reject_one_ticket()",
        ]
        drop = [
            "DROP TRIGGER IF EXISTS reject_one_ticket ON outbox",
            "DROP FUNCTION IF EXISTS reject_one_ticket()",
        ]
    else:
        create = [
            "CREATE TRIGGER reject_one_ticket BEFORE INSERT ON outbox "
            f"WHEN NEW.ticket_id = '{ticket_id.hex}' "
            "BEGIN SELECT RAISE(ABORT, 'cannot queue this one'); END"
        ]
        drop = ["DROP TRIGGER IF EXISTS reject_one_ticket"]
    async with core.db.engine.begin() as connection:
        for statement in create:
            await connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with core.db.engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)


async def test_a_failing_ticket_is_logged_and_the_others_still_alert(core, clock, caplog):
    customer = await make_user(core, Role.CUSTOMER)
    good_1, bad, good_2 = [await make_ticket(core, customer) for _ in range(3)]
    clock.advance(WARNING)

    async with outbox_rejects(core, bad.id):
        with caplog.at_level(logging.WARNING, logger="core.sla"):
            assert (await sla.scan(core)).fired == 3
            [result] = await fan_out_all(core)

    assert [a.ticket_id for a in result.failed] == [bad.id]
    assert sorted(a.ticket_id for a in result.alerts) == sorted([good_1.id, good_2.id])
    assert sorted(t for t, _ in await manager_alerts(core)) == sorted([good_1.id, good_2.id])
    assert (bad.id, "warning") not in await claims(core)  # its claim was given back
    assert await next_alert_at(core, bad.id) == bad.sla_warning_at  # its timer armed again
    assert any(
        r.message.startswith("sla alert failed") and r.ticket_id == str(bad.id)
        for r in caplog.records
    )

    retry = await scan(core)
    assert [(a.ticket_id, a.threshold) for a in retry.alerts] == [(bad.id, SlaThreshold.WARNING)]
    assert sorted(t for t, _ in await manager_alerts(core)) == sorted(
        [good_1.id, good_2.id, bad.id]
    )


def fail_once(core: Core, marker: str, error: Exception):
    """Make the engine fail the first statement containing `marker` (then behave)."""
    engine = core.db.engine.sync_engine
    pending = [error]

    def before_cursor_execute(conn, cursor, statement, parameters, context, executemany):
        if pending and marker in " ".join(statement.upper().split()):
            raise OperationalError(statement, parameters, pending.pop())

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    return lambda: event.remove(engine, "before_cursor_execute", before_cursor_execute)


async def test_a_scan_hitting_a_database_error_is_logged_and_the_next_run_succeeds(
    core, clock, caplog
):
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    restore = fail_once(core, "SLA_TIMERS", ConnectionError("connection reset by peer"))
    try:
        with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
            assert await sched.run_sla_scan(core) is None
    finally:
        restore()
    assert any("sla scan failed" in r.message and r.exc_info for r in caplog.records)
    assert await claims(core) == []

    results = await sched.run_sla_scan(core)
    await fan_out_all(core)

    assert results is not None
    assert [a.ticket_id for a in await sla.scan_alerts(core, results[0].scan_id)] == [ticket.id]
    assert await manager_alerts(core) == [(ticket.id, "warning")]


async def test_a_fan_out_statement_failing_is_retried_alert_by_alert_in_the_same_transaction(
    core, clock
):
    customer = await make_user(core, Role.CUSTOMER)
    first, second = await make_ticket(core, customer), await make_ticket(core, customer)
    clock.advance(WARNING)
    await sla.scan(core)
    restore = fail_once(core, "INSERT INTO OUTBOX", RuntimeError("disk I/O error"))
    try:
        [result] = await fan_out_all(core)
    finally:
        restore()

    # The batch's savepoint failed as a whole; the alert-by-alert retry succeeded.
    assert sorted(a.ticket_id for a in result.alerts) == sorted([first.id, second.id])
    assert result.failed == ()
    assert sorted(await manager_alerts(core)) == sorted(
        [(first.id, "warning"), (second.id, "warning")]
    )


async def test_a_lost_connection_fails_the_whole_scan_instead_of_every_ticket(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    tickets = [await make_ticket(core, customer) for _ in range(3)]
    clock.advance(WARNING)
    restore = fail_once(core, "INSERT INTO OUTBOX", ConnectionResetError("connection reset"))
    try:
        with pytest.raises((OperationalError, Unavailable)):
            await scan(core)
    finally:
        restore()
    assert await claims(core) == []  # all rolled back together
    assert await timer_count(core) == 6  # warning and breach of each ticket, still armed

    result = await scan(core)
    assert sorted(a.ticket_id for a in result.alerts) == sorted(t.id for t in tickets)


async def test_a_lost_connection_during_a_fan_out_leaves_it_to_be_delivered_again(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    clock.advance(WARNING)
    await sla.scan(core)
    [message] = await outbox.claim_batch(core, worker_id=WORKER, kinds=[OutboxKind.SLA_ALERTS])
    restore = fail_once(core, "INSERT INTO OUTBOX", ConnectionResetError("connection reset"))
    try:
        with pytest.raises((OperationalError, Unavailable)):
            await sla.fan_out(core, message_id=message.id, worker_id=WORKER)
    finally:
        restore()
    assert await manager_alerts(core) == []  # nothing of it was kept

    result = await sla.fan_out(core, message_id=message.id, worker_id=WORKER)
    assert result.recorded and [a.ticket_id for a in result.alerts] == [ticket.id]
    assert await manager_alerts(core) == [(ticket.id, "warning")]


# --------------------------------------------------------------------------------------------
# scheduler


async def test_scheduler_runs_the_scan_in_one_job_that_never_overlaps(core):
    scheduler = sched.build_scheduler(core, interval_seconds=30)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert sorted(jobs) == sorted([sched.SLA_JOB_ID, sched.HOUSEKEEPING_JOB_ID])
    job = jobs[sched.SLA_JOB_ID]
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.interval == timedelta(seconds=30)
    assert job.func is sched.run_sla_scan and job.args == (core,)
    assert job.kwargs == {"batch_size": 500, "on_alerts": None}


async def test_scheduler_keeps_running_after_a_run_that_raises(core, monkeypatch, caplog):
    calls: list[int] = []
    second_run = asyncio.Event()

    async def fake_scan(core_, *, limit):
        calls.append(limit)
        if len(calls) == 1:
            raise RuntimeError("boom")
        second_run.set()
        return sla.ScanResult(alerts=(), limit=limit)

    monkeypatch.setattr(sched, "scan", fake_scan)
    scheduler = sched.build_scheduler(core, interval_seconds=0.01)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        scheduler.start()
        try:
            await asyncio.wait_for(second_run.wait(), timeout=10)
        finally:
            scheduler.shutdown(wait=False)
    assert len(calls) >= 2
    assert any("sla scan failed" in r.message for r in caplog.records)


async def test_a_full_batch_makes_the_run_scan_again_and_wakes_delivery(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    for _ in range(5):
        await make_ticket(core, customer)
    clock.advance(WARNING)
    wakes: list[bool] = []

    results = await sched.run_sla_scan(core, batch_size=2, on_alerts=lambda: wakes.append(True))

    assert results is not None and [r.fired for r in results] == [2, 2, 1]
    await fan_out_all(core)
    assert len(await manager_alerts(core)) == 5
    assert len(wakes) == 3
    assert await sched.run_sla_scan(core, on_alerts=lambda: wakes.append(True)) is not None
    assert len(wakes) == 3  # nothing queued, nobody woken


# --------------------------------------------------------------------------------------------
# PostgreSQL: the scan in one statement


def _postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL-only: SQLite always takes the portable steps")


async def outbox_contents(core: Core) -> list[tuple[str, uuid.UUID | None, str, dict]]:
    """What each outbox message says (kind, ticket, thread key, payload), oldest first."""
    return [(m.kind, m.ticket_id, m.thread_key, m.payload) for m in await outbox_rows(core)]


async def test_one_statement_scan_writes_what_the_portable_steps_write(core, clock, database_url):
    _postgresql_only(database_url)
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    lead = await make_user(core, Role.AGENT)
    clock.set(datetime(2026, 1, 5, 9, 0, 0, 123456, tzinfo=UTC))  # microseconds in every time
    assigned = await make_ticket(core, customer)
    await assign_ticket(core, actor_id=lead.id, ticket=assigned.number, assignee_id=agent.id)
    clock.advance(minutes=7, microseconds=500)
    unassigned = await make_ticket(core, customer)
    warned_only = await make_ticket(core, customer, priority=Priority.LOW)
    clock.advance(hours=19)  # both thresholds of the medium tickets, the low one's warning
    async with core.db.transaction() as session:  # one threshold claimed already
        await session.execute(
            update(SlaTimer)
            .where(SlaTimer.ticket_id == unassigned.id, SlaTimer.threshold == "warning")
            .values(fired_at=clock.now() - timedelta(hours=1))
        )
    armed = await timers(core)
    claimed_before = await claims(core)
    before = len(await outbox_contents(core))

    fast = await fire(core)
    fast_rows, fast_claims = (await outbox_contents(core))[before:], await claims(core)

    async with core.db.transaction() as session:  # back to the state before the scan
        await session.execute(text("DELETE FROM outbox WHERE kind <> 'staff_card_create'"))
        await session.execute(
            update(SlaTimer)
            .where(SlaTimer.fired_by == fast.scan_id)
            .values(fired_at=None, fired_by=None)
        )
    assert await timers(core) == armed and await claims(core) == claimed_before
    before = len(await outbox_contents(core))
    portable_id = uuid.uuid4()
    portable = await sla.scanner._scan_step_by_step(core, clock.now(), 500, portable_id)
    portable_rows = (await outbox_contents(core))[before:]

    assert [(a.ticket_id, a.threshold) for a in fast.alerts] == [
        (assigned.id, SlaThreshold.WARNING),
        (assigned.id, SlaThreshold.BREACH),
        (unassigned.id, SlaThreshold.BREACH),
        (warned_only.id, SlaThreshold.WARNING),
    ]
    assert portable == fast.due == 4
    assert await sla.scan_alerts(core, portable_id) == fast.alerts
    assert await claims(core) == fast_claims
    [(kind, ticket_id, key, payload)] = fast_rows
    assert (kind, ticket_id, key) == ("sla_alerts", None, f"sla:{fast.scan_id}")
    assert payload == {
        "scan_id": str(fast.scan_id),
        "fired_at": clock.now().isoformat(),
        "alerts": 4,
    }
    assert clock.now().microsecond != 0  # the SQL formats microseconds as Python does
    assert portable_rows == [
        (kind, None, f"sla:{portable_id}", {**payload, "scan_id": str(portable_id)})
    ]
    assert fast.alerts[0].due_at == assigned.sla_warning_at

    # What the fan-out of that message writes: each alert's own messages, in order.
    before = len(await outbox_contents(core))
    await fan_out_all(core)
    alert_rows = (await outbox_contents(core))[before:]
    assert [kind for kind, _, _, _ in alert_rows] == [
        "manager_alert",  # assigned: warning
        "manager_alert",  # assigned: breach, DM and card
        "assignee_dm",
        "staff_card_refresh",
        "manager_alert",  # unassigned: breach, no DM
        "staff_card_refresh",
        "manager_alert",  # warned_only: warning
    ]
    assert alert_rows[0][3] == {
        "threshold": "warning",
        "due_at": assigned.sla_warning_at.isoformat(),
        "breach_at": assigned.sla_breach_at.isoformat(),
        "waited_seconds": int((clock.now() - assigned.created_at).total_seconds()),
    }
    assert alert_rows[2][2:] == (
        f"user:{agent.id}",
        {**alert_rows[1][3], "event": "sla_breach", "assignee_id": agent.id},
    )
    assert alert_rows[3][2:] == (f"staff:{assigned.id}", {"event": "sla_breach"})
    assert await timer_count(core) == 1  # the low ticket's breach is still ahead


async def test_timers_a_service_is_changing_are_skipped_not_waited_for(core, clock, database_url):
    _postgresql_only(database_url)
    customer = await make_user(core, Role.CUSTOMER)
    busy = await make_ticket(core, customer)
    free = await make_ticket(core, customer)
    clock.advance(WARNING)

    async with core.db.engine.connect() as service:
        # What a service holds while it moves or removes a ticket's timers (sla.schedule/stop).
        await service.execute(
            text("UPDATE sla_timers SET due_at = due_at WHERE ticket_id = :id"), {"id": busy.id}
        )
        skipped = await asyncio.wait_for(fire(core), timeout=10)
        await service.rollback()

    assert [a.ticket_id for a in skipped.alerts] == [free.id]
    later = await fire(core)
    assert [a.ticket_id for a in later.alerts] == [busy.id]


async def test_a_service_stopping_the_clock_during_a_scan_waits_and_keeps_the_claim(
    core, clock, database_url
):
    _postgresql_only(database_url)
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer)
    clock.advance(BREACH)

    async with core.db.engine.connect() as scanning:
        # A scan that has fired the ticket's timers and not yet committed.
        await scanning.exec_driver_sql(sla.FIRE_SQL, (clock.now(), 500, uuid.uuid4()))
        reply = asyncio.create_task(
            add_reply(core, actor_id=agent.id, ticket=ticket.number, body="Hi", internal=False)
        )
        await asyncio.sleep(0.3)
        assert not reply.done()  # the first reply waits for the scan's timers
        await scanning.commit()
    await asyncio.wait_for(reply, timeout=10)

    # The claims survive the reply (its stop() removes armed timers only); the alerts were
    # claimed before the answer, and their fan-out now drops them: the ticket was answered.
    assert await claims(core) == [(ticket.id, "warning"), (ticket.id, "breach")]
    [result] = await fan_out_all(core)
    assert (result.alerts, result.dropped) == ((), 2)


# --------------------------------------------------------------------------------------------
# the index


async def test_scan_takes_the_due_timers_from_their_index(core, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL-only: the planner's choice is checked with EXPLAIN")
    customer = await make_user(core, Role.CUSTOMER)
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    async with core.db.transaction() as session:
        # 4,000 tickets with two timers each, of which 20 are due.
        await session.execute(
            text(
                """
                INSERT INTO tickets (id, number, title, status, priority, customer_id,
                    created_by_id, created_at, updated_at, sla_started_at,
                    sla_warning_at, sla_breach_at)
                SELECT gen_random_uuid(), g, 't', 'open', 'medium', :c, :c,
                    n - interval '1 day', n - interval '1 day', n - interval '1 day',
                    n + (g - 20) * interval '1 minute', n + interval '1 day'
                FROM generate_series(1, 4000) AS g, CAST(:now AS timestamptz) AS n
                """
            ),
            {"c": customer.id, "now": now},
        )
        await session.execute(
            text(
                """
                INSERT INTO sla_timers (ticket_id, threshold, due_at)
                SELECT id, 'warning', sla_warning_at FROM tickets
                UNION ALL SELECT id, 'breach', sla_breach_at FROM tickets
                """
            )
        )
    async with core.db.transaction() as session:
        connection = await session.connection()
        await connection.exec_driver_sql("ANALYZE tickets, sla_timers")
        plan = "\n".join(
            (await connection.exec_driver_sql("EXPLAIN " + sla.FIRE_SQL, (now, 500, uuid.uuid4())))
            .scalars()
            .all()
        )
    assert "ix_sla_timers_armed_due" in plan, plan
    assert "Seq Scan on sla_timers" not in plan, plan
    result = await fire(Core(db=core.db, settings=core.settings, clock=_At(now)))
    assert (result.due, len(result.alerts)) == (20, 20)


class _At:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment


# --------------------------------------------------------------------------------------------
# /ticket sla


async def test_at_risk_lists_at_risk_and_breached_tickets_soonest_breach_first(core, clock):
    customer = await make_user(core, Role.CUSTOMER)
    agent = await make_user(core, Role.AGENT)
    low = await make_ticket(core, customer, priority=Priority.LOW)  # 24 h: on track
    medium = await make_ticket(core, customer, priority=Priority.MEDIUM)  # at risk at 6 h
    clock.advance(hours=1)
    urgent = await make_ticket(core, customer, priority=Priority.URGENT)  # breached at 1.5 h
    answered = await make_ticket(core, customer, priority=Priority.URGENT)
    await add_reply(core, actor_id=agent.id, ticket=answered.number, body="Hi", internal=False)
    clock.advance(hours=6)

    listed = await sla.at_risk(core, actor_id=agent.id)

    assert [(item.ticket.id, item.state) for item in listed] == [
        (urgent.id, sla.SlaState.BREACHED),
        (medium.id, sla.SlaState.AT_RISK),
    ]
    assert listed[0].remaining == timedelta(minutes=-330)
    assert listed[1].breach_at == medium.created_at + BREACH
    assert listed[1].waited == timedelta(hours=7)
    assert low.id not in {item.ticket.id for item in listed}


async def test_at_risk_is_staff_only_and_scoped_to_visible_tickets(core, clock):
    ours = await make_company(core)
    theirs = await make_company(core)
    customer = await make_user(core, Role.CUSTOMER, company_id=ours)
    other = await make_user(core, Role.CUSTOMER, company_id=theirs)
    corporate = await make_user(core, Role.CORPORATE, company_id=ours)
    mine = await make_ticket(core, customer)
    await make_ticket(core, other)
    clock.advance(BREACH)

    with pytest.raises(Forbidden):
        await sla.at_risk(core, actor_id=customer.id)
    assert [i.ticket.id for i in await sla.at_risk(core, actor_id=corporate.id)] == [mine.id]


def test_sla_state_of_a_ticket_view():
    base = datetime(2026, 1, 5, 9, tzinfo=UTC)

    class View:
        first_response_at = None
        status = Status.OPEN
        deleted_at = None
        sla_warning_at = base + WARNING
        sla_breach_at = base + BREACH

    view = View()
    assert sla.sla_state(view, base) is sla.SlaState.ON_TRACK  # type: ignore[arg-type]
    assert sla.sla_state(view, base + WARNING) is sla.SlaState.AT_RISK  # type: ignore[arg-type]
    assert sla.sla_state(view, base + BREACH) is sla.SlaState.BREACHED  # type: ignore[arg-type]
    view.first_response_at = base
    assert sla.sla_state(view, base + BREACH) is sla.SlaState.MET  # type: ignore[arg-type]
    view.first_response_at = None
    view.status = Status.CLOSED
    assert sla.sla_state(view, base + BREACH) is sla.SlaState.NONE  # type: ignore[arg-type]


async def test_scan_uses_a_settings_target_in_seconds(core, clock, database_url):
    fast = Core(
        db=core.db,
        settings=settings_for(database_url, sla_targets="urgent=40s,high=1m,medium=2m,low=3m"),
        clock=clock,
    )
    customer = await make_user(fast, Role.CUSTOMER)
    ticket = await make_ticket(fast, customer, priority=Priority.URGENT)
    clock.advance(seconds=30)
    assert [a.threshold for a in (await scan(fast)).alerts] == [SlaThreshold.WARNING]
    clock.advance(seconds=10)
    assert [(a.ticket_id, a.threshold) for a in (await scan(fast)).alerts] == [
        (ticket.id, SlaThreshold.BREACH)
    ]
