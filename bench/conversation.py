"""Long conversations: what adding, editing and deleting one reply costs as a ticket's
conversation grows, on PostgreSQL and SQLite.

Run from the repository root:

    python -m bench.conversation                     # both databases, 10 / 1,000 / 5,000 replies
    python -m bench.conversation --databases sqlite --levels 10,1000 --repeat 20

For each database it creates a scratch database (PostgreSQL: `ticketbot_bench_conversation`,
dropped before and after; SQLite: a temporary file), migrates it, opens one ticket, and grows its
conversation to each level with public replies of the maximum length (BODY_MAX characters).
At each level it times `--repeat` calls of each core service: add_reply (a new public reply,
the conversation grows by these few), edit_reply (a random earlier reply gets a new text of
the maximum length) and delete_reply (a random earlier reply). Each figure is the median, the
p95 and the range of those calls. Target (issue 13): at the largest level, p95 within 2x of
the smallest level's p95, for add and edit.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy import insert

from bench.core import Vocabulary, _load, create_database, drop_database, pg_dsn, verdict
from core.context import Core
from core.enums import Role
from core.models import Reply, User
from core.replies import add_reply, delete_reply, edit_reply
from core.settings import CoreSettings
from core.tickets import create_ticket
from core.validation import BODY_MAX
from migrations import run_migrations

PG_URL = "postgresql+asyncpg://postgres@127.0.0.1/ticketbot_bench_conversation"
TARGET_RATIO = 2.0
FILL_BATCH = 250  # replies written per transaction while growing the conversation


def long_text(vocab: Vocabulary) -> str:
    """A reply of (nearly) BODY_MAX characters of Zipf-distributed words."""
    words: list[str] = []
    length = 0
    while length < BODY_MAX:
        word = vocab.text(1, 1)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[: BODY_MAX - 1].rstrip() + "."


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await call()
    return (time.perf_counter() - began) * 1000


async def run_database(name: str, url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    vocab = Vocabulary.build(4000, seed=args.seed)
    rng = random.Random(args.seed)
    await run_migrations(url)
    settings = CoreSettings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        ticket_create_limit=10**9,
        message_limit=10**9,
    )
    core = Core.from_settings(settings)
    try:
        now = datetime.now(UTC)
        async with core.db.transaction() as session:
            customer = User(
                slack_user_id="UBENCHCUST", display_name="Customer", role=Role.CUSTOMER.value
            )
            agent = User(slack_user_id="UBENCHAGNT", display_name="Agent", role=Role.AGENT.value)
            for user in (customer, agent):
                user.created_at = user.updated_at = now
                session.add(user)
            await session.flush()
            customer_id, agent_id = customer.id, agent.id
        ticket = await create_ticket(
            core,
            actor_id=customer_id,
            title="A very long conversation",
            description=long_text(vocab)[:2000],
        )
        texts = [long_text(vocab) for _ in range(64)]  # reused: writing text is not measured
        replies: list[int] = []  # the agent's replies still there (edit and delete targets)
        results: dict[str, list[float]] = {}
        print(f"{name}: one ticket, replies of {BODY_MAX:,} characters, load average {_load()}")
        print(f"    {'replies':>8}  {'operation':<7}{'median ms':>10}{'p95 ms':>9}{'range ms':>16}")
        for level in args.levels:
            while len(replies) < level:  # grow the conversation, triggers and all
                batch = min(FILL_BATCH, level - len(replies))
                async with core.db.transaction() as session:
                    result = await session.execute(
                        insert(Reply).returning(Reply.id),
                        [
                            {
                                "ticket_id": ticket.id,
                                "author_id": agent_id,
                                "body": rng.choice(texts),
                                "is_internal": False,
                                "created_at": datetime.now(UTC),
                            }
                            for _ in range(batch)
                        ],
                    )
                    replies.extend(result.scalars())

            async def add(replies: list[int] = replies) -> None:
                view = await add_reply(
                    core,
                    actor_id=agent_id,
                    ticket=ticket.number,
                    body=rng.choice(texts),
                    internal=False,
                )
                replies.append(view.id)

            async def edit(replies: list[int] = replies) -> None:
                target = rng.choice(replies)
                body = rng.choice(texts)
                await edit_reply(core, actor_id=agent_id, reply_id=target, body=body)

            async def delete(replies: list[int] = replies) -> None:
                target = replies.pop(rng.randrange(len(replies)))
                await delete_reply(core, actor_id=agent_id, reply_id=target)

            for operation, call in (("add", add), ("edit", edit), ("delete", delete)):
                for _ in range(3):  # warm-up
                    await call()
                samples = [await timed(call) for _ in range(args.repeat)]
                results[f"{operation} {level}"] = samples
                print(
                    f"    {level:>8,}  {operation:<7}{statistics.median(samples):>10.1f}"
                    f"{percentile(samples, 0.95):>9.1f}"
                    f"{min(samples):>8.1f}–{max(samples):<7.1f}"
                )
        first, last = args.levels[0], args.levels[-1]
        for operation in ("add", "edit", "delete"):
            small = percentile(results[f"{operation} {first}"], 0.95)
            large = percentile(results[f"{operation} {last}"], 0.95)
            ratio = large / small
            target = operation in ("add", "edit")
            print(
                f"    {operation:<6} p95 at {last:,} / at {first:,}: {ratio:.2f}x"
                + (
                    f"   target <= {TARGET_RATIO:.0f}x   {verdict(ratio <= TARGET_RATIO)}"
                    if target
                    else "   (shown, no target)"
                )
            )
        print(f"    load average {_load()} at the end")
        return results
    finally:
        await core.close()


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} cores, load average {_load()} at the start")
    for name in args.databases:
        if name == "postgresql":
            await create_database(PG_URL)
            try:
                connection = await asyncpg.connect(pg_dsn(PG_URL))
                version = await connection.fetchval("SHOW server_version")
                await connection.close()
                print(f"\nPostgreSQL {version}, fresh scratch database")
                await run_database(name, PG_URL, args)
            finally:
                await drop_database(PG_URL)
        else:
            with tempfile.TemporaryDirectory() as directory:
                url = f"sqlite+aiosqlite:///{Path(directory) / 'conversation.db'}"
                print("\nSQLite, fresh temporary file")
                await run_database(name, url, args)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.conversation", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument(
        "--databases",
        type=lambda value: value.split(","),
        default=["postgresql", "sqlite"],
        help="postgresql,sqlite",
    )
    parser.add_argument(
        "--levels",
        type=lambda value: [int(level) for level in value.split(",")],
        default=[10, 1000, 5000],
        help="conversation lengths measured, smallest first",
    )
    parser.add_argument("--repeat", type=int, default=40, help="timed calls per figure")
    parser.add_argument("--seed", type=int, default=20261203)
    return parser.parse_args(argv)


if __name__ == "__main__":
    if not __package__:
        raise SystemExit(
            "run it as a module from the repository root: python -m bench.conversation"
        )
    asyncio.run(main(parse_args(sys.argv[1:])))
