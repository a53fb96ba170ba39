"""SLA scan benchmark on PostgreSQL: one scan (due query plus claims) over a large ticket table.

Run from the repository root:

    python -m bench.sla                      # 1,000,000 tickets, 1,000 of them due
    python -m bench.sla --tickets 100000     # a quicker run

It creates the scratch database `ticketbot_bench_sla` (dropping a leftover one of that name),
migrates it with Alembic, seeds the tickets with one INSERT ... SELECT over generate_series and
the SLA timers of the tickets still awaiting a first response (what the ticket services would
have armed), vacuums and analyses, then measures, in the same run:

- `scan`: core.sla.scan over the due timers, as the scheduler runs it: one statement that takes
  the due armed timers from their index (locking them), fires them (the claims, marked with
  the scan's id) and queues one `sla_alerts` outbox message naming the scan, then the commit.
  Before each run the outbox is emptied and the fired timers armed again (then vacuumed, as
  autovacuum would), so every run does the full work. `--limit` sets the scan's batch size
  (repeat it to measure several; default: all due at once).
- `scan, seq-scan query`: the same scan with the due condition rewritten so that the index
  cannot serve it (COALESCE(due_at, 'infinity') <= now selects the same rows): a sequential
  scan of the timers table, everything else identical. Runs alternate with the indexed ones so
  that both see the same machine.
- `scan statement inside PostgreSQL`: the scan's statement under EXPLAIN ANALYZE (rolled
  back): its execution time in the server, free of the client and the round trips.
- `fan-out`: not part of the scan, printed for scale: the delivery worker's later work on the
  messages one scan queued (core.sla.fan_out of each, in its own transaction: the tickets
  checked again, each alert's manager message, DM and card refresh written), in total per scan.

The target: scan p95 <= 10 ms with the index. Each figure is printed with PASS or FAIL, and the
load average before and after. The database is dropped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime

import asyncpg

import core.sla.scanner as sla_module
from core import outbox
from core.clock import FrozenClock
from core.context import Core
from core.outbox import OutboxKind
from core.settings import CoreSettings
from core.sla import fan_out
from migrations import run_migrations

SCRATCH_NAME = "ticketbot_bench_sla"
SCAN_P95_MS = 10.0
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def _admin(server: str) -> asyncpg.Connection:
    return await asyncpg.connect(f"postgresql://{server}/postgres")


async def create_database(server: str) -> str:
    connection = await _admin(server)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_NAME}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{SCRATCH_NAME}"')
    finally:
        await connection.close()
    return f"postgresql+asyncpg://{server}/{SCRATCH_NAME}"


async def drop_database(server: str) -> None:
    connection = await _admin(server)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{SCRATCH_NAME}" WITH (FORCE)')
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# seed


SEED_SQL = """
INSERT INTO tickets (id, number, title, description, status, priority, customer_id,
    company_id, assignee_id, created_by_id, created_at, updated_at, first_response_at,
    resolved_at, closed_at, sla_started_at, sla_warning_at, sla_breach_at)
SELECT gen_random_uuid(), g, 'Ticket ' || g, '', s.status, s.priority, s.customer, NULL,
    s.assignee, s.customer, s.created, s.created,
    CASE WHEN s.answered THEN s.created + interval '20 minutes' END,
    CASE WHEN s.status IN ('resolved', 'closed') THEN s.created + interval '1 day' END,
    CASE WHEN s.status = 'closed' THEN s.created + interval '2 days' END,
    s.created, s.created + interval '6 hours', s.created + interval '8 hours'
FROM (SELECT $1::bigint AS n, $2::timestamptz AS now, $3::bigint AS due,
             $4::bigint AS customers) AS p
CROSS JOIN generate_series(1, p.n) AS g
CROSS JOIN LATERAL (
    SELECT
        -- The due tickets are the last `due` numbers: created 7 h ago, past their warning.
        -- The newest 2 % are recent (on track, a third of them answered); the rest is history:
        -- 70 % closed, 20 % resolved, 10 % in progress, all answered.
        CASE WHEN g > p.n - p.due THEN p.now - interval '7 hours'
             WHEN g > p.n * 0.98 THEN p.now - ((p.n - g) % 300) * interval '1 minute'
             ELSE p.now - interval '2 days' - ((p.n - g) % 700) * interval '1 day'
        END AS created,
        CASE WHEN g > p.n * 0.98 THEN 'open'
             WHEN g % 10 < 7 THEN 'closed'
             WHEN g % 10 < 9 THEN 'resolved'
             ELSE 'in_progress'
        END AS status,
        (ARRAY['low', 'medium', 'high', 'urgent'])[1 + g % 4] AS priority,
        g <= p.n * 0.98 OR (g <= p.n - p.due AND g % 3 = 0) AS answered,
        1 + (g % p.customers) AS customer,
        CASE WHEN g % 10 = 0 THEN p.customers + 1 + (g % 20) END AS assignee
) AS s
"""

# The timers the ticket services would have armed and the scans left: for every ticket still
# awaiting a first response, each threshold still ahead; for the due tickets (the last `due`
# numbers, created 7 h ago) the warning, due now, and the breach, due in an hour.
TIMERS_SQL = """
INSERT INTO sla_timers (ticket_id, threshold, due_at)
SELECT t.id, k.threshold, k.due_at
FROM tickets AS t
CROSS JOIN LATERAL (VALUES ('warning', t.sla_warning_at), ('breach', t.sla_breach_at))
    AS k (threshold, due_at)
