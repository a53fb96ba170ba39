"""The main flows, end to end: real bot over signed HTTP, stand-in Slack, both databases."""

from __future__ import annotations

from core import tickets
from core.enums import Status
from devslack.stage import ADMIN, AGENT, CUSTOMER, CUSTOMER_2, MANAGER, STAFF_CHANNEL
from tests.bot.e2e_support import staff_cards


async def open_ticket(stage, title="VPN drops every hour", description="Since Monday."):
    await stage.open_ticket(CUSTOMER, title=title, description=description)
    card = staff_cards(stage)[-1]
    dm = stage.dm(CUSTOMER)
    confirmation = stage.fake.messages(dm)[-1]
    return card, dm, confirmation


async def test_customer_opens_ticket_through_modal_and_card_reaches_staff_channel(stage):
    response = await stage.send(
        stage.user(CUSTOMER).slash_command("new VPN drops", channel_id=stage.dm(CUSTOMER))
    )
    assert response.status == 200
    await stage.settle()
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert "VPN drops" in view.text_content  # title prefilled
    await stage.open_ticket(CUSTOMER, title="VPN drops", description="Since Monday.")
    cards = staff_cards(stage)
    assert len(cards) == 1 and "VPN drops" in cards[0].text_content
    assert "#1" in cards[0].text_content
    confirmation = stage.fake.messages(stage.dm(CUSTOMER))[-1]
    assert "#1" in confirmation.text_content


async def test_staff_thread_message_is_internal_note_and_not_relayed(stage):
    card, _dm, _confirmation = await open_ticket(stage)
    note = stage.unique("Customer is on the legacy plan, check billing")
    await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, note, thread_ts=card.ts))
    customer = await stage.runtime.identity.resolve(CUSTOMER.user_id)
    detail = await tickets.get_ticket(stage.runtime.core, actor_id=customer.id, ticket=1)
    assert all(r.body != note for r in detail.replies)
    assert not stage.fake.find_visible(CUSTOMER.user_id, note)
    # The message got the note reaction, so staff see what it became.
    staff_msgs = [
        m for m in stage.fake.messages(STAFF_CHANNEL, thread_ts=card.ts) if note in m.text
    ]
    assert "lock" in stage.fake.reactions(STAFF_CHANNEL, staff_msgs[0].ts)


async def test_marked_staff_reply_reaches_customer_thread_and_sets_first_response(stage, clock):
    card, dm, confirmation = await open_ticket(stage)
    clock.advance(minutes=7)
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Please restart the client", thread_ts=card.ts)
    )
    thread = stage.fake.replies(dm, confirmation.ts)
    assert any("Please restart the client" in m.text_content for m in thread)
    assert not any("!reply" in m.text_content for m in thread)
    ticket = await tickets.ticket_snapshot(stage.runtime.core, ticket_id=(await _ticket_id(stage)))
    assert ticket.first_response_at == clock.now()


async def test_mistyped_marker_stays_internal(stage):
    card, dm, confirmation = await open_ticket(stage)
    for text in ("!repyl oops this is internal", "! reply also internal", "reply: internal too"):
        await stage.act(stage.user(AGENT).says(STAFF_CHANNEL, text, thread_ts=card.ts))
    thread = stage.fake.replies(dm, confirmation.ts)
    assert not any("internal" in m.text_content for m in thread)


async def test_customer_reply_in_dm_thread_reaches_staff_thread(stage):
    card, dm, confirmation = await open_ticket(stage)
    await stage.act(
        stage.user(CUSTOMER).says(dm, "It happened again at 10:00", thread_ts=confirmation.ts)
    )
    staff_thread = stage.fake.replies(STAFF_CHANNEL, card.ts)
    assert any("It happened again at 10:00" in m.text_content for m in staff_thread)


async def test_show_of_another_customers_ticket_answers_as_missing(stage):
    await open_ticket(stage)
    other = stage.user(CUSTOMER_2)
    await stage.act(other.slash_command("show 1", channel_id=stage.dm(CUSTOMER_2)))
    await stage.act(other.slash_command("show 999", channel_id=stage.dm(CUSTOMER_2)))
    answers = [e.text_content for e in stage.fake.ephemerals(CUSTOMER_2.user_id)]
    assert len(answers) == 2
    assert "NOT_FOUND" in answers[0] and "NOT_FOUND" in answers[1]
    assert answers[0].replace("#1", "#N") == answers[1].replace("#999", "#N")
    assert "VPN" not in answers[0]


async def test_close_with_reason_and_reply_to_closed_ticket_refused(stage):
    _card, dm, confirmation = await open_ticket(stage)
    agent = stage.user(AGENT)
    await stage.act(agent.slash_command("close 1 Duplicate of #7", channel_id=STAFF_CHANNEL))
    ticket = await tickets.ticket_snapshot(stage.runtime.core, ticket_id=(await _ticket_id(stage)))
    assert ticket.status is Status.CLOSED and ticket.status_reason == "Duplicate of #7"
    thread = stage.fake.replies(dm, confirmation.ts)
    assert any("Duplicate of #7" in m.text_content for m in thread)
    await stage.act(stage.user(CUSTOMER).says(dm, "one more thing", thread_ts=confirmation.ts))
    detail = await tickets.get_ticket(stage.runtime.core, actor_id=ticket.customer.id, ticket=1)
    assert not any(r.body == "one more thing" for r in detail.replies)
    assert "/ticket new" in stage.fake.replies(dm, confirmation.ts)[-1].text_content


