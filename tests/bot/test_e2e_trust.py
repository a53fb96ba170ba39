"""Trust, end to end: what a person means (the Note button, the thread without marker, the
modal's choice) is never widened, rights are decided on the rows as they are now whichever
process or command changed them, and every message about a ticket is checked against its
recipient's right when it is sent. The leak scanner (tests/bot/conftest.py) runs after each
scenario and compares what customers received with what staff meant as internal."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import pytest

from bot.cli import roles_command
from bot.payloads import EditReplyPayload
from core import admin, replies, sla
from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack.leaks import scan_for_leaks
from devslack.stage import (
    ADMIN,
    AGENT,
    CUSTOMER,
    CUSTOMER_2,
    MANAGER,
    STAFF_CHANNEL,
    Stage,
)
from tests.bot.e2e_support import detail, last_ephemeral, open_ticket, user
from tests.bot.test_e2e_staff_card import card_now, click_card
from tests.bot.test_scale_out import postgresql_only  # noqa: F401  (a fixture)
from tests.conftest import settings_for, truncate_all

# Production's default: a Slack profile lookup is reused for a minute.
CACHED = {"identity_cache_seconds": 60}


@pytest.fixture
async def cached_stage(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[Stage]:
    """The stage with the identity cache on, as in production; the leak scan runs after."""
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    try:
        async with Stage(
            database_url=database_url, clock=clock, core=core, settings_overrides=CACHED
        ) as running:
            yield running
            await running.settle()
            leaks = await scan_for_leaks(core, running.fake)
            assert not leaks, f"internal notes leaked: {leaks}"
    finally:
        await truncate_all(database)


def _inputs(view) -> set[str]:
    return {b.get("block_id") for b in view.view["blocks"] if b.get("type") == "input"}


async def _note_through_the_card(stage, person, opened, text) -> object:
    """`person` clicks "Internal note" on the card and submits `text` as the form comes."""
    view = await click_card(stage, person, "ticket_note_open", opened)
    return await stage.act(stage.user(person).submit(view.to_api(), {"body_block": {"body": text}}))


# --------------------------------------------------------------------------- finding 1


async def test_a_user_promoted_through_the_cli_gets_the_note_form_at_once(cached_stage):
    stage = cached_stage
    opened = await open_ticket(stage, CUSTOMER)
    # Bob is known (and his Slack profile cached) as a customer...
    await stage.act(stage.user(CUSTOMER_2).slash_command("mine", channel_id=stage.dm(CUSTOMER_2)))
    # ...then the operator makes him an agent from a shell, another process.
    args = argparse.Namespace(roles_command="set", slack_user_id=CUSTOMER_2.user_id, role="agent")
    assert await roles_command(stage.runtime.settings, args) == 0
    stage.fake.channels[STAFF_CHANNEL].members.add(CUSTOMER_2.user_id)
    secret = stage.unique("Customer is on the fraud watch list")
    view = await click_card(stage, CUSTOMER_2, "ticket_note_open", opened)
    assert "visibility_block" in _inputs(view)
    await stage.act(stage.user(CUSTOMER_2).submit(view.to_api(), {"body_block": {"body": secret}}))
    stored = [r for r in (await detail(stage, opened.number)).replies if r.body == secret]
    assert len(stored) == 1 and stored[0].is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, secret)


@pytest.mark.usefixtures("postgresql_only")
async def test_a_user_promoted_on_another_replica_gets_the_note_form_at_once(cached_stage):
    stage = cached_stage
    other = await stage.start_replica()
    opened = await open_ticket(stage, CUSTOMER)
    # This replica caches Bob as a customer; an admin promotes him on the other one.
    await stage.act(stage.user(CUSTOMER_2).slash_command("mine", channel_id=stage.dm(CUSTOMER_2)))
    await other.send(
        stage.user(ADMIN).slash_command(
            f"role <@{CUSTOMER_2.user_id}|bob> agent", channel_id=STAFF_CHANNEL
        )
    )
    await stage.settle()
    assert (await user(stage, CUSTOMER_2)).role.value == "agent"
    stage.fake.channels[STAFF_CHANNEL].members.add(CUSTOMER_2.user_id)
    secret = stage.unique("Refund approved off the record")
    await _note_through_the_card(stage, CUSTOMER_2, opened, secret)
    stored = [r for r in (await detail(stage, opened.number)).replies if r.body == secret]
    assert len(stored) == 1 and stored[0].is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, secret)


async def test_a_note_form_submitted_after_a_demotion_is_refused_not_sent(cached_stage):
    stage = cached_stage
    opened = await open_ticket(stage, CUSTOMER)
    view = await click_card(stage, AGENT, "ticket_note_open", opened)
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{AGENT.user_id}|dana> customer", channel_id=STAFF_CHANNEL
        )
    )
    secret = stage.unique("Escalate quietly to legal")
    response = await stage.act(
        stage.user(AGENT).submit(view.to_api(), {"body_block": {"body": secret}})
    )
    assert response.json["response_action"] == "errors"
    assert "NOT_FOUND" in response.json["errors"]["body_block"]
    assert not [r for r in (await detail(stage, opened.number)).replies if r.body == secret]


async def test_the_note_button_never_opens_a_public_form_for_someone_not_staff(cached_stage):
    stage = cached_stage
    opened = await open_ticket(stage, CUSTOMER)
    # Alice (a customer) forges a click on her own ticket's "Internal note" button.
    await stage.act(
        stage.user(CUSTOMER).click(
            "ticket_note_open", message=card_now(stage, opened), channel_id=stage.dm(CUSTOMER)
        )
    )
    assert not stage.fake.views_opened(CUSTOMER.user_id)[1:]  # (only the create form)
    assert "FORBIDDEN" in last_ephemeral(stage, CUSTOMER)


async def test_a_demoted_agent_writing_in_a_staff_thread_is_refused_and_nothing_is_sent(
    cached_stage,
):
    stage = cached_stage
    opened = await open_ticket(stage, CUSTOMER)
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{AGENT.user_id}|dana> customer", channel_id=STAFF_CHANNEL
        )
    )
    for text in (stage.unique("Thread note after demotion"), stage.unique("!reply public try")):
        await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, text, thread_ts=opened.card.ts))
    assert [r.body for r in (await detail(stage, opened.number)).replies] == []
    # (no longer staff, Dana may not see the ticket: it answers like a missing one)
    assert "NOT_FOUND" in last_ephemeral(stage, AGENT)


# --------------------------------------------------------------------------- finding 2


async def test_a_ticket_from_a_staff_note_needs_a_confirmation_before_the_customer_sees_it(stage):
    opened = await open_ticket(stage, CUSTOMER)
    note = stage.unique("Internal: this customer owes us 3 invoices")
    await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, note, thread_ts=opened.card.ts))
    written = next(m for m in stage.fake.messages(STAFF_CHANNEL) if m.text == note)
    await stage.act(
        stage.user(AGENT).message_shortcut("message_to_ticket", written, channel_id=STAFF_CHANNEL)
    )
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    assert "copied from a staff conversation" in view.text_content
    assert "customer_may_see_block" in _inputs(view)
    values = {
        "title_block": {"title": "Invoices"},
        "description_block": {"description": note},
        "customer_block": {"customer": CUSTOMER_2.user_id},
    }
    response = await stage.act(stage.user(AGENT).submit(view.to_api(), values))
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"customer_may_see_block"}
    assert not stage.fake.find_visible(CUSTOMER_2.user_id, note)
    # The agent rewrites it for the customer and confirms: that text (only) reaches them.
    rewritten = stage.unique("We found open invoices on your account")
    values["description_block"] = {"description": rewritten}
    values["customer_may_see_block"] = {
        "customer_may_see": {"type": "checkboxes", "selected_options": [{"value": "confirmed"}]}
    }
    response = await stage.act(stage.user(AGENT).submit(view.to_api(), values))
    assert "errors" not in response.json
    assert stage.fake.find_visible(CUSTOMER_2.user_id, rewritten)
    assert not stage.fake.find_visible(CUSTOMER_2.user_id, note)


async def test_a_shortcut_on_a_customer_message_asks_for_no_confirmation(stage):
    await stage.act(stage.user(CUSTOMER).says("CGENERAL01", "The wifi in room 4 is down"))
    said = next(m for m in stage.fake.messages("CGENERAL01") if "wifi" in m.text)
    await stage.act(
        stage.user(AGENT).message_shortcut("message_to_ticket", said, channel_id="CGENERAL01")
    )
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    assert "customer_may_see_block" not in _inputs(view)
    assert "customer sees" in view.text_content


# --------------------------------------------------------------------------- finding 3


async def test_a_demoted_assignee_is_unassigned_and_gets_no_breach_dm(stage, clock):
    opened = await open_ticket(
        stage, CUSTOMER, description=stage.unique("Payroll export fails for every employee")
    )
    await stage.act(
        stage.user(AGENT).click(
            "ticket_assign_to_me", message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    assignee = (await detail(stage, opened.number)).ticket.assignee
    assert assignee is not None and assignee.slack_user_id == AGENT.user_id
    dm = stage.dm(AGENT)
    before = len(stage.fake.messages(dm))
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{AGENT.user_id}|dana> customer", channel_id=STAFF_CHANNEL
        )
    )
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.assignee is None
    assert "remove them from it" in last_ephemeral(stage, ADMIN)
    assert AGENT.name not in card_now(stage, opened).text_content
    clock.advance(hours=9)
    await sla.scan(stage.runtime.core)
    await stage.settle()
    assert len(stage.fake.messages(dm)) == before


async def test_an_assignee_dm_queued_before_a_demotion_is_not_sent_after_it(stage, clock):
    opened = await open_ticket(
        stage, CUSTOMER, description=stage.unique("Warehouse scanner shows error 41")
    )
    # The manager assigns Dana (a DM is queued for her), then Dana is deactivated before the
    # worker runs: the DM is checked against her right when it is sent, and dropped.
    await stage.send(
        stage.user(MANAGER).click(
            "ticket_assign_to_me", message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    actor = await user(stage, MANAGER)
    dana = await user(stage, AGENT)
    await stage.runtime.wait_idle()
    from core import tickets

    await tickets.assign_ticket(
        stage.runtime.core, actor_id=actor.id, ticket=opened.number, assignee_id=dana.id
    )
    boss = await user(stage, ADMIN)
    await admin.change_role(stage.runtime.core, actor_id=boss.id, user_id=dana.id, role="customer")
    await stage.settle()
    assert not stage.fake.messages(stage.dm(AGENT))


# --------------------------------------------------------------------------- findings 4, 5


async def test_a_demoted_bootstrap_admin_stays_demoted_on_their_next_request(stage):
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{MANAGER.user_id}|max> admin", channel_id=STAFF_CHANNEL
        )
    )
    await stage.act(
        stage.user(MANAGER).slash_command(
            f"role <@{ADMIN.user_id}|ada> agent", channel_id=STAFF_CHANNEL
        )
    )
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{AGENT.user_id}|dana> admin", channel_id=STAFF_CHANNEL
        )
    )
    assert "FORBIDDEN" in last_ephemeral(stage, ADMIN)
    assert (await user(stage, ADMIN)).role.value == "agent"
    assert (await user(stage, AGENT)).role.value == "agent"


async def test_a_user_deactivated_in_the_desk_is_not_reactivated_by_their_next_request(stage):
    opened = await open_ticket(stage, CUSTOMER)
    boss = await user(stage, ADMIN)
    alice = await user(stage, CUSTOMER)
    await admin.set_active(stage.runtime.core, actor_id=boss.id, user_id=alice.id, active=False)
    for _ in range(2):
        await stage.act(stage.user(CUSTOMER).slash_command("mine", channel_id=opened.dm))
        assert "not active" in last_ephemeral(stage, CUSTOMER)
    text = stage.unique("let me back in")
    await stage.act(stage.user(CUSTOMER).says(opened.dm, text, thread_ts=opened.confirmation.ts))
    assert not [r for r in (await detail(stage, opened.number)).replies if r.body == text]


# --------------------------------------------------------------------------- finding 7


async def test_a_forged_edit_button_answers_alike_for_hidden_and_missing_messages(stage):
    opened = await open_ticket(stage, CUSTOMER)
    alice = await user(stage, CUSTOMER)
    theirs = await replies.add_reply(
        stage.runtime.core, actor_id=alice.id, ticket=opened.number, body="my reply", internal=False
    )
    answers = []
    for reply_id in (theirs.id, 987_654):
        value = EditReplyPayload(reply_id=reply_id).dump()
        await stage.act(
            stage.user(CUSTOMER_2).click(
                "reply_edit_open", value=value, channel_id=stage.dm(CUSTOMER_2)
            )
        )
        answers.append(last_ephemeral(stage, CUSTOMER_2))
    assert answers[0] == answers[1] and "NOT_FOUND" in answers[0]
    assert not stage.fake.views_opened(CUSTOMER_2.user_id)
