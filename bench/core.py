"""Core benchmark on PostgreSQL: ticket creation, list pages with totals, and full-text search.

Run from the repository root (not as a file path: bench/core.py would shadow the core package):

    python -m bench.core                      # 1,000,000 tickets in a scratch database
    python -m bench.core --tickets 100000     # a quicker run

By default it creates the scratch database `ticketbot_bench` (dropping a leftover one of that
name), migrates it with Alembic, bulk-loads users, tickets and replies with COPY, vacuums and
analyses it (as autovacuum would on a live desk), measures, and drops it. With --database-url
it uses a database of another name, which must not exist yet (it is never dropped unless it
was created here). Each figure is printed with its target and PASS or FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import string
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

from core import search
from core.context import Core
from core.enums import Priority, Status
from core.search import search_tickets
from core.search.recent import refresh_recent_index
from core.settings import CoreSettings
from core.tickets import TicketFilters, create_ticket, list_tickets
from core.tickets.new_rows import CREATE_PG
from migrations import run_migrations

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1/ticketbot_bench"
SCRATCH_NAME = "ticketbot_bench"

# Targets (the search and list ones are defined at 1,000,000 tickets).
SEARCH_P95_MS = 20.0
SEARCH_VS_ILIKE = 50.0
LIST_P95_MS = 20.0
CREATE_VS_RAW = 0.5

# ---------------------------------------------------------------------------------------------
# text: a Zipf-distributed vocabulary of a few thousand words, support-desk words among them


def _words(text: str) -> list[str]:
    return text.split()


STOP_WORDS = _words(
    "the a to and of is it in my on for this that with not we i be was are from at as have "
    "can but when after please our an"
)

DESK_WORDS = _words(
    "password login account invoice billing payment refund printer driver laptop monitor "
    "keyboard mouse vpn network wifi router firewall proxy certificate email mailbox calendar "
    "meeting license subscription upgrade install update crash error timeout latency slow freeze "
    "reboot restart backup restore database server storage disk quota permission access token "
    "session browser cache cookie download upload attachment export import report dashboard "
    "chart spreadsheet document folder share sync phone mobile tablet camera microphone headset "
    "speaker screen display resolution battery charger power cable adapter dock port usb "
    "bluetooth scanner badge door office desk chair shipment order delivery tracking warehouse "
    "stock price discount coupon checkout cart receipt tax currency bank transfer card declined "
    "fraud chargeback contract renewal cancel trial plan tier seat admin user role group team "
    "project task ticket deadline schedule shift holiday payroll salary expense approval "
    "workflow integration webhook api key secret rotation encryption audit compliance policy "
    "retention archive migration outage incident degraded maintenance notification alert sms "
    "voicemail fax scanner toner cartridge paper jam tray duplex queue spooler font template "
    "signature branding logo website domain dns ssl redirect form captcha search filter sort "
    "pagination mobileapp android ios notification crashlog memory cpu thermal fan noise "
    "overheating warranty repair replacement return label courier customs invoice duplicate "
    "typo translation language locale timezone daylight clock sync calendar reminder recurring"
)

ONSETS = [*"bcdfghjklmnprstvwz", "br", "ch", "cl", "dr", "fl", "gr", "pl", "sh", "st", "tr", "th"]
VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"]
CODAS = ["", "", "", "n", "r", "s", "l", "m", "t", "nd", "st", "ck", "ng"]


@dataclass
class Vocabulary:
    words: list[str]
    cumulative: list[float]
    rng: random.Random

    @classmethod
    def build(cls, size: int, seed: int) -> Vocabulary:
        """Stop words first, then content words; support-desk words spread over the ranks."""
        rng = random.Random(seed)
        desk = list(dict.fromkeys(DESK_WORDS))
        made: set[str] = set(desk) | set(STOP_WORDS)
        invented: list[str] = []
        while len(invented) < size - len(desk):
            word = "".join(
                rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                for _ in range(rng.choice((2, 2, 3)))
            )
            if word not in made and 4 <= len(word) <= 12:
                made.add(word)
                invented.append(word)
        content: list[str] = []
        step = size // len(desk)
        desk_iter = iter(desk)
        invented_iter = iter(invented)
        for rank in range(size):
            source = desk_iter if rank % step == 3 else invented_iter
            word = next(source, None) or next(invented_iter, None) or next(desk_iter)
            content.append(word)
        words = STOP_WORDS + content
        total = 0.0
        cumulative = []
        for rank in range(len(words)):
            total += 1.0 / (rank + 1)
            cumulative.append(total)
        return cls(words=words, cumulative=cumulative, rng=rng)

    def text(self, low: int, high: int) -> str:
        count = self.rng.randint(low, high)
        return " ".join(self.rng.choices(self.words, cum_weights=self.cumulative, k=count))

    def title(self) -> str:
        return self.text(4, 10).capitalize()[:150]

    def rank_of(self, word: str) -> int:
        return self.words.index(word)


# ---------------------------------------------------------------------------------------------
# the scratch database


def pg_dsn(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?", 1)[0]


async def server_connection(url: str) -> asyncpg.Connection:
    base = pg_dsn(url).rsplit("/", 1)[0]
    return await asyncpg.connect(f"{base}/postgres")


async def create_database(url: str) -> None:
    name = database_name(url)
    connection = await server_connection(url)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and name != SCRATCH_NAME:
            raise SystemExit(f"database {name!r} exists; the bench only uses a new database")
        if exists:
            await connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def drop_database(url: str) -> None:
    connection = await server_connection(url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# seeding


@dataclass
class Population:
    companies: int
    customers: list[tuple[int, int | None]]  # (user id, company id)
    agents: list[int]
    tickets: int
    replies: int


STATUS_WEIGHTS = {
    "open": 15,
    "in_progress": 10,
    "waiting_on_customer": 5,
    "resolved": 30,
    "closed": 40,
}
PRIORITY_WEIGHTS = {"low": 30, "medium": 45, "high": 20, "urgent": 5}
SLA = {
    "low": timedelta(hours=24),
    "medium": timedelta(hours=8),
    "high": timedelta(hours=2),
    "urgent": timedelta(minutes=30),
}

TICKET_COLUMNS = [
    "id",
    "number",
    "title",
    "description",
    "status",
    "priority",
    "category_id",
    "customer_id",
    "company_id",
    "assignee_id",
    "created_by_id",
    "created_at",
    "updated_at",
    "first_response_at",
    "resolved_at",
    "closed_at",
    "deleted_at",
    "deleted_by_id",
    "sla_started_at",
    "sla_warning_at",
    "sla_breach_at",
    "version",
]
REPLY_COLUMNS = ["ticket_id", "author_id", "body", "is_internal", "created_at", "deleted_at"]


async def seed(dsn: str, vocab: Vocabulary, tickets: int, *, chunk: int = 20_000) -> Population:
    """Bulk-load companies, users, categories, tickets and replies with COPY.

    Secondary indexes of tickets and replies are dropped for the load and rebuilt from their
    own definitions afterwards (faster than maintaining them row by row), foreign keys are not
    re-checked for generated rows, and the tables are vacuumed and analysed at the end.
    """
    rng = vocab.rng
    now = datetime.now(UTC)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET maintenance_work_mem = '1GB'")
        companies = max(10, tickets // 2000)
        customer_count = max(100, tickets // 50)
        await connection.copy_records_to_table(
            "companies",
            records=[(i, f"Company {i}", now) for i in range(1, companies + 1)],
            columns=["id", "name", "created_at"],
        )
        await connection.copy_records_to_table(
            "categories",
            records=[(i, f"Category {i}", True, now) for i in range(1, 13)],
            columns=["id", "name", "is_active", "created_at"],
        )
        users: list[tuple[Any, ...]] = []
        customers: list[tuple[int, int | None]] = []
        agents: list[int] = []
        for user_id in range(1, customer_count + 60 + 1):
            if user_id <= customer_count:
                role = "customer"
                company = rng.randint(1, companies) if rng.random() < 0.7 else None
                customers.append((user_id, company))
            else:
                role = "agent" if user_id <= customer_count + 50 else "manager"
                company = None
                agents.append(user_id)
            users.append(
                (user_id, f"U{user_id:09d}", f"User {user_id}", role, company, True, now, now)
            )
        await connection.copy_records_to_table(
            "users",
            records=users,
            columns=[
                "id",
                "slack_user_id",
                "display_name",
                "role",
                "company_id",
                "is_active",
                "created_at",
                "updated_at",
            ],
        )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users));"
            "SELECT setval(pg_get_serial_sequence('companies', 'id'), "
            "(SELECT max(id) FROM companies));"
            "SELECT setval(pg_get_serial_sequence('categories', 'id'), 12)"
        )
        indexes = await connection.fetch(
            """
            SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.schemaname = 'public'
              AND i.tablename IN ('tickets', 'replies', 'ticket_search')
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
            """
        )
        for index in indexes:
            await connection.execute(f'DROP INDEX "{index["indexname"]}"')
        await connection.execute("SET session_replication_role = replica")
        replies = 0
        start = now - timedelta(days=3 * 365)
        span = (now - timedelta(days=1) - start).total_seconds()
        for first in range(1, tickets + 1, chunk):
            last = min(tickets, first + chunk - 1)
            ticket_rows, reply_rows = _ticket_chunk(
                vocab, first, last, tickets, start, span, customers, agents
            )
            await connection.copy_records_to_table(
                "tickets", records=ticket_rows, columns=TICKET_COLUMNS
            )
            await connection.copy_records_to_table(
                "replies", records=reply_rows, columns=REPLY_COLUMNS
            )
            replies += len(reply_rows)
            print(f"  loaded {last:,} tickets, {replies:,} replies", end="\r", flush=True)
        print()
        await connection.execute("SET session_replication_role = DEFAULT")
        for index in indexes:
            if index["indexdef"].find(" ON public.ticket_search ") < 0:
                await connection.execute(index["indexdef"])
        # COPY as a replica fired no trigger: the search documents are written in one go,
        # then indexed, as migration 0004 does.
        await connection.execute("SELECT ticket_search_rebuild()")
        for index in indexes:
            if index["indexdef"].find(" ON public.ticket_search ") >= 0:
                await connection.execute(index["indexdef"])
        await connection.execute(f"SELECT setval('ticket_number_seq', {tickets})")
        await connection.execute("UPDATE ticket_counter SET value = $1", tickets)
        await connection.execute("VACUUM (ANALYZE)")
        await connection.execute("CHECKPOINT")  # the load's writes are not the runs' business
        return Population(companies, customers, agents, tickets, replies)
    finally:
        await connection.close()


def _ticket_chunk(
    vocab: Vocabulary,
    first: int,
    last: int,
    total: int,
    start: datetime,
    span: float,
    customers: list[tuple[int, int | None]],
    agents: list[int],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    rng = vocab.rng
    statuses = list(STATUS_WEIGHTS)
    status_weights = list(STATUS_WEIGHTS.values())
    priorities = list(PRIORITY_WEIGHTS)
    priority_weights = list(PRIORITY_WEIGHTS.values())
    tickets: list[tuple[Any, ...]] = []
    replies: list[tuple[Any, ...]] = []
    for number in range(first, last + 1):
        ticket_id = uuid.uuid4()
        created = start + timedelta(seconds=span * number / total + rng.random())
        status = rng.choices(statuses, status_weights)[0]
        priority = rng.choices(priorities, priority_weights)[0]
        customer, company = rng.choice(customers)
        assignee = rng.choice(agents) if status != "open" or rng.random() < 0.5 else None
        answered = status != "open" or rng.random() < 0.3
        first_response = created + timedelta(minutes=rng.randint(5, 600)) if answered else None
        resolved = created + timedelta(days=rng.randint(1, 20)) if status == "resolved" else None
        closed = created + timedelta(days=rng.randint(1, 30)) if status == "closed" else None
        deleted = rng.random() < 0.005
        warning = created + SLA[priority] * 0.75
        breach = created + SLA[priority]
        tickets.append(
            (
                ticket_id,
                number,
                vocab.title(),
                vocab.text(20, 80),
                status,
                priority,
                rng.randint(1, 12) if rng.random() < 0.8 else None,
                customer,
                company,
                assignee,
                customer,
                created,
                closed or resolved or first_response or created,
                first_response,
                resolved,
                closed,
                created + timedelta(days=2) if deleted else None,
                agents[-1] if deleted else None,
                created,
                warning,
                breach,
                1,
            )
        )
        if rng.random() < 0.3:
            for n in range(rng.randint(1, 4)):
                internal = rng.random() < 0.2
                author = rng.choice(agents) if internal or rng.random() < 0.6 else customer
                replies.append(
                    (
                        ticket_id,
                        author,
                        vocab.text(8, 40),
                        internal,
                        created + timedelta(minutes=30 * (n + 1)),
                        None,
                    )
                )
    return tickets, replies


# ---------------------------------------------------------------------------------------------
# measuring


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


async def timed(call: Callable[[], Awaitable[Any]], repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class NewTicket:
    customer_id: int
    company_id: int | None
    title: str
    description: str
    priority: str


RAW_INSERT = """
INSERT INTO tickets (id, number, title, description, status, priority, customer_id, company_id,
    created_by_id, created_at, updated_at, sla_started_at, sla_warning_at, sla_breach_at,
    version)
