"""Where a search's time goes: every SQL statement of `search_tickets`, timed, and the plans of
the slow ones with EXPLAIN (ANALYZE, BUFFERS), on a database seeded by `bench.core --keep`.

    python -m bench.search_plans --database-url postgresql+asyncpg://postgres@127.0.0.1/NAME
    python -m bench.search_plans ... --terms email,thermal --explain-over 2

It only reads (the searches' rate-limit counts aside) and never drops the database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

import asyncpg
from sqlalchemy import event

from bench.core import DEFAULT_URL, Vocabulary, _load, pg_dsn, search_terms
from core.context import Core
from core.search import search_tickets
from core.settings import CoreSettings


def _label(statement: str) -> str:
    flat = " ".join(statement.split())
    for marker, name in (
        ("WITH counted AS", "start: actor, count, estimate"),
        ("ticket_search_estimate", "estimate"),
        ("ts_rank", "rank slice"),
        ("ts_headline", "load + snippets"),
        ("rate_limit_counters", "rate limit"),
        ("FROM users", "actor"),
        ("SELECT true", "one more?"),
    ):
        if marker in flat:
            return name
    return flat[:40]


async def main(args: argparse.Namespace) -> None:
    url: str = args.database_url
    settings = CoreSettings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        search_limit=10**9,
    )
    core = Core.from_settings(settings)
    dsn = pg_dsn(url)
    connection = await asyncpg.connect(dsn)
    agent = await connection.fetchval("SELECT min(id) FROM users WHERE role = 'agent'")
    vocab = Vocabulary.build(args.vocabulary, seed=args.seed)
    terms, broad = search_terms(vocab)
    chosen = args.terms.split(",") if args.terms else terms + broad
    captured: list[tuple[str, Any, float]] = []
    started: dict[int, float] = {}

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        started[id(cursor)] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        began = started.pop(id(cursor), time.perf_counter())
        captured.append((statement, parameters, (time.perf_counter() - began) * 1000))

    engine = core.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    print(f"load average {_load()}")
    everything: list[float] = []
    try:
        for term in chosen:
            per_label: dict[str, list[float]] = defaultdict(list)
            totals: list[float] = []
            slowest: dict[str, tuple[float, str, Any]] = {}
            for attempt in range(args.repeat + 2):
                captured.clear()
                began = time.perf_counter()
                await search_tickets(core, actor_id=agent, query=term, page_size=20)
                total = (time.perf_counter() - began) * 1000
                if attempt < 2:
                    continue  # warm-up
                totals.append(total)
                sums: dict[str, float] = defaultdict(float)
                for statement, parameters, ms in captured:
                    label = _label(statement)
                    sums[label] += ms
                    if ms > slowest.get(label, (0.0, "", None))[0]:
                        slowest[label] = (ms, statement, parameters)
                for label, ms in sums.items():
                    per_label[label].append(ms)
            ordered = sorted(totals)
            p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
            everything += totals
            print(
                f"\n{term!r}: total p50 {statistics.median(totals):.1f} ms, p95 {p95:.1f} ms, "
                f"max {max(totals):.1f} ms ({args.repeat} calls, load {_load()})"
            )
            for label, values in sorted(per_label.items(), key=lambda item: -sum(item[1])):
                print(
                    f"    {label:<28} p50 {statistics.median(values):6.2f} ms"
                    f"   max {max(values):6.2f} ms"
                )
            for label, (_, statement, parameters) in slowest.items():
                if statistics.median(per_label[label]) < args.explain_over:
                    continue
                async with connection.transaction():
                    await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
                    await connection.execute("SET LOCAL random_page_cost = 1.1")
                    plan = await connection.fetch(
                        "EXPLAIN (ANALYZE, BUFFERS) " + statement, *(parameters or ())
                    )
                print(f"  EXPLAIN (ANALYZE, BUFFERS) of its {label!r} statement:")
                for row in plan:
                    print("    " + row[0])
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        await connection.close()
        await core.close()
    everything.sort()
    if everything:
        p95 = everything[min(len(everything) - 1, round(0.95 * (len(everything) - 1)))]
        print(f"\nall these queries: p50 {statistics.median(everything):.1f} ms, p95 {p95:.1f} ms")
    print(f"load average {_load()}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.search_plans", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--terms", default="", help="comma-separated; default: bench.core's")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--explain-over", type=float, default=1.0, help="ms (median)")
    parser.add_argument("--vocabulary", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=20261128)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if not __package__:
        raise SystemExit(
            "run it as a module from the repository root: python -m bench.search_plans"
        )
    asyncio.run(main(parse_args(sys.argv[1:])))
