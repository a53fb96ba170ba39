"""The last check before anything is posted: a message meant for staff (a card, a staff-thread
relay, a note, an assignee's notice, an SLA alert, a surface notice) never goes to a customer
channel, whatever a setting or a stored thread says. Called by the delivery worker."""

from __future__ import annotations

from core import channels
from core.context import Core
from core.enums import Audience
from core.outbox import ClaimedMessage, OutboxKind

_CUSTOMER_KINDS = frozenset({OutboxKind.CUSTOMER_THREAD_CREATE, OutboxKind.CUSTOMER_THREAD_POST})
_COPY_KINDS = frozenset({OutboxKind.REPLY_COPIES_UPDATE, OutboxKind.REPLY_COPIES_DELETE})


def for_customers(message: ClaimedMessage) -> bool:
    """Whether the message is meant for a customer's conversation."""
    if message.kind in _CUSTOMER_KINDS:
        return True
    return message.kind in _COPY_KINDS and message.payload.get("audience") == Audience.CUSTOMER


async def staff_message_to_customer_channel(
    core: Core, message: ClaimedMessage, channel: str
) -> bool:
    """True when a message meant for staff is about to be posted into a customer channel."""
    if for_customers(message) or channel.startswith("D"):
        return False
    return await channels.link_of(core, channel_id=channel) is not None


async def reserved_channel_problem(
    core: Core, *, staff_channel_id: str | None, manager_channel_id: str | None
) -> str | None:
    """Why the configured staff or manager channel may not be used: it is a customer channel
    (linked to a company); None when neither is."""
    reserved = {"STAFF_CHANNEL_ID": staff_channel_id, "MANAGER_CHANNEL_ID": manager_channel_id}
    linked = await channels.linked_among(core, channel_ids=[c for c in reserved.values() if c])
    for name, channel in reserved.items():
        if channel and channel in linked:
            return (
                f"{name} {channel} is a customer channel (linked to a company): internal notes "
                "and alerts must never be posted where customers read. Use another channel, or "
                "unlink it with `/ticket channel unlink` first"
            )
    return None
