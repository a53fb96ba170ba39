"""The message rate limit end to end: a flood in a ticket thread reaches the other side only up
to the limit and is answered once per window; commands and modals show the refusal too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.payloads import EditReplyPayload
from core.clock import FrozenClock
from core.db import Database
from devslack.stage import AGENT, CUSTOMER, STAFF_CHANNEL, Stage
from tests.bot.conftest import running_stage
from tests.bot.e2e_support import detail, edited, open_ticket

LIMIT = 5
WINDOW_SECONDS = 60


@pytest.fixture
async def limited(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[Stage]:
    """The bot with a message limit of LIMIT a minute (the suite raises it for other tests)."""
    async with running_stage(
        database,
        database_url,
        clock,
        message_limit=LIMIT,
        message_window_seconds=WINDOW_SECONDS,
    ) as running:
        yield running


def bot_messages_with(stage: Stage, channel: str, needle: str, thread_ts: str | None = None):
    return [
        m for m in stage.fake.messages(channel, thread_ts) if m.bot_id and needle in m.text_content
    ]


async def flood(stage: Stage, person, channel: str, thread_ts: str, texts: list[str]) -> None:
    """`person` posts every text in the thread at once, as a script would; then all settles."""
    user = stage.user(person)
    requests = [user.says(channel, text, thread_ts=thread_ts) for text in texts]
    responses = await asyncio.gather(*(stage.send(request) for request in requests))
    assert all(response.status == 200 for response in responses)
    await stage.settle()


async def test_customer_flood_reaches_staff_only_up_to_the_limit_and_is_told_once(limited):
    stage = limited
    opened = await open_ticket(stage)
    texts = [f"flood message {n:02d}" for n in range(LIMIT + 20)]

    await flood(stage, CUSTOMER, opened.dm, opened.confirmation.ts, texts)

    recorded = [r.body for r in (await detail(stage, opened.number)).replies]
    assert len(recorded) == LIMIT and len(set(recorded)) == LIMIT
    relayed = bot_messages_with(stage, STAFF_CHANNEL, "flood message", opened.card.ts)
    # Exactly the accepted messages reach staff, each once; the refused ones never do.
    assert len(relayed) == LIMIT
    for body in recorded:
        assert len([m for m in relayed if body in m.text_content]) == 1
    # Told once, in the thread they wrote in, with when they can write again.
    notices = bot_messages_with(stage, opened.dm, "RATE_LIMITED")
    assert len(notices) == 1
    [notice] = notices
    assert notice.thread_ts == opened.confirmation.ts
    assert f"at most {LIMIT} times per minute" in notice.text_content
    assert "try again in 1 minute" in notice.text_content
    assert f"#{opened.number}" in notice.text_content
    assert not stage.fake.ephemerals(CUSTOMER.user_id)

    # Once the window has passed, the customer is heard again.
    stage.clock.advance(seconds=WINDOW_SECONDS)
    await flood(stage, CUSTOMER, opened.dm, opened.confirmation.ts, ["after the wait"])
    assert len(bot_messages_with(stage, STAFF_CHANNEL, "after the wait", opened.card.ts)) == 1
    assert len(bot_messages_with(stage, opened.dm, "RATE_LIMITED")) == 1


async def test_staff_flood_in_the_card_thread_is_told_once_by_ephemeral(limited):
    stage = limited
    opened = await open_ticket(stage)
    texts = [f"note number {n:02d}" for n in range(LIMIT + 10)]

    await flood(stage, AGENT, STAFF_CHANNEL, opened.card.ts, texts)

    notes = [r for r in (await detail(stage, opened.number)).replies if r.is_internal]
    assert len(notes) == LIMIT
    told = [e for e in stage.fake.ephemerals(AGENT.user_id) if "RATE_LIMITED" in e.text_content]
    assert len(told) == 1
    assert told[0].channel == STAFF_CHANNEL and told[0].thread_ts == opened.card.ts
    assert "not added to ticket" in told[0].text_content
    reactions = [c for c in stage.fake.calls_to("reactions.add") if c.ok]
    assert len(reactions) == LIMIT  # only accepted notes are marked as notes


async def test_edits_in_the_thread_count_and_are_refused_with_one_notice(limited):
    stage = limited
    opened = await open_ticket(stage)
    await flood(stage, CUSTOMER, opened.dm, opened.confirmation.ts, ["version 0"])
    [message] = [
        m for m in stage.fake.messages(opened.dm, opened.confirmation.ts) if m.text == "version 0"
    ]
    for n in range(1, LIMIT + 5):
        await stage.act(edited(stage, message, f"version {n}"))
    # The message used one of the LIMIT writes, so LIMIT - 1 edits went through.
    [reply] = (await detail(stage, opened.number)).replies
    assert reply.body == f"version {LIMIT - 1}"
    # Told once, in the ticket's thread of their DM (not as a new message of the DM).
    told = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if m.bot_id and "RATE_LIMITED" in m.text_content
    ]
    assert len(told) == 1 and "Your edit was not applied" in told[0].text_content
    [copy] = bot_messages_with(stage, STAFF_CHANNEL, "version", opened.card.ts)
    assert f"version {LIMIT - 1}" in copy.text_content


async def test_note_command_past_the_limit_answers_with_the_refusal(limited):
    stage = limited
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    for n in range(LIMIT):
        await stage.act(
            agent.slash_command(f"note {opened.number} note {n}", channel_id=STAFF_CHANNEL)
        )
    before = len(stage.fake.ephemerals(AGENT.user_id))
    await stage.act(agent.slash_command(f"note {opened.number} one more", channel_id=STAFF_CHANNEL))
    [answer] = stage.fake.ephemerals(AGENT.user_id)[before:]
    assert "RATE_LIMITED" in answer.text_content and "try again in" in answer.text_content
    assert len((await detail(stage, opened.number)).replies) == LIMIT


async def test_edit_modal_past_the_limit_shows_the_refusal_under_the_message(limited):
    stage = limited
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    for n in range(LIMIT):
        await stage.act(
            agent.slash_command(f"note {opened.number} note {n}", channel_id=STAFF_CHANNEL)
        )
    note = (await detail(stage, opened.number)).replies[0]
    await stage.act(
        agent.click(
            "reply_edit_open",
            value=EditReplyPayload(reply_id=note.id).dump(),
            message=opened.card,
            channel_id=STAFF_CHANNEL,
        )
    )
    edit_view = stage.fake.views_opened(AGENT.user_id)[-1]
    response = await stage.act(agent.submit(edit_view.to_api(), {"body_block": {"body": "new"}}))
    assert response.json["response_action"] == "errors"
    assert "RATE_LIMITED" in response.json["errors"]["body_block"]
    assert (await detail(stage, opened.number)).replies[0].body == "note 0"
