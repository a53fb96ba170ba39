"""Every kind of Slack delivery, delivered again: the same body sent up to three more times with
X-Slack-Retry-Num/Reason, to the same bot, to a second replica (own connection pool, same
database, same Slack), or all four copies at once to both. The effects must be those of one
delivery: no duplicate ticket, reply, note, status change, card, relay, modal, reaction, alert
or confirmation.

How it is measured: each scenario runs twice on equivalent targets (two fresh tickets). The
first run delivers once, the second delivers with retries; the changes each made (rows of every
table, and every write call to Slack, failed ones included) must be identical."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from bot.ids import Action
from bot.payloads import TicketRefPayload
from devslack.requests import SlackRequest
from devslack.stage import ADMIN, AGENT, CUSTOMER, STAFF_CHANNEL, Replica, Stage
from tests.bot.e2e_support import Opened, deleted, detail, edited, open_ticket, staff_cards
from tests.security.support import counts

WRITES = (
    "chat.postMessage",
    "chat.update",
    "chat.delete",
    "chat.postEphemeral",
    "response_url",
    "views.open",
    "views.push",
    "views.update",
    "views.publish",
    "reactions.add",
    "reactions.remove",
)

Build = Callable[[Stage, Opened], Awaitable[SlackRequest]]


async def effects(stage: Stage) -> Counter[str]:
    """Everything a delivery can change: table rows, and write calls to Slack by outcome."""
    found: Counter[str] = Counter(await counts(stage))
    for call in stage.fake.calls:
        if call.method in WRITES:
            found[f"{call.method} {'ok' if call.ok else call.error}"] += 1
    return found


def delta(after: Counter[str], before: Counter[str]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after.keys() | before.keys() if after[k] != before[k]}


async def deliver(
    stage: Stage, replica: Replica | None, request: SlackRequest, *, mode: str
) -> None:
    """The first delivery and three retries, as `mode` says."""
    if mode == "once":
        await stage.act(request)
        return
    copies: list[tuple[Any, dict[str, Any]]] = []
    for attempt in range(4):
        target: Any = stage if mode == "same replica" or attempt % 2 == 0 else replica
        headers = {} if attempt == 0 else {"retry_num": attempt, "retry_reason": "http_timeout"}
        copies.append((target, headers))
    if mode == "both replicas at once":
        responses = await asyncio.gather(*(t.send(request, **h) for t, h in copies))
        assert all(r.status == 200 for r in responses), responses
        await stage.settle()
        return
    for target, headers in copies:
        response = await target.send(request, **headers)
        assert response.status == 200, response
        await stage.settle()


# --------------------------------------------------------------------------- the deliveries


def command(person: Any, text: str, channel: str | None = None) -> Build:
    async def build(stage: Stage, ticket: Opened) -> SlackRequest:
        where = channel or (ticket.dm if person is CUSTOMER else STAFF_CHANNEL)
        return stage.user(person).slash_command(text.format(n=ticket.number), channel_id=where)

    return build


def click(person: Any, action: str) -> Build:
    async def build(stage: Stage, ticket: Opened) -> SlackRequest:
        if person is CUSTOMER:  # a button on a list or detail message in the customer's DM
            ticket_id = (await detail(stage, ticket.number)).ticket.id
            value = TicketRefPayload(ticket_id=ticket_id).dump()
            return stage.user(person).click(action, value=value, channel_id=ticket.dm)
        card = stage.fake.message(STAFF_CHANNEL, ticket.card.ts)
        return stage.user(person).click(action, message=card, channel_id=STAFF_CHANNEL)

    return build


def modal(person: Any, opener: str | None, values: dict[str, Any]) -> Build:
    """The person opens a modal (a card button, or /ticket new), then the submission."""

    async def build(stage: Stage, ticket: Opened) -> SlackRequest:
        if opener is None:
            await stage.act(stage.user(person).slash_command("new", channel_id=stage.dm(person)))
        else:
            await stage.act(await click(person, opener)(stage, ticket))
        view = stage.fake.views_opened(person.user_id)[-1]
        return stage.user(person).submit(view.to_api(), values)

    return build


def says(person: Any, text: str) -> Build:
    async def build(stage: Stage, ticket: Opened) -> SlackRequest:
        if person is CUSTOMER:
            return stage.user(person).says(ticket.dm, text, thread_ts=ticket.confirmation.ts)
        return stage.user(person).says(STAFF_CHANNEL, text, thread_ts=ticket.card.ts)

    return build


def edits(change: str) -> Build:
    """The customer writes in their thread (delivered once, before), then edits or deletes it."""

    async def build(stage: Stage, ticket: Opened) -> SlackRequest:
        await stage.act(await says(CUSTOMER, "first words")(stage, ticket))
        mine = [m for m in stage.fake.replies(ticket.dm, ticket.confirmation.ts) if not m.bot_id]
        return (
            edited(stage, mine[-1], "better words")
            if change == "edit"
            else deleted(stage, mine[-1])
        )

    return build


SCENARIOS: dict[str, Build] = {
    # slash commands
    "command: public reply": command(AGENT, "reply {n} We are on it"),
    "command: internal note": command(AGENT, "note {n} Checked the logs"),
    "command: assign (alert to the assignee)": command(ADMIN, f"assign {{n}} <@{AGENT.user_id}>"),
    "command: status change": command(AGENT, "status {n} in_progress checking"),
    "command: customer closes": command(CUSTOMER, "close {n} solved it myself"),
    "command: new (opens a modal)": command(CUSTOMER, "new Another problem"),
    "command: show": command(CUSTOMER, "show {n}"),
    # view submissions
    "view: create ticket (card and thread)": modal(
        CUSTOMER, None, {"title_block": {"title": "Mail"}, "priority_block": {"priority": "high"}}
    ),
    "view: public reply": modal(
        AGENT,
        Action.REPLY_OPEN,
        {"body_block": {"body": "Try again now"}, "visibility_block": {"visibility": "public"}},
    ),
    "view: internal note": modal(
        AGENT,
        Action.NOTE_OPEN,
        {"body_block": {"body": "Looks like DNS"}, "visibility_block": {"visibility": "internal"}},
    ),
    "view: status": modal(
        AGENT, Action.STATUS_OPEN, {"status_block": {"status": "waiting_on_customer"}}
    ),
    "view: assign": modal(
        ADMIN, Action.ASSIGN_OPEN, {"assignee_block": {"assignee": AGENT.user_id}}
    ),
    # block actions
    "action: assign to me": click(AGENT, Action.ASSIGN_TO_ME),
    "action: open the reply modal": click(AGENT, Action.REPLY_OPEN),
    "action: open the status modal": click(AGENT, Action.STATUS_OPEN),
    "action: show ticket": click(CUSTOMER, Action.SHOW_TICKET),
    # message events
    "event: customer message (relayed to staff)": says(CUSTOMER, "It happened again"),
    "event: staff note in the staff thread": says(AGENT, "only for us"),
    "event: staff reply (relayed to the customer)": says(AGENT, "!reply Please restart"),
    "event: customer edits a message": edits("edit"),
    "event: customer deletes a message": edits("delete"),
}  # fmt: skip
MODES = ["same replica", "second replica", "both replicas at once"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_a_retried_delivery_has_the_effects_of_one(stage, replica, scenario, mode):
    build = SCENARIOS[scenario]
    first = await open_ticket(stage, title="First printer")
    second = await open_ticket(stage, title="Second printer")

    request = await build(stage, first)
    before = await effects(stage)
    await deliver(stage, replica, request, mode="once")
    once = delta(await effects(stage), before)
    assert once, "the delivery did nothing at all"

    request = await build(stage, second)
    before = await effects(stage)
    await deliver(stage, replica, request, mode=mode)
    retried = delta(await effects(stage), before)

    assert retried == once
    assert not [k for k in once if not k.endswith(" ok") and " " in k], once  # no failed calls


async def test_retries_leave_one_card_one_thread_and_one_of_each_message(stage, replica):
    """The whole story, every delivery retried three times across both replicas: the staff
    channel has one card per ticket, each thread holds every message exactly once."""
    stage_replica = replica
    opened = await open_ticket(stage, title="Laptop will not boot")
    steps: list[SlackRequest] = [
        stage.user(AGENT).click(
            Action.ASSIGN_TO_ME,
            message=stage.fake.message(STAFF_CHANNEL, opened.card.ts),
            channel_id=STAFF_CHANNEL,
        ),
        stage.user(CUSTOMER).says(opened.dm, "still broken", thread_ts=opened.confirmation.ts),
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply on my way", thread_ts=opened.card.ts),
        stage.user(AGENT).says(STAFF_CHANNEL, "bring a spare", thread_ts=opened.card.ts),
        stage.user(AGENT).slash_command(
            f"close {opened.number} replaced", channel_id=STAFF_CHANNEL
        ),
    ]
    for request in steps:
        await deliver(stage, stage_replica, request, mode="both replicas at once")
    assert len(staff_cards(stage)) == 1
    ticket = await detail(stage, opened.number)
    assert [r.body for r in ticket.replies] == ["still broken", "on my way", "bring a spare"]
    assert [h.to_status.value for h in ticket.history] == ["open", "closed"]
    staff_thread = [m.text_content for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts)]
    customer_thread = [
        m.text_content for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
    ]
    for text, thread in (("still broken", staff_thread), ("on my way", customer_thread)):
        assert sum(text in t for t in thread) == 1, thread
    assert not any("bring a spare" in t for t in customer_thread)


async def test_a_retried_home_tab_event_publishes_the_same_home(stage, replica):
    """app_home_opened is not claimed: publishing the Home tab again is idempotent."""
    await open_ticket(stage)
    request = stage.user(CUSTOMER).opens_home()
    await deliver(stage, replica, request, mode="both replicas at once")
    published = [c.params for c in stage.fake.calls_to("views.publish") if c.ok]
    assert published and all(p["view"] == published[0]["view"] for p in published)
    assert len(stage.fake.home_views(CUSTOMER.user_id)) >= 1