VALUES ($1, nextval('ticket_number_seq'), $2, $3, 'open', $4, $5, $6, $5, $7, $7, $7, $8, $9, 1)
"""
RAW_TIMERS = """
INSERT INTO sla_timers (ticket_id, threshold, due_at) VALUES ($1, 'warning', $2), ($1, 'breach', $3)
"""


RAW_HISTORY = """
INSERT INTO status_history (ticket_id, from_status, to_status, changed_by_id, changed_at)
VALUES ($1, NULL, 'open', $2, $3)
"""
RAW_AUDIT = """
INSERT INTO audit_log (actor_id, action, ticket_id, details, created_at)
VALUES ($1, 'ticket.created', $2, $3::jsonb, $4)
"""
RAW_OUTBOX = """
INSERT INTO outbox (kind, ticket_id, thread_key, payload, created_at, next_attempt_at, attempts)
VALUES ($1, $2, $3, '{}'::jsonb, $4, $4, 0), ($5, $2, $6, '{}'::jsonb, $4, $4, 0)
"""


RAW_COUNTER = """
INSERT INTO rate_limit_counters AS counter (actor_id, bucket, window_start, count)
VALUES ($1, 'ticket_create', $2, 1)
ON CONFLICT (actor_id, bucket, window_start) DO UPDATE SET count = counter.count + 1
RETURNING counter.count
"""
RAW_ACTOR = "SELECT * FROM users WHERE id = $1"


def _specs(population: Population, count: int) -> list[NewTicket]:
    rng = random.Random(7)
    letters = string.ascii_lowercase
    specs = []
    for _ in range(count):
        customer, company = rng.choice(population.customers)
        words = [
            "".join(rng.choices(letters, k=rng.randint(3, 9))) for _ in range(rng.randint(25, 60))
        ]
        specs.append(
            NewTicket(
                customer,
                company,
                " ".join(words[:6]).capitalize(),
                " ".join(words[6:]),
                rng.choice(list(PRIORITY_WEIGHTS)),
            )
        )
    return specs


async def bench_creation(core: Core, dsn: str, population: Population, count: int) -> None:
    """Ticket creations per second, four ways, in interleaved blocks (the same conditions):

    - the core (`create_ticket`);
    - the baseline of the target: raw asyncpg INSERTs of the same rows the core writes (the
      rate-limit count, the ticket, its status history, audit entry, two outbox messages and
      two SLA timers), one prepared statement per table in one transaction;
    - for scale: a single-row INSERT of the ticket alone (no transaction, no other row);
    - for scale: the core's own two statements (the actor read, then `CREATE_PG`, which
      writes every row in one statement) sent raw in one transaction: the floor of the
      core's design without SQLAlchemy and Python around it."""
    specs = _specs(population, count * 4)
    parts = [specs[i * count : (i + 1) * count] for i in range(4)]
    core_specs, rows_specs, single_specs, floor_specs = parts
    compiled = CREATE_PG.compile(dialect=postgresql.asyncpg.dialect())  # type: ignore[no-untyped-call]
    names = compiled.positiontup or []
    connection = await asyncpg.connect(dsn)
    seconds = {"core": 0.0, "rows": 0.0, "single": 0.0, "floor": 0.0}
    try:
        single = await connection.prepare(RAW_INSERT + " RETURNING id, number")
        counter = await connection.prepare(RAW_COUNTER)
        history = await connection.prepare(RAW_HISTORY)
        audit = await connection.prepare(RAW_AUDIT)
        outbox = await connection.prepare(RAW_OUTBOX)
        timers = await connection.prepare(RAW_TIMERS)
        actor = await connection.prepare(RAW_ACTOR)
        create = await connection.prepare(compiled.string)
        for spec in specs[:20]:  # warm up connections, caches and prepared statements
            await create_ticket(
                core, actor_id=spec.customer_id, title=spec.title, priority=spec.priority
            )

        async def insert_ticket(spec: NewTicket, now: datetime) -> Any:
            sla = SLA[spec.priority]
            return await single.fetchrow(
                uuid.uuid4(),
                spec.title,
                spec.description,
                spec.priority,
                spec.customer_id,
                spec.company_id,
                now,
                now + sla * 0.75,
                now + sla,
            )

        async def same_rows(spec: NewTicket) -> None:
            now = datetime.now(UTC)
            sla = SLA[spec.priority]
            async with connection.transaction():
                await counter.fetch(spec.customer_id, now.replace(second=0, microsecond=0))
                row = await insert_ticket(spec, now)
                await timers.fetch(row["id"], now + sla * 0.75, now + sla)
                await history.fetch(row["id"], spec.customer_id, now)
                details = f'{{"number": {row["number"]}, "priority": "{spec.priority}"}}'
                await audit.fetch(spec.customer_id, row["id"], details, now)
                await outbox.fetch(
                    "staff_card_create",
                    row["id"],
                    f"staff:{row['id']}",
                    now,
                    "customer_thread_create",
                    f"customer:{row['id']}",
                )

        async def single_row(spec: NewTicket) -> None:
            await insert_ticket(spec, datetime.now(UTC))

        async def floor(spec: NewTicket) -> None:
            now = datetime.now(UTC)
            sla = SLA[spec.priority]
            ticket_id = uuid.uuid4()
            values = {
                "actor_id": spec.customer_id,
                "bucket": "ticket_create",
                "window_start": now.replace(second=0, microsecond=0),
                "id": ticket_id,
                "title": spec.title,
                "description": spec.description,
                "status": "open",
                "priority": spec.priority,
                "category_id": None,
                "customer_id": spec.customer_id,
                "company_id": spec.company_id,
                "now": now,
                "warning_at": now + sla * 0.75,
                "breach_at": now + sla,
                "idempotency_key": None,
                "limit": 10**9,
                "action": "ticket.created",
                "details": f'{{"priority": "{spec.priority}"}}',
                "staff_kind": "staff_card_create",
                "staff_key": f"staff:{ticket_id}",
                "customer_kind": "customer_thread_create",
                "customer_key": f"customer:{ticket_id}",
                "warning": "warning",
                "breach": "breach",
            }
            async with connection.transaction():
                await actor.fetchrow(spec.customer_id)
                await create.fetchrow(*(values[name] for name in names))

        async def through_core(spec: NewTicket) -> None:
            await create_ticket(
                core,
                actor_id=spec.customer_id,
                title=spec.title,
                description=spec.description,
                priority=spec.priority,
            )

        ways = (
            ("core", through_core, core_specs),
            ("rows", same_rows, rows_specs),
            ("single", single_row, single_specs),
            ("floor", floor, floor_specs),
        )
        block = 250
        for offset in range(0, count, block):  # interleaved, so all see the same conditions
            for name, way, chosen in ways:
                began = time.perf_counter()
                for spec in chosen[offset : offset + block]:
                    await way(spec)
                seconds[name] += time.perf_counter() - began
    finally:
        await connection.close()
    rate = {name: count / spent for name, spent in seconds.items()}
    ratio = rate["core"] / rate["rows"]
    print(f"(a) ticket creation, {count:,} sequential calls each (interleaved blocks of 250)")
    print(f"    core.tickets.create_ticket                            {rate['core']:8.0f} /s")
    print(f"    raw asyncpg INSERTs of the same rows, one transaction {rate['rows']:8.0f} /s")
    print(
        f"    ratio core/raw {ratio:.2f}   target >= {CREATE_VS_RAW:.2f}   "
        f"{verdict(ratio >= CREATE_VS_RAW)}"
    )
    print("    for scale, not the target:")
    print(
        f"    raw single-row INSERT of the ticket alone            {rate['single']:8.0f} /s"
        f"   (core {rate['core'] / rate['single']:.2f}x)"
    )
    print(
        f"    raw asyncpg, the core's own read + one-statement write {rate['floor']:6.0f} /s"
        f"   (core {rate['core'] / rate['floor']:.2f}x; single-row "
        f"{rate['floor'] / rate['single']:.2f}x)"
    )


