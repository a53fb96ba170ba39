"""Wording shared by the builders: priorities, statuses, people and ticket references."""

from __future__ import annotations

from bot.blocks.text import escape, single_line, truncate, user_mention
from core.enums import Priority, Status
from core.results import TicketView, UserView

PRIORITY_EMOJI: dict[Priority, str] = {
    Priority.LOW: ":white_circle:",
    Priority.MEDIUM: ":large_blue_circle:",
    Priority.HIGH: ":large_orange_circle:",
    Priority.URGENT: ":red_circle:",
}
STATUS_TEXT: dict[Status, str] = {
    Status.OPEN: "Open",
    Status.IN_PROGRESS: "In progress",
    Status.WAITING_ON_CUSTOMER: "Waiting on customer",
    Status.RESOLVED: "Resolved",
    Status.CLOSED: "Closed",
}
NAME_LIMIT = 80
TITLE_LIMIT = 150


def priority_text(priority: Priority) -> str:
    """'High' (plain words, no emoji)."""
    return priority.value.capitalize()


def priority_label(priority: Priority) -> str:
    """':large_orange_circle: High' (mrkdwn)."""
    return f"{PRIORITY_EMOJI[priority]} {priority_text(priority)}"


def status_label(status: Status) -> str:
    """'Waiting on customer'."""
    return STATUS_TEXT[status]


def name(user: UserView | None, *, none: str = "someone") -> str:
    """A user's display name, escaped for mrkdwn, never a mention."""
    if user is None:
        return none
    return escape(truncate(single_line(user.display_name), NAME_LIMIT)) or none


def person(user: UserView | None, *, none: str = "_Unassigned_") -> str:
    """A mention of a user (mrkdwn) when the Slack id is well formed, else the escaped name."""
    if user is None:
        return none
    return user_mention(user.slack_user_id, name=truncate(user.display_name, NAME_LIMIT))


def title(ticket: TicketView, *, limit: int = TITLE_LIMIT) -> str:
    """The ticket's title escaped for mrkdwn, one line, at most about `limit` characters."""
    return escape(truncate(single_line(ticket.title), limit)) or "(no title)"


def ref(ticket: TicketView, *, limit: int = TITLE_LIMIT) -> str:
    """'*#42* Printer on fire' (mrkdwn)."""
    return f"*#{ticket.number}* {title(ticket, limit=limit)}"


def heading(ticket: TicketView) -> str:
    """'#42 Printer on fire' as plain text (headers, modal bodies, notifications of plain text)."""
    text = single_line(ticket.title) or "(no title)"
    return truncate(f"#{ticket.number} {text}", 150)


def show_hint(number: int) -> str:
    """Where to read a ticket in full."""
    return f"`/ticket show {number}`"
