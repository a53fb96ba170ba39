"""The leak scanners themselves: they judge what customers received against what staff meant
as internal (not against the stored flag), and ticket data against the recipient's right at
the moment it was shown. Each case plants the leak the scanner must find."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from core import admin, replies
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack.leaks import scan_for_leaks
from devslack.methods.files import SharedFile
from devslack.requests import event_callback_body
from devslack.stage import ADMIN, AGENT, CUSTOMER, CUSTOMER_2, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket, user
from tests.conftest import settings_for, truncate_all


@pytest.fixture
async def unscanned(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[Stage]:
    """A stage whose leaks the test examines itself (no scan at the end)."""
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    try:
        async with Stage(database_url=database_url, clock=clock, core=core) as running:
            yield running
    finally:
        await truncate_all(database)


async def test_a_text_meant_as_a_note_but_stored_public_is_a_leak(unscanned):
    stage = unscanned
    opened = await open_ticket(stage, CUSTOMER)
    text = stage.unique("Meant for staff only")
    stage.fake.record_intent(AGENT.user_id, text, internal=True)
    agent = await user(stage, AGENT)
    # The bot got the intent wrong and stored it as a public reply:
    await replies.add_reply(
        stage.runtime.core, actor_id=agent.id, ticket=opened.number, body=text, internal=False
    )
    await stage.settle()
    leaks = await scan_for_leaks(stage.runtime.core, stage.fake)
    assert [leak.note for leak in leaks] == [text]
    assert CUSTOMER.user_id in leaks[0].where


async def test_a_staff_thread_message_without_the_marker_counts_as_meant_internal(unscanned):
    stage = unscanned
    opened = await open_ticket(stage, CUSTOMER)
    text = stage.unique("Thread words are notes")
    stage.fake.post_as_user(STAFF_CHANNEL, AGENT.user_id, text, thread_ts=opened.card.ts)
    await stage.runtime.client.chat_postMessage(channel=opened.dm, text=f"copied: {text}")
    leaks = await scan_for_leaks(stage.runtime.core, stage.fake)
    assert [leak.note for leak in leaks] == [text]


async def test_a_confirmed_copy_is_not_a_leak(unscanned):
    stage = unscanned
    opened = await open_ticket(stage, CUSTOMER)
    text = stage.unique("Confirmed for the customer")
    stage.fake.post_as_user(STAFF_CHANNEL, AGENT.user_id, text, thread_ts=opened.card.ts)
    stage.fake.record_confirmed_public(AGENT.user_id, f"{text} and more")
    await stage.runtime.client.chat_postMessage(channel=opened.dm, text=text)
    assert await scan_for_leaks(stage.runtime.core, stage.fake) == []


async def test_ticket_data_in_a_dm_after_the_recipient_lost_the_right_is_a_leak(unscanned, clock):
    stage = unscanned
    description = stage.unique("Description only staff and Alice may read")
    opened = await open_ticket(stage, CUSTOMER, description=description)
    dana = await user(stage, AGENT)
    dm = stage.dm(AGENT)
    await stage.runtime.client.chat_postMessage(channel=dm, text=f"before: {description}")
    assert await scan_for_leaks(stage.runtime.core, stage.fake) == []
    boss = await user(stage, ADMIN)
    await admin.change_role(stage.runtime.core, actor_id=boss.id, user_id=dana.id, role="customer")
    clock.advance(minutes=5)
    await stage.runtime.client.chat_postMessage(channel=dm, text=f"after: {description}")
    leaks = await scan_for_leaks(stage.runtime.core, stage.fake)
    assert [leak.note for leak in leaks] == [description]
    assert opened.number  # (the ticket is Alice's; Bob never saw it)
    assert not [leak for leak in leaks if CUSTOMER_2.user_id in leak.where]


async def test_a_notes_file_in_a_customers_thread_is_a_leak_whatever_its_name(unscanned):
    stage = unscanned
    opened = await open_ticket(stage)
    secret = os.urandom(64)
    note = stage.fake.share_files(
        STAFF_CHANNEL,
        AGENT.user_id,
        [SharedFile("trace.log", secret)],
        text="our side of it",
        thread_ts=opened.card.ts,
    )
    await stage.act(event_callback_body(stage.fake.message_event(note)))
    assert await scan_for_leaks(stage.runtime.core, stage.fake) == []
    # Planted: the same bytes uploaded, under another name, into the customer's thread.
    client = AsyncWebClient(token=stage.fake.bot_token, base_url=stage.fake.api_url)
    await client.files_upload_v2(
        content=secret, filename="renamed.bin", channel=opened.dm, thread_ts=opened.confirmation.ts
    )
    leaks = await scan_for_leaks(stage.runtime.core, stage.fake)
    assert [leak.note for leak in leaks] == ["file trace.log"]
    assert CUSTOMER.user_id in leaks[0].where
    # Deleting it afterwards does not undo that the customer saw it.
    [planted] = [m for m in stage.fake.messages(opened.dm, opened.confirmation.ts) if m.files]
    await client.files_delete(file=planted.files[0]["id"])
    assert stage.fake.message(opened.dm, planted.ts).deleted
    assert len(await scan_for_leaks(stage.runtime.core, stage.fake)) == 1