async def bench_list(core: Core, agent_id: int, repeat: int) -> None:
    filters = TicketFilters(status=Status.OPEN, priority=Priority.HIGH)
    print("(b) core.tickets.list_tickets, status=open priority=high, 20 a page, with total")
    for page in (1, 50):
        total = 0

        async def call(page: int = page) -> None:
            nonlocal total
            result = await list_tickets(
                core, actor_id=agent_id, filters=filters, page=page, page_size=20
            )
            total = result.total

        samples = await timed(call, repeat)
        p50, p95 = percentile(samples, 0.5), percentile(samples, 0.95)
        print(
            f"    page {page:<3} total {total:>8,}   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   "
            f"target p95 <= {LIST_P95_MS:.0f} ms   {verdict(p95 <= LIST_P95_MS)}"
        )


ILIKE_COUNT = """
SELECT count(*) FROM tickets
WHERE deleted_at IS NULL AND (title || ' ' || description) ILIKE ALL($1::text[])
"""
ILIKE_PAGE = """
SELECT id, number, title FROM tickets
WHERE deleted_at IS NULL AND (title || ' ' || description) ILIKE ALL($1::text[])
ORDER BY created_at DESC, number DESC LIMIT 20
"""


async def bench_search(
    core: Core,
    dsn: str,
    agent_id: int,
    terms: list[str],
    broad: list[str],
    repeat: int,
    rounds: int,
) -> None:
    """Each query timed `repeat` times in each of `rounds` rounds (all queries once per round,
    so the rounds see the same conditions); the target is judged on every round, and the
    run-to-run range of the rounds is printed."""
    connection = await asyncpg.connect(dsn)
    print(
        "(c) core.search.search_tickets (staff scope, page 1 of 20, ranked, with total) vs "
        "ILIKE '%term%' on title+description, first page + count(*)"
    )
    print(
        f"    (search ranks the newest {search.RANKED_LIMIT:,} matches; "
        f"'{search.RANKED_LIMIT:,}+': more matched, not counted; {rounds} rounds of "
        f"{repeat} calls per query)"
    )
    print(f"    {await _commit_latency(connection)}")
    print(
        f"    {'query':<22}{'matches':>9}{'p50 ms':>9}{'p95 ms':>9}{'p95 range':>14}"
        f"{'ILIKE ms':>10}{'ILIKE hits':>11}{'ratio':>8}"
    )
    samples: dict[str, list[list[float]]] = {term: [] for term in terms + broad}
    totals: dict[str, str] = {}
    loads: list[str] = []
    try:
        for _ in range(rounds):
            loads.append(_load())
            for term in terms + broad:

                async def call(term: str = term) -> None:
                    page = await search_tickets(core, actor_id=agent_id, query=term, page_size=20)
                    # '+': more matched than the newest ranked
                    totals[term] = f"{page.total:,}{'+' if page.capped else ''}"

                samples[term].append(await timed(call, repeat))
        ratios: list[float] = []
        for term in terms + broad:
            patterns = [f"%{word}%" for word in term.split()]

            async def ilike(patterns: list[str] = patterns) -> None:
                await connection.fetchval(ILIKE_COUNT, patterns)
                await connection.fetch(ILIKE_PAGE, patterns)

            ilike_samples = await timed(ilike, 3, warmup=1)
            ilike_hits = await connection.fetchval(ILIKE_COUNT, patterns)
            every = [sample for run in samples[term] for sample in run]
            p50, p95 = percentile(every, 0.5), percentile(every, 0.95)
            per_round = [percentile(run, 0.95) for run in samples[term]]
            spread = f"{min(per_round):.1f}–{max(per_round):.1f}"
            ilike_p50 = percentile(ilike_samples, 0.5)
            ratio = ilike_p50 / p50
            label = term if term in terms else f"{term} (broad)"
            print(
                f"    {label:<22}{totals[term]:>9}{p50:>9.1f}{p95:>9.1f}{spread:>14}"
                f"{ilike_p50:>10.0f}{ilike_hits:>11,}{ratio:>7.0f}x"
            )
            if term in terms:
                ratios.append(ratio)
    finally:
        await connection.close()
    round_p50: list[float] = []
    round_p95: list[float] = []
    for index in range(rounds):
        realistic = [sample for term in terms for sample in samples[term][index]]
        round_p50.append(percentile(realistic, 0.5))
        round_p95.append(percentile(realistic, 0.95))
        print(
            f"    round {index + 1} (load {loads[index]}): all realistic queries "
            f"p50 {round_p50[-1]:.1f} ms, p95 {round_p95[-1]:.1f} ms"
        )
    worst = max(round_p95)
    print(
        f"    all realistic queries, run-to-run range over {rounds} rounds: "
        f"p50 {min(round_p50):.1f}–{max(round_p50):.1f} ms, "
        f"p95 {min(round_p95):.1f}–{worst:.1f} ms"
        f"   target p95 <= {SEARCH_P95_MS:.0f} ms in every round   "
        f"{verdict(worst <= SEARCH_P95_MS)}"
    )
    print(
        f"    slowest ratio to ILIKE {min(ratios):.0f}x, median {statistics.median(ratios):.0f}x"
        f"   target >= {SEARCH_VS_ILIKE:.0f}x   {verdict(min(ratios) >= SEARCH_VS_ILIKE)}"
    )
    print("    ('broad' rows: a word in a large share of all tickets; shown, not in the targets)")


