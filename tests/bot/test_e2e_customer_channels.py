"""Customer channels end to end: a company's shared (Slack Connect) channel takes requests by
message or by reaction, the customer conversation is the thread of the message, staff answer
from the staff thread or in the customer's thread, notes never reach the channel, and other
companies' customers never see its tickets. Every scenario ends with the leak scanner, which
counts every linked channel and every channel with a member of another team as read by
customers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import BotServer, StartupError
from core import companies, replies, tickets
from core.enums import Role, Status
from core.models import ChatThread, OutboxMessage, Ticket, User
from devslack.connect import add_external_user, add_shared_channel, reacts, writes
from devslack.leaks import scan_for_leaks
from devslack.server import StoredMessage
from devslack.stage import (
    ADMIN,
    AGENT,
    CUSTOMER,
    CUSTOMER_2,
    PUBLIC_CHANNEL,
    STAFF_CHANNEL,
    Stage,
)
from tests.bot.e2e_support import detail, staff_cards, user, with_event_id
from tests.bot.test_e2e_commands import run

ACME_TEAM = "T0ACME0001"
ACME_CHANNEL = "CACME00001"
ERIN = "WEXTERNAL1"  # a person of Acme's own workspace (an Enterprise Grid W… id)


async def acme(stage: Stage, *, intake: str | None = None) -> None:
    """Acme (Alice's email domain) with a Slack Connect channel shared with Acme's workspace,
    linked by the admin from inside the channel."""
    boss = await user(stage, ADMIN)
    await companies.add_company(
        stage.runtime.core, actor_id=boss.id, name="Acme", domains=["example.com"]
    )
    add_external_user(stage.fake, ERIN, "Erin Acme", team_id=ACME_TEAM)
    add_shared_channel(
        stage.fake,
        ACME_CHANNEL,
        "acme-support",
        team_id=ACME_TEAM,
        members=[ERIN, CUSTOMER.user_id, AGENT.user_id, ADMIN.user_id],
    )
    answer = await run(stage, ADMIN, "channel link Acme", channel=ACME_CHANNEL)
    assert "is now a customer channel of *Acme*" in answer and "Slack Connect" in answer
    if intake:
        await run(stage, ADMIN, f"channel intake {intake}", channel=ACME_CHANNEL)


async def say(stage: Stage, who: str, text: str, *, thread_ts: str | None = None) -> StoredMessage:
    message, request = writes(stage.fake, ACME_CHANNEL, who, text, thread_ts=thread_ts)
    response = await stage.act(request)
    assert response.status == 200
    return message


def bot_replies(stage: Stage, channel: str, ts: str) -> list[StoredMessage]:
    return [m for m in stage.fake.replies(channel, ts) if m.bot_id and m.ts != ts]


async def ticket_rows(stage: Stage) -> list[Ticket]:
    async with stage.runtime.core.db.transaction() as session:
        return list(await session.scalars(select(Ticket).order_by(Ticket.number)))


def staff_thread_texts(stage: Stage, number: int) -> str:
    card = next(c for c in staff_cards(stage) if c.text.startswith(f"#{number} "))
    return "\n".join(m.text_content for m in stage.fake.replies(STAFF_CHANNEL, card.ts))


# ------------------------------------------------------------------------------ intake


async def test_a_message_in_a_linked_channel_opens_a_ticket_answered_in_its_thread(stage):
    await acme(stage)
    request = await say(stage, ERIN, "Our invoices page shows a blank screen since today")
    [row] = await ticket_rows(stage)
    assert row.title == "Our invoices page shows a blank screen since today"
    assert row.shared_with_company and row.company_id is not None
    [answer] = bot_replies(stage, ACME_CHANNEL, request.ts)
    assert f"#{row.number}" in answer.text_content and "Open" in answer.text_content
    buttons = [e for b in answer.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Close…"]
    assert staff_cards(stage)[-1].text.startswith(f"#{row.number} ")
    # Erin, from another organisation, was provisioned as a customer of the channel's company.
    async with stage.runtime.core.db.transaction() as session:
        erin = await session.scalar(select(User).where(User.slack_user_id == ERIN))
    assert erin is not None and erin.role == Role.CUSTOMER.value
    assert erin.chat_team_id == ACME_TEAM and erin.company_id == row.company_id


async def test_quick_consecutive_messages_join_the_ticket_and_later_ones_open_another(stage):
    await acme(stage)
    first = await say(stage, ERIN, "The export button does nothing")
    await say(stage, ERIN, "Tried in Firefox and Chrome, same thing")
    [row] = await ticket_rows(stage)
    assert "Tried in Firefox and Chrome" in staff_thread_texts(stage, row.number)
    assert len(bot_replies(stage, ACME_CHANNEL, first.ts)) == 1
    stage.clock.advance(timedelta(minutes=3))
    await say(stage, ERIN, "Another thing: the logo upload fails too")
    assert [t.title for t in await ticket_rows(stage)] == [
        "The export button does nothing",
        "Another thing: the logo upload fails too",
    ]


async def test_staff_talking_and_system_messages_in_the_channel_are_not_requests(stage):
    await acme(stage)
    await say(stage, AGENT.user_id, "Good morning Acme team, we are around today")
    joined = stage.fake.post_as_user(ACME_CHANNEL, CUSTOMER_2.user_id, "has joined the channel")
    joined.subtype = "channel_join"
    await stage.act(writes_event(stage, joined))
    assert await ticket_rows(stage) == []


def writes_event(stage: Stage, message: StoredMessage):  # type: ignore[no-untyped-def]
    from devslack.requests import event_callback_body

    return event_callback_body(stage.fake.message_event(message))


async def test_a_retried_delivery_opens_one_ticket(stage):
    await acme(stage)
    _, request = writes(stage.fake, ACME_CHANNEL, ERIN, "Password reset mail never arrives")
    await stage.act(request)
    await stage.act(request)  # the same delivery again
    await stage.act(with_event_id(request, "EvRETRY0001"))  # a retry with another event id
    assert len(await ticket_rows(stage)) == 1
    assert len(staff_cards(stage)) == 1


async def test_a_reaction_raises_one_ticket_however_many_react(stage):
    message = stage.fake.post_as_user(
        PUBLIC_CHANNEL, CUSTOMER.user_id, "Is the VPN down for everyone else too?"
    )
    await stage.act(reacts(stage.fake, AGENT.user_id, message, "ticket"))
    await stage.act(reacts(stage.fake, ADMIN.user_id, message, "ticket"))
    await stage.act(reacts(stage.fake, AGENT.user_id, message, "eyes"))
    [row] = await ticket_rows(stage)
    customer = await user(stage, CUSTOMER)
    assert row.customer_id == customer.id and row.title == "Is the VPN down for everyone else too?"
    assert "Is the VPN down" in row.description and "https://" in row.description
    [answer] = bot_replies(stage, PUBLIC_CHANNEL, message.ts)
    assert f"#{row.number}" in answer.text_content


async def test_in_a_reaction_channel_only_the_emoji_raises_tickets(stage):
    await acme(stage, intake="reaction")
    message = await say(stage, ERIN, "Can someone look at order 4411?")
    assert await ticket_rows(stage) == []
    await stage.act(reacts(stage.fake, ERIN, message, "ticket"))
    [row] = await ticket_rows(stage)
    assert row.title == "Can someone look at order 4411?"


# ------------------------------------------------------------------------------ conversation


async def test_staff_answering_in_the_customer_thread_is_a_first_response_seen_by_staff(stage):
    await acme(stage)
    request = await say(stage, ERIN, "Our SSO login loops back to the start page")
    [row] = await ticket_rows(stage)
    await say(
        stage, AGENT.user_id, "Looking at it: can you clear cookies once?", thread_ts=request.ts
    )
    shown = await detail(stage, row.number)
    assert shown.ticket.first_response_at is not None
    [answer] = [r for r in shown.replies if r.author.slack_user_id == AGENT.user_id]
    assert not answer.is_internal
    assert "clear cookies once" in staff_thread_texts(stage, row.number)
    # The customer answers in the same thread: added and relayed to staff.
    await say(stage, ERIN, "Cleared them, still looping", thread_ts=request.ts)
    assert "still looping" in staff_thread_texts(stage, row.number)


async def test_a_reply_from_the_staff_thread_reaches_the_customer_thread_and_a_note_never_does(
    stage,
):
    await acme(stage)
    request = await say(stage, ERIN, "Reports are two days late")
    [row] = await ticket_rows(stage)
    card = staff_cards(stage)[-1]
    note = stage.unique("Internal: their contract lapsed, check with sales")
    reply = stage.unique("We found the delay and are catching up now")
    await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, note, thread_ts=card.ts))
    await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, f"!reply {reply}", thread_ts=card.ts))
    in_thread = "\n".join(m.text_content for m in bot_replies(stage, ACME_CHANNEL, request.ts))
    assert reply in in_thread
    everything = "\n".join(m.text_content for m in stage.fake.messages(ACME_CHANNEL))
    assert note not in everything and note not in in_thread
    assert (await detail(stage, row.number)).ticket.first_response_at is not None


# ------------------------------------------------------------------------------ visibility


async def test_the_channel_company_sees_its_tickets_and_another_company_does_not(stage):
    await acme(stage)
    boss = await user(stage, ADMIN)
    await companies.add_company(
        stage.runtime.core, actor_id=boss.id, name="Beta", domains=["example.org"]
    )
    await say(stage, ERIN, "Our dashboard numbers are off by one")
    [row] = await ticket_rows(stage)
    # Alice (Acme by her email domain) did not ask, but it is her company's ticket.
    assert "dashboard numbers" in await run(stage, CUSTOMER, "mine")
    assert "dashboard numbers" in await run(stage, CUSTOMER, f"show {row.number}")
    assert (await run(stage, CUSTOMER, "search dashboard numbers")).startswith("1 result")
    # Bob (Beta) gets the answer a missing ticket gets.
    assert "NOT_FOUND" in await run(stage, CUSTOMER_2, f"show {row.number}")
    assert "dashboard numbers" not in await run(stage, CUSTOMER_2, "mine")
    assert (await run(stage, CUSTOMER_2, "search dashboard numbers")).startswith("0 results")
    # Alice may read it, not close someone else's request.
    alice = await user(stage, CUSTOMER)
    choices = await tickets.allowed_transitions(
        stage.runtime.core, actor_id=alice.id, ticket=row.number
    )
    assert choices.targets == ()


# ------------------------------------------------------------------------------ refusals


async def test_the_staff_channel_cannot_be_linked(stage):
    boss = await user(stage, ADMIN)
    await companies.add_company(stage.runtime.core, actor_id=boss.id, name="Acme")
    answer = await run(stage, ADMIN, "channel link Acme", channel=STAFF_CHANNEL)
    assert "can never be a customer channel" in answer and "VALIDATION" in answer
    stage.fake.add_channel("CNOBOT0001", "elsewhere", is_private=False, bot_member=False)
    answer = await run(stage, ADMIN, "channel link <#CNOBOT0001|elsewhere> Acme")
    assert "I am not a member of that channel" in answer and "/invite @" in answer
    assert "No customer channels yet" in await run(stage, ADMIN, "channel list")


async def test_a_linked_channel_cannot_become_the_staff_channel(stage, database_url):
    await acme(stage)
    settings = stage.settings(stage.fake.api_url).model_copy(
        update={"staff_channel_id": ACME_CHANNEL}
    )
    server = BotServer(settings, clock=stage.clock, run_worker=False, migrate=False)
    try:
        with pytest.raises(StartupError, match="customer channel"):
            await server.start()
    finally:
        await server.stop()
        await server.core.close()


async def test_someone_of_another_organisation_is_refused_politely_outside_linked_channels(
    stage,
):
    await acme(stage)
    add_shared_channel(
        stage.fake, "CLOOSE0001", "partners", team_id=ACME_TEAM, members=[ERIN, AGENT.user_id]
    )
    before = len(stage.fake.ephemerals(ERIN))
    await stage.act(stage.user(ERIN).slash_command("mine", channel_id="CLOOSE0001"))
    [answer] = stage.fake.ephemerals(ERIN)[before:]
    assert "only serves members of this workspace" in answer.text_content
    _, request = writes(stage.fake, "CLOOSE0001", ERIN, "Hello, anyone from support here?")
    await stage.act(request)
    assert await ticket_rows(stage) == []


async def test_a_request_withdrawn_before_any_answer_closes_its_ticket(stage):
    from tests.bot.e2e_support import deleted, edited

    await acme(stage)
    request = await say(stage, ERIN, "Printer in room 4 is offline")
    await stage.act(edited(stage, request, "Printers in rooms 4 and 5 are offline"))
    [row] = await ticket_rows(stage)
    assert row.title == "Printers in rooms 4 and 5 are offline"
    await stage.act(deleted(stage, request))
    [row] = await ticket_rows(stage)
    assert row.status == Status.CLOSED.value


# ------------------------------------------------------------------------------ companies


async def test_admins_manage_companies_from_slack_and_others_are_refused(stage):
    added = await run(stage, ADMIN, "company add Acme Corp example.com")
    assert "Company *Acme Corp* added (example.com)" in added
    assert "1 person without a company joined it" in added  # Alice, seen when the stage began
    assert "FORBIDDEN" in await run(stage, AGENT, "company add Beta example.org")
    assert "VALIDATION" in await run(stage, ADMIN, "company add Beta bad_domain.example")
    assert "Usage" in await run(stage, ADMIN, "company frobnicate")
    domain = await run(stage, ADMIN, "company domain add Acme Corp acme.example")
    assert "now has the domain acme.example" in domain
    assert "NOT_FOUND" in await run(stage, ADMIN, "company domain add Nowhere x.example")
    await run(stage, ADMIN, f"role <@{AGENT.user_id}|dana> corporate")
    granted = await run(stage, ADMIN, f"company grant <@{AGENT.user_id}|dana> Acme Corp")
    assert "now covers *Acme Corp*" in granted
    shown = await run(stage, ADMIN, "company show acme corp")
    assert "acme.example, example.com" in shown and f"<@{AGENT.user_id}>" in shown
    assert "*Open tickets:* 0" in shown
    assert "Acme Corp" in await run(stage, AGENT, "company list")
    revoked = await run(stage, ADMIN, f"company revoke <@{AGENT.user_id}|dana> Acme Corp")
    assert "no longer covers" in revoked
    removed = await run(stage, ADMIN, "company domain remove Acme Corp acme.example")
    assert "no longer has the domain acme.example" in removed


async def test_corporate_staff_covering_the_company_see_its_channel_tickets(stage):
    await acme(stage)
    await say(stage, ERIN, "Our webhooks stopped firing overnight")
    [row] = await ticket_rows(stage)
    await run(stage, ADMIN, f"role <@{CUSTOMER_2.user_id}|bob> corporate")
    bob = await user(stage, CUSTOMER_2)
    assert "NOT_FOUND" in await run(stage, CUSTOMER_2, f"show {row.number}")
    await companies.grant_coverage(
        stage.runtime.core, actor_id=(await user(stage, ADMIN)).id, company="Acme", user_id=bob.id
    )
    assert "webhooks stopped firing" in await run(stage, CUSTOMER_2, f"show {row.number}")


async def test_a_staff_message_is_never_posted_into_a_customer_channel(stage):
    """Delivery checks the channel itself: a staff thread recorded in a customer channel (a
    stale row, a bug) gets nothing posted there, and the message fails."""
    await acme(stage)
    await say(stage, ERIN, "Billing address cannot be saved")
    [row] = await ticket_rows(stage)
    request = stage.fake.messages(ACME_CHANNEL)[0]
    [answer] = bot_replies(stage, ACME_CHANNEL, request.ts)
    async with stage.runtime.core.db.transaction() as session:
        thread = await session.get(ChatThread, (row.id, "staff"))
        assert thread is not None
        thread.channel_id, thread.ts = ACME_CHANNEL, answer.ts
    note = stage.unique("Internal: customer is on the watch list")
    agent = await user(stage, AGENT)
    await replies.add_reply(
        stage.runtime.core, actor_id=agent.id, ticket=row.number, body=note, internal=True
    )
    await stage.settle()
    assert note not in "\n".join(m.text_content for m in stage.fake.messages(ACME_CHANNEL))
    async with stage.runtime.core.db.transaction() as session:
        failed = await session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.ticket_id == row.id, OutboxMessage.failed_at.is_not(None)
            )
        )
    assert failed is not None and "customer channel" in (failed.last_error or "")


async def test_the_requester_closes_with_the_button_in_the_thread_and_a_colleague_cannot(stage):
    await acme(stage)
    request = await say(stage, ERIN, "Please cancel our extra seat")
    [answer] = bot_replies(stage, ACME_CHANNEL, request.ts)
    # Alice (same company) may read it but is offered nothing to change.
    before = len(stage.fake.views_opened(CUSTOMER.user_id))
    await stage.act(
        stage.user(CUSTOMER).click("ticket_status_open", message=answer, channel_id=ACME_CHANNEL)
    )
    offered = stage.fake.views_opened(CUSTOMER.user_id)[before:]
    assert all("closed" not in json.dumps(v.view) for v in offered)
    # Erin, of Acme's own workspace, closes her request from the thread.
    await stage.act(
        stage.user(ERIN).click("ticket_status_open", message=answer, channel_id=ACME_CHANNEL)
    )
    view = stage.fake.views_opened(ERIN)[-1]
    response = await stage.act(
        stage.user(ERIN).submit(view.to_api(), {"status_block": {"status": "closed"}})
    )
    assert response.status == 200 and "errors" not in response.body
    [row] = await ticket_rows(stage)
    assert row.status == Status.CLOSED.value


async def test_a_channel_with_intake_off_takes_no_requests_but_its_threads_still_work(stage):
    await acme(stage)
    request = await say(stage, ERIN, "Our SAML certificate expires next week")
    await run(stage, ADMIN, "channel intake off", channel=ACME_CHANNEL)
    await say(stage, ERIN, "Also, can we add two more admins?")
    [row] = await ticket_rows(stage)
    await say(stage, ERIN, "The new certificate is attached now", thread_ts=request.ts)
    assert "The new certificate is attached" in staff_thread_texts(stage, row.number)
    listed = await run(stage, ADMIN, "channel list")
    assert "*Acme*: takes no requests" in listed
    assert "is no longer a customer channel" in await run(
        stage, ADMIN, f"channel unlink <#{ACME_CHANNEL}|acme-support>"
    )


async def test_the_leak_scan_counts_private_customer_channels_as_read_by_customers(stage):
    """A private channel is a staff surface for the scan unless it is linked or has a member
    of another organisation: a note there is then a leak."""
    await acme(stage)
    stage.fake.channels[ACME_CHANNEL].shared_with.clear()
    stage.fake.channels[ACME_CHANNEL].is_private = True
    stage.fake.add_channel("CPARTNER01", "partners", members=[AGENT.user_id, ERIN])
    note = stage.unique("Internal: do not offer them the discount")
    stage.fake.record_intent(AGENT.user_id, note, internal=True)
    found: list[str] = []
    for channel in (ACME_CHANNEL, "CPARTNER01"):
        leaked = stage.fake.post_as_user(channel, AGENT.user_id, note)
        found += [leak.where for leak in await scan_for_leaks(stage.runtime.core, stage.fake)]
        stage.fake._messages[channel].remove(leaked)  # (so that the scenario's own scan passes)
    assert any("customer channel" in w and ACME_CHANNEL in w for w in found)
    assert any("customer channel" in w and "CPARTNER01" in w for w in found)


async def test_a_public_reply_from_the_reply_form_reaches_the_customer_thread(stage):
    await acme(stage)
    request = await say(stage, ERIN, "Our API keys were rotated without notice")
    card = staff_cards(stage)[-1]
    await stage.act(
        stage.user(AGENT).click("ticket_reply_open", message=card, channel_id=STAFF_CHANNEL)
    )
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    text = stage.unique("The rotation was scheduled maintenance; new keys are in your console")
    values = {"body_block": {"body": text}, "visibility_block": {"visibility": "public"}}
    response = await stage.act(stage.user(AGENT).submit(view.to_api(), values))
    assert "errors" not in response.json
    thread = "\n".join(m.text_content for m in bot_replies(stage, ACME_CHANNEL, request.ts))
    assert text in thread
