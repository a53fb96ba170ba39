"""Never lost, never doubled, end to end: Slack retries (also to a second replica on the same
database), double submissions, rate limits and server errors from Slack, per-thread order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from bot.app import BotServer
from bot.delivery import OutboxWorker
from core.outbox import OutboxKind
from devslack.requests import BotClient, SlackRequestSigner
from devslack.stage import AGENT, CUSTOMER, SIGNING_SECRET, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import detail, open_ticket, staff_cards, with_event_id
from tests.factories import outbox_rows


@asynccontextmanager
async def second_replica(stage: Stage) -> AsyncIterator[tuple[BotServer, BotClient]]:
    """Another bot process behind the same load balancer: same database, same Slack."""
    server = BotServer(
        stage.settings(stage.fake.api_url),
        core=stage.runtime.core,
        run_worker=False,
        migrate=False,
    )
    base_url = await server.start()
    client = BotClient(base_url, SlackRequestSigner(SIGNING_SECRET))
    try:
        yield server, client
    finally:
        await client.close()
        await server.stop()


async def settle_replica(stage: Stage, server: BotServer) -> None:
    assert server.runtime is not None
    await server.runtime.wait_idle()
    await OutboxWorker(server.runtime, worker_id="replica-2").drain()
    await stage.settle()


# --------------------------------------------------------------------------- Slack retries


async def test_retried_customer_message_creates_one_reply_and_one_relay(stage):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    first = with_event_id(
        customer.says(opened.dm, "It happened again at 10:00", thread_ts=opened.confirmation.ts),
        "EvRETRY0001",
    )
    assert (await stage.act(first)).status == 200
    for attempt in (1, 2, 3):
        response = await stage.act(first, retry_num=attempt, retry_reason="http_timeout")
        assert response.status == 200
    async with second_replica(stage) as (server, client):
        response = await client.send(first, retry_num=2, retry_reason="http_timeout")
        assert response.status == 200
        await settle_replica(stage, server)
    replies = [r for r in (await detail(stage, opened.number)).replies if "10:00" in r.body]
    assert len(replies) == 1
    relays = [
        m for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if "10:00" in m.text_content
    ]
    assert len(relays) == 1


async def test_retried_staff_reply_is_relayed_and_reacted_to_once(stage):
    opened = await open_ticket(stage)
    request = with_event_id(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Restart please", thread_ts=opened.card.ts),
        "EvRETRY0002",
    )
    await stage.act(request)
    async with second_replica(stage) as (server, client):
        await client.send(request, retry_num=1)
        await settle_replica(stage, server)
    await stage.act(request, retry_num=3)
    in_dm = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if "Restart please" in m.text_content
    ]
    assert len(in_dm) == 1
    reactions = [c for c in stage.fake.calls_to("reactions.add") if c.ok]
    assert len(reactions) == 1


async def test_redelivery_with_a_new_event_id_is_still_deduplicated_by_message_ts(stage):
    opened = await open_ticket(stage)
    request = stage.user(CUSTOMER).says(opened.dm, "Same message", thread_ts=opened.confirmation.ts)
    await stage.act(with_event_id(request, "EvFIRST0001"))
    await stage.act(with_event_id(request, "EvOTHER0002"))
    replies = [r for r in (await detail(stage, opened.number)).replies if r.body == "Same message"]
    assert len(replies) == 1


async def test_double_view_submission_creates_one_ticket(stage):
    customer = stage.user(CUSTOMER)
    await stage.act(customer.slash_command("new Printer on fire", channel_id=stage.dm(CUSTOMER)))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    values = {
        "title_block": {"title": "Printer on fire"},
        "description_block": {"description": "Smoke everywhere"},
        "priority_block": {"priority": "high"},
    }
    submission = customer.submit(view, values)
    first = await stage.act(submission)
    second = await stage.act(customer.submit(view, values))  # the user clicked twice
    async with second_replica(stage) as (server, client):
        third = await client.send(submission)
        await settle_replica(stage, server)
    assert first.status == second.status == third.status == 200
    assert "errors" not in (first.json, second.json, third.json)
    assert len(staff_cards(stage)) == 1
    confirmations = [m for m in stage.fake.messages(stage.dm(CUSTOMER)) if m.bot_id]
    assert len(confirmations) == 1


async def test_retried_slash_command_runs_once(stage):
    opened = await open_ticket(stage)
    command = stage.user(AGENT).slash_command(
        f"reply {opened.number} We are on it", channel_id=STAFF_CHANNEL
    )
    await stage.act(command)
    await stage.act(command)
    async with second_replica(stage) as (server, client):
        await client.send(command)
        await settle_replica(stage, server)
    replies = [r for r in (await detail(stage, opened.number)).replies if r.body == "We are on it"]
    assert len(replies) == 1
    in_dm = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if "We are on it" in m.text_content
    ]
    assert len(in_dm) == 1
    answers = [e for e in stage.fake.ephemerals(AGENT.user_id) if "Reply sent" in e.text_content]
    assert len(answers) == 1  # the command ran once, not just its reply once


async def test_retried_dm_outside_a_thread_is_answered_once(stage):
    dm = stage.dm(CUSTOMER)
    request = with_event_id(stage.user(CUSTOMER).says(dm, "hello?"), "EvRETRY0003")
    await stage.act(request)
    await stage.act(request, retry_num=1)
    async with second_replica(stage) as (server, client):
        await client.send(request, retry_num=2)
        await settle_replica(stage, server)
    guidance = [m for m in stage.fake.messages(dm) if m.bot_id]
    assert len(guidance) == 1


async def test_retried_new_command_opens_one_modal(stage):
    command = stage.user(CUSTOMER).slash_command("new Once only", channel_id=stage.dm(CUSTOMER))
    await stage.act(command)
    await stage.act(command)
    assert len(stage.fake.views_opened(CUSTOMER.user_id)) == 1
    assert not [c for c in stage.fake.calls_to("views.open") if not c.ok]


# --------------------------------------------------------------------------- Slack failing


async def test_rate_limited_post_is_retried_after_retry_after_and_delivered_once(stage, clock):
    opened = await open_ticket(stage)
    stage.fake.fail_next("chat.postMessage", status=429, retry_after=7)
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Try the new client", thread_ts=opened.card.ts)
    )
    relay = [
        r
        for r in await outbox_rows(stage.runtime.core)
        if r.kind == OutboxKind.CUSTOMER_THREAD_POST
    ][-1]
    assert relay.delivered_at is None and relay.failed_at is None
    assert relay.attempts == 1 and "429" in (relay.last_error or "")
    assert relay.next_attempt_at.replace(tzinfo=None) == (
        clock.now() + timedelta(seconds=7)
    ).replace(tzinfo=None)
    in_dm = lambda: [  # noqa: E731
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if "Try the new client" in m.text_content
    ]
    assert in_dm() == []
    clock.advance(seconds=6)
    await stage.settle()
    assert in_dm() == []  # still waiting: Retry-After is honoured
    clock.advance(seconds=2)
    await stage.settle()
    assert len(in_dm()) == 1
    relay = next(r for r in await outbox_rows(stage.runtime.core) if r.id == relay.id)
    assert relay.delivered_at is not None and relay.attempts == 2
    posted = [
        c for c in stage.fake.calls_to("chat.postMessage") if "Try the new client" in str(c.params)
    ]
    assert [c.status for c in posted] == [429, 200]


async def test_server_error_then_success_delivers_once(stage, clock):
    opened = await open_ticket(stage)
    stage.fake.fail_next("chat.postMessage", status=500)
    await stage.act(
        stage.user(CUSTOMER).says(opened.dm, "Any news?", thread_ts=opened.confirmation.ts)
    )
    relays = lambda: [  # noqa: E731
        m
        for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts)
        if "Any news?" in m.text_content
    ]
    assert relays() == []
    row = [
        r for r in await outbox_rows(stage.runtime.core) if r.kind == OutboxKind.STAFF_THREAD_POST
    ][-1]
    assert row.next_attempt_at.replace(tzinfo=None) > clock.now().replace(tzinfo=None)
    clock.advance(minutes=1)
    await stage.settle()
    assert len(relays()) == 1
    clock.advance(minutes=30)
    await stage.settle()
    assert len(relays()) == 1


async def test_order_within_a_thread_is_kept_while_slack_rate_limits(stage, clock):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    for text in ("!reply first", "!reply second", "!reply third"):
        await stage.send(agent.says(STAFF_CHANNEL, text, thread_ts=opened.card.ts))
        await stage.runtime.wait_idle()
    stage.fake.fail_next("chat.postMessage", status=429, retry_after=3)
    await stage.settle()
    thread = lambda: [  # noqa: E731
        m.text_content.split("\n")[-1].lstrip("> ").strip()
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
    ]
    assert thread() == []  # the first is held back, and the others wait behind it
    clock.advance(seconds=4)
    await stage.settle()
    assert thread() == ["first", "second", "third"]


async def test_post_that_timed_out_but_reached_slack_is_not_posted_again(stage, clock):
    # Slack stored the message but the answer never came back: the retry finds the message
    # by the outbox id in its metadata instead of posting a second card.
    customer = stage.user(CUSTOMER)
    await stage.act(customer.slash_command("new Slow Slack", channel_id=stage.dm(CUSTOMER)))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    await stage.send(customer.submit(view, {"title_block": {"title": "Slow Slack"}}))
    await stage.runtime.wait_idle()
    stage.runtime.client.timeout = 0.3  # the bot gives up long before the fake answers

    def is_card(method, params):
        return method == "chat.postMessage" and params.get("channel") == STAFF_CHANNEL

    rule = stage.fake.fail_for(is_card, 1, status="timeout", delay=0.6, then_process=True)
    await stage.settle()
    for _ in range(500):  # the fake finishes the parked call on its own, a moment later
        if staff_cards(stage):
            break
        await asyncio.sleep(0.01)
    stage.runtime.client.timeout = 10
    assert rule.hits == 1 and len(staff_cards(stage)) == 1
    card_row = next(
        r for r in await outbox_rows(stage.runtime.core) if r.kind == OutboxKind.STAFF_CARD_CREATE
    )
    assert card_row.delivered_at is None and "Timeout" in (card_row.last_error or "")
    clock.advance(minutes=1)
    await stage.settle()
    assert len(staff_cards(stage)) == 1
    posts = [
        c for c in stage.fake.calls_to("chat.postMessage") if c.params["channel"] == STAFF_CHANNEL
    ]
    assert len(posts) == 1  # the retry looked (conversations.history) instead of posting
    assert [c for c in stage.fake.calls_to("conversations.history") if c.ok]
    card_row = next(r for r in await outbox_rows(stage.runtime.core) if r.id == card_row.id)
    assert card_row.delivered_at is not None
    # The card found again is the ticket's staff thread: staff replies still land there.
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply On it", thread_ts=staff_cards(stage)[0].ts)
    )
    dm = stage.dm(CUSTOMER)
    assert any("On it" in m.text_content for m in stage.fake.messages(dm) if m.is_reply)


async def test_permanent_failure_is_recorded_and_later_messages_go_ahead(stage):
    opened = await open_ticket(stage)
    stage.fake.fail_next("chat.postMessage", error="invalid_blocks")
    agent = stage.user(AGENT)
    await stage.act(agent.says(STAFF_CHANNEL, "!reply first answer", thread_ts=opened.card.ts))
    await stage.act(agent.says(STAFF_CHANNEL, "!reply second answer", thread_ts=opened.card.ts))
    rows = [
        r
        for r in await outbox_rows(stage.runtime.core)
        if r.kind == OutboxKind.CUSTOMER_THREAD_POST
    ]
    assert rows[0].failed_at is not None and "invalid_blocks" in (rows[0].last_error or "")
    assert rows[1].delivered_at is not None
    thread = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert [m for m in thread if "second answer" in m.text_content]
    assert not [m for m in thread if "first answer" in m.text_content]
