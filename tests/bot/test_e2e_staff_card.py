"""The staff card's buttons and the modals behind them, end to end."""

from __future__ import annotations

import json

from bot.payloads import EditReplyPayload
from core import admin
from core.enums import Status
from devslack.stage import ADMIN, AGENT, CUSTOMER, CUSTOMER_2, MANAGER, STAFF_CHANNEL
from tests.bot.e2e_support import detail, last_ephemeral, open_ticket


def card_now(stage, opened):
    return stage.fake.message(STAFF_CHANNEL, opened.card.ts)


async def click_card(stage, person, action_id, opened):
    """`person` clicks a button on the card as it currently is; returns the modal it opened."""
    before = len(stage.fake.views_opened(person.user_id))
    user = stage.user(person)
    await stage.act(
        user.click(action_id, message=card_now(stage, opened), channel_id=STAFF_CHANNEL)
    )
    views = stage.fake.views_opened(person.user_id)
    assert len(views) == before + 1, "no modal opened"
    return views[-1]


def radio_initial(view, block_id):
    block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
    return block["element"]["initial_option"]["value"]


async def test_assign_to_me_updates_the_card_with_the_assignee(stage):
    opened = await open_ticket(stage)
    await stage.act(
        stage.user(AGENT).click(
            "ticket_assign_to_me", message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.assignee is not None and ticket.assignee.slack_user_id == AGENT.user_id
    updates = [c for c in stage.fake.calls_to("chat.update") if c.ok]
    assert updates and updates[-1].params["ts"] == opened.card.ts
    card = card_now(stage, opened)
    assert f"<@{AGENT.user_id}>" in json.dumps(card.blocks)  # Assignee field
    assert card.edited is not None


async def test_assign_modal_to_a_staff_member_assigns(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, MANAGER, "ticket_assign_open", opened)
    response = await stage.act(
        stage.user(MANAGER).submit(view.to_api(), {"assignee_block": {"assignee": AGENT.user_id}})
    )
    assert "errors" not in response.json
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.assignee is not None and ticket.assignee.slack_user_id == AGENT.user_id
    assert f"<@{AGENT.user_id}>" in json.dumps(card_now(stage, opened).blocks)


async def test_assign_modal_to_a_non_staff_user_is_a_field_error(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_assign_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(), {"assignee_block": {"assignee": CUSTOMER_2.user_id}}
        )
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"assignee_block"}
    assert (await detail(stage, opened.number)).ticket.assignee is None


async def test_assign_modal_to_a_deactivated_user_is_a_field_error(stage):
    opened = await open_ticket(stage)
    # A former agent: known to the desk as staff, then deactivated in Slack.
    stage.fake.add_user("UFORMER001", "Former Agent", email="former@support.test")
    await stage.act(
        stage.user(ADMIN).slash_command("role <@UFORMER001|former> agent", channel_id=STAFF_CHANNEL)
    )
    stage.fake.users["UFORMER001"].deleted = True
    view = await click_card(stage, AGENT, "ticket_assign_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(view.to_api(), {"assignee_block": {"assignee": "UFORMER001"}})
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"assignee_block"}
    assert (await detail(stage, opened.number)).ticket.assignee is None


async def test_assign_modal_to_an_unknown_slack_user_is_a_field_error(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_assign_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(view.to_api(), {"assignee_block": {"assignee": "UNOBODY999"}})
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"assignee_block"}


async def test_status_modal_close_without_reason_is_a_field_error(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_status_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(), {"status_block": {"status": "closed"}, "reason_block": {"reason": "  "}}
        )
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"reason_block"}
    assert (await detail(stage, opened.number)).ticket.status is Status.OPEN


def status_options(view):
    block = next(b for b in view.view["blocks"] if b.get("block_id") == "status_block")
    return [o["value"] for o in block["element"]["options"]]


