"""User text is data: mentions, broadcasts and links written by people (titles, descriptions,
replies, notes, reasons, category names, Slack display names) never ping in anything the bot
posts, a link in it only ever shows its own address, and search input with `%`, `_` and
quotes is matched literally, never as syntax."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from core import sla
from devslack.stage import (
    ADMIN,
    AGENT,
    CUSTOMER,
    MANAGER,
    MANAGER_CHANNEL,
    STAFF_CHANNEL,
    Stage,
)
from tests.bot.e2e_support import detail, last_ephemeral, open_ticket
from tests.security.support import USER_FACING, counts

VICTIM = "UVICTIM001"  # nobody the bot ever mentions on its own
HOSTILE = (
    f"<!channel> <!here> <!everyone> @here @channel <@{VICTIM}> <!subteam^S0123|@team> "
    "<http://evil.example|click me> <mailto:x@evil.example|mail> *bold* `code`"
)
HOSTILE_NAME = f"<!here> Eve <@{VICTIM}> <http://evil.example|x>"

_LIVE = [
    re.compile(r"<!(?:channel|here|everyone)"),
    re.compile(r"<!subteam\^"),
    re.compile(rf"<@{VICTIM}"),
    # A link from user text may be clickable, but only showing its own target: never a label.
    re.compile(r"<(?:https?|mailto):[^>]*evil[^>]*\|"),
    re.compile(r"(?<![\w.+\-\u200b])@(?:channel|here|everyone)\b"),
]


def _mrkdwn(obj: Any, *, top: bool = True) -> list[str]:
    """Every string Slack parses as mrkdwn: a message's `text`, mrkdwn text objects, fields.
    plain_text objects (headers, buttons, options, inputs) are shown literally and never ping."""
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "plain_text":
            return found
        for key, value in obj.items():
            if isinstance(value, str) and (
                (key == "text" and (top or obj.get("type") == "mrkdwn"))
                or (key == "text" and "type" not in obj)
            ):
                found.append(value)
            elif isinstance(value, dict | list):
                found.extend(_mrkdwn(value, top=False))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(_mrkdwn(item, top=False))
    return found


def _live_tokens(stage: Stage) -> list[tuple[str, str]]:
    offending = []
    for call in stage.fake.calls:
        if call.method not in USER_FACING or not call.ok:
            continue
        params = dict(call.params)
        for key in ("blocks", "view", "attachments"):
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        for text in _mrkdwn(params):
            found = (call.method, text[:200])
            if any(p.search(text) for p in _LIVE) and found not in offending:
                offending.append(found)
    return offending


async def test_hostile_text_from_every_source_is_neutralised_in_every_post(stage):
    customer, agent, admin = stage.user(CUSTOMER), stage.user(AGENT), stage.user(ADMIN)
    # Slack profiles with hostile names: a customer and an agent.
    stage.fake.add_user("UMALLORY01", HOSTILE_NAME, email="mallory@example.com")
    stage.fake.add_user("UEVE000001", HOSTILE_NAME, email="eve@support.test")
    await stage.act(admin.slash_command("role <@UEVE000001|eve> agent", channel_id=STAFF_CHANNEL))
    await stage.act(admin.slash_command(f"category add {HOSTILE[:70]}", channel_id=STAFF_CHANNEL))
    await stage.act(admin.slash_command("category list", channel_id=STAFF_CHANNEL))
    # A ticket with hostile title and description, and one a staff member opens for Mallory.
    title = HOSTILE[:150].strip()
    opened = await open_ticket(stage, title=title, description=HOSTILE)
    await stage.open_ticket(AGENT, title="For Mallory", customer=None)
    view = stage.fake.views_opened(AGENT.user_id)[-1]
    await stage.submit_view(
        AGENT,
        view,
        {
            "title_block": {"title": "For Mallory " + HOSTILE[:50]},
            "priority_block": {"priority": "urgent"},
            "customer_block": {"customer": "UMALLORY01"},
        },
    )
    number = opened.number
    # Conversation: the customer, a public reply, notes both ways, assignment, status reasons.
    await stage.act(customer.says(opened.dm, HOSTILE, thread_ts=opened.confirmation.ts))
    await stage.act(agent.says(STAFF_CHANNEL, f"!reply {HOSTILE}", thread_ts=opened.card.ts))
    # (notes carry a unique tag: the leak scanner must not mistake the customer's own words)
    note = stage.unique(HOSTILE)
    await stage.act(agent.says(STAFF_CHANNEL, f"note {note}", thread_ts=opened.card.ts))
    await stage.act(agent.slash_command(f"note {number} {note}z", channel_id=STAFF_CHANNEL))
    await stage.act(agent.slash_command(f"reply {number} {HOSTILE}", channel_id=STAFF_CHANNEL))
    await stage.act(
        agent.slash_command(f"assign {number} <@UEVE000001|eve>", channel_id=STAFF_CHANNEL)
    )
    await stage.act(
        agent.slash_command(
            f"status {number} waiting_on_customer {HOSTILE}", channel_id=STAFF_CHANNEL
        )
    )
    # SLA alerts about the hostile ticket (first response is long answered: use the other one).
    stage.clock.advance(timedelta(days=3))
    await sla.scan(stage.runtime.core)
    await stage.settle()
    # Every surface that shows the text.
    for person, channel in ((CUSTOMER, opened.dm), (AGENT, STAFF_CHANNEL)):
        user = stage.user(person)
        for text in (f"show {number}", "mine", "list", "search evil", "sla", "help",
                     "list category:<!here>", f"<!here>{VICTIM}", f"show <@{VICTIM}>",
                     "search <!channel> <@UVICTIM001>"):  # fmt: skip
            await stage.act(user.slash_command(text, channel_id=channel))
        await stage.act(user.opens_home())
    await stage.act(customer.slash_command(f"close {number} {HOSTILE}", channel_id=opened.dm))
    await stage.act(stage.user(MANAGER).slash_command("list", channel_id=STAFF_CHANNEL))

    # The text reached the core as written; only its rendering is defused.
    assert (await detail(stage, number)).ticket.title == title
    methods = {c.method for c in stage.fake.calls if c.method in USER_FACING and c.ok}
    assert methods >= {"chat.postMessage", "chat.update", "response_url", "views.publish"}
    assert stage.fake.messages(MANAGER_CHANNEL), "no SLA alert was posted"
    assert [m for m in stage.fake.messages(stage.fake.open_dm("UEVE000001")) if m.bot_id], (
        "no DM to Eve"
    )
    offending = _live_tokens(stage)
    assert not offending, offending
    assert not any(c.params.get("link_names") for c in stage.fake.calls_to("chat.postMessage"))
    # ... and people still read it (escaped, not dropped)
    relayed = [m for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id]
    assert any("evil.example" in m.text_content for m in relayed)


# --------------------------------------------------------------------------- search


async def test_search_input_is_literal(stage):
    agent = stage.user(AGENT)
    titles = {
        "discount": "Discount 50% off the invoice",
        "underscore": "broken_disk on the file server",
        "quotes": "O'Brien's \"quoted\" laptop",
        "plain": "Printer queue stuck",
    }
    for title in titles.values():
        await open_ticket(stage, title=title, description="nothing else")
    before = await counts(stage)

    async def found(query: str) -> set[str]:
        await stage.act(agent.slash_command(f"search {query}", channel_id=STAFF_CHANNEL))
        answer = last_ephemeral(stage, AGENT)
        assert "INTERNAL" not in answer and "Traceback" not in answer, answer
        return {name for name, title in titles.items() if _shown(title) in answer}

    # % and _ are never wildcards: with LIKE, '%isk' and 'd_sk' would both find 'broken_disk'.
    assert await found("disk") == {"underscore"}
    assert await found("%isk") == set()
    assert await found("d_sk") == set()
    assert await found("%%%") == set()
    assert await found("___") == set()
    assert await found("50%") == {"discount"}
    assert await found("broken_disk") == {"underscore"}
    # quotes are characters, not syntax (and never break the query)
    assert await found("O'Brien's") == {"quotes"}
    assert await found('"quoted"') == {"quotes"}
    assert await found("'; DROP TABLE tickets; --") == set()
    assert await found('laptop" OR "1"="1') == set()
    assert await found("printer OR discount") == set()  # OR is a word, all words must match
    assert await counts(stage) == before  # and searching wrote nothing


def _shown(title: str) -> str:
    """A title as it appears in the escaped results."""
    return title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:20]
