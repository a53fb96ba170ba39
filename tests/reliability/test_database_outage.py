"""PostgreSQL goes away in the middle of traffic and comes back; the bot is never restarted.

The outage is played by a TCP proxy between the bot and the machine's PostgreSQL (which other
tests share, so it is never restarted itself): first every connection is dropped, one of them in
the middle of a ticket's transaction, then new connections are refused as PostgreSQL refuses
them while it starts up. Requests during the outage are acknowledged and answered with a clear
"try again" (UNAVAILABLE); nothing is half-written; once the database is back the same bot
process serves again and its outbox worker delivers what waited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from core import outbox
from core.clock import FrozenClock
from devslack.requests import BotResponse, SlackRequest
from devslack.server import FakeSlack
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, STAFF_CHANNEL, Stage
from tests.conftest import DATABASES, create_pg_database, drop_pg_database
from tests.factories import outbox_rows
from tests.reliability.support import posts_per_outbox_id, table_counts
from tests.reliability.tcp_proxy import TcpProxy

TRY_AGAIN = "UNAVAILABLE"


@pytest.fixture(params=DATABASES)
async def proxied_stage(
    request: pytest.FixtureRequest, clock: FrozenClock
) -> AsyncIterator[tuple[Stage, TcpProxy]]:
    """The real bot (with its background outbox worker) on a fresh PostgreSQL database that it
    reaches through a proxy the test can cut."""
    if request.param != "postgresql":
        pytest.skip("a database server outage is a PostgreSQL matter: SQLite is a local file")
    url = await create_pg_database("ticketbot_outage")
    proxy = TcpProxy()
    await proxy.start()
    stage = Stage(
        database_url=proxy.url(url.rsplit("/", 1)[1]),
        clock=clock,
        run_worker_task=True,  # the bot's own background worker, as in production
        settings_overrides={"outbox_poll_seconds": 0.05, "slack_api_timeout_seconds": 2},
    )
    try:
        await stage.start()
        yield stage, proxy
    finally:
        proxy.restore()
        await stage.stop()
        await proxy.stop()
        await drop_pg_database(url)


def told(fake: FakeSlack, user_id: str, since: int) -> str:
    """Everything `user_id` was shown since the bookmark: ephemerals, DMs, open modals."""
    return fake.render_for(user_id, since=since)


async def delivered(stage: Stage, *, within: float = 15.0) -> None:
    """Wait, in real time, until the running bot's own worker has handled every message that
    is due (a message waiting for a later retry does not count)."""
    deadline = time.monotonic() + within
    while True:
        await stage.runtime.wait_idle()
        now = stage.clock.now()
        due = [
            r
            for r in await outbox_rows(stage.runtime.core)
            if r.delivered_at is None and r.failed_at is None and r.next_attempt_at <= now
        ]
        if not due:
            return
        assert time.monotonic() < deadline, "the outbox worker did not deliver"
        stage.runtime.wake_outbox()
        await asyncio.sleep(0.05)


async def act(stage: Stage, request: SlackRequest) -> BotResponse:
    response = await stage.send(request)
    await delivered(stage)
    return response


@pytest.mark.slow
async def test_bot_survives_a_postgresql_outage_and_recovers_by_itself(
    proxied_stage: tuple[Stage, TcpProxy], clock: FrozenClock
) -> None:
    stage, proxy = proxied_stage
    fake = stage.fake
    alice, bob, agent = stage.user(CUSTOMER), stage.user(CUSTOMER_2), stage.user(AGENT)
    await act(stage, alice.slash_command("new Mail bounces", channel_id=stage.dm(CUSTOMER)))
    mail_modal = fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    await act(stage, alice.submit(mail_modal, {"title_block": {"title": "Mail bounces"}}))
    card = [m for m in fake.messages(STAFF_CHANNEL) if not m.is_reply][-1]
    dm = stage.dm(CUSTOMER)
    confirmation = [m for m in fake.messages(dm) if m.bot_id and not m.is_reply][-1]
    # A relay Slack refuses just before the outage: it waits in the outbox through it.
    fake.fail_next("chat.postMessage", status=500)
    await act(
        stage, agent.says(STAFF_CHANNEL, "!reply Checking the mail server", thread_ts=card.ts)
    )
    await act(stage, alice.slash_command("new Printer on fire", channel_id=dm))
    modal = fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    values = {
        "title_block": {"title": "Printer on fire"},
        "description_block": {"description": "Smoke everywhere"},
        "priority_block": {"priority": "high"},
    }
    before = await table_counts(stage.runtime.core)

    # 1. The connection drops in the middle of the ticket's transaction (after the ticket row,
    #    at its audit entry): the modal stays open with "try again" under the field.
    proxy.cut_on(b"ticket.created")
    mark = fake.mark()
    response = await stage.send(alice.submit(modal, values))
    await stage.runtime.wait_idle()
    assert proxy.triggered.is_set(), "the transaction was not cut"
    assert response.status == 200
    assert response.json.get("response_action") == "errors"
    assert any(TRY_AGAIN in text for text in response.json["errors"].values())

    # 2. The database is down: connections are dropped at once.
    listing = await stage.send(agent.slash_command("list", channel_id=STAFF_CHANNEL))
    in_thread = await stage.send(alice.says(dm, "Still bouncing", thread_ts=confirmation.ts))
    # 3. PostgreSQL is starting up again: it answers "the database system is starting up".
    proxy.cut(starting_up=True)
    opening = await stage.send(
        bob.slash_command("new Laptop slow", channel_id=stage.dm(CUSTOMER_2))
    )
    again = await stage.send(alice.submit(modal, values))
    await stage.runtime.wait_idle()
    assert stage.server is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(stage.server.base_url + "/readyz") as ready,
    ):
        assert ready.status == 503 and "database" in (await ready.json())["failing"]

    assert [r.status for r in (listing, in_thread, opening, again)] == [200] * 4
    assert again.json.get("response_action") == "errors"
    assert any(TRY_AGAIN in text for text in again.json["errors"].values())
    assert TRY_AGAIN in told(fake, AGENT.user_id, mark)  # /ticket list
    assert TRY_AGAIN in told(fake, CUSTOMER.user_id, mark)  # the thread message
    assert TRY_AGAIN in told(fake, CUSTOMER_2.user_id, mark)  # /ticket new
    assert fake.views_opened(CUSTOMER_2.user_id) == []
    everything = str([c.params for c in fake.calls]) + str([r.body for r in (listing, opening)])
    assert "Traceback" not in everything and "Error(" not in everything
    assert proxy.refused > 0

    # 4. The database is back. The same process serves again, with nothing half-written.
    proxy.restore()
    assert await table_counts(stage.runtime.core) == before
    mark = fake.mark()
    submitted = await stage.send(alice.submit(modal, values))  # the same modal, resubmitted
    assert submitted.status == 200 and "errors" not in submitted.json
    await stage.send(agent.slash_command("list", channel_id=STAFF_CHANNEL))
    await stage.send(alice.says(dm, "Still bouncing", thread_ts=confirmation.ts))
    await stage.runtime.wait_idle()
    assert "Printer on fire" in told(fake, AGENT.user_id, mark)
    clock.advance(minutes=5)  # past the refused relay's backoff
    await delivered(stage)
    assert await outbox.backlog(stage.runtime.core) == 0

    after = await table_counts(stage.runtime.core)
    assert after["tickets"] == before["tickets"] + 1
    assert after["tickets"] == after["ticket.created audits"] == after["card messages"]
    assert after["replies"] == before["replies"] + 1
    rows = await outbox_rows(stage.runtime.core)
    assert all(r.delivered_at is not None and r.failed_at is None for r in rows)
    assert set(posts_per_outbox_id(fake).values()) == {1}
    relayed = [m for m in fake.replies(dm, confirmation.ts) if "mail server" in m.text_content]
    assert len(relayed) == 1
    cards = [m for m in fake.messages(STAFF_CHANNEL) if "Printer on fire" in m.text_content]
    assert len(cards) == 1