async def test_status_modal_offers_what_the_core_allows(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_status_open", opened)
    assert status_options(view) == ["in_progress", "waiting_on_customer", "resolved", "closed"]
    assert "Required when the new status is closed" in json.dumps(view.view)
    await stage.act(
        stage.user(AGENT).slash_command(f"close {opened.number} Done", channel_id=STAFF_CHANNEL)
    )
    reopen = await click_card(stage, AGENT, "ticket_status_open", opened)
    assert status_options(reopen) == ["open"]
    assert "Optional." in json.dumps(reopen.view)


async def test_status_modal_close_with_reason_closes_and_tells_the_customer(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_status_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {"status_block": {"status": "closed"}, "reason_block": {"reason": "Fixed upstream"}},
        )
    )
    assert "errors" not in response.json
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.status is Status.CLOSED and ticket.status_reason == "Fixed upstream"
    told = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert any("Closed" in m.text_content and "Fixed upstream" in m.text_content for m in told)
    card = card_now(stage, opened)
    assert "Closed" in card.text_content
    buttons = [e["action_id"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["ticket_status_open"]  # a closed ticket keeps only Status…


async def test_status_modal_other_change_needs_no_reason(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_status_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(view.to_api(), {"status_block": {"status": "in_progress"}})
    )
    assert "errors" not in response.json
    assert (await detail(stage, opened.number)).ticket.status is Status.IN_PROGRESS
    assert "In progress" in card_now(stage, opened).text_content


async def test_reply_button_opens_the_reply_modal_with_internal_preselected(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_reply_open", opened)
    assert view.callback_id == "ticket_reply"
    assert radio_initial(view, "visibility_block") == "internal"


async def test_reply_modal_submitted_with_the_default_is_a_note_not_relayed(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_reply_open", opened)
    text = stage.unique("Checked the logs: certificate expired")
    # Slack submits the preselected radio option as the state when the user leaves it alone.
    default = radio_initial(view, "visibility_block")
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {"body_block": {"body": text}, "visibility_block": {"visibility": default}},
        )
    )
    assert "errors" not in response.json
    reply = next(r for r in (await detail(stage, opened.number)).replies if r.body == text)
    assert reply.is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, text)
    staff_thread = stage.fake.replies(STAFF_CHANNEL, opened.card.ts)
    assert any(text in m.text_content and "Internal note" in m.text_content for m in staff_thread)


async def test_reply_modal_without_any_visibility_state_fails_towards_internal(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_reply_open", opened)
    text = stage.unique("no choice reached us")
    await stage.act(stage.user(AGENT).submit(view.to_api(), {"body_block": {"body": text}}))
    reply = next(r for r in (await detail(stage, opened.number)).replies if r.body == text)
    assert reply.is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, text)


async def test_reply_modal_with_public_chosen_is_relayed_to_the_customer(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_reply_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {
                "body_block": {"body": "Please update to 4.2"},
                "visibility_block": {"visibility": "public"},
            },
        )
    )
    assert "errors" not in response.json
    reply = next(
        r for r in (await detail(stage, opened.number)).replies if r.body == "Please update to 4.2"
    )
    assert not reply.is_internal
    in_dm = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert any("Please update to 4.2" in m.text_content for m in in_dm)
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.first_response_at == reply.created_at  # the first public staff answer


async def test_internal_note_button_opens_the_modal_with_internal_preselected(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_note_open", opened)
    assert radio_initial(view, "visibility_block") == "internal"
    text = stage.unique("Customer is on the legacy plan")
    await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {"body_block": {"body": text}, "visibility_block": {"visibility": "internal"}},
        )
    )
    reply = next(r for r in (await detail(stage, opened.number)).replies if r.body == text)
    assert reply.is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, text)