async def test_list_mine_and_search(stage):
    await open_ticket(stage, title="Printer jams on tray two")
    await stage.open_ticket(CUSTOMER_2, title="Laptop battery swelling")
    customer = stage.user(CUSTOMER)
    await stage.act(customer.slash_command("list", channel_id=stage.dm(CUSTOMER)))
    await stage.act(customer.slash_command("mine", channel_id=stage.dm(CUSTOMER)))
    await stage.act(customer.slash_command("search printer", channel_id=stage.dm(CUSTOMER)))
    await stage.act(customer.slash_command("search battery", channel_id=stage.dm(CUSTOMER)))
    texts = [e.text_content for e in stage.fake.ephemerals(CUSTOMER.user_id)]
    assert "Printer jams" in texts[0] and "Laptop battery" not in texts[0]
    assert "Printer jams" in texts[1]
    assert "Printer jams" in texts[2]
    assert "Laptop battery" not in texts[3]
    agent = stage.user(AGENT)
    await stage.act(agent.slash_command("list status:open", channel_id=STAFF_CHANNEL))
    staff_view = stage.fake.ephemerals(AGENT.user_id)[-1].text_content
    assert "Printer jams" in staff_view and "Laptop battery" in staff_view


async def test_role_change_by_admin_and_refusal_for_others(stage):
    agent = stage.user(AGENT)
    await stage.act(
        agent.slash_command(f"role <@{MANAGER.user_id}|max> manager", channel_id=STAFF_CHANNEL)
    )
    assert "FORBIDDEN" in stage.fake.ephemerals(AGENT.user_id)[-1].text_content
    admin = stage.user(ADMIN)
    await stage.act(
        admin.slash_command(f"role <@{AGENT.user_id}|dana> agent", channel_id=STAFF_CHANNEL)
    )
    await stage.act(
        admin.slash_command(f"role <@{MANAGER.user_id}|max> manager", channel_id=STAFF_CHANNEL)
    )
    assert "is now manager" in stage.fake.ephemerals(ADMIN.user_id)[-1].text_content


async def test_assignment_to_non_staff_is_a_field_error(stage):
    await stage.act(
        stage.user(ADMIN).slash_command(
            f"role <@{AGENT.user_id}|d> agent", channel_id=STAFF_CHANNEL
        )
    )
    card, _dm, _confirmation = await open_ticket(stage)
    agent = stage.user(AGENT)
    await stage.act(
        agent.click("ticket_assign_open", message=card.to_api(), channel_id=STAFF_CHANNEL)
    )
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    response = await stage.act(
        agent.submit(view.to_api(), {"assignee_block": {"assignee": CUSTOMER_2.user_id}})
    )
    body = response.json
    assert body["response_action"] == "errors"
    assert "assignee_block" in body["errors"]


async def _ticket_id(stage):
    page = await tickets.list_tickets(stage.runtime.core, actor_id=await _admin_id(stage))
    return page.items[-1].id


async def _admin_id(stage):
    from core import users

    found = await users.find_by_slack_id(stage.runtime.core, slack_user_id=ADMIN.user_id)
    if found is None:
        found = await stage.runtime.identity.resolve(ADMIN.user_id)
    return found.id


async def test_author_edits_a_reply_from_ticket_detail_edit_button(stage):
    card, dm, confirmation = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    await stage.act(customer.says(dm, "It happens at 10:00", thread_ts=confirmation.ts))
    await stage.act(customer.slash_command("show 1", channel_id=dm))
    shown = stage.fake.ephemerals(CUSTOMER.user_id)[-1]
    edit_buttons = [
        b["accessory"]
        for b in shown.blocks
        if b.get("accessory", {}).get("action_id") == "reply_edit_open"
    ]
    assert len(edit_buttons) == 1  # only the customer's own reply, not the confirmation's
    await stage.act(
        customer.click("reply_edit_open", value=edit_buttons[0]["value"], channel_id=dm)
    )
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    await stage.submit_view(CUSTOMER, view, {"body_block": {"body": "It happens at 11:00"}})
    ticket_id = await _ticket_id(stage)
    customer_user = await stage.runtime.identity.resolve(CUSTOMER.user_id)
    detail = await tickets.get_ticket(stage.runtime.core, actor_id=customer_user.id, ticket=1)
    assert [r.body for r in detail.replies] == ["It happens at 11:00"]
    copies = stage.fake.replies(STAFF_CHANNEL, card.ts)
    assert any("It happens at 11:00" in m.text_content for m in copies)
    assert ticket_id is not None
