"""The direct Slack calls (bot.notify), the error mapper (bot.errors.show_error) and the
payloads' handling of retired fields."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot import notify
from bot.errors import Place, Surface, show_error
from bot.payloads import CreateTicketPayload, ReplyModalPayload
from core.errors import Forbidden, TicketClosed, Unavailable, ValidationFailed
from devslack import FakeSlack

TOKEN = "xoxb-test-token"
STAFF = "USTAFF01"
PRIVATE = "CPRIV01"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack(bot_token=TOKEN)
    server.add_user(STAFF, "sam", email="sam@support.example")
    server.add_channel(PRIVATE, "support-triage", is_private=True, members=[STAFF])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def runtime(fake: FakeSlack) -> AsyncIterator[Any]:
    client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
    yield SimpleNamespace(client=client)
    if client.session is not None:
        await client.session.close()


def _error(data: Any, status: int = 200) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,  # type: ignore[arg-type]
        http_verb="POST",
        api_url="https://slack.test/api/x",
        req_args={},
        data=data,
        headers={},
        status_code=status,
    )
    return SlackApiError("failed", response)


def test_slack_error_code_reads_slacks_json_only() -> None:
    assert notify.slack_error_code(_error({"ok": False, "error": "not_in_channel"})) == (
        "not_in_channel"
    )
    assert notify.slack_error_code(_error("<html>bad gateway</html>", status=502)) is None
    assert notify.slack_error_code(_error({"ok": False})) is None
    assert notify.is_rate_limited(_error({"ok": False, "error": "ratelimited"}, status=429))


async def test_a_short_429_is_retried_once(fake: FakeSlack, runtime: Any) -> None:
    fake.fail_next("chat.postEphemeral", status=429, retry_after=1)
    await notify.tell_user(runtime, user_id=STAFF, text="Saved.", channel_id=PRIVATE)
    assert [e.text for e in fake.ephemerals(STAFF)] == ["Saved."]
    assert len(fake.calls_to("chat.postEphemeral")) == 2
    assert not fake.calls_to("conversations.open")


async def test_a_long_429_is_not_waited_for_and_the_dm_is_used(
    fake: FakeSlack, runtime: Any
) -> None:
    fake.fail_next("chat.postEphemeral", status=429, retry_after=60)
    await notify.tell_user(runtime, user_id=STAFF, text="Saved.", channel_id=PRIVATE)
    assert len(fake.calls_to("chat.postEphemeral")) == 1
    dm = fake.dm_channel_id(STAFF)
    assert dm is not None and [m.text for m in fake.messages(dm)] == ["Saved."]


async def test_an_uncertain_post_is_not_repeated_and_does_not_raise(
    fake: FakeSlack, runtime: Any
) -> None:
    fake.fail_next("chat.postMessage", status=500)
    await notify.post(runtime, channel=PRIVATE, text="notice", blocks=[])
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert not fake.messages(PRIVATE)


async def test_events_pass_on_unavailable_and_refusals_are_told_in_the_thread(
    fake: FakeSlack, runtime: Any
) -> None:
    for surface in (Surface.STAFF_THREAD, Surface.CUSTOMER_THREAD, Surface.EDIT):
        with pytest.raises(Unavailable):
            await show_error(runtime, Unavailable("down"), Place(surface, user_id=STAFF))
    dm = fake.open_dm(STAFF)
    parent = fake.post_as_user(dm, STAFF, "my ticket thread")
    # A refused message in a customer's ticket thread: a reply in that thread of their DM.
    thread = Place(
        Surface.CUSTOMER_THREAD,
        user_id=STAFF,
        channel_id=dm,
        thread_ts=parent.ts,
        ticket_number=7,
        dm=True,
    )
    await show_error(runtime, ValidationFailed("Message must not be empty."), thread)
    [notice] = fake.replies(dm, parent.ts)
    assert "must not be empty" in notice.text_content and "#7" in notice.text_content
    # A refused deletion in a channel thread: ephemeral in the thread, never a new DM.
    channel_parent = fake.post_as_user(PRIVATE, STAFF, "a card")
    deletion = Place(
        Surface.DELETION, user_id=STAFF, channel_id=PRIVATE, thread_ts=channel_parent.ts
    )
    await show_error(runtime, Forbidden("no"), deletion)
    [ephemeral] = fake.ephemerals(STAFF)
    assert ephemeral.thread_ts == channel_parent.ts and ephemeral.channel == PRIVATE
    assert "stays on the ticket" in ephemeral.text_content
    assert [m.ts for m in fake.messages(dm) if not m.is_reply] == [parent.ts]


async def test_a_thread_notice_that_cannot_be_shown_never_becomes_a_dm(
    fake: FakeSlack, runtime: Any
) -> None:
    fake.fail_next("chat.postEphemeral", error="channel_not_found")
    place = Place(Surface.STAFF_THREAD, user_id=STAFF, channel_id=PRIVATE, thread_ts="1.000100")
    await show_error(runtime, TicketClosed("closed"), place)
    assert len(fake.calls_to("chat.postEphemeral")) == 1
    assert not fake.calls_to("conversations.open") and not fake.calls_to("chat.postMessage")


async def test_a_refused_submission_is_answered_under_its_field(runtime: Any) -> None:
    answers: list[dict[str, Any]] = []

    async def ack(**fields: Any) -> None:
        answers.append(fields)

    view = {"blocks": [{"type": "input", "block_id": "title_block"}]}
    place = Place(Surface.SUBMISSION, user_id=STAFF, ack=ack, view=view)
    await show_error(runtime, ValidationFailed("Too long.", field="title"), place)
    assert answers == [
        {"response_action": "errors", "errors": {"title_block": "Too long. (VALIDATION)"}}
    ]


def test_a_form_from_before_a_field_was_retired_still_parses() -> None:
    ticket_id = uuid.uuid4()
    old = {"ticket_id": str(ticket_id), "staff_form": True, "internal_default": False}
    assert ReplyModalPayload.parse(old) == ReplyModalPayload(ticket_id=ticket_id, staff_form=True)
    assert CreateTicketPayload.parse('{"source_text": "hi"}') == CreateTicketPayload()
    with pytest.raises(ValidationFailed, match="out of date"):
        ReplyModalPayload.parse({"ticket_id": str(ticket_id), "smuggled": 1})