async def _commit_latency(connection: asyncpg.Connection) -> str:
    """How long a one-row write's commit takes now (every search commits its rate-limit
    count), and how much the kernel still has to write back: both are high right after a
    fresh seed."""
    samples = []
    for _ in range(30):
        began = time.perf_counter()
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO rate_limit_counters AS c (actor_id, bucket, window_start, count) "
                "VALUES ((SELECT min(id) FROM users), 'bench_probe', now(), 1) "
                "ON CONFLICT (actor_id, bucket, window_start) DO UPDATE SET count = c.count + 1"
            )
        samples.append((time.perf_counter() - began) * 1000)
    await connection.execute("DELETE FROM rate_limit_counters WHERE bucket = 'bench_probe'")
    memory = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():  # noqa: ASYNC240
            name, value = line.split(":", 1)
            memory[name] = int(value.split()[0]) // 1024
    except OSError:
        pass
    pending = (
        f", kernel dirty {memory['Dirty']:,} MB, writeback {memory['Writeback']:,} MB"
        if "Dirty" in memory
        else ""
    )
    return (
        f"state: a one-row write + commit p50 {percentile(samples, 0.5):.1f} ms, "
        f"p95 {percentile(samples, 0.95):.1f} ms{pending}"
    )


def search_terms(vocab: Vocabulary) -> tuple[list[str], list[str]]:
    """Queries a support person would type: desk words of varied frequency, pairs, a prefix."""
    desk = [w for w in vocab.words if w in set(DESK_WORDS)]

    def at(fraction: float) -> str:
        return desk[min(len(desk) - 1, int(fraction * len(desk)))]

    singles = [at(0.1), at(0.3), at(0.5), at(0.7), at(0.9)]
    pairs = [f"{at(0.05)} {at(0.2)}", f"{at(0.15)} {at(0.4)}"]
    prefix = at(0.6)[:5] if len(at(0.6)) > 5 else at(0.6)
    return [*singles, *pairs, prefix], [desk[0]]