async def test_card_buttons_are_refused_to_customers(stage):
    opened = await open_ticket(stage)
    # A customer cannot see the staff channel, but a forged click must still be refused.
    stage.fake.add_member(STAFF_CHANNEL, CUSTOMER_2.user_id)
    await stage.act(
        stage.user(CUSTOMER_2).click(
            "ticket_assign_to_me", message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    stage.fake.remove_member(STAFF_CHANNEL, CUSTOMER_2.user_id)
    assert (await detail(stage, opened.number)).ticket.assignee is None
    answer = stage.fake.ephemerals(CUSTOMER_2.user_id)[-1].text_content
    assert "NOT_FOUND" in answer or "FORBIDDEN" in answer


async def test_status_button_on_a_closed_card_reopens_the_ticket(stage):
    opened = await open_ticket(stage)
    await stage.act(
        stage.user(AGENT).slash_command(f"close {opened.number} Done", channel_id=STAFF_CHANNEL)
    )
    view = await click_card(stage, AGENT, "ticket_status_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(view.to_api(), {"status_block": {"status": "open"}})
    )
    assert "errors" not in response.json
    assert (await detail(stage, opened.number)).ticket.status is Status.OPEN
    told = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert "reopened" in told[-1].text_content
    assert "Assign to me" in card_now(stage, opened).text_content  # buttons are back


async def test_edit_reply_modal_edits_text_but_never_visibility(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_note_open", opened)
    secret = stage.unique("Billing dispute pending")
    await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {"body_block": {"body": secret}, "visibility_block": {"visibility": "internal"}},
        )
    )
    note = next(r for r in (await detail(stage, opened.number)).replies if r.body == secret)
    value = EditReplyPayload(reply_id=note.id).dump()
    await stage.act(
        stage.user(AGENT).click(
            "reply_edit_open", value=value, message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    edit_view = stage.fake.views_opened(AGENT.user_id)[-1]
    assert edit_view.callback_id == "reply_edit" and "stays internal" in edit_view.text_content
    edited_text = f"!reply {secret} (edited)"
    response = await stage.act(
        stage.user(AGENT).submit(edit_view.to_api(), {"body_block": {"body": edited_text}})
    )
    assert "errors" not in response.json
    note = next(r for r in (await detail(stage, opened.number)).replies if r.id == note.id)
    assert note.body == edited_text and note.is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, secret)
    # Editing it again shows the edit history in the form.
    await stage.act(
        stage.user(AGENT).click(
            "reply_edit_open", value=value, message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    again = stage.fake.views_opened(AGENT.user_id)[-1].text_content
    assert "Earlier versions" in again and secret in again
    await stage.act(
        stage.user(MANAGER).click(
            "reply_edit_open", value=value, message=opened.card, channel_id=STAFF_CHANNEL
        )
    )
    # someone else is refused at the button already, and a forged submission of the form too
    assert not stage.fake.views_opened(MANAGER.user_id)
    assert "FORBIDDEN" in last_ephemeral(stage, MANAGER)
    response = await stage.act(
        stage.user(MANAGER).submit(edit_view.to_api(), {"body_block": {"body": "hijacked"}})
    )
    assert response.json["response_action"] == "errors"
    assert "FORBIDDEN" in response.json["errors"]["body_block"]


def initial(view, block_id):
    block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
    element = block["element"]
    return element.get("initial_value") or element.get("initial_option", {}).get("value")


async def test_edit_button_changes_title_description_priority_and_category(stage):
    await stage.act(
        stage.user(ADMIN).slash_command("category add Hardware", channel_id=STAFF_CHANNEL)
    )
    hardware = (await admin.list_categories(stage.runtime.core))[0]
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_edit_open", opened)
    assert view.callback_id == "ticket_edit"
    assert initial(view, "title_block") == "VPN drops every hour"
    assert initial(view, "priority_block") == "medium"
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {
                "title_block": {"title": "VPN drops every hour on Wi-Fi"},
                "description_block": {"description": "Since Monday, only on Wi-Fi."},
                "priority_block": {"priority": "high"},
                "category_block": {"category": str(hardware.id)},
            },
        )
    )
    assert "errors" not in response.json
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.title == "VPN drops every hour on Wi-Fi"
    assert ticket.description == "Since Monday, only on Wi-Fi."
    assert ticket.priority.value == "high" and ticket.category_name == "Hardware"
    card = card_now(stage, opened).text_content
    assert "on Wi-Fi" in card and "High" in card and "Hardware" in card


async def test_edit_form_with_an_empty_title_is_a_field_error_and_changes_nothing(stage):
    opened = await open_ticket(stage)
    view = await click_card(stage, AGENT, "ticket_edit_open", opened)
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(), {"title_block": {"title": "  "}, "priority_block": {"priority": "low"}}
        )
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"title_block"}
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.title == "VPN drops every hour" and ticket.priority.value == "medium"


async def test_customer_edits_their_own_ticket_from_its_detail_but_not_the_priority(stage):
    opened = await open_ticket(stage)
    await stage.act(
        stage.user(CUSTOMER).slash_command(f"show {opened.number}", channel_id=opened.dm)
    )
    shown = stage.fake.ephemerals(CUSTOMER.user_id)[-1]
    before = len(stage.fake.views_opened(CUSTOMER.user_id))
    await stage.act(
        stage.user(CUSTOMER).click("ticket_edit_open", message=shown.to_api(), channel_id=opened.dm)
    )
    views = stage.fake.views_opened(CUSTOMER.user_id)
    assert len(views) == before + 1
    view = views[-1]
    assert not any(b.get("block_id") == "priority_block" for b in view.view["blocks"])
    response = await stage.act(
        stage.user(CUSTOMER).submit(view.to_api(), {"title_block": {"title": "VPN keeps dropping"}})
    )
    assert "errors" not in response.json
    assert (await detail(stage, opened.number)).ticket.title == "VPN keeps dropping"
    # The staff form submitted by the customer: the core refuses the priority, nothing changes.
    staff_view = await click_card(stage, AGENT, "ticket_edit_open", opened)
    forged = await stage.act(
        stage.user(CUSTOMER).submit(
            staff_view.to_api(),
            {"title_block": {"title": "Mine now"}, "priority_block": {"priority": "urgent"}},
        )
    )
    assert forged.json["response_action"] == "errors"
    assert "FORBIDDEN" in json.dumps(forged.json)
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.title == "VPN keeps dropping" and ticket.priority.value == "medium"
