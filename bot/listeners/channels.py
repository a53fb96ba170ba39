"""Customer channels: a top-level message in a linked channel raises a ticket (or joins the
one its author just opened), a reaction with the ticket emoji raises one from any message the
bot can read, and an edit or deletion of a request before anyone answered follows it.

The bot answers in the message's thread through the outbox (bot.delivery); what happens in
that thread afterwards is a ticket thread like any other (bot.listeners.events)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot import connect
from bot.incoming import read_message
from bot.listeners.desk import reserved_channels
from bot.listeners.registry import Registry
from bot.notify import slack_error_code
from bot.runtime import Runtime
from core import channels, chat
from core.errors import DomainError, Unavailable

log = logging.getLogger("bot.channels")

# Message subtypes that are a person writing (a file with a comment included).
_PERSON_SUBTYPES = (None, "file_share")


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.events.update({"message.channels", "message.groups", "reaction_added"})

    @app.event("reaction_added")
    @runtime.supervise
    async def on_reaction(event: dict[str, Any], body: dict[str, Any]) -> None:
        event_id = body.get("event_id")
        if not await _wanted_reaction(runtime, event):
            return
        if event_id and not await chat.claim_delivery(runtime.core, key=f"event:{event_id}"):
            log.info("duplicate event dropped", extra={"event_id": event_id})
            return
        try:
            await _reaction(runtime, event)
        except Unavailable:
            if event_id:
                await chat.release_delivery(runtime.core, key=f"event:{event_id}")
            raise


async def top_level_message(runtime: Runtime, event: dict[str, Any]) -> None:
    """A new top-level message in a channel (not a DM): a request when the channel is linked
    and takes requests by message, and the author is one of its customers."""
    if event.get("subtype") not in _PERSON_SUBTYPES or event.get("bot_id"):
        return
    channel, user_id, ts = event.get("channel"), event.get("user"), event.get("ts")
    if not channel or not user_id or not ts or user_id == "USLACKBOT":
        return
    if channel in reserved_channels(runtime):
        return
    link = await channels.link_of(runtime.core, channel_id=channel)
    if link is None or link.intake != channels.Intake.MESSAGE:
        return
    try:
        actor = await connect.resolve_in_channel(runtime, user_id, channel)
    except DomainError as error:
        log.info("channel message not taken", extra={"code": error.code.value})
        return
    window = timedelta(seconds=runtime.settings.channel_group_seconds)
    taken = await channels.message_request(
        runtime.core,
        author_id=actor.id,
        channel_id=channel,
        ts=ts,
        text=await read_message(runtime, event),
        window=window,
    )
    if taken is not None:
        log.info(
            "channel request",
            extra={"ticket": taken.ticket.number, "opened": taken.opened, "joined": taken.joined},
        )
        runtime.wake_outbox()


async def _wanted_reaction(runtime: Runtime, event: dict[str, Any]) -> bool:
    """Whether the reaction is the channel's ticket emoji (before any lookup)."""
    item = event.get("item") or {}
    channel = item.get("channel")
    if item.get("type") != "message" or not channel or not item.get("ts"):
        return False
    if channel in reserved_channels(runtime) or not event.get("user"):
        return False
    name = str(event.get("reaction") or "")
    link = await channels.link_of(runtime.core, channel_id=channel)
    wanted = link.reaction if link is not None else runtime.settings.ticket_reaction
    return name.split("::")[0] == wanted and (link is None or link.intake != channels.Intake.OFF)


async def _reaction(runtime: Runtime, event: dict[str, Any]) -> None:
    item = event["item"]
    channel, ts = str(item["channel"]), str(item["ts"])
    message = await _fetch_message(runtime, channel, ts)
    if message is None:
        log.info("reacted message not found", extra={"channel": channel})
        return
    author = message.get("user")
    if not author or message.get("bot_id") or message.get("subtype") not in _PERSON_SUBTYPES:
        return
    try:
        reactor = await connect.resolve_in_channel(runtime, str(event["user"]), channel)
        requester = await connect.resolve_in_channel(runtime, str(author), channel)
    except DomainError as error:
        log.info("reaction not taken", extra={"code": error.code.value})
        return
    thread_ts = message.get("thread_ts")
    taken = await channels.reaction_request(
        runtime.core,
        reactor_id=reactor.id,
        author_id=requester.id,
        channel_id=channel,
        ts=ts,
        top_level=not thread_ts or thread_ts == ts,
        reaction=str(event.get("reaction") or "").split("::")[0],
        text=await read_message(runtime, message),
        link_back=await _permalink(runtime, channel, ts),
        reserved=reserved_channels(runtime),
        default_reaction=runtime.settings.ticket_reaction,
    )
    if taken is not None:
        log.info("reaction request", extra={"ticket": taken.ticket.number, "opened": taken.opened})
        runtime.wake_outbox()


async def _fetch_message(runtime: Runtime, channel: str, ts: str) -> dict[str, Any] | None:
    """The reacted message: reaction events carry no text. Top-level messages come from
    conversations.history, thread replies from conversations.replies."""
    client = runtime.client
    try:
        history = await client.conversations_history(
            channel=channel, latest=ts, inclusive=True, limit=1
        )
        for found in history.get("messages") or []:
            if found.get("ts") == ts:
                return dict(found)
        replies = await client.conversations_replies(
            channel=channel, ts=ts, latest=ts, inclusive=True, limit=1
        )
        for found in replies.get("messages") or []:
            if found.get("ts") == ts:
                return dict(found)
    except SlackApiError as error:
        log.info("reacted message unreadable", extra={"error": slack_error_code(error)})
    return None


async def _permalink(runtime: Runtime, channel: str, ts: str) -> str | None:
    try:
        response = await runtime.client.chat_getPermalink(channel=channel, message_ts=ts)
    except SlackApiError:
        return None
    link = response.get("permalink")
    return str(link) if link else None


async def request_edited(runtime: Runtime, event: dict[str, Any]) -> None:
    """A message that raised a ticket was edited: before anyone answered, the ticket follows."""
    message = event.get("message") or {}
    channel, user_id, ts = event.get("channel"), message.get("user"), message.get("ts")
    if not channel or not user_id or not ts or message.get("thread_ts") not in (None, ts):
        return
    previous = (event.get("previous_message") or {}).get("text")
    if previous == message.get("text"):
        return
    try:
        actor = await connect.resolve_in_channel(runtime, user_id, channel)
        changed = await channels.request_edited(
            runtime.core,
            author_id=actor.id,
            channel_id=channel,
            ts=ts,
            text=await read_message(runtime, message),
        )
    except DomainError as error:
        log.info("request edit not taken", extra={"code": error.code.value})
        return
    if changed is not None:
        runtime.wake_outbox()


async def request_deleted(runtime: Runtime, event: dict[str, Any]) -> None:
    """A message that raised a ticket was deleted: before anyone answered, it is withdrawn."""
    channel = event.get("channel")
    previous = event.get("previous_message") or {}
    ts = event.get("deleted_ts") or previous.get("ts")
    user_id = previous.get("user")
    if not channel or not ts or not user_id or previous.get("thread_ts") not in (None, ts):
        return
    try:
        actor = await connect.resolve_in_channel(runtime, user_id, channel)
        withdrawn = await channels.request_deleted(
            runtime.core, author_id=actor.id, channel_id=channel, ts=ts
        )
    except DomainError as error:
        log.info("request deletion not taken", extra={"code": error.code.value})
        return
    if withdrawn is not None:
        runtime.wake_outbox()
