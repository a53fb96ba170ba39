"""The bot process is killed with SIGKILL while it is delivering the outbox, then started again.

The bot runs as a real `python -m bot serve` subprocess against a fresh PostgreSQL database and
a stand-in Slack in the test process. Slack is made slow, customers open tickets over signed
HTTP requests, and the process is killed while posts are on their way (some of which Slack then
completes: the bot acted but never recorded it). The restarted process takes over the dead
worker's leases after OUTBOX_LEASE_SECONDS, finds the posts Slack completed by their metadata,
and delivers the rest: every message exactly once, nothing lost."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest

from core.context import Core
from core.settings import CoreSettings
from devslack.requests import BotClient, SlackRequestSigner, SlackUser
from devslack.server import FakeSlack
from migrations import run_migrations
from tests.conftest import DATABASES, create_pg_database, drop_pg_database
from tests.factories import outbox_rows
from tests.reliability.support import (
    POSTING_KINDS,
    outbox_id_of,
    posts_per_outbox_id,
    wait_for_slack,
)

ROOT = Path(__file__).resolve().parents[2]
SIGNING_SECRET = "kill-test-signing-secret-000000"
STAFF_CHANNEL = "CSTAFFKILL"
MANAGER_CHANNEL = "CMANAGERKL"
CUSTOMERS = [f"UKILLCUST{n}" for n in range(4)]
TICKETS_PER_CUSTOMER = 4
LEASE_SECONDS = 1.5
POST_LATENCY = 0.4  # every chat.postMessage takes this long: delivery is always in progress


@dataclass
class Deployment:
    fake: FakeSlack
    database_url: str
    core: Core
    workdir: Path

    def environment(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "DATABASE_URL": self.database_url,
                "SLACK_API_URL": self.fake.api_url,
                "SLACK_BOT_TOKEN": self.fake.bot_token,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "STAFF_CHANNEL_ID": STAFF_CHANNEL,
                "MANAGER_CHANNEL_ID": MANAGER_CHANNEL,
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "RUN_SCHEDULER": "false",
                "OUTBOX_POLL_SECONDS": "0.1",
                "OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
                "SLACK_API_TIMEOUT_SECONDS": "5",
                "TICKET_CREATE_LIMIT": "1000",
                "IDENTITY_CACHE_SECONDS": "60",
                "METRICS_ENABLED": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
        return env

    async def start_bot(self, name: str) -> tuple[asyncio.subprocess.Process, str]:
        """`python -m bot serve` on a free port; returns once /healthz answers."""
        port = free_port()
        log = log_file(self.workdir / f"{name}.log")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            cwd=self.workdir,  # no stray .env file
            env=self.environment(port),
            stdout=log,
            stderr=log,
        )
        log.close()
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while True:
                if process.returncode is not None:
                    output = (self.workdir / f"{name}.log").read_text()
                    pytest.fail(f"the bot exited with {process.returncode}:\n{output}")
                try:
                    async with session.get(base_url + "/healthz") as response:
                        if response.status == 200:
                            return process, base_url
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "the bot did not start"
                await asyncio.sleep(0.05)


def log_file(path: Path) -> BinaryIO:
    return path.open("wb")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=DATABASES)
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    if request.param != "postgresql":
        pytest.skip("needs a database shared by two processes and a server-side lease: PostgreSQL")
    url = await create_pg_database("ticketbot_kill")
    await run_migrations(url)
    fake = FakeSlack()
    await fake.start()
    for user_id in CUSTOMERS:
        fake.add_user(user_id, f"Customer {user_id[-1]}", email=f"{user_id.lower()}@example.com")
    fake.add_channel(STAFF_CHANNEL, "support-triage", is_private=True)
    fake.add_channel(MANAGER_CHANNEL, "support-managers", is_private=True)
    core = Core.from_settings(CoreSettings(_env_file=None, database_url=url))
    try:
        yield Deployment(fake=fake, database_url=url, core=core, workdir=tmp_path)
    finally:
        await core.close()
        await fake.stop()
        await drop_pg_database(url)


async def open_ticket(client: BotClient, fake: FakeSlack, user_id: str, title: str) -> None:
    person = SlackUser(user_id, fake=fake)
    channel = fake.open_dm(user_id)
    answer = await client.send(person.slash_command(f"new {title}", channel_id=channel))
    assert answer.status == 200
    for _ in range(100):  # the modal opens right after the ack
        views = fake.views_opened(user_id)
        if views and views[-1].to_api()["blocks"] and not views[-1].closed:
            break
        await asyncio.sleep(0.02)
    view = fake.views_opened(user_id)[-1].to_api()
    fake.close_view(view["id"])
    answer = await client.send(person.submit(view, {"title_block": {"title": title}}))
    assert answer.status == 200 and "errors" not in answer.json, answer.json


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.mark.slow
async def test_outbox_survives_sigkill_mid_delivery(deployment: Deployment) -> None:
    fake = deployment.fake
    fake.fail_for("chat.postMessage", status="timeout", delay=POST_LATENCY, then_process=True)
    first, base_url = await deployment.start_bot("first")
    second = None
    client = BotClient(base_url, SlackRequestSigner(SIGNING_SECRET))
    try:
        titles = [
            (user_id, f"Problem {n} of {user_id}")
            for n in range(TICKETS_PER_CUSTOMER)
            for user_id in CUSTOMERS
        ]
        for user_id, title in titles:
            await open_ticket(client, fake, user_id, title)
        await client.close()

        # Kill the process while posts are on their way, after some have arrived.
        deadline = time.monotonic() + 20
        while True:
            posts = fake.calls_to("chat.postMessage")
            finished = [c for c in posts if c.response is not None]
            if len(finished) >= 4 and len(finished) < len(posts):
                break
            assert time.monotonic() < deadline, "delivery never got under way"
            await asyncio.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        assert first.returncode == -signal.SIGKILL

        await wait_for_slack(fake)  # Slack completes what reached it before the kill
        rows = await outbox_rows(deployment.core)
        assert len(rows) == 2 * len(titles)
        orphaned = [r for r in rows if r.delivered_at is None and r.locked_until is not None]
        assert orphaned, "the kill did not interrupt any delivery"
        acted_unrecorded = {
            outbox_id_of(m) for m in fake.messages() if outbox_id_of(m) is not None
        } & {r.id for r in rows if r.delivered_at is None}
        assert acted_unrecorded, "no post that Slack made but the dead bot never recorded"

        restarted_at = time.monotonic()
        second, _ = await deployment.start_bot("second")
        while any(r.delivered_at is None for r in await outbox_rows(deployment.core)):
            assert time.monotonic() - restarted_at < 30, "the restarted bot did not drain"
            await asyncio.sleep(0.1)
        # Taken over after a short lease, not after the old fixed minute.
        assert time.monotonic() - restarted_at < 20
    finally:
        await client.close()
        for process in (first, second):
            if process is not None:
                await stop(process)

    rows = await outbox_rows(deployment.core)
    assert [(r.id, r.last_error) for r in rows if r.failed_at is not None] == []
    posted = posts_per_outbox_id(fake)
    assert {i: n for i, n in posted.items() if n != 1} == {}, "a message was posted twice"
    assert set(posted) == {r.id for r in rows if r.kind in POSTING_KINDS}
    cards = [m.text for m in fake.messages(STAFF_CHANNEL) if not m.is_reply]
    assert len(cards) == len(titles)
    assert all(sum(title in card for card in cards) == 1 for _, title in titles)
    for user_id in CUSTOMERS:
        confirmations = [m for m in fake.messages(fake.open_dm(user_id)) if m.bot_id]
        assert len(confirmations) == TICKETS_PER_CUSTOMER
