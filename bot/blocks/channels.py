"""What the bot says in a customer channel: the answer in the thread of a message that raised
a ticket (pure builders). Only what the whole channel may read: the number, the status, how
to go on, and a Close button the core lets only the requester (or staff) use."""

from __future__ import annotations

from bot.blocks import labels
from bot.blocks.kit import Json, actions, button, context, section
from bot.blocks.text import truncate, user_mention
from bot.ids import Action
from bot.payloads import TicketRefPayload
from core.enums import Status
from core.results import TicketView

Message = tuple[str, list[Json]]
FALLBACK_TEXT = 3000


def channel_confirmation(ticket: TicketView) -> Message:
    """The bot's answer in the thread of the message that raised `ticket` in a channel."""
    who = user_mention(ticket.customer.slack_user_id, name=ticket.customer.display_name)
    blocks: list[Json] = [
        section(f":white_check_mark: {who}, we received your request: ticket {labels.ref(ticket)}"),
        section(fields=[f"*Status*\n{labels.status_label(ticket.status)}"]),
        section(
            "Our support team answers *in this thread*. Reply here to add information; "
            "everyone in this channel can read this thread."
        ),
    ]
    if ticket.status is not Status.CLOSED:
        value = TicketRefPayload(ticket_id=ticket.id).dump()
        blocks.append(actions(button("Close…", action_id=Action.STATUS_OPEN, value=value)))
    blocks.append(context(f"See it any time with {labels.show_hint(ticket.number)}."))
    text = f"Ticket #{ticket.number} opened: {labels.title(ticket)}"
    return truncate(text, FALLBACK_TEXT), blocks