# ---------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    url: str = args.database_url
    if not url.startswith("postgresql+asyncpg://"):
        raise SystemExit("the bench runs on PostgreSQL: postgresql+asyncpg://user@host/name")
    dsn = pg_dsn(url)
    vocab = Vocabulary.build(args.vocabulary, seed=args.seed)
    created = False
    if not args.reuse:
        await create_database(url)
        created = True
    core: Core | None = None
    try:
        if args.reuse:
            connection = await asyncpg.connect(dsn)
            try:
                row = await connection.fetchrow(
                    "SELECT (SELECT count(*) FROM tickets) AS t, (SELECT count(*) FROM replies) r"
                )
                users = await connection.fetch("SELECT id, role, company_id FROM users")
            finally:
                await connection.close()
            population = Population(
                0,
                [(u["id"], u["company_id"]) for u in users if u["role"] == "customer"],
                [u["id"] for u in users if u["role"] == "agent"],
                row["t"],
                row["r"],
            )
            print(f"reusing {database_name(url)}: {population.tickets:,} tickets")
        else:
            await run_migrations(url)
            began = time.perf_counter()
            print(f"seeding {args.tickets:,} tickets ...")
            population = await seed(dsn, vocab, args.tickets)
            print(
                f"seeded {population.tickets:,} tickets and {population.replies:,} replies "
                f"in {time.perf_counter() - began:.0f} s (COPY, indexes rebuilt, VACUUM ANALYZE)"
            )
        settings = CoreSettings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=url,
            ticket_create_limit=10**9,
            search_limit=10**9,
        )
        core = Core.from_settings(settings)
        # As the scheduler's housekeeping does within a minute of the bot's start, then hourly:
        # the GIN index of the newest tickets (core.search.recent).
        began = time.perf_counter()
        recent = await refresh_recent_index(core)
        if recent is None or recent.start is None:
            print("recent search index: none (too few tickets to need one)")
        else:
            print(
                f"recent search index: tickets numbered above {recent.start:,}, "
                f"{'built' if recent.built else 'in place'} "
                f"({time.perf_counter() - began:.1f} s; housekeeping keeps it)"
            )
        server = await _server_facts(dsn)
        print(f"PostgreSQL {server}")
        print(f"machine: {os.cpu_count()} cores, load average {_load()} at the start")
        print()
        agent_id = population.agents[0]
        terms, broad = search_terms(vocab)
        parts = set(args.parts.split(","))
        if "a" in parts and args.creations:
            await bench_creation(core, dsn, population, args.creations)
        if "b" in parts:
            await bench_list(core, agent_id, args.repeat)
        if "c" in parts:
            await bench_search(core, dsn, agent_id, terms, broad, args.repeat, args.rounds)
        if population.tickets < 1_000_000:
            print(
                f"\nnote: {population.tickets:,} tickets; the search and list targets are "
                "defined at 1,000,000."
            )
        print(f"load average {_load()} at the end (other processes share these cores)")
    finally:
        if core is not None:
            await core.close()
        if created and not args.keep:
            await drop_database(url)


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


async def _server_facts(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        version = await connection.fetchval("SHOW server_version")
        facts = [
            f"{name}={await connection.fetchval(f'SHOW {name}')}"
            for name in ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather")
        ]
        return f"{version} ({', '.join(facts)})"
    finally:
        await connection.close()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.core", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets to seed")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--creations", type=int, default=2000, help="0 to skip (a)")
    parser.add_argument("--repeat", type=int, default=40, help="timed calls per measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="(c): rounds of --repeat calls per query"
    )
    parser.add_argument("--parts", default="a,b,c", help="measurements to run: a,b,c")
    parser.add_argument("--vocabulary", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="measure an already seeded database (from --keep)"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    if not __package__:
        raise SystemExit("run it as a module from the repository root: python -m bench.core")
    asyncio.run(main(parse_args(sys.argv[1:])))
