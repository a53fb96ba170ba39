"""Slack Connect and reactions in the stand-in: channels shared with another organisation and
their people (users of another team), what such a person writes (their message carries their
team, the envelope says the channel is shared), reactions people add (`reaction_added`), and
which channels a customer can read for the leak scan (linked ones, and any with a member of
another team)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from core.context import Core
from core.models import ChannelLink
from devslack.model import FakeChannel, FakeUser, JSONDict, StoredMessage
from devslack.requests import SlackRequest, event_callback_body
from devslack.server import FakeSlack, VisibleItem


def add_external_user(
    fake: FakeSlack, user_id: str, name: str, *, team_id: str, email: str | None = None
) -> FakeUser:
    """A person of another organisation: users.info answers with their own team id (and often
    no email)."""
    return fake.add_user(user_id, name, email=email, team_id=team_id)


def add_shared_channel(
    fake: FakeSlack,
    channel_id: str,
    name: str,
    *,
    team_id: str,
    members: Iterable[str],
    is_private: bool = False,
) -> FakeChannel:
    """A channel shared with the organisation `team_id` (Slack Connect), the bot a member."""
    channel = fake.add_channel(channel_id, name, is_private=is_private, members=members)
    channel.shared_with.add(team_id)
    return channel


def writes(
    fake: FakeSlack, channel_id: str, user_id: str, text: str, *, thread_ts: str | None = None
) -> tuple[StoredMessage, SlackRequest]:
    """`user_id` posts `text` (a thread reply with `thread_ts`): the stored message, carrying the
    author's team as Slack's does, and the event Slack sends about it."""
    message = fake.post_as_user(channel_id, user_id, text, thread_ts=thread_ts)
    author = fake.users.get(user_id)
    if author is not None:
        message.team = author.team_id
    event = fake.message_event(message)
    if author is not None and author.team_id != fake.team_id:
        event["user_team"] = author.team_id
    channel = fake.channels[channel_id]
    return message, event_callback_body(event, is_ext_shared_channel=bool(channel.shared_with))


def reacts(fake: FakeSlack, user_id: str, message: StoredMessage, name: str) -> SlackRequest:
    """`user_id` adds the reaction `name` to `message`: recorded on it, and the
    `reaction_added` event Slack sends (no message text: the app reads the message back)."""
    users = message.reactions.setdefault(name, [])
    if user_id not in users:
        users.append(user_id)
    event: JSONDict = {
        "type": "reaction_added",
        "user": user_id,
        "reaction": name,
        "item": {"type": "message", "channel": message.channel, "ts": message.ts},
        "item_user": message.user,
        "event_ts": fake.next_ts(),
    }
    channel = fake.channels[message.channel]
    return event_callback_body(event, is_ext_shared_channel=bool(channel.shared_with))


async def customer_channel_items(core: Core, fake: FakeSlack) -> list[VisibleItem]:
    """Every message in a channel customers can read although it may be private: a linked
    (customer) channel, or one with a member of another organisation."""
    async with core.db.transaction() as session:
        linked = set(await session.scalars(select(ChannelLink.channel_id)))
    items: list[VisibleItem] = []
    for channel_id, channel in fake.channels.items():
        if channel.is_im or channel.is_mpim:
            continue
        outsiders = any(
            fake.users[m].team_id != fake.team_id for m in channel.members if m in fake.users
        )
        if channel_id not in linked and not outsiders and not channel.shared_with:
            continue
        for message in fake.messages(channel_id, include_deleted=True):
            items.extend(fake._message_items(message, True))
    return items
