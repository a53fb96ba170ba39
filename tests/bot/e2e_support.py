"""Small helpers the end-to-end scenarios share: opening a ticket, finding the card and the
customer thread, editing and deleting a person's message as Slack reports it, reading the core."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from core import tickets
from core.results import TicketDetail, UserView
from devslack.requests import SlackRequest, event_callback_body
from devslack.server import StoredMessage
from devslack.stage import ADMIN, CUSTOMER, STAFF_CHANNEL, Person, Stage


@dataclass(frozen=True)
class Opened:
    """A ticket as the people see it: the staff card, the customer's DM and its confirmation."""

    number: int
    card: StoredMessage
    dm: str
    confirmation: StoredMessage


def staff_cards(stage: Stage) -> list[StoredMessage]:
    return [m for m in stage.fake.messages(STAFF_CHANNEL) if not m.is_reply]


async def open_ticket(
    stage: Stage,
    person: Person = CUSTOMER,
    *,
    title: str = "VPN drops every hour",
    description: str = "Since Monday.",
) -> Opened:
    await stage.open_ticket(person, title=title, description=description)
    card = staff_cards(stage)[-1]
    dm = stage.dm(person)
    confirmation = [m for m in stage.fake.messages(dm) if m.bot_id and not m.is_reply][-1]
    number = int(card.text.split()[0].lstrip("#"))
    return Opened(number=number, card=card, dm=dm, confirmation=confirmation)


async def user(stage: Stage, person: Person) -> UserView:
    return await stage.runtime.identity.resolve(person.user_id)


async def detail(stage: Stage, number: int, *, as_person: Person = ADMIN) -> TicketDetail:
    actor = await user(stage, as_person)
    return await tickets.get_ticket(stage.runtime.core, actor_id=actor.id, ticket=number)


def edited(stage: Stage, message: StoredMessage, text: str) -> SlackRequest:
    """The person edits their message: the fake's copy changes and a message_changed event
    arrives, as Slack sends it (the edited message nested, the previous one alongside)."""
    previous = message.to_api()
    message.text = text
    message.edited = {"user": message.user, "ts": stage.fake.next_ts()}
    current = message.to_api()
    channel = stage.fake.channels[message.channel]
    event = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": message.channel,
        "channel_type": channel.channel_type,
        "message": current,
        "previous_message": previous,
        "ts": message.edited["ts"],
        "event_ts": message.edited["ts"],
    }
    return event_callback_body(event)


def deleted(stage: Stage, message: StoredMessage) -> SlackRequest:
    """The person deletes their message: message_deleted with the previous message."""
    previous = message.to_api()
    message.deleted = True
    ts = stage.fake.next_ts()
    channel = stage.fake.channels[message.channel]
    event = {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": message.channel,
        "channel_type": channel.channel_type,
        "deleted_ts": message.ts,
        "previous_message": previous,
        "ts": ts,
        "event_ts": ts,
    }
    return event_callback_body(event)


def with_event_id(request: SlackRequest, event_id: str) -> SlackRequest:
    """The same event delivery again with a chosen event_id (a Slack retry)."""
    payload = copy.deepcopy(request.payload)
    payload["event_id"] = event_id
    return SlackRequest(
        body=json.dumps(payload), content_type=request.content_type, payload=payload, kind="event"
    )


def last_ephemeral(stage: Stage, person: Person) -> str:
    found = stage.fake.ephemerals(person.user_id)
    assert found, f"{person.name} got no ephemeral message"
    return found[-1].text_content


def posted_payloads(stage: Stage, *methods: str) -> list[dict[str, Any]]:
    """Params of every successful call to the given methods (what really reached Slack)."""
    wanted = methods or ("chat.postMessage", "chat.update", "chat.postEphemeral")
    return [c.params for c in stage.fake.calls if c.method in wanted and c.ok]
