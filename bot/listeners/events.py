"""Events: thread sync between the staff channel and customers' DMs, edits, deletions, App Home.

Every delivery is claimed by its event_id in the shared database first, so Slack's retries
(possibly to another replica) are dropped; the reply itself is also keyed by the message's
(channel, ts), so even a delivery without an event id cannot create it twice."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import connect, notify, staff_channel
from bot.blocks import home, messages
from bot.errors import Place, Surface, show_error
from bot.ids import NOTE_REACTION, REPLY_MARKER, REPLY_REACTION
from bot.incoming import read_message, written_by_person
from bot.listeners import channels as customer_channels
from bot.listeners.registry import Registry
from bot.runtime import Runtime
from bot.shared_files import shared_files
from core import chat, replies, tickets
from core.attachments import AttachmentInput
from core.enums import Audience
from core.errors import DomainError, Unavailable
from core.replies import ChatOrigin
from core.results import UserView

log = logging.getLogger("bot.events")

_MARKER = re.compile(rf"^\s*{re.escape(REPLY_MARKER)}(?:\s+|$)", re.IGNORECASE)
_IGNORED_SUBTYPES = frozenset(
    {
        "bot_message",
        "channel_join",
        "channel_leave",
        "group_join",
        "group_leave",
        "channel_topic",
        "group_topic",
        "channel_purpose",
        "group_purpose",
        "channel_name",
        "group_name",
        "pinned_item",
    }
)


def split_marker(text: str) -> tuple[bool, str]:
    """(is_public_reply, text without the marker). Anything but the exact marker is a note."""
    match = _MARKER.match(text)
    if match is None:
        return False, text
    return True, text[match.end() :]


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.events.update({"message.im", "message.groups", "app_home_opened"})
    _register_staff_channel_events(app, runtime, registry)

    @app.event("message")
    @runtime.supervise
    async def on_message(event: dict[str, Any], body: dict[str, Any]) -> None:
        event_id = body.get("event_id")
        if event_id and not await chat.claim_delivery(runtime.core, key=f"event:{event_id}"):
            log.info("duplicate event dropped", extra={"event_id": event_id})
            return
        try:
            await _route_message(runtime, event)
        except Unavailable:
            # Nothing was written: let Slack's retry (or the next one) try again.
            if event_id:
                await chat.release_delivery(runtime.core, key=f"event:{event_id}")
            raise

    @app.event("app_home_opened")
    @runtime.supervise
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user_id = event.get("user")
        if not user_id:
            return
        actor = await runtime.identity.resolve(user_id)
        await runtime.client.views_publish(user_id=user_id, view=await _home_view(runtime, actor))


def _register_staff_channel_events(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    """Slack events that can make the staff channel unsafe for notes (or safe again) make the
    guard check it at once (bot.staff_channel). Registered before the `message` listener: the
    conversion subtypes arrive as messages, and bolt runs the first listener that matches."""
    # message.channels: a channel made public announces it as a message in a public channel.
    registry.events.update({"message.channels", *staff_channel.CHANGE_EVENTS})

    async def recheck_staff_channel(event: dict[str, Any]) -> None:
        guard = runtime.staff_channel
        if guard is None or not guard.concerns(event):
            return
        cause = str(event.get("subtype") or event.get("type"))
        try:
            await guard.recheck(cause=cause)
        except Unavailable:  # nothing recorded: the periodic recheck records it later
            log.warning("staff channel check not recorded", extra={"cause": cause})

    supervised = runtime.supervise(recheck_staff_channel)
    app.event({"type": "message", "subtype": staff_channel.CONVERSION_SUBTYPES})(supervised)
    for name in staff_channel.CHANGE_EVENTS:
        app.event(name)(supervised)


async def _home_view(runtime: Runtime, actor: UserView) -> dict[str, Any]:
    mine = await tickets.my_tickets(runtime.core, actor_id=actor.id, open_only=True, page_size=20)
    unassigned = None
    if actor.role.is_staff:
        unassigned = await tickets.list_tickets(
            runtime.core,
            actor_id=actor.id,
            filters=tickets.TicketFilters(unassigned=True),
            page_size=20,
        )
    return home.home_view(user=actor, mine=mine, unassigned=unassigned, now=runtime.clock.now())


async def _route_message(runtime: Runtime, event: dict[str, Any]) -> None:
    subtype = event.get("subtype")
    if event.get("bot_id") or subtype in _IGNORED_SUBTYPES:
        return
    if subtype == "message_changed":
        await _on_edit(runtime, event)
        return
    if subtype == "message_deleted":
        await _on_delete(runtime, event)
        return
    if not written_by_person(event):  # Slackbot, apps, bots, system messages
        return
    channel = event.get("channel")
    user_id = event.get("user")
    ts = event.get("ts")
    thread_ts = event.get("thread_ts")
    if not channel or not user_id or not ts:
        return
    if not thread_ts or thread_ts == ts:
        if event.get("channel_type") == "im":
            text, blocks = messages.dm_guidance()
            await notify.post(runtime, channel=channel, text=text, blocks=blocks)
        else:
            await customer_channels.top_level_message(runtime, event)
        return
    owner = await chat.owner_of_thread(runtime.core, channel_id=channel, ts=thread_ts)
    if owner is None:
        return
    actor = await connect.resolve_in_channel(runtime, user_id, channel)
    text = await read_message(runtime, event)
    files = shared_files(event)
    if owner.audience is Audience.STAFF:
        await _staff_thread_message(runtime, owner, actor, channel, ts, thread_ts, text, files)
    else:
        await _customer_thread_message(runtime, owner, actor, channel, ts, thread_ts, text, files)


async def _staff_thread_message(
    runtime: Runtime,
    owner: chat.ThreadOwner,
    actor: UserView,
    channel: str,
    ts: str,
    thread_ts: str,
    text: str,
    files: list[AttachmentInput],
) -> None:
    if channel != runtime.settings.staff_channel_id:
        return
    # Without the marker the person means a note; the core refuses anyone not staff now.
    public, body = split_marker(text)
    try:
        await replies.add_reply(
            runtime.core,
            actor_id=actor.id,
            ticket=owner.ticket_id,
            body=body,
            internal=not public,
            origin=ChatOrigin(Audience.STAFF, channel, ts),
            idempotency_key=f"message:{channel}:{ts}",
            files=files,
        )
    except DomainError as error:
        place = _thread_place(Surface.STAFF_THREAD, owner, actor, channel, thread_ts)
        await show_error(runtime, error, place)
        return
    runtime.wake_outbox()
    await notify.react(
        runtime, channel=channel, ts=ts, name=REPLY_REACTION if public else NOTE_REACTION
    )


async def _customer_thread_message(
    runtime: Runtime,
    owner: chat.ThreadOwner,
    actor: UserView,
    channel: str,
    ts: str,
    thread_ts: str,
    text: str,
    files: list[AttachmentInput],
) -> None:
    try:
        await replies.add_reply(
            runtime.core,
            actor_id=actor.id,
            ticket=owner.ticket_id,
            body=text,
            internal=False,
            origin=ChatOrigin(Audience.CUSTOMER, channel, ts),
            idempotency_key=f"message:{channel}:{ts}",
            files=files,
        )
    except DomainError as error:
        place = _thread_place(Surface.CUSTOMER_THREAD, owner, actor, channel, thread_ts)
        await show_error(runtime, error, place)
        return
    runtime.wake_outbox()


def _thread_place(
    surface: Surface,
    owner: chat.ThreadOwner,
    actor: UserView,
    channel: str,
    thread_ts: str,
) -> Place:
    return Place(
        surface,
        user_id=actor.slack_user_id,
        actor_id=actor.id,
        channel_id=channel,
        thread_ts=thread_ts,
        ticket_number=owner.number,
        dm=surface is Surface.CUSTOMER_THREAD,  # a customer's ticket thread is in their DM
    )


async def _on_edit(runtime: Runtime, event: dict[str, Any]) -> None:
    message = event.get("message") or {}
    channel = event.get("channel")
    user_id = message.get("user")
    ts = message.get("ts")
    if not channel or not ts or not user_id or not written_by_person(message):
        return
    reply_id = await chat.reply_of_message(runtime.core, channel_id=channel, ts=ts)
    if reply_id is None:
        await customer_channels.request_edited(runtime, event)
        return
    text = await read_message(runtime, message)
    if await read_message(runtime, event.get("previous_message") or {}) == text:
        return  # unfurls and reactions also arrive as message_changed
    _, body = split_marker(text)
    actor = await connect.resolve_in_channel(runtime, user_id, channel)
    try:
        await replies.edit_reply(runtime.core, actor_id=actor.id, reply_id=reply_id, body=body)
    except DomainError as error:
        place = Place(
            Surface.EDIT,
            user_id=user_id,
            actor_id=actor.id,
            channel_id=channel,
            thread_ts=message.get("thread_ts"),
            dm=event.get("channel_type") == "im",
        )
        await show_error(runtime, error, place)
        return
    runtime.wake_outbox()


async def _on_delete(runtime: Runtime, event: dict[str, Any]) -> None:
    channel = event.get("channel")
    previous = event.get("previous_message") or {}
    ts = event.get("deleted_ts") or previous.get("ts")
    user_id = previous.get("user")
    if not channel or not ts or not user_id or not written_by_person(previous):
        return
    reply_id = await chat.reply_of_message(runtime.core, channel_id=channel, ts=ts)
    if reply_id is None:
        await customer_channels.request_deleted(runtime, event)
        return
    actor = await connect.resolve_in_channel(runtime, user_id, channel)
    try:
        await replies.delete_reply(runtime.core, actor_id=actor.id, reply_id=reply_id)
    except DomainError as error:
        place = Place(
            Surface.DELETION,
            user_id=user_id,
            channel_id=channel,
            thread_ts=previous.get("thread_ts"),
            dm=event.get("channel_type") == "im",
        )
        await show_error(runtime, error, place)
        return
    runtime.wake_outbox()