WHERE t.first_response_at IS NULL AND t.deleted_at IS NULL
  AND t.status NOT IN ('resolved', 'closed')
  AND (k.due_at > $1 OR t.number > $2)
"""


async def seed(url: str, *, tickets: int, due: int, customers: int = 5000) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            """
            INSERT INTO users (slack_user_id, display_name, role, created_at, updated_at)
            SELECT 'U' || lpad(g::text, 9, '0'), 'User ' || g,
                CASE WHEN g > $1 THEN 'agent' ELSE 'customer' END, now(), now()
            FROM generate_series(1, $1 + 20) AS g
            """,
            customers,
        )
        started = time.perf_counter()
        await connection.execute(SEED_SQL, tickets, NOW, due, customers)
        await connection.execute(f"SELECT setval('ticket_number_seq', {tickets + 1})")
        await connection.execute(TIMERS_SQL, NOW, tickets - due)
        print(f"seeded {tickets:,} tickets in {time.perf_counter() - started:.1f} s")
        await connection.execute("VACUUM (ANALYZE) tickets, users, sla_timers")
        armed = await connection.fetchval("SELECT count(*) FROM sla_timers")
        now_due = await connection.fetchval(
            "SELECT count(*) FROM sla_timers WHERE due_at <= $1", NOW
        )
        print(f"armed timers: {armed:,}; due now: {now_due:,}")
    finally:
        await connection.close()


async def reset(url: str) -> None:
    """Arm the fired timers again and forget the messages."""
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("TRUNCATE outbox")
        await connection.execute(
            "UPDATE sla_timers SET fired_at = NULL, fired_by = NULL WHERE fired_at IS NOT NULL"
        )
        await connection.execute("VACUUM (ANALYZE) sla_timers, outbox")
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# the sequential-scan version of the due condition

# (condition, order) of the due timers. The sequential version selects and orders the same
# rows (due_at is never NULL), but no index can serve the expressions: PostgreSQL reads the
# whole timers table and sorts it.
INDEXED = (sla_module.DUE_CONDITION, sla_module.DUE_ORDER)
_NOT_INDEXED = "COALESCE(s.due_at, 'infinity')"
SEQUENTIAL = (f"{_NOT_INDEXED} <= $1::timestamptz", f"{_NOT_INDEXED}, s.ticket_id")

# The floor under any scan design: the manager alerts' outbox rows alone, one per due ticket.
OUTBOX_ONLY = """
INSERT INTO outbox (kind, ticket_id, thread_key, payload, created_at, next_attempt_at, attempts)
SELECT 'manager_alert', id, 'manager:' || id,
    jsonb_build_object('threshold', 'warning', 'waited_seconds', 25200), $1, $1, 0
