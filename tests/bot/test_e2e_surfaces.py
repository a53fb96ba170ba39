"""The other ways in, end to end: the message shortcut, staff opening a ticket for a customer,
the App Home tab, and long text that must still make valid messages and views."""

from __future__ import annotations

import json

from devslack.server import validate_blocks
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, PUBLIC_CHANNEL, STAFF_CHANNEL
from tests.bot.e2e_support import detail, open_ticket, staff_cards


def input_initial(view, block_id):
    block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
    return block["element"].get("initial_value")


# --------------------------------------------------------------------------- shortcut


async def test_message_shortcut_opens_the_create_modal_prefilled(stage):
    message = stage.fake.post_as_user(
        PUBLIC_CHANNEL, CUSTOMER.user_id, "Wifi in room 4 is down\nSince the storm this morning."
    )
    customer = stage.user(CUSTOMER)
    await stage.act(customer.message_shortcut("message_to_ticket", message))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert view.callback_id == "create_ticket"
    assert input_initial(view, "title_block") == "Wifi in room 4 is down"
    assert "Since the storm this morning." in input_initial(view, "description_block")
    response = await stage.act(
        customer.submit(
            view.to_api(),
            {
                "title_block": {"title": "Wifi in room 4 is down"},
                "description_block": {"description": input_initial(view, "description_block")},
                "priority_block": {"priority": "high"},
            },
        )
    )
    assert "errors" not in response.json
    ticket = (await detail(stage, 1)).ticket
    assert (
        ticket.title == "Wifi in room 4 is down"
        and ticket.customer.slack_user_id == CUSTOMER.user_id
    )
    assert len(staff_cards(stage)) == 1


async def test_staff_using_the_shortcut_gets_the_customer_picker(stage):
    message = stage.fake.post_as_user(PUBLIC_CHANNEL, CUSTOMER.user_id, "Laptop will not boot")
    await stage.act(stage.user(AGENT).message_shortcut("message_to_ticket", message))
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    assert any(b.get("block_id") == "customer_block" for b in view.view["blocks"])


# --------------------------------------------------------------------------- staff create


async def test_staff_creating_a_ticket_for_a_customer(stage):
    result = await stage.open_ticket(
        AGENT, title="Phone lost", description="Called the desk", customer=CUSTOMER_2
    )
    assert "errors" not in result["response"].json
    ticket = (await detail(stage, 1)).ticket
    assert ticket.customer.slack_user_id == CUSTOMER_2.user_id
    # The customer sees it as theirs, and got the DM whose thread is the conversation.
    as_customer = await detail(stage, 1, as_person=CUSTOMER_2)
    assert as_customer.ticket.number == 1
    dm = stage.dm(CUSTOMER_2)
    confirmation = [m for m in stage.fake.messages(dm) if m.bot_id][-1]
    assert "#1" in confirmation.text_content and "opened ticket" in confirmation.text_content
    # The agent is told privately which ticket they opened for whom.
    notices = [m.text_content for m in stage.fake.messages(stage.dm(AGENT)) if m.bot_id]
    assert any("#1" in n and "Bob Customer" in n for n in notices)
    assert len(staff_cards(stage)) == 1
    assert f"<@{CUSTOMER_2.user_id}>" in json.dumps(staff_cards(stage)[0].blocks)


async def test_staff_create_for_a_bot_is_a_field_error_under_customer(stage):
    stage.fake.add_user("UROBOT0002", "Build Bot", is_bot=True)
    await stage.act(stage.user(AGENT).slash_command("new For a bot", channel_id=STAFF_CHANNEL))
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    response = await stage.act(
        stage.user(AGENT).submit(
            view.to_api(),
            {
                "title_block": {"title": "For a bot"},
                "priority_block": {"priority": "low"},
                "customer_block": {"customer": "UROBOT0002"},
            },
        )
    )
    assert response.json.get("response_action") == "errors"
    assert set(response.json["errors"]) == {"customer_block"}
    assert staff_cards(stage) == []


# --------------------------------------------------------------------------- App Home


async def test_app_home_shows_a_customer_their_tickets_only(stage):
    await open_ticket(stage, title="Printer jams on tray two")
    await open_ticket(stage, CUSTOMER_2, title="Laptop battery swelling")
    await stage.act(stage.user(CUSTOMER).opens_home())
    home = stage.fake.home_view(CUSTOMER.user_id)
    assert home is not None
    assert "Your tickets" in home.text_content
    assert "Printer jams on tray two" in home.text_content
    assert "Laptop battery swelling" not in home.text_content
    assert "Unassigned" not in home.text_content


