"""Every `/ticket` subcommand answers, end to end: right answers ephemerally, refusals as
ephemeral messages carrying their error code, unknown input with the usage."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from core import admin, tickets
from core.enums import Status
from core.errors import NotFound
from core.models import OutboxMessage
from devslack.stage import (
    ADMIN,
    AGENT,
    CUSTOMER,
    CUSTOMER_2,
    MANAGER,
    PUBLIC_CHANNEL,
    STAFF_CHANNEL,
)
from tests.bot.e2e_support import detail, last_ephemeral, open_ticket, user


async def run(stage, person, text, channel=None):
    """`person` types `/ticket {text}`; returns the ephemeral answer's text."""
    channel = channel or (STAFF_CHANNEL if person in (AGENT, MANAGER, ADMIN) else stage.dm(person))
    before = len(stage.fake.ephemerals(person.user_id))
    response = await stage.act(stage.user(person).slash_command(text, channel_id=channel))
    assert response.status == 200
    answers = stage.fake.ephemerals(person.user_id)[before:]
    assert len(answers) == 1, f"expected one answer to {text!r}, got {len(answers)}"
    assert answers[0].via == "response_url"  # ephemeral, in the channel the command came from
    assert answers[0].channel == channel
    return answers[0].text_content


async def skip_deliveries(stage):
    async with stage.runtime.core.db.transaction() as session:
        await session.execute(update(OutboxMessage).values(delivered_at=stage.clock.now()))


async def test_help_lists_what_each_role_may_run(stage):
    customer = await run(stage, CUSTOMER, "help")
    agent = await run(stage, AGENT, "help")
    manager = await run(stage, MANAGER, "help")
    admin = await run(stage, ADMIN, "")
    assert "/ticket new" in customer and "/ticket note" not in customer
    assert "/ticket role" not in customer and "/ticket delete" not in customer
    assert "/ticket note" in agent and "!reply" in agent and "/ticket delete" not in agent
    assert "/ticket delete" in manager and "/ticket role" not in manager
    assert "/ticket role" in admin and "/ticket category add" in admin
    assert "/ticket priority" in agent and "/ticket priority" not in customer
    assert "/ticket user deactivate" in admin and "/ticket user deactivate" not in manager
    assert "/ticket category deactivate" in admin and "category deactivate" not in agent


async def test_list_filters_by_status_and_assignee(stage):
    await open_ticket(stage, title="Printer jams on tray two")
    await open_ticket(stage, CUSTOMER_2, title="Laptop battery swelling")
    await run(stage, AGENT, f"assign 2 <@{AGENT.user_id}|d>")
    await run(stage, AGENT, "status 2 in_progress")
    everything = await run(stage, AGENT, "list")
    assert "Printer jams" in everything and "Laptop battery" in everything
    in_progress = await run(stage, AGENT, "list status:in_progress")
    assert "Laptop battery" in in_progress and "Printer jams" not in in_progress
    mine = await run(stage, AGENT, "list assignee:me")
    assert "Laptop battery" in mine and "Printer jams" not in mine
    unassigned = await run(stage, AGENT, "list assignee:none")
    assert "Printer jams" in unassigned and "Laptop battery" not in unassigned
    by_mention = await run(stage, AGENT, f"list assignee:<@{AGENT.user_id}|dana>")
    assert "Laptop battery" in by_mention and "Printer jams" not in by_mention
    # customers list only their own tickets
    theirs = await run(stage, CUSTOMER, "list status:open")
    assert "Printer jams" in theirs and "Laptop battery" not in theirs


async def test_list_filters_by_priority_and_category(stage):
    await run(stage, ADMIN, "category add Hardware")
    hardware = next(c for c in await admin.list_categories(stage.runtime.core))
    customer = await user(stage, CUSTOMER)
    core = stage.runtime.core
    await tickets.create_ticket(
        core, actor_id=customer.id, title="Dock is dead", priority="high", category_id=hardware.id
    )
    await tickets.create_ticket(core, actor_id=customer.id, title="Password reset", priority="low")
    high = await run(stage, AGENT, "list priority:high")
    assert "Dock is dead" in high and "Password reset" not in high
    assert "No tickets found" in await run(stage, AGENT, "list priority:urgent page 1")
    by_category = await run(stage, AGENT, "list category:hardware status:open")
    assert "Dock is dead" in by_category and "Password reset" not in by_category
    missing = await run(stage, AGENT, "list category:Plumbing")
    assert "VALIDATION" in missing and "Plumbing" in missing
    bad = await run(stage, AGENT, "list colour:red")
    assert "VALIDATION" in bad and "Usage" in bad


