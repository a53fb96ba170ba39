"""Search on SQLite: the median and p95 of the same realistic queries as bench.core, on a desk
of --tickets tickets seeded through the models (every FTS5 trigger fires as in use).

    python -m bench.sqlite_search --tickets 50000 --path /tmp/search.db

The file is created (an existing one is replaced) and kept. SQLite is there for tests and a
one-machine desk; this compares designs, it has no target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from bench.core import (
    REPLY_COLUMNS,
    TICKET_COLUMNS,
    Vocabulary,
    _ticket_chunk,
    percentile,
    search_terms,
    timed,
)
from core.context import Core
from core.models import Category, Company, Reply, Ticket, User
from core.search import search_tickets
from core.settings import CoreSettings
from migrations import run_migrations


async def seed(core: Core, vocab: Vocabulary, tickets: int) -> int:
    now = datetime.now(UTC)
    companies = max(10, tickets // 2000)
    customers: list[tuple[int, int | None]] = []
    agents: list[int] = []
    users = []
    for user_id in range(1, max(100, tickets // 50) + 51):
        agent = user_id > max(100, tickets // 50)
        company = None if agent or vocab.rng.random() >= 0.7 else vocab.rng.randint(1, companies)
        if agent:
            agents.append(user_id)
        else:
            customers.append((user_id, company))
        users.append(
            {
                "id": user_id,
                "slack_user_id": f"U{user_id:09d}",
                "display_name": f"User {user_id}",
                "role": "agent" if agent else "customer",
                "company_id": company,
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
    replies = 0
    async with core.db.engine.begin() as connection:
        await connection.execute(
            insert(Company),
            [{"id": i, "name": f"Company {i}", "created_at": now} for i in range(1, companies + 1)],
        )
        await connection.execute(
            insert(Category),
            [
                {"id": i, "name": f"Category {i}", "is_active": True, "created_at": now}
                for i in range(1, 13)
            ],
        )
        await connection.execute(insert(User), users)
        start = now.replace(year=now.year - 2)
        span = (now - start).total_seconds()
        for first in range(1, tickets + 1, 10_000):
            last = min(tickets, first + 9_999)
            ticket_rows, reply_rows = _ticket_chunk(
                vocab, first, last, tickets, start, span, customers, agents
            )
            await connection.execute(
                insert(Ticket), [dict(zip(TICKET_COLUMNS, row, strict=True)) for row in ticket_rows]
            )
            if reply_rows:
                await connection.execute(
                    insert(Reply),
                    [dict(zip(REPLY_COLUMNS, row, strict=True)) for row in reply_rows],
                )
            replies += len(reply_rows)
    return replies


def _searcher(core: Core, actor_id: int, query: str) -> Callable[[], Awaitable[object]]:
    return lambda: search_tickets(core, actor_id=actor_id, query=query)


async def main(args: argparse.Namespace) -> None:
    path = Path(args.path)
    await asyncio.to_thread(path.unlink, missing_ok=True)
    url = f"sqlite+aiosqlite:///{path}"
    await run_migrations(url)
    settings = CoreSettings(
        _env_file=None,
        database_url=url,
        search_limit=10**9,
    )
    core = Core.from_settings(settings)
    try:
        vocab = Vocabulary.build(args.vocabulary, seed=args.seed)
        began = time.perf_counter()
        replies = await seed(core, vocab, args.tickets)
        print(
            f"seeded {args.tickets:,} tickets and {replies:,} replies in "
            f"{time.perf_counter() - began:.0f} s (fresh file {path})"
        )
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        realistic, _ = search_terms(vocab)
        agent_id = max(100, args.tickets // 50) + 1
        everything: list[float] = []
        for query in realistic:
            samples = await timed(_searcher(core, agent_id, query), args.repeat)
            everything += samples
            page = await search_tickets(core, actor_id=agent_id, query=query)
            print(
                f"  {query!r:28} p50 {statistics.median(samples):7.1f} ms  "
                f"p95 {percentile(samples, 0.95):7.1f} ms  (total {page.total})"
            )
        print(
            f"all: p50 {statistics.median(everything):.1f} ms, "
            f"p95 {percentile(everything, 0.95):.1f} ms; "
            f"load average {os.getloadavg()[0]:.1f} at the end"
        )
    finally:
        await core.db.dispose()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sqlite_search", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--path", default="/tmp/ticketbot_search_bench.db")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--vocabulary", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261128)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
