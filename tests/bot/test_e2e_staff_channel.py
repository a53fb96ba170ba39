"""The staff channel stays fit for internal notes while the bot runs: made public, shared with
another organisation, archived or left without the bot, every replica holds the staff messages
(queued, not failed), /readyz says why and the managers are told once; safe again, the held
messages go out in order. Customers are served throughout.

The leak scanner that ends every scenario counts a message as public when its channel was
public (or shared) at any time after it was posted: a note posted during an exposure fails the
scenario even when the channel is private again at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert

from core import outbox
from core.enums import Audience
from core.models import OutboxMessage
from core.outbox import OutboxKind
from devslack.requests import event_callback_body
from devslack.server import StoredMessage
from devslack.stage import ADMIN, AGENT, CUSTOMER, MANAGER_CHANNEL, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import Opened, open_ticket
from tests.bot.test_ops import scrape, value
from tests.factories import outbox_rows

OTHER_ORG = "T0OTHERORG"


# ------------------------------------------------------------------------------------ helpers


async def slack_sends(stage: Stage, events: Iterable[dict[str, Any]], *, to: Any = None) -> None:
    """Slack delivers `events` (to the main bot, or to a replica), then everything settles."""
    for event in events:
        response = await (to or stage).send(event_callback_body(event))
        assert response.status == 200
    await stage.settle()


async def readiness(server_url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(server_url + "/readyz") as response:
        return response.status, await response.json()


async def ready(stage: Stage) -> tuple[int, dict[str, Any]]:
    assert stage.server is not None
    return await readiness(stage.server.base_url)


async def agent_notes(stage: Stage, opened: Opened, text: str) -> None:
    """The agent adds an internal note with `/ticket note` (from a DM with the bot)."""
    command = stage.user(AGENT).slash_command(
        f"note {opened.number} {text}", channel_id=stage.dm(AGENT)
    )
    await stage.act(command)


async def customer_says(stage: Stage, opened: Opened, text: str) -> None:
    await stage.act(stage.user(CUSTOMER).says(opened.dm, text, thread_ts=opened.confirmation.ts))


def staff_thread(stage: Stage, opened: Opened) -> list[str]:
    """The bot's replies in the ticket's staff thread, as text."""
    return [
        m.text_content
        for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts)
        if m.bot_id is not None
    ]


def everything_in_staff_channel(stage: Stage) -> str:
    return "\n".join(m.text_content for m in stage.fake.messages(STAFF_CHANNEL))


def manager_notices(stage: Stage, headline: str) -> list[StoredMessage]:
    return [
        m
        for m in stage.fake.messages(MANAGER_CHANNEL)
        if m.bot_id is not None and headline in m.text_content
    ]


def unsafe_notices(stage: Stage) -> list[StoredMessage]:
    return manager_notices(stage, "Staff channel not safe")


def safe_notices(stage: Stage) -> list[StoredMessage]:
    return manager_notices(stage, "Staff channel safe again")


async def held_staff_messages(stage: Stage) -> list[Any]:
    return [
        row
        for row in await outbox_rows(stage.runtime.core)
        if row.thread_key.startswith("staff:") and row.delivered_at is None
    ]


# ------------------------------------------------------------------------------------ scenarios


async def test_channel_made_public_holds_notes_fails_readiness_and_tells_managers_once(stage):
    opened = await open_ticket(stage)
    staff_before = len(stage.fake.messages(STAFF_CHANNEL))

    events = stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id)
    assert events[0]["subtype"] == "channel_convert_to_public"
    assert events[0]["channel_type"] == "channel"
    await slack_sends(stage, events)
    await slack_sends(stage, events)  # Slack's retry of the same news: still one notice

    note = stage.unique("Customer is on the legacy plan, do not offer a refund")
    await agent_notes(stage, opened, note)
    # The customer keeps being served: their message is recorded, a public reply reaches them.
    await customer_says(stage, opened, "Still dropping, any news?")
    answer = stage.unique("We rolled out a fix, please try again")
    await stage.act(
        stage.user(AGENT).slash_command(
            f"reply {opened.number} {answer}", channel_id=stage.dm(AGENT)
        )
    )

    assert note not in everything_in_staff_channel(stage)
    assert len(stage.fake.messages(STAFF_CHANNEL)) == staff_before + 1  # the conversion notice
    assert any(
        answer in m.text_content for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
    )
    held = await held_staff_messages(stage)
    # The note, the customer's message, the answer and the card's update: held, not failed.
    assert sorted(row.kind for row in held) == [
        "staff_card_refresh",
        *["staff_thread_post"] * 3,
    ]
    assert all(row.failed_at is None and row.attempts == 0 for row in held)

    status, body = await ready(stage)
    assert status == 503 and body["failing"] == ["staff_channel"]
    reason = body["checks"]["staff_channel"]
    assert STAFF_CHANNEL in reason and "is public" in reason and "held" in reason

    [notice] = unsafe_notices(stage)
    assert f"<#{STAFF_CHANNEL}" in str(notice.blocks)
    assert "is public" in notice.text_content and "held" in notice.text_content
    assert "Change to a private channel" in notice.text_content  # what to do
    # The channel stays public: the leak scanner at the end checks the note never got there.


async def test_periodic_recheck_notices_a_public_channel_without_any_event(stage):
    opened = await open_ticket(stage)
    stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id)  # the event never arrives
    assert stage.server is not None and stage.server.staff_channel is not None

    await stage.server.staff_channel.recheck(cause="periodic")
    await stage.settle()
    note = stage.unique("Billing dispute, keep internal")
    await agent_notes(stage, opened, note)

    assert note not in everything_in_staff_channel(stage)
    assert len(await held_staff_messages(stage)) == 1
    status, body = await ready(stage)
    assert status == 503 and "is public" in body["checks"]["staff_channel"]
    assert len(unsafe_notices(stage)) == 1

    await stage.server.staff_channel.recheck(cause="periodic")  # still public: no new notice
    await stage.settle()
    assert len(unsafe_notices(stage)) == 1


async def test_each_server_runs_the_periodic_recheck_itself(stage):
    # A second bot whose recheck interval is short: its own loop notices the public channel,
    # with no event and no call from the test.
    stage.settings_overrides["staff_channel_recheck_seconds"] = 0.02
    replica = await stage.start_replica()
    guard = replica.server.staff_channel
    assert guard is not None
    stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id)
    state = await recorded(guard, safe=False)
    assert state.problem is not None and state.problem.value == "public"
    stage.fake.make_private(STAFF_CHANNEL, by=ADMIN.user_id)
    await recorded(guard, safe=True)


async def recorded(guard: Any, *, safe: bool) -> Any:
    """The staff channel's record once a periodic recheck has made it safe (or unsafe)."""
    for _ in range(1000):
        state = await guard.state()
        if state is not None and state.safe is safe:
            return state
        await asyncio.sleep(0.01)
    pytest.fail(f"no periodic recheck recorded the channel as {'safe' if safe else 'unsafe'}")


