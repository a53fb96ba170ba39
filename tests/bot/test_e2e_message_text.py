"""What people write arrives as they wrote it, end to end: the message shortcut's form, the
names of mentioned people looked up once, search over a link's words and a mentioned name, and
a failure nobody foresaw told in the thread of the message, not in a new DM. (The payload corpus,
test_e2e_payload_corpus.py, covers each shape of message event.)"""

from __future__ import annotations

import pytest

from core import replies, tickets
from core.search import search_tickets
from devslack.stage import AGENT, CUSTOMER, PUBLIC_CHANNEL, STAFF_CHANNEL
from tests.bot.e2e_support import open_ticket, user


def input_initial(view, block_id):
    block = next(b for b in view.view["blocks"] if b.get("block_id") == block_id)
    return block["element"].get("initial_value")


async def test_message_shortcut_prefills_the_form_with_the_text_as_people_saw_it(stage):
    message = stage.fake.post_as_user(
        PUBLIC_CHANNEL,
        CUSTOMER.user_id,
        f"<@{AGENT.user_id}> the <https://wiki.example.com/vpn|VPN wiki> is down &amp; slow\n"
        "since <!here> was pinged",
    )
    await stage.act(stage.user(CUSTOMER).message_shortcut("message_to_ticket", message))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    title = input_initial(view, "title_block")
    assert title == "@Dana Agent the VPN wiki (https://wiki.example.com/vpn) is down & slow"
    assert input_initial(view, "description_block") == f"{title}\nsince @here was pinged"


async def test_message_shortcut_reads_a_rich_text_only_message(stage):
    blocks = [
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "text", "text": "Printer jams, ask "},
                        {"type": "user", "user_id": AGENT.user_id},
                    ],
                }
            ],
        }
    ]
    message = stage.fake.post_as_user(PUBLIC_CHANNEL, CUSTOMER.user_id, "", blocks=blocks)
    await stage.act(stage.user(CUSTOMER).message_shortcut("message_to_ticket", message))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    assert input_initial(view, "title_block") == "Printer jams, ask @Dana Agent"


async def test_a_mentioned_persons_name_is_looked_up_once_for_many_messages(stage):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    stage.fake.reset_calls()
    for n in range(3):
        await stage.act(
            customer.says(
                opened.dm, f"<@{AGENT.user_id}> ping {n}", thread_ts=opened.confirmation.ts
            )
        )
    lookups = [c for c in stage.fake.calls_to("users.info") if c.params["user"] == AGENT.user_id]
    assert len(lookups) == 1
    copies = [m.text_content for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id]
    assert sum("Dana Agent ping" in c.replace("\u200b", "") for c in copies) == 3


async def test_search_finds_a_links_words_and_a_mentioned_persons_name(stage):
    opened = await open_ticket(stage)
    await stage.act(
        stage.user(CUSTOMER).says(
            opened.dm,
            f"See <https://billing.example.com/inv/9|quarterly invoice> from <@{AGENT.user_id}>",
            thread_ts=opened.confirmation.ts,
        )
    )
    agent = await user(stage, AGENT)
    for query in ("quarterly invoice", "Dana", "billing.example.com"):
        hits = await search_tickets(stage.runtime.core, actor_id=agent.id, query=query)
        assert [hit.ticket.number for hit in hits.items] == [opened.number], query


async def test_a_failure_on_a_thread_message_is_told_in_that_thread_not_a_new_dm(
    stage, monkeypatch: pytest.MonkeyPatch
):
    opened = await open_ticket(stage)
    dm_before = [m.ts for m in stage.fake.messages(opened.dm) if not m.is_reply]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug nobody foresaw")

    monkeypatch.setattr(replies, "add_reply", broken)
    await stage.act(
        stage.user(CUSTOMER).says(opened.dm, "Any news?", thread_ts=opened.confirmation.ts)
    )
    told = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if m.bot_id and "INTERNAL" in m.text_content
    ]
    assert len(told) == 1
    assert [m.ts for m in stage.fake.messages(opened.dm) if not m.is_reply] == dm_before


async def test_ticket_show_and_app_home_show_links_and_names_without_pinging(stage):
    opened = await open_ticket(stage, title="VPN https://vpn.example.com/status is red")
    await stage.act(
        stage.user(CUSTOMER).says(
            opened.dm,
            f"<@{AGENT.user_id}> see <https://kb.example.com/a|the article> <!here>",
            thread_ts=opened.confirmation.ts,
        )
    )
    before = len(stage.fake.ephemerals(AGENT.user_id))
    await stage.act(
        stage.user(AGENT).slash_command(f"show {opened.number}", channel_id=STAFF_CHANNEL)
    )
    [shown] = stage.fake.ephemerals(AGENT.user_id)[before:]
    assert "the article (<https://kb.example.com/a>)" in shown.text_content
    assert "@\u200bDana Agent" in shown.text_content and "@\u200bhere" in shown.text_content
    # (the detail's own Customer field mentions the customer; nothing from the text pings)
    assert f"<@{AGENT.user_id}" not in shown.text_content and "<!here" not in shown.text_content
    await stage.act(stage.user(CUSTOMER).opens_home())
    home = stage.fake.home_view(CUSTOMER.user_id)
    assert "VPN <https://vpn.example.com/status> is red" in str(home.view)


async def test_text_typed_after_ticket_reply_is_stored_as_the_person_saw_it(stage):
    # With should_escape on, Slack sends what was typed after /ticket in message markup.
    opened = await open_ticket(stage)
    typed = (
        f"reply {opened.number} ask <@{AGENT.user_id}|dana> about "
        "<https://kb.example.com/vpn|the VPN page> &amp; retry"
    )
    await stage.act(stage.user(CUSTOMER).slash_command(typed, channel_id=stage.dm(CUSTOMER)))
    agent = await user(stage, AGENT)
    detail = await tickets.get_ticket(stage.runtime.core, actor_id=agent.id, ticket=opened.number)
    assert [r.body for r in detail.replies] == [
        "ask @Dana Agent about the VPN page (https://kb.example.com/vpn) & retry"
    ]
    relayed = [m.text_content for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts)]
    assert any("the VPN page (<https://kb.example.com/vpn>)" in text for text in relayed)
    assert not any("&amp;lt;" in text or "&lt;https" in text for text in relayed)