async def test_list_pages_move_with_the_page_button(stage):
    customer = await user(stage, CUSTOMER)
    for n in range(1, 22):  # one more than a page; made in the core to keep the test quick
        await tickets.create_ticket(
            stage.runtime.core, actor_id=customer.id, title=f"Issue number {n:02d}"
        )
    await skip_deliveries(stage)  # their cards and DMs are beside the point here
    first = await run(stage, CUSTOMER, "list")
    assert "Page 1 of 2" in first
    answer = stage.fake.ephemerals(CUSTOMER.user_id)[-1]
    await stage.act(
        stage.user(CUSTOMER).click(
            "ticket_list_page", message=answer.to_api(), channel_id=stage.dm(CUSTOMER)
        )
    )
    assert "Page 2 of 2" in last_ephemeral(stage, CUSTOMER)
    second = await run(stage, CUSTOMER, "list page 2")
    assert "Page 2 of 2" in second


async def test_list_page_button_carries_the_typed_filters(stage):
    customer = await user(stage, CUSTOMER)
    core = stage.runtime.core
    for n in range(1, 22):
        await tickets.create_ticket(
            core, actor_id=customer.id, title=f"Urgent {n:02d}", priority="high"
        )
    await tickets.create_ticket(core, actor_id=customer.id, title="Calm one", priority="low")
    await skip_deliveries(stage)
    first = await run(stage, AGENT, f"list priority:high customer:<@{CUSTOMER.user_id}|al>")
    assert "Page 1 of 2" in first and "Calm one" not in first
    answer = stage.fake.ephemerals(AGENT.user_id)[-1]
    (value,) = [e["value"] for b in answer.blocks if b["type"] == "actions" for e in b["elements"]]
    carried = json.loads(value)
    assert carried["filters"] == {
        "priority": "high",
        "customer": {"chat_user_id": CUSTOMER.user_id},
    }
    await stage.act(
        stage.user(AGENT).click(
            "ticket_list_page", message=answer.to_api(), channel_id=STAFF_CHANNEL
        )
    )
    second = last_ephemeral(stage, AGENT)
    assert "Page 2 of 2" in second and "Urgent 01" in second and "Calm one" not in second
    assert "priority:high" in second  # the title still says what was asked


async def test_mine_show_and_search(stage):
    opened = await open_ticket(stage, title="Printer jams on tray two")
    await open_ticket(stage, CUSTOMER_2, title="Laptop battery swelling")
    mine = await run(stage, CUSTOMER, "mine")
    assert "Printer jams" in mine and "Laptop battery" not in mine
    for number in (str(opened.number), f"#{opened.number}"):
        shown = await run(stage, CUSTOMER, f"show {number}")
        assert "Printer jams on tray two" in shown and "Since Monday." in shown
    found = await run(stage, CUSTOMER, "search tray")
    assert "Printer jams" in found
    not_theirs = await run(stage, CUSTOMER, "search battery")
    assert "Laptop battery" not in not_theirs
    short = await run(stage, CUSTOMER, "search ab")
    assert "VALIDATION" in short


async def test_assign_by_command_and_refusals(stage):
    opened = await open_ticket(stage)
    answer = await run(stage, MANAGER, f"assign #{opened.number} <@{AGENT.user_id}|dana>")
    assert "assigned to Dana Agent" in answer
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.assignee is not None and ticket.assignee.slack_user_id == AGENT.user_id
    to_customer = await run(stage, MANAGER, f"assign {opened.number} <@{CUSTOMER_2.user_id}>")
    assert "VALIDATION" in to_customer
    by_customer = await run(stage, CUSTOMER, f"assign {opened.number} <@{AGENT.user_id}>")
    assert "FORBIDDEN" in by_customer or "NOT_FOUND" in by_customer
    no_mention = await run(stage, MANAGER, f"assign {opened.number} dana")
    assert "VALIDATION" in no_mention and "Mention a user" in no_mention