async def test_another_replica_holds_staff_messages_as_soon_as_one_finds_the_channel_public(
    stage,
):
    opened = await open_ticket(stage)
    replica = await stage.start_replica()

    # Slack hands the conversion to the replica; the main bot never hears of it.
    await slack_sends(stage, stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id), to=replica)
    assert stage.server is not None and stage.server.staff_channel is not None
    assert stage.server.staff_channel.verdict is not None
    assert stage.server.staff_channel.verdict.problem is None  # its own last look was fine

    note = stage.unique("Internal: customer threatened to churn")
    await agent_notes(stage, opened, note)  # handled by the main bot
    assert stage.worker is not None
    await stage.worker.drain()  # the main bot's own worker, alone
    await replica.worker.drain()

    assert note not in everything_in_staff_channel(stage)
    assert len(await held_staff_messages(stage)) == 1
    for url in (stage.server.base_url, replica.server.base_url):
        status, body = await readiness(url)
        assert status == 503 and body["failing"] == ["staff_channel"], url
    assert len(unsafe_notices(stage)) == 1

    # Both replicas notice on their own as well: still one notice.
    await stage.server.staff_channel.recheck(cause="periodic")
    await stage.settle()
    assert len(unsafe_notices(stage)) == 1

    # Private again, found by the main bot's recheck: the held note goes out, everyone ready.
    stage.fake.make_private(STAFF_CHANNEL, by=ADMIN.user_id)
    await stage.server.staff_channel.recheck(cause="periodic")
    await stage.settle()
    assert any(note in text for text in staff_thread(stage, opened))
    for url in (stage.server.base_url, replica.server.base_url):
        assert (await readiness(url))[0] == 200, url
    assert len(safe_notices(stage)) == 1


