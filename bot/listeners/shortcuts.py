"""Message shortcut: turn any message into a ticket, with its text as the description."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks import modals
from bot.ids import Callback
from bot.incoming import read_message
from bot.listeners.registry import Registry
from bot.markup import first_line
from bot.payloads import CreateTicketPayload
from bot.runtime import Runtime
from core import admin, chat
from core.enums import Audience
from core.results import UserView


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.message_shortcuts.add(Callback.MESSAGE_TO_TICKET)

    @app.shortcut(Callback.MESSAGE_TO_TICKET.value)
    @runtime.supervise
    async def message_to_ticket(
        ack: AsyncAck, shortcut: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        await ack()
        message = shortcut.get("message") or {}
        # As the person saw it: names for mentions, links with their labels, rich text read.
        text = await read_message(runtime, message) if isinstance(message, dict) else ""
        channel = (shortcut.get("channel") or {}).get("id")
        copied = await _from_staff_surface(runtime, channel, message)
        categories = await admin.list_categories(runtime.core)
        view = modals.create_ticket_modal(
            categories=categories,
            title=first_line(text, 150),
            description=text[:3000],
            staff=actor.role.is_staff,
            metadata=CreateTicketPayload(channel_id=channel, copied_from_staff=copied or None),
        )
        await client.views_open(trigger_id=shortcut["trigger_id"], view=view)


async def _from_staff_surface(runtime: Runtime, channel: Any, message: dict[str, Any]) -> bool:
    """Whether a message was written where only staff read: the staff or managers' channel,
    or a ticket's staff thread wherever it is. Its text is internal until someone confirms."""
    if not isinstance(channel, str):
        return True  # (unknown origin: the cautious answer)
    settings = runtime.settings
    if channel in (settings.staff_channel_id, settings.manager_channel_id):
        return True
    thread_ts = message.get("thread_ts") or message.get("ts")
    if not isinstance(thread_ts, str):
        return False
    owner = await chat.owner_of_thread(runtime.core, channel_id=channel, ts=thread_ts)
    return owner is not None and owner.audience is Audience.STAFF