async def test_status_close_and_reopen(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "now in progress" in await run(stage, AGENT, f"status {n} in_progress")
    assert "now waiting on customer" in await run(stage, AGENT, f"status #{n} waiting_on_customer")
    assert "now closed" in await run(stage, AGENT, f"close {n} Solved by reboot")
    ticket = (await detail(stage, n)).ticket
    assert ticket.status is Status.CLOSED and ticket.status_reason == "Solved by reboot"
    told = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert any("Solved by reboot" in m.text_content for m in told)
    assert "now open" in await run(stage, AGENT, f"reopen {n}")
    assert (await detail(stage, n)).ticket.status is Status.OPEN
    weird = await run(stage, AGENT, f"status {n} exploded")
    assert "VALIDATION" in weird


async def test_staff_close_by_command_needs_a_reason(stage):
    # The core's rule: closing someone else's ticket says why (the customer sees it).
    opened = await open_ticket(stage)
    n = opened.number
    bare = await run(stage, AGENT, f"close {n}")
    usage = f"/ticket close {n} &lt;reason&gt;"  # as mrkdwn
    assert "VALIDATION" in bare and "Say why" in bare and usage in bare
    by_status = await run(stage, AGENT, f"status {n} closed")
    assert "VALIDATION" in by_status and usage in by_status
    after = await detail(stage, n)
    assert after.ticket.status is Status.OPEN
    assert all(h.to_status is not Status.CLOSED for h in after.history)


async def test_customer_closes_their_own_ticket_without_a_reason(stage):
    opened = await open_ticket(stage)
    assert "now closed" in await run(stage, CUSTOMER, f"close {opened.number}")
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.status is Status.CLOSED and ticket.status_reason is None


async def test_changes_refused_by_the_core_answer_with_their_code(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "FORBIDDEN" in await run(stage, CUSTOMER, f"status {n} in_progress")
    await run(stage, AGENT, f"close {n} done")
    assert "TICKET_CLOSED" in await run(stage, CUSTOMER, f"reply {n} one more thing")
    assert "INVALID_TRANSITION" in await run(stage, AGENT, f"status {n} resolved")
    assert "NOT_FOUND" in await run(stage, AGENT, "show 999")


async def test_reply_and_note_by_command(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "Reply sent" in await run(stage, AGENT, f"reply {n} Please restart the client")
    secret = stage.unique("Customer is on the legacy plan")
    assert "Internal note added" in await run(stage, AGENT, f"note {n} {secret}")
    in_dm = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert any("Please restart the client" in m.text_content for m in in_dm)
    assert not stage.fake.find_visible(CUSTOMER.user_id, secret)
    staff_thread = stage.fake.replies(STAFF_CHANNEL, opened.card.ts)
    assert any(secret in m.text_content for m in staff_thread)
    # the customer may reply by command too, but never write a note
    assert "Reply sent" in await run(stage, CUSTOMER, f"reply {n} Restarted, still broken")
    refused = await run(stage, CUSTOMER, f"note {n} let me in")
    assert "FORBIDDEN" in refused
    assert not any(r.body == "let me in" for r in (await detail(stage, n)).replies)


async def test_delete_is_for_managers_and_removes_the_ticket_for_everyone(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "FORBIDDEN" in await run(stage, AGENT, f"delete {n}")
    denied_customer = await run(stage, CUSTOMER, f"delete {n}")
    assert "FORBIDDEN" in denied_customer
    assert (await detail(stage, n)).ticket.deleted_at is None
    assert "was deleted" in await run(stage, MANAGER, f"delete #{n}")
    for person in (CUSTOMER, AGENT, MANAGER, ADMIN):
        assert "NOT_FOUND" in await run(stage, person, f"show {n}")
        with pytest.raises(NotFound):
            await detail(stage, n, as_person=person)
    assert "deleted" in stage.fake.message(STAFF_CHANNEL, opened.card.ts).text_content
    assert "Since Monday" not in stage.fake.message(STAFF_CHANNEL, opened.card.ts).text_content


async def test_role_by_admin_only(stage):
    assert "FORBIDDEN" in await run(stage, MANAGER, f"role <@{CUSTOMER_2.user_id}> agent")
    assert "is now corporate" in await run(
        stage, ADMIN, f"role <@{CUSTOMER_2.user_id}|bob> corporate"
    )
    assert (await user(stage, CUSTOMER_2)).role.value == "corporate"
    assert "VALIDATION" in await run(stage, ADMIN, f"role <@{CUSTOMER_2.user_id}> wizard")


async def test_category_add_and_list(stage):
    assert "none yet" in await run(stage, CUSTOMER, "category list")
    assert "Category Hardware added" in await run(stage, ADMIN, "category add Hardware")
    assert "CONFLICT" in await run(stage, ADMIN, "category add hardware")
    assert "FORBIDDEN" in await run(stage, AGENT, "category add Software")
    assert "Hardware" in await run(stage, CUSTOMER, "category list")
    await stage.act(
        stage.user(CUSTOMER).slash_command("new Keyboard", channel_id=stage.dm(CUSTOMER))
    )
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert "Hardware" in view.text_content  # the create modal offers it


async def test_priority_by_command_for_staff_only(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "is now urgent" in await run(stage, AGENT, f"priority #{n} URGENT")
    ticket = (await detail(stage, n)).ticket
    assert ticket.priority.value == "urgent"
    assert "Urgent" in stage.fake.message(STAFF_CHANNEL, opened.card.ts).text_content
    assert "FORBIDDEN" in await run(stage, CUSTOMER, f"priority {n} low")
    for bad in (f"priority {n} p0", f"priority {n}", "priority x high", f"priority {n} low now"):
        answer = await run(stage, AGENT, bad)
        assert "VALIDATION" in answer, bad
    assert "NOT_FOUND" in await run(stage, AGENT, "priority 999 low")
    assert (await detail(stage, n)).ticket.priority.value == "urgent"  # nothing else changed


async def test_user_deactivate_and_activate_by_admin_only(stage):
    opened = await open_ticket(stage)
    await run(stage, AGENT, f"assign {opened.number} <@{AGENT.user_id}|dana>")
    assert "FORBIDDEN" in await run(stage, MANAGER, f"user deactivate <@{AGENT.user_id}>")
    assert (await user(stage, AGENT)).is_active
    answer = await run(stage, ADMIN, f"user deactivate <@{AGENT.user_id}|dana>")
    assert "is deactivated" in answer and "unassigned" in answer
    assert (await detail(stage, opened.number)).ticket.assignee is None
    refused = await stage.act(stage.user(AGENT).slash_command("mine", channel_id=STAFF_CHANNEL))
    assert refused.status == 200
    assert "FORBIDDEN" in last_ephemeral(stage, AGENT) or "deactivated" in last_ephemeral(
        stage, AGENT
    )
    assert "active again" in await run(stage, ADMIN, f"user activate <@{AGENT.user_id}>")
    assert (await user(stage, AGENT)).is_active
    for bad in ("user deactivate dana", "user fire <@U1>", "user deactivate"):
        answer = await run(stage, ADMIN, bad)
        assert "VALIDATION" in answer and "/ticket user" in answer, bad


async def test_category_deactivate_by_admin_keeps_it_on_tickets(stage):
    await run(stage, ADMIN, "category add Hardware")
    hardware = next(c for c in await admin.list_categories(stage.runtime.core))
    customer = await user(stage, CUSTOMER)
    ticket = await tickets.create_ticket(
        stage.runtime.core, actor_id=customer.id, title="Dock is dead", category_id=hardware.id
    )
    assert "FORBIDDEN" in await run(stage, AGENT, "category deactivate Hardware")
    assert "is deactivated" in await run(stage, ADMIN, "category deactivate hardware")
    assert "none yet" in await run(stage, CUSTOMER, "category list")
    assert (await detail(stage, ticket.number)).ticket.category_name == "Hardware"
    assert "NOT_FOUND" in await run(stage, ADMIN, "category deactivate Plumbing")
    assert "VALIDATION" in await run(stage, ADMIN, "category deactivate")
    assert "Category Hardware added" in await run(stage, ADMIN, "category add Hardware")


async def test_sla_for_staff_only(stage, clock):
    opened = await open_ticket(stage, title="Nobody answered me")
    assert "No ticket is at risk" in await run(stage, AGENT, "sla")
    clock.advance(days=7)
    late = await run(stage, AGENT, "sla")
    assert f"#{opened.number}" in late and "Nobody answered me" in late
    assert "FORBIDDEN" in await run(stage, CUSTOMER, "sla")


@pytest.mark.parametrize("text", ["frobnicate", "42", "show", "assign 1", "list color:red"])
async def test_unknown_or_malformed_input_answers_with_usage(stage, text):
    answer = await run(stage, CUSTOMER, text)
    assert "VALIDATION" in answer
    assert "/ticket" in answer  # says how to write it


async def test_errors_are_ephemeral_with_their_code_in_any_channel(stage):
    opened = await open_ticket(stage)
    answer = await run(stage, CUSTOMER_2, f"show {opened.number}", channel=PUBLIC_CHANNEL)
    assert "NOT_FOUND" in answer
    assert "VPN" not in answer
    public = [m for m in stage.fake.messages(PUBLIC_CHANNEL) if m.bot_id]
    assert public == []  # nothing in channel