async def test_made_private_again_the_held_messages_go_out_in_order(stage):
    opened = await open_ticket(stage)
    await slack_sends(stage, stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id))

    first = stage.unique("First note: checked the logs")
    second = stage.unique("Customer asks again")
    third = stage.unique("Second note: escalated to network team")
    await agent_notes(stage, opened, first)
    await customer_says(stage, opened, second)
    await agent_notes(stage, opened, third)
    # A ticket opened meanwhile: the customer is answered, its card waits.
    await stage.open_ticket(CUSTOMER, title="Printer jammed")
    cards = [m for m in stage.fake.messages(STAFF_CHANNEL) if m.bot_id and not m.is_reply]
    assert len(cards) == 1
    confirmations = [m for m in stage.fake.messages(opened.dm) if m.bot_id and not m.is_reply]
    assert len(confirmations) == 2
    assert (await ready(stage))[0] == 503

    await slack_sends(stage, stage.fake.make_private(STAFF_CHANNEL, by=ADMIN.user_id))

    thread = staff_thread(stage, opened)
    positions = [
        next(i for i, text in enumerate(thread) if needle in text)
        for needle in (first, second, third)
    ]
    assert positions == sorted(positions)
    cards = [m for m in stage.fake.messages(STAFF_CHANNEL) if m.bot_id and not m.is_reply]
    assert len(cards) == 2 and "Printer jammed" in cards[-1].text_content
    assert await held_staff_messages(stage) == []
    status, body = await ready(stage)
    assert status == 200 and body["checks"]["staff_channel"] == "ok"
    assert len(unsafe_notices(stage)) == 1 and len(safe_notices(stage)) == 1
    assert "was public" in safe_notices(stage)[0].text_content


async def test_a_finding_after_the_claim_gives_the_message_back_unposted(stage, monkeypatch):
    opened = await open_ticket(stage)
    guard = stage.server.staff_channel if stage.server else None
    assert guard is not None
    claim = outbox.claim_batch
    exposed: list[bool] = []

    async def claim_then_the_channel_goes_public(*args: Any, **kwargs: Any) -> Any:
        claimed = await claim(*args, **kwargs)
        if claimed and not exposed:  # another replica records the exposure right now
            exposed.append(True)
            stage.fake.make_public(STAFF_CHANNEL, by=ADMIN.user_id)
            await guard.recheck(cause="periodic")
        return claimed

    monkeypatch.setattr(outbox, "claim_batch", claim_then_the_channel_goes_public)
    note = stage.unique("Note claimed just before the channel went public")
    await agent_notes(stage, opened, note)

    assert exposed and note not in everything_in_staff_channel(stage)
    [held] = await held_staff_messages(stage)
    assert held.attempts == 0 and held.locked_until is None and held.failed_at is None
    monkeypatch.undo()

    await slack_sends(stage, stage.fake.make_private(STAFF_CHANNEL, by=ADMIN.user_id))
    assert any(note in text for text in staff_thread(stage, opened))


