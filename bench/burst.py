"""Burst benchmark: an outage makes N customers open tickets within a minute, and every ticket
then changes three times (assigned, put in progress, answered). Does the outbox drain as fast
as Slack's rate limits allow, without 429 storms, while every request is still acked at once?

Run from the repository root:

    python -m bench.burst                       # 300 customers, Slack's real limits
    python -m bench.burst --speed 10 --bursts 3 # limits ten times faster, three bursts

It creates a scratch PostgreSQL database (dropped at the end) and starts, each in its own
process, the stand-in Slack with Slack's rate limits enabled (devslack/ratelimits.py; `--speed`
runs Slack's clock faster, and the bot paces at the same speed) and the bot as `serve` runs it
(outbox worker included). This process sends the signed requests: the customers' create-ticket
submissions, spread evenly over `--window` seconds, and for each ticket, `--gap` seconds apart,
an agent's `/ticket assign`, `/ticket status … in_progress` and `/ticket reply`.

It prints: the drain time (first request until the outbox is empty) next to the theoretical
minimum (the slowest rate limit's time for the calls that were made, or the time the last
change was made if later); the number of 429s; the Slack calls next to the changes made
(coalescing); ack p50/p99 during the burst; whether anything was lost (an outbox message not
delivered, a customer without their confirmation, status notice or answer, a card not showing
the final state), doubled (an outbox id posted twice) or out of order (a thread whose posts'
outbox ids are not increasing); and the bot's resident memory idle and after each burst.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from bench.load import _CODES, DEFAULT_PG, Answers, create_database, drop_database
from devslack.requests import (
    SlackRequestSigner,
    make_trigger_id,
    slash_command_body,
    view_submission_body,
)

SIGNING_SECRET = "burst-test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-burst-test-token"
STAFF_CHANNEL = "CSTAFF0001"
MANAGER_CHANNEL = "CMANAGER01"
ADMIN = "UADMIN0001"
AGENTS = [f"UAGENT{i:04d}" for i in range(1, 11)]
P99_TARGET_MS = 100.0


def customer(burst: int, n: int) -> str:
    return f"UB{burst}C{n:05d}"


# --------------------------------------------------------------------------- the servers


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_fake(speed: float, customers: int, bursts: int) -> None:
    """The stand-in Slack with rate limits, and a report endpoint for this benchmark."""
    from devslack.ratelimits import key_of
    from devslack.server import FakeSlack

    fake = FakeSlack(bot_token=BOT_TOKEN)
    await fake.start()
    staff = [ADMIN, *AGENTS]
    fake.add_user(ADMIN, "Burst Admin", email="admin@burst.test")
    for index, agent in enumerate(AGENTS):
        fake.add_user(agent, f"Agent {index}", email=f"agent{index}@burst.test")
    fake.add_channel(STAFF_CHANNEL, "support-triage", is_private=True, members=staff)
    fake.add_channel(MANAGER_CHANNEL, "support-managers", is_private=True, members=[ADMIN])
    for burst in range(bursts):
        for n in range(customers):
            user = customer(burst, n)
            fake.add_user(user, f"Customer {burst}-{n}", email=f"c{burst}-{n}@example.com")

    async def report(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        calls = [c for c in fake.calls if c.time >= since]
        counted: Counter[str] = Counter()
        refused: Counter[str] = Counter()
        for call in calls:
            key = key_of(call.method, call.params)
            if key is not None and call.status != 429:
                counted[key] += 1
            elif key is not None:
                refused[key] += 1
        posted: Counter[int] = Counter()
        disorder = 0
        threads: dict[tuple[str, str], list[int]] = {}
        for channel, stored in fake._messages.items():
            for message in stored:
                payload = (message.metadata or {}).get("event_payload") or {}
                if "outbox_id" not in payload or message.deleted:
                    continue
                posted[int(payload["outbox_id"])] += 1
                root = message.thread_ts or message.ts
                threads.setdefault((channel, root), []).append(int(payload["outbox_id"]))
        for ids in threads.values():
            if ids != sorted(ids):
                disorder += 1
        body = {
            "calls": len(calls),
            "by_method": Counter(c.method for c in calls),
            "rate_limited": sum(1 for c in calls if c.status == 429),
            "rate_limited_lanes": refused.most_common(5),
            "minimum_seconds": fake.rate_limits.theoretical_minimum(counted),
            "slowest": counted.most_common(3),
            "doubled": sum(1 for count in posted.values() if count > 1),
            "threads_out_of_order": disorder,
            "last_call_at": max((c.time for c in calls), default=since),
            "now": fake.now(),
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/report", report)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = next(a for a in runner.addresses if isinstance(a, tuple))[1]
    fake.rate_limits.enable(speed=speed)
    print(f"READY {fake.api_url} http://127.0.0.1:{port}/report", flush=True)
    try:
        await _until_stopped()
    finally:
        await runner.cleanup()
        await fake.stop()


async def serve_bot(database_url: str, api_url: str, speed: float, pacing: str) -> None:
    from bot.app import BotServer
    from bot.logs import configure_logging
    from bot.process import settle_heap
    from bot.settings import BotSettings

    settings = BotSettings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=api_url,
        staff_channel_id=STAFF_CHANNEL,
        manager_channel_id=MANAGER_CHANNEL,
        admin_user_ids=[ADMIN],
        host="127.0.0.1",
        port=0,
        run_scheduler=False,
        log_level="WARNING",
        ticket_create_limit=1_000_000_000,
        message_limit=1_000_000_000,
        slack_pacing_speed=speed,
        slack_pacing=pacing,
    )
    configure_logging(json_lines=True, level="WARNING", secrets=(BOT_TOKEN, SIGNING_SECRET))
    server = BotServer(settings)
    url = await server.start()
    settle_heap()  # as `python -m bot serve` does once started
    if os.environ.get("TICKETBOT_BURST_TRACEMALLOC"):
        _trace_memory()
    print(f"READY {url} {os.getpid()}", flush=True)
    try:
        await _until_stopped()
    finally:
        await server.stop()
        await server.core.close()


def _trace_memory() -> None:
    """TICKETBOT_BURST_TRACEMALLOC=1 (a diagnosis: tracing slows the bot down): on SIGUSR1,
    which the bench sends after each burst, the bot writes to its log the allocations that
    grew most since the previous signal, by line, and the traced total."""
    import gc
    import tracemalloc

    tracemalloc.start(8)
    previous = [tracemalloc.take_snapshot()]

    def snapshot() -> None:
        gc.collect()
        current = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        total = sum(stat.size for stat in current.statistics("filename"))
        print(f"TRACEMALLOC traced {total / 1e6:.2f} MB", file=sys.stderr)
        for stat in current.compare_to(previous[0], "traceback")[:15]:
            where = " <- ".join(str(frame) for frame in reversed(stat.traceback[-4:]))
            print(f"TRACEMALLOC {stat.size_diff / 1e3:+.1f} kB {stat.count_diff:+d} {where}",
                  file=sys.stderr)  # fmt: skip
        previous[0] = current

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, snapshot)


@dataclass
class Process:
    popen: subprocess.Popen[str]
    words: list[str]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def spawn(name: str, args: list[str], log_dir: str) -> Process:
    log = open(os.path.join(log_dir, f"{name}.log"), "w")  # noqa: SIM115 (kept by the child)
    popen = subprocess.Popen(
        [sys.executable, "-m", "bench.burst", *args], stdout=subprocess.PIPE, stderr=log, text=True
    )
    assert popen.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if line.startswith("READY "):
            return Process(popen, line.split()[1:])
        if not line and popen.poll() is not None:
            break
    popen.kill()
    raise SystemExit(f"{name} did not start; see {log.name}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- the burst


@dataclass
class Burst:
    latencies: list[float] = field(default_factory=list)
    # The same latencies by what was sent: create (a view_submission), assign, status, reply.
    by_kind: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    changes: int = 0
    last_change_at: float = 0.0


class Sender:
    def __init__(self, bot_url: str, answers: Answers) -> None:
        self.endpoint = bot_url.rstrip("/") + "/slack/events"
        self.signer = SlackRequestSigner(SIGNING_SECRET)
        self.answers = answers
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=300)
        )

    async def send(self, body: str, burst: Burst | None, kind: str = "other") -> str:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **self.signer.headers(body)}
        sent = time.perf_counter()
        async with self.session.post(self.endpoint, data=body, headers=headers) as response:
            text = await response.text()
            status = response.status
        if burst is not None:
            latency = time.perf_counter() - sent
            burst.latencies.append(latency)
            burst.by_kind.setdefault(kind, []).append(latency)
            burst.changes += 1
            burst.last_change_at = time.perf_counter()
            if status != 200 or '"errors"' in text:
                burst.errors.append(f"HTTP {status}: {text[:200]}")
        return text

    def command(self, user: str, text: str, channel: str = STAFF_CHANNEL) -> str:
        return slash_command_body(
            text=text,
            user_id=user,
            channel_id=channel,
            trigger_id=make_trigger_id(),
            response_url=self.answers.url + uuid.uuid4().hex,
        ).body


def create_body(user: str, title: str, n: int) -> str:
    view = {
        "id": f"V{uuid.uuid4().hex[:10].upper()}",
        "callback_id": "create_ticket",
        "private_metadata": "{}",
        "blocks": [],
    }
    values = {
        "title_block": {"title": title},
        "description_block": {"description": f"Outage report {n}: nothing loads."},
        "priority_block": {"priority": "high"},
    }
    return view_submission_body(user_id=user, view=view, values=values).body


async def ticket_number(db: asyncpg.Pool, title: str) -> int | None:
    for _ in range(600):
        number = await db.fetchval("SELECT number FROM tickets WHERE title = $1", title)
        if number is not None:
            return int(number)
        await asyncio.sleep(0.05)
    return None


async def run_burst(
    sender: Sender, db: asyncpg.Pool, index: int, *, customers: int, window: float, gap: float
) -> Burst:
    burst = Burst()
    run = uuid.uuid4().hex[:6]

    async def one(n: int) -> None:
        await asyncio.sleep(window * n / customers)
        user = customer(index, n)
        title = f"Outage {run} {n}: cannot log in"
        await sender.send(create_body(user, title, n), burst, "create")
        number = await ticket_number(db, title)
        if number is None:
            burst.errors.append(f"ticket {title!r} was not created")
            return
        agent = AGENTS[n % len(AGENTS)]
        for text in (
            f"assign {number} <@{agent}>",
            f"status {number} in_progress",
            f"reply {number} We are on it: the login service is back within the hour.",
        ):
            await asyncio.sleep(gap)
            await sender.send(sender.command(agent, text), burst, text.split()[0])

    await asyncio.gather(*(one(n) for n in range(customers)))
    return burst


def _ms(ordered: list[float], fraction: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000, 1)


def ack_by_kind(burst: Burst) -> dict[str, dict[str, float]]:
    """Ack p50/p99/max as this process saw them, by what was sent."""
    figures = {}
    for kind, latencies in sorted(burst.by_kind.items()):
        ordered = sorted(latencies)
        figures[kind] = {
            "n": len(ordered),
            "p50_ms": _ms(ordered, 0.5),
            "p99_ms": _ms(ordered, 0.99),
            "max_ms": round(ordered[-1] * 1000, 1),
        }
    return figures


async def ack_histogram(http: aiohttp.ClientSession, bot_url: str) -> dict[str, dict[str, float]]:
    """The bot's own ack histogram (time from receiving a request to answering it), by kind:
    cumulative counts per bucket bound, read from its /metrics."""
    async with http.get(bot_url.rstrip("/") + "/metrics") as response:
        text = await response.text()
    counts: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if not line.startswith("ticketbot_slack_ack_seconds_bucket{"):
            continue
        labels, value = line[len("ticketbot_slack_ack_seconds_bucket{") :].split("} ")
        fields = dict(part.split("=", 1) for part in labels.split(","))
        kind, bound = fields["kind"].strip('"'), fields["le"].strip('"')
        counts.setdefault(kind, {})[bound] = float(value)
    return counts


def server_acks_over(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], bound: str
) -> dict[str, str]:
    """Per kind, of the requests answered between two reads: how many took longer than
    `bound` seconds in the bot (from receipt to answer), as "over/total"."""
    result = {}
    for kind, buckets in after.items():
        total = buckets["+Inf"] - before.get(kind, {}).get("+Inf", 0)
        if not total:
            continue
        within = buckets[bound] - before.get(kind, {}).get(bound, 0)
        result[kind] = f"{int(total - within)}/{int(total)}"
    return result


async def backlog(db: asyncpg.Pool) -> tuple[int, int]:
    row = await db.fetchrow(
        "SELECT count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL) AS waiting, "
        "count(*) FILTER (WHERE failed_at IS NOT NULL) AS failed FROM outbox"
    )
    return int(row["waiting"]), int(row["failed"])


async def lost(db: asyncpg.Pool, run_titles: str) -> dict[str, int]:
    """What people should see and do not: checked in the database against the stand-in's
    report (customer threads hold the confirmation, the status notice and the answer)."""
    failed = await db.fetchval("SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL")
    undelivered = await db.fetchval(
        "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL"
    )
    return {"failed": int(failed), "undelivered": int(undelivered)}


async def measure(args: argparse.Namespace, bot_url: str, report_url: str, pid: int, db_url: str):
    answers = Answers()
    await answers.start()
    sender = Sender(bot_url, answers)
    db = await asyncpg.create_pool(
        "postgresql://" + db_url.split("://", 1)[1], min_size=1, max_size=4
    )
    results: list[dict[str, Any]] = []
    try:
        # The agents get their role from the admin (and everyone is known to the desk).
        for agent in AGENTS:
            await sender.send(sender.command(ADMIN, f"role <@{agent}> agent"), None)
            # Spaced out: each looks the mentioned agent up with users.info at once (nothing
            # else tells who they are), and eleven such calls within a second exceed Tier 4's
            # burst at the stand-in, which refused one agent's role change in a run (its 30
            # tickets' changes were then refused NOT_FOUND).
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        idle = rss_mb(pid)
        print(f"bot RSS idle: {idle:.1f} MB")
        async with aiohttp.ClientSession() as http:
            for index in range(args.bursts):
                async with http.get(report_url) as response:
                    since = (await response.json())["now"]
                histogram_before = await ack_histogram(http, bot_url)
                started = time.perf_counter()
                burst = await run_burst(
                    sender, db, index, customers=args.customers, window=args.window, gap=args.gap
                )
                while True:
                    waiting, _ = await backlog(db)
                    if waiting == 0:
                        break
                    await asyncio.sleep(0.2)
                drained = time.perf_counter() - started
                async with http.get(report_url, params={"since": str(since)}) as response:
                    report = await response.json()
                after = rss_mb(pid)
                histogram_after = await ack_histogram(http, bot_url)
                if os.environ.get("TICKETBOT_BURST_TRACEMALLOC"):
                    os.kill(pid, signal.SIGUSR1)  # the bot logs what grew (see _trace_memory)
                refusals = Counter(
                    code
                    for text in answers.texts.values()
                    for code in _CODES
                    if f"`{code}`" in text
                )
                answers.texts.clear()
                missing = await lost(db, "")
                cards_final = await db.fetchval(
                    "SELECT count(*) FROM tickets WHERE status = 'in_progress' AND assignee_id "
                    "IS NOT NULL"
                )
                minimum = max(report["minimum_seconds"], burst.last_change_at - started)
                ordered = sorted(burst.latencies)
                p50 = ordered[len(ordered) // 2] * 1000
                p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
                result = {
                    "burst": index + 1,
                    "customers": args.customers,
                    "drain_s": round(drained, 1),
                    "theoretical_min_s": round(minimum, 1),
                    "ratio": round(drained / minimum, 2) if minimum else None,
                    "slowest_lanes": report["slowest"],
                    "slack_calls": report["calls"],
                    "changes": burst.changes,
                    "rate_limited": report["rate_limited"],
                    "rate_limited_lanes": report["rate_limited_lanes"],
                    "rate_limited_pct": round(100 * report["rate_limited"] / report["calls"], 2),
                    "ack_p50_ms": round(p50, 1),
                    "ack_p99_ms": round(p99, 1),
                    "ack_by_kind": ack_by_kind(burst),
                    "bot_acks_over_100ms": server_acks_over(
                        histogram_before, histogram_after, "0.1"
                    ),
                    "bot_acks_over_50ms": server_acks_over(
                        histogram_before, histogram_after, "0.05"
                    ),
                    "request_errors": len(burst.errors),
                    "outbox_failed": missing["failed"],
                    "outbox_undelivered": missing["undelivered"],
                    "doubled": report["doubled"],
                    "threads_out_of_order": report["threads_out_of_order"],
                    "tickets_in_final_state": int(cards_final),
                    "refusals_by_code": dict(refusals),  # answers through response_url
                    "calls_by_method": report["by_method"],
                    "rss_mb": round(after, 1),
                }
                results.append(result)
                print(json.dumps(result))
                for sample in burst.errors[:3]:
                    print(f"    error: {sample}")
                await db.execute("UPDATE tickets SET status = 'closed' WHERE status <> 'closed'")
    finally:
        await db.close()
        await sender.session.close()
        await answers.stop()
    return idle, results


def summarise(idle: float, results: list[dict[str, Any]]) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average now {load}; {os.cpu_count()} CPUs")
    print(f"{'burst':>5} {'drain s':>8} {'min s':>7} {'ratio':>6} {'calls':>6} {'changes':>7} "
          f"{'429s':>5} {'p50 ms':>7} {'p99 ms':>7} {'req err':>7} {'lost':>5} {'doubled':>7} "
          f"{'order':>6} {'RSS MB':>7}")  # fmt: skip
    for r in results:
        lost_ = r["outbox_failed"] + r["outbox_undelivered"]
        print(
            f"{r['burst']:5d} {r['drain_s']:8.1f} {r['theoretical_min_s']:7.1f} {r['ratio']:6.2f} "
            f"{r['slack_calls']:6d} {r['changes']:7d} {r['rate_limited']:5d} "
            f"{r['ack_p50_ms']:7.1f} {r['ack_p99_ms']:7.1f} {r['request_errors']:7d} {lost_:5d} "
            f"{r['doubled']:7d} {r['threads_out_of_order']:6d} {r['rss_mb']:7.1f}"
        )
    for r in results:
        kinds = ", ".join(
            f"{kind} {f['p50_ms']:.0f}/{f['p99_ms']:.0f}/{f['max_ms']:.0f}"
            for kind, f in r["ack_by_kind"].items()
        )
        print(f"burst {r['burst']} ack p50/p99/max ms by request: {kinds}; in the bot over "
              f"100 ms: {r['bot_acks_over_100ms']}")  # fmt: skip
    print("req err: a request not answered 200 in time (bolt answers 404 after 3 s without an "
          "ack); lost: outbox messages failed or never delivered; order: threads whose posts "
          "are out of written order")  # fmt: skip
    print(f"bot RSS idle {idle:.1f} MB; after each burst: "
          + ", ".join(f"{r['rss_mb']:.1f}" for r in results) + " MB")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    log_dir = tempfile.mkdtemp(prefix="ticketbot-burst-")
    database_url = asyncio.run(create_database(args.pg_server))
    processes: list[Process] = []
    try:
        fake = spawn(
            "fake-slack",
            ["_fake", str(args.speed), str(args.customers), str(args.bursts)],
            log_dir,
        )
        processes.append(fake)
        bot = spawn(
            "bot", ["_bot", database_url, fake.words[0], str(args.speed), args.pacing], log_dir
        )
        processes.append(bot)
        print(f"database {database_url} (fresh)  speed {args.speed:g}x  logs {log_dir}")
        idle, results = asyncio.run(
            measure(args, bot.words[0], fake.words[1], int(bot.words[1]), database_url)
        )
        summarise(idle, results)
        return 0
    finally:
        for process in reversed(processes):
            process.stop()
        asyncio.run(drop_database(database_url))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_fake":
        asyncio.run(serve_fake(float(argv[1]), int(argv[2]), int(argv[3])))
        return 0
    if argv and argv[0] == "_bot":
        from bot.process import run as run_serving  # the event loop `serve` runs on

        run_serving(serve_bot(argv[1], argv[2], float(argv[3]), argv[4]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.burst", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=int, default=300, help="customers per burst")
    parser.add_argument("--window", type=float, default=60, help="seconds to open all tickets")
    parser.add_argument("--gap", type=float, default=5, help="seconds between a ticket's changes")
    parser.add_argument("--bursts", type=int, default=1, help="bursts, one after the other")
    parser.add_argument("--speed", type=float, default=1.0, help="Slack's clock speed-up")
    parser.add_argument(
        "--pacing", default="shared", choices=["shared", "process", "off"], help="the bot's"
    )
    parser.add_argument("--pg-server", default=DEFAULT_PG, help="PostgreSQL server URL")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