async def test_app_home_shows_an_agent_their_queue_and_unassigned(stage):
    await open_ticket(stage, title="Printer jams on tray two")
    await open_ticket(stage, CUSTOMER_2, title="Laptop battery swelling")
    await stage.act(
        stage.user(AGENT).slash_command(
            f"assign 1 <@{AGENT.user_id}|dana>", channel_id=STAFF_CHANNEL
        )
    )
    await stage.act(stage.user(AGENT).opens_home())
    home = stage.fake.home_view(AGENT.user_id)
    assert home is not None
    text = home.text_content
    assert "Your queue" in text and "Unassigned" in text
    queue, unassigned = text.split("Unassigned", 1)
    assert "Printer jams" in queue and "Laptop battery" not in queue
    assert "Laptop battery" in unassigned and "Printer jams" not in unassigned


async def test_app_home_new_ticket_button_opens_the_create_modal(stage):
    await stage.act(stage.user(CUSTOMER).opens_home())
    home = stage.fake.home_view(CUSTOMER.user_id)
    await stage.act(stage.user(CUSTOMER).click("home_new_ticket", view=home.to_api()))
    assert stage.fake.views_opened(CUSTOMER.user_id)[-1].callback_id == "create_ticket"


# --------------------------------------------------------------------------- long text

LONG = ("The VPN client logs this line again and again. " * 70)[:3000]


async def test_long_description_and_reply_make_valid_messages_with_a_way_to_read_the_rest(stage):
    opened = await open_ticket(stage, description=LONG)
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply " + LONG[:2990], thread_ts=opened.card.ts)
    )
    await stage.act(stage.user(CUSTOMER).says(opened.dm, LONG, thread_ts=opened.confirmation.ts))
    posted = [c for c in stage.fake.calls if c.method in ("chat.postMessage", "chat.update")]
    assert posted and all(c.ok for c in posted), [c.error for c in posted if not c.ok]
    for call in posted:
        assert not validate_blocks(call.params.get("blocks") or [], limit=50)
    assert "/ticket show 1" in opened.card.text_content  # description preview points on
    customer_copy = [m for m in stage.fake.replies(opened.dm, opened.confirmation.ts) if m.bot_id][
        -1
    ]
    staff_copy = [m for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id][-1]
    assert "/ticket show 1" in customer_copy.text_content
    assert "/ticket show 1" in staff_copy.text_content
    # ... and that way works: /ticket show answers with valid blocks holding the whole text.
    await stage.act(stage.user(CUSTOMER).slash_command("show 1", channel_id=opened.dm))
    shown = stage.fake.ephemerals(CUSTOMER.user_id)[-1]
    assert not validate_blocks(shown.blocks, limit=50)
    flat = " ".join(shown.text_content.replace(">", " ").split())
    flat = flat.replace(" Edit ", " ")  # the Edit button beside the customer's own reply
    assert " ".join(LONG.split()) in flat  # the description
    # the description, then the agent's reply and the customer's message, each in full
    assert flat.count(" ".join(LONG[:2990].split())) == 3


async def test_long_title_and_body_in_a_modal_are_within_limits(stage):
    title = "T" * 150
    await stage.act(
        stage.user(CUSTOMER).slash_command(f"new {title}", channel_id=stage.dm(CUSTOMER))
    )
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert len(input_initial(view, "title_block")) <= 150
    failures = [c for c in stage.fake.calls_to("views.open") if not c.ok]
    assert not failures


async def test_create_modal_field_errors_come_back_under_the_field(stage):
    customer = stage.user(CUSTOMER)
    await stage.act(customer.slash_command("new", channel_id=stage.dm(CUSTOMER)))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1].to_api()
    response = await stage.act(
        customer.submit(
            view, {"title_block": {"title": "   "}, "priority_block": {"priority": "low"}}
        )
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"title_block"}
    response = await stage.act(
        customer.submit(
            view, {"title_block": {"title": "Fine"}, "priority_block": {"priority": "whenever"}}
        )
    )
    assert response.json["response_action"] == "errors"
    assert set(response.json["errors"]) == {"priority_block"}
    assert staff_cards(stage) == []