@pytest.mark.parametrize(
    ("problem", "reason", "advice"),
    [
        ("shared", "shared with another organisation", "Stop sharing it"),
        ("bot_removed", "no longer has ticketbot as a member", "/invite @ticketbot"),
        ("archived", "is archived", "Unarchive it"),
    ],
)
async def test_shared_archived_or_without_the_bot_the_channel_holds_notes_too(
    stage, problem, reason, advice
):
    opened = await open_ticket(stage)
    fake = stage.fake
    if problem == "shared":
        events = fake.share_channel(STAFF_CHANNEL, team_id=OTHER_ORG)
        assert events[0]["type"] == "channel_shared"
    elif problem == "bot_removed":
        events = fake.kick(STAFF_CHANNEL, fake.bot_user_id, by=ADMIN.user_id)
        assert [e["type"] for e in events] == ["group_left", "member_left_channel"]
    else:
        events = fake.archive_channel(STAFF_CHANNEL, by=ADMIN.user_id)
        assert events[0]["type"] == "group_archive"
    await slack_sends(stage, events)

    note = stage.unique("Internal: waiting for the vendor")
    await agent_notes(stage, opened, note)
    assert note not in everything_in_staff_channel(stage)
    [held] = await held_staff_messages(stage)
    assert held.failed_at is None  # not given up on (an archived channel used to fail it)
    status, body = await ready(stage)
    assert status == 503 and reason in body["checks"]["staff_channel"]
    [notice] = unsafe_notices(stage)
    assert reason in notice.text_content and advice in notice.text_content

    if problem == "shared":
        events = fake.unshare_channel(STAFF_CHANNEL, team_id=OTHER_ORG)
    elif problem == "bot_removed":
        events = fake.invite(STAFF_CHANNEL, fake.bot_user_id, by=ADMIN.user_id)
    else:
        events = fake.unarchive_channel(STAFF_CHANNEL, by=ADMIN.user_id)
    await slack_sends(stage, events)
    assert any(note in text for text in staff_thread(stage, opened))
    assert (await ready(stage))[0] == 200
    assert len(safe_notices(stage)) == 1


async def test_events_about_other_channels_or_other_members_change_nothing(stage):
    await open_ticket(stage)
    fake = stage.fake
    calls = len(fake.calls_to("conversations.info"))
    await slack_sends(stage, fake.kick(STAFF_CHANNEL, CUSTOMER.user_id, by=ADMIN.user_id))
    await slack_sends(stage, fake.archive_channel("CGENERAL01", by=ADMIN.user_id))
    assert len(fake.calls_to("conversations.info")) == calls
    assert (await ready(stage))[0] == 200


async def test_readiness_does_not_fail_on_a_large_outbox_backlog(stage, clock):
    """One person can fill the outbox for every replica alike (a thread flood): readiness
    judges this process, and the backlog stays a metric."""
    await open_ticket(stage)
    ticket_id = (await outbox_rows(stage.runtime.core))[0].ticket_id
    assert ticket_id is not None
    later = clock.now() + timedelta(hours=1)  # waiting, not yet due: the scenario ends quickly
    rows = [
        {
            "kind": OutboxKind.CUSTOMER_THREAD_POST.value,
            "ticket_id": ticket_id,
            "thread_key": outbox.thread_key(Audience.CUSTOMER, ticket_id),
            "payload": {"event": "reply", "reply_id": 0},
            "created_at": clock.now(),
            "next_attempt_at": later,
            "attempts": 0,
        }
        for _ in range(1_500)
    ]
    async with stage.runtime.core.db.transaction() as session:
        await session.execute(insert(OutboxMessage), rows)

    status, body = await ready(stage)
    assert status == 200, body
    assert "outbox" not in body["checks"]
    assert value(await scrape(stage), "ticketbot_outbox_backlog") == 1_500
