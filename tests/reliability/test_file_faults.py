"""Copying a file survives Slack's failures: an upload Slack completed while the bot timed out
is found by the retry and not repeated; a failed download is retried; a file Slack refuses
for good becomes a note, and the thread goes on."""

from __future__ import annotations

import os

from core.clock import FrozenClock
from devslack.methods.files import SharedFile
from devslack.requests import event_callback_body
from devslack.stage import CUSTOMER, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket
from tests.factories import outbox_rows
from tests.reliability.conftest import SLACK_API_TIMEOUT
from tests.reliability.support import wait_for_slack

HANG = SLACK_API_TIMEOUT + 0.3  # longer than the bot waits


async def share(stage: Stage, opened, name: str, data: bytes) -> None:
    stored = stage.fake.share_files(
        opened.dm, CUSTOMER.user_id, [SharedFile(name, data)], thread_ts=opened.confirmation.ts
    )
    await stage.act(event_callback_body(stage.fake.message_event(stored)))


def copies(stage: Stage, opened) -> list[bytes]:
    return [
        file.content
        for message in stage.fake.replies(STAFF_CHANNEL, opened.card.ts)
        if message.bot_id
        for file in stage.fake.files_in(message)
    ]


async def deliver_everything(stage: Stage, clock: FrozenClock) -> None:
    for _ in range(10):
        await wait_for_slack(stage.fake)
        if all(r.delivered_at or r.failed_at for r in await outbox_rows(stage.runtime.core)):
            return
        clock.advance(seconds=120)
        await stage.settle()
    raise AssertionError("the outbox did not drain")


async def test_an_upload_slack_completed_while_the_bot_timed_out_is_not_repeated(stage, clock):
    opened = await open_ticket(stage)
    data = os.urandom(256)
    stage.fake.fail_next(
        "files.completeUploadExternal", status="timeout", delay=HANG, then_process=True
    )
    await share(stage, opened, "screen.png", data)
    await deliver_everything(stage, clock)
    [completed] = [c for c in stage.fake.calls_to("files.completeUploadExternal") if c.ok]
    assert completed.injected  # Slack acted; the bot never heard
    assert copies(stage, opened) == [data]
    assert len(stage.fake.calls_to("files.getUploadURLExternal")) == 1
    [row] = [r for r in await outbox_rows(stage.runtime.core) if r.kind == "thread_file_copy"]
    assert row.delivered_at is not None and row.attempts == 2


async def test_a_failed_download_is_retried_and_the_file_copied_once(stage, clock):
    opened = await open_ticket(stage)
    data = os.urandom(256)
    stage.fake.fail_next("files.download", status=503)
    await share(stage, opened, "log.txt", data)
    assert copies(stage, opened) == []
    await deliver_everything(stage, clock)
    assert copies(stage, opened) == [data]
    downloads = stage.fake.calls_to("files.download")
    assert [c.status for c in downloads] == [503, 200]


async def test_a_file_slack_refuses_for_good_becomes_a_note_and_the_thread_goes_on(stage, clock):
    opened = await open_ticket(stage)
    stage.fake.fail_next("files.info", error="file_not_found")
    await share(stage, opened, "vanished.png", os.urandom(64))
    await stage.act(
        stage.user(CUSTOMER).says(
            opened.dm, "and a text after it", thread_ts=opened.confirmation.ts
        )
    )
    texts = [m.text_content for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id]
    note = next(i for i, t in enumerate(texts) if "vanished.png" in t and "can't be shown" in t)
    after = next(i for i, t in enumerate(texts) if "and a text after it" in t)
    assert note < after
    assert [r.failed_at for r in await outbox_rows(stage.runtime.core) if r.failed_at] == []