FROM tickets WHERE number > $2 ORDER BY number LIMIT $3
"""


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


# ---------------------------------------------------------------------------------------------
# measurements


async def explain(core: Core, sql: str, limit: int) -> str:
    async with core.db.engine.connect() as connection:
        result = await connection.exec_driver_sql(f"EXPLAIN {sql}", (NOW, limit, uuid.uuid4()))
        rows = result.scalars().all()
        await connection.rollback()
    return "\n".join(f"    {line}" for line in rows)


async def server_time(core: Core, sql: str, limit: int) -> float:
    """A statement's execution time inside PostgreSQL (EXPLAIN ANALYZE without per-node
    timing, rolled back), in ms: free of the client, the round trips and the commit."""
    async with core.db.engine.connect() as connection:
        plan = (
            await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", (NOW, limit, uuid.uuid4())
            )
        ).scalar_one()
        await connection.rollback()
    document = json.loads(plan) if isinstance(plan, str) else plan
    return float(document[0]["Execution Time"])


def report(name: str, samples: list[float], target: float | None = None) -> bool:
    p50, p95 = statistics.median(samples), _pct(samples, 95)
    verdict = ""
    ok = True
    if target is not None:
        ok = p95 <= target
        verdict = f"  target p95 <= {target:g} ms: {'PASS' if ok else 'FAIL'}"
    print(
        f"{name:<56} p50 {p50:8.2f} ms  p95 {p95:8.2f} ms  max {max(samples):8.2f} ms"
        f"  (n={len(samples)}){verdict}"
    )
    return ok


async def fan_out_all(core: Core) -> tuple[float, int]:
    """Fan out every queued `sla_alerts` message as the delivery worker does: total ms and the
    number of alerts written."""
    worker = "bench"
    started = time.perf_counter()
    alerts = 0
    while claimed := await outbox.claim_batch(
        core, worker_id=worker, limit=50, kinds=[OutboxKind.SLA_ALERTS]
    ):
        for message in claimed:
            result = await fan_out(core, message_id=message.id, worker_id=worker)
            alerts += len(result.alerts)
    return (time.perf_counter() - started) * 1000, alerts


async def outbox_only(core: Core, *, due_from: int, limit: int) -> float:
    """The reference: `limit` outbox rows for due tickets in one committed transaction, ms."""
    async with core.db.transaction() as session:
        connection = await session.connection()
        started = time.perf_counter()
        await connection.exec_driver_sql(OUTBOX_ONLY, (NOW, due_from, limit))
    return (time.perf_counter() - started) * 1000


async def measure_scans(
    core: Core, url: str, *, due_from: int, limit: int, due: int, runs: int
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Scan timings with the indexed due condition and with the seq-scan version, the outbox
    reference, and the fan-out of what the indexed scans queued, run alternately (each after a
    reset) so that all see the same machine."""
    expected = min(limit, due)
    indexed: list[float] = []
    sequential: list[float] = []
    reference: list[float] = []
    fanned: list[float] = []
    original = sla_module.FIRE_SQL
    for _ in range(runs):
        for samples, version in ((indexed, INDEXED), (sequential, SEQUENTIAL)):
            await reset(url)
            sla_module.FIRE_SQL = sla_module.fire_sql(*version)
            try:
                started = time.perf_counter()
                result = await sla_module.scan(core, limit=limit)
                samples.append((time.perf_counter() - started) * 1000)
            finally:
                sla_module.FIRE_SQL = original
            if result.fired != expected:
                raise SystemExit(f"a scan claimed {result.fired} of {expected} alerts")
            if version is INDEXED:
                elapsed, written = await fan_out_all(core)
                if written != expected:
                    raise SystemExit(f"a fan-out wrote {written} of {expected} alerts")
                fanned.append(elapsed)
        await reset(url)
        reference.append(await outbox_only(core, due_from=due_from, limit=expected))
    return indexed, sequential, reference, fanned


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sla", description=__doc__.split("\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets to seed")
    parser.add_argument("--due", type=int, default=1_000, help="tickets due for an alert")
    parser.add_argument("--runs", type=int, default=20, help="measured runs per figure")
    parser.add_argument(
        "--limit",
        type=int,
        action="append",
        help="scan batch size; repeat to measure several (default: --due, all in one scan)",
    )
    parser.add_argument("--server", default="postgres@127.0.0.1:5432", help="user@host:port")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args(argv)
    if args.due >= args.tickets // 50:
        parser.error("--due must be well below 2 % of --tickets")
    limits = args.limit or [args.due]

    print(f"PostgreSQL SLA scan benchmark: {args.tickets:,} tickets, {args.due:,} due")
    print(f"load average at start: {load_avg()}")
    url = await create_database(args.server)
    core: Core | None = None
    try:
        await run_migrations(url)
        await seed(url, tickets=args.tickets, due=args.due)
        settings = CoreSettings(_env_file=None, database_url=url)
        core = Core.from_settings(settings, clock=FrozenClock(NOW))
        due_from = args.tickets - args.due

        print("plan, scan:")
        print(await explain(core, sla_module.fire_sql(*INDEXED), args.due))
        print("plan, sequential-scan version (no usable index predicate):")
        print(await explain(core, sla_module.fire_sql(*SEQUENTIAL), args.due))

        # Warm up: the pool opens its connection, the statements get prepared.
        await reset(url)
        await sla_module.scan(core, limit=args.due)
        await fan_out_all(core)

        figures: list[tuple[str, list[float], float | None]] = []
        for limit in limits:
            indexed, sequential, reference, fanned = await measure_scans(
                core, url, due_from=due_from, limit=limit, due=args.due, runs=args.runs
            )
            count = min(limit, args.due)
            label = f"{count:,} alerts per scan"
            figures.append((f"scan, {label}", indexed, SCAN_P95_MS))
            figures.append((f"scan, {label}, seq-scan query", sequential, None))
            figures.append((f"reference: {count:,} outbox rows alone", reference, None))
            figures.append(("fan-out of one scan (not the scan; for scale)", fanned, None))

        conditions = (("index", INDEXED), ("seq-scan version", SEQUENTIAL))
        statement: dict[str, list[float]] = {name: [] for name, _ in conditions}
        for _ in range(args.runs):
            for name, version in conditions:
                await reset(url)
                sql = sla_module.fire_sql(*version)
                statement[name].append(await server_time(core, sql, args.due))
        for name, _ in conditions:
            figures.append((f"scan statement inside PostgreSQL, {name}", statement[name], None))

        print()
        verdicts = [report(name, samples, target) for name, samples, target in figures]
        first, first_seq = figures[0][1], figures[1][1]
        print(
            "the seq-scan version of the scan is "
            f"{statistics.median(first_seq) / statistics.median(first):.1f}x slower (p50)"
        )
        print(f"load average at the end: {load_avg()}")
        return 0 if verdicts[0] else 1
    finally:
        if core is not None:
            await core.close()
        if not args.keep:
            await drop_database(args.server)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
