"""Files in a ticket's threads, end to end: a customer's file reaches the staff thread, a
public staff reply's file the customer's thread, a note's file never a customer. Too large or
withheld files become notes with their name; a crash between the upload and the delivered
mark does not post a file twice; files keep their place among the texts of their thread."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from bot.delivery import OutboxWorker
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack.leaks import scan_for_leaks
from devslack.methods.files import SharedFile
from devslack.requests import SlackRequest, event_callback_body
from devslack.server import StoredMessage
from devslack.stage import AGENT, CUSTOMER, STAFF_CHANNEL, Person, Stage
from tests.bot.e2e_support import Opened, deleted, detail, open_ticket
from tests.conftest import settings_for, truncate_all
from tests.factories import outbox_rows

SMALL_LIMIT = 4096


@pytest.fixture
async def small_limit(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[Stage]:
    """The bot with FILE_MAX_BYTES at 4 KiB; the leak scan runs at the end."""
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    try:
        async with Stage(
            database_url=database_url,
            clock=clock,
            core=core,
            settings_overrides={"file_max_bytes": SMALL_LIMIT},
        ) as running:
            yield running
            await running.settle()
            assert not await scan_for_leaks(core, running.fake)
    finally:
        await truncate_all(database)


def content(size: int = 64) -> bytes:
    """Bytes no other file in the test has (the leak scan compares contents)."""
    return os.urandom(size)


def shares(
    stage: Stage,
    person: Person,
    channel: str,
    files: list[SharedFile],
    *,
    text: str = "",
    thread_ts: str,
) -> SlackRequest:
    """The person shares files in a thread (a file_share message), as Slack reports it."""
    stored = stage.fake.share_files(channel, person.user_id, files, text=text, thread_ts=thread_ts)
    return event_callback_body(stage.fake.message_event(stored))


def bot_messages(stage: Stage, channel: str, thread_ts: str) -> list[StoredMessage]:
    return [m for m in stage.fake.replies(channel, thread_ts) if m.bot_id]


def copied_files(stage: Stage, channel: str, thread_ts: str) -> list[bytes]:
    """The contents of the files the bot posted in a thread, in thread order."""
    return [
        file.content
        for message in bot_messages(stage, channel, thread_ts)
        for file in stage.fake.files_in(message)
    ]


async def in_staff_thread(stage: Stage) -> Opened:
    return await open_ticket(stage)


# -------------------------------------------------------------------------------- directions


async def test_a_customers_file_reaches_the_staff_thread_after_its_text(stage):
    opened = await open_ticket(stage)
    shot = content()
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("screenshot.png", shot, "image/png")],
            text="Here is the error",
            thread_ts=opened.confirmation.ts,
        )
    )
    relayed = bot_messages(stage, STAFF_CHANNEL, opened.card.ts)
    text_at = next(i for i, m in enumerate(relayed) if "Here is the error" in m.text_content)
    file_at = next(i for i, m in enumerate(relayed) if m.files)
    assert text_at < file_at
    assert "screenshot.png" in relayed[text_at].text_content
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [shot]
    # Downloaded with the bot token, uploaded with the flow that replaced files.upload.
    downloads = stage.fake.calls_to("files.download")
    assert downloads and all(c.token == stage.fake.bot_token for c in downloads)
    assert not stage.fake.calls_to("files.upload")
    [complete] = stage.fake.calls_to("files.completeUploadExternal")
    assert complete.params["thread_ts"] == opened.card.ts
    # The customer's own thread gets no copy of their file back.
    assert copied_files(stage, opened.dm, opened.confirmation.ts) == []


async def test_a_public_staff_replys_file_reaches_the_customers_thread(stage):
    opened = await open_ticket(stage)
    config = content()
    await stage.act(
        shares(
            stage,
            AGENT,
            STAFF_CHANNEL,
            [SharedFile("vpn.conf", config, "text/plain")],
            text="!reply Use this configuration",
            thread_ts=opened.card.ts,
        )
    )
    assert copied_files(stage, opened.dm, opened.confirmation.ts) == [config]
    relayed = bot_messages(stage, opened.dm, opened.confirmation.ts)
    assert any("Use this configuration" in m.text_content for m in relayed)
    # It is in the staff thread already: not copied there again.
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []


async def test_a_notes_file_never_reaches_the_customer(stage):
    opened = await open_ticket(stage)
    secret = content()
    await stage.act(
        shares(
            stage,
            AGENT,
            STAFF_CHANNEL,
            [SharedFile("customer-debts.xlsx", secret)],
            text="Internal: their account history",
            thread_ts=opened.card.ts,
        )
    )
    assert copied_files(stage, opened.dm, opened.confirmation.ts) == []
    assert not stage.fake.calls_to("files.getUploadURLExternal")
    assert not stage.fake.find_visible(CUSTOMER.user_id, "customer-debts")
    staff_view = await detail(stage, opened.number)
    assert [a.name for r in staff_view.replies for a in r.attachments] == ["customer-debts.xlsx"]
    # (the leak scan at the end compares every file the customer can see with this one)


async def test_a_file_only_message_is_a_valid_reply(stage):
    opened = await open_ticket(stage)
    shot = content()
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("only-a-file.png", shot, "image/png")],
            thread_ts=opened.confirmation.ts,
        )
    )
    assert not stage.fake.ephemerals(CUSTOMER.user_id)
    assert not [m for m in bot_messages(stage, opened.dm, opened.confirmation.ts)]
    [reply] = (await detail(stage, opened.number)).replies
    assert reply.body == "" and [a.name for a in reply.attachments] == ["only-a-file.png"]
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [shot]
    relay = bot_messages(stage, STAFF_CHANNEL, opened.card.ts)[0]
    assert "only-a-file.png" in relay.text_content


async def test_several_files_arrive_in_the_order_they_were_shared(stage):
    opened = await open_ticket(stage)
    first, second, third = content(), content(), content()
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("1.txt", first), SharedFile("2.txt", second), SharedFile("3.txt", third)],
            text="three logs",
            thread_ts=opened.confirmation.ts,
        )
    )
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [first, second, third]


# -------------------------------------------------------------------------------- notes instead


async def test_a_file_over_the_limit_becomes_a_note_with_its_name_and_size(small_limit):
    stage = small_limit
    opened = await open_ticket(stage)
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("full-dump.bin", content(10 * 1024))],
            text="The dump",
            thread_ts=opened.confirmation.ts,
        )
    )
    notes = [m for m in bot_messages(stage, STAFF_CHANNEL, opened.card.ts) if "too large" in m.text]
    assert len(notes) == 1
    assert "full-dump.bin" in notes[0].text_content and "10 KB" in notes[0].text_content
    assert "4 KB" in notes[0].text_content  # the limit
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []
    assert not stage.fake.calls_to("files.getUploadURLExternal")
    assert not stage.fake.calls_to("files.download")  # the size said enough
    rows = await outbox_rows(stage.runtime.core)
    assert [r.last_error for r in rows if r.failed_at is not None] == []


async def test_a_file_under_the_limit_is_still_copied(small_limit):
    stage = small_limit
    opened = await open_ticket(stage)
    small = content(SMALL_LIMIT)
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("exactly-the-limit.bin", small)],
            thread_ts=opened.confirmation.ts,
        )
    )
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [small]


async def test_a_file_slack_connect_withholds_becomes_a_clear_note(stage):
    opened = await open_ticket(stage)
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("contract.pdf", content(), access="access_denied")],
            text="Signed contract attached",
            thread_ts=opened.confirmation.ts,
        )
    )
    messages = bot_messages(stage, STAFF_CHANNEL, opened.card.ts)
    notes = [m for m in messages if "can't be shown here" in m.text_content]
    assert len(notes) == 1 and "Slack did not let the bot fetch it" in notes[0].text_content
    assert any("Signed contract attached" in m.text_content for m in messages)
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []
    rows = await outbox_rows(stage.runtime.core)
    assert [r.last_error for r in rows if r.failed_at is not None] == []


async def test_a_file_deleted_before_delivery_becomes_a_clear_note(stage):
    opened = await open_ticket(stage)
    request = shares(
        stage,
        CUSTOMER,
        opened.dm,
        [SharedFile("oops.png", content())],
        text="sorry, wrong file",
        thread_ts=opened.confirmation.ts,
    )
    file_id = request.payload["event"]["files"][0]["id"]
    await stage.send(request)
    await stage.runtime.wait_idle()
    stage.fake.delete_file(file_id)
    await stage.settle()
    notes = [
        m
        for m in bot_messages(stage, STAFF_CHANNEL, opened.card.ts)
        if "oops.png" in m.text_content and "can't be shown here" in m.text_content
    ]
    assert len(notes) == 1
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []


async def test_a_file_name_is_escaped_like_any_user_text(stage):
    opened = await open_ticket(stage)
    name = "<!here> <@UADMIN0001> & co.png"
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile(name, content())],
            thread_ts=opened.confirmation.ts,
        )
    )
    relay = bot_messages(stage, STAFF_CHANNEL, opened.card.ts)[0]
    raw = str(relay.blocks) + relay.text
    assert "<!here>" not in raw and "<@UADMIN0001>" not in raw
    assert "&lt;!here&gt;" in raw and "&amp; co.png" in raw


# -------------------------------------------------------------------------------- delivery


class SimulatedCrash(BaseException):
    """The process dies right after Slack completed the upload, before the outbox row is
    marked delivered (a BaseException: nothing in the worker handles it, as with SIGKILL)."""


async def test_a_crash_between_the_upload_and_the_delivered_mark_does_not_post_twice(
    stage, clock, monkeypatch
):
    opened = await open_ticket(stage)
    shot = content()
    from core import attachments

    real_mark = attachments.record_copy_delivered
    crashes = []

    async def crash_after_upload(core, *, message_id, **kwargs):
        if not crashes:
            crashes.append(message_id)
            raise SimulatedCrash
        return await real_mark(core, message_id=message_id, **kwargs)

    monkeypatch.setattr(attachments, "record_copy_delivered", crash_after_upload)
    await stage.send(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("screenshot.png", shot)],
            text="see the file",
            thread_ts=opened.confirmation.ts,
        )
    )
    await stage.runtime.wait_idle()
    with pytest.raises(SimulatedCrash):
        await stage.worker.drain()
    assert crashes, "the crash did not happen"
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [shot]  # Slack has it

    # Another process takes the message over once the dead worker's lease has run out.
    clock.advance(seconds=stage.runtime.settings.outbox_lease_seconds + 1)
    await OutboxWorker(stage.runtime, worker_id="restarted").drain()
    rows = {r.id: r for r in await outbox_rows(stage.runtime.core)}
    row = rows[crashes[0]]
    assert row.delivered_at is not None and row.attempts == 2
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [shot]
    assert len(stage.fake.calls_to("files.completeUploadExternal")) == 1


async def test_a_retried_file_keeps_its_place_before_later_messages(stage, clock):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    shot = content()
    stage.fake.fail_next("files.getUploadURLExternal", error="internal_error")
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("screen.png", shot)],
            text="first, with a file",
            thread_ts=opened.confirmation.ts,
        )
    )
    await stage.act(customer.says(opened.dm, "second, later", thread_ts=opened.confirmation.ts))
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []  # waiting for its retry
    assert not any(
        "second, later" in m.text_content
        for m in bot_messages(stage, STAFF_CHANNEL, opened.card.ts)
    ), "a later message overtook the file"
    clock.advance(seconds=60)
    await stage.settle()
    relayed = bot_messages(stage, STAFF_CHANNEL, opened.card.ts)
    order = [
        "text" if "first, with a file" in m.text_content else "file" if m.files else "later"
        for m in relayed
        if m.files or "first" in m.text_content or "second" in m.text_content
    ]
    assert order == ["text", "file", "later"]
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == [shot]


# -------------------------------------------------------------------------------- /ticket show


async def show(stage: Stage, person: Person, number: int, channel: str) -> str:
    before = len(stage.fake.ephemerals(person.user_id))
    await stage.act(stage.user(person).slash_command(f"show {number}", channel_id=channel))
    [answer] = stage.fake.ephemerals(person.user_id)[before:]
    return answer.text_content


async def test_ticket_show_lists_attachments_and_hides_a_notes_from_the_customer(stage):
    opened = await open_ticket(stage)
    await stage.act(
        shares(
            stage,
            CUSTOMER,
            opened.dm,
            [SharedFile("customer-shot.png", content(2048))],
            text="my screenshot",
            thread_ts=opened.confirmation.ts,
        )
    )
    await stage.act(
        shares(
            stage,
            AGENT,
            STAFF_CHANNEL,
            [SharedFile("internal-trace.log", content())],
            text="trace from our side",
            thread_ts=opened.card.ts,
        )
    )
    staff = await show(stage, AGENT, opened.number, STAFF_CHANNEL)
    assert "customer-shot.png" in staff and "2 KB" in staff and "internal-trace.log" in staff
    customer = await show(stage, CUSTOMER, opened.number, opened.dm)
    assert "customer-shot.png" in customer
    assert "internal-trace.log" not in customer


# -------------------------------------------------------------------------------- deletion


async def test_deleting_a_customers_message_takes_its_copied_file_back(stage):
    opened = await open_ticket(stage)
    request = shares(
        stage,
        CUSTOMER,
        opened.dm,
        [SharedFile("password.png", content())],
        text="oops, my password",
        thread_ts=opened.confirmation.ts,
    )
    await stage.act(request)
    [copy] = [m for m in bot_messages(stage, STAFF_CHANNEL, opened.card.ts) if m.files]
    [copied] = stage.fake.files_in(copy)
    original = stage.fake.message(opened.dm, request.payload["event"]["ts"])
    await stage.act(deleted(stage, original))
    assert stage.fake.file(copied.id).deleted
    assert stage.fake.message(STAFF_CHANNEL, copy.ts).deleted
    assert copied_files(stage, STAFF_CHANNEL, opened.card.ts) == []
    assert [c.params["file"] for c in stage.fake.calls_to("files.delete") if c.ok] == [copied.id]


async def test_deleting_a_public_staff_reply_takes_the_customers_copy_back(stage):
    opened = await open_ticket(stage)
    request = shares(
        stage,
        AGENT,
        STAFF_CHANNEL,
        [SharedFile("wrong-customer.pdf", content())],
        text="!reply Your invoice",
        thread_ts=opened.card.ts,
    )
    await stage.act(request)
    assert len(copied_files(stage, opened.dm, opened.confirmation.ts)) == 1
    original = stage.fake.message(STAFF_CHANNEL, request.payload["event"]["ts"])
    await stage.act(deleted(stage, original))
    assert copied_files(stage, opened.dm, opened.confirmation.ts) == []
