"""The staff-channel ticket card: what a ticket is, where its SLA stands, and what staff can do."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.blocks import labels
from bot.blocks.kit import FALLBACK_TEXT, Json, actions, button, context, header, section
from bot.blocks.text import (
    as_utc,
    escape,
    format_duration,
    format_time,
    quote,
    single_line,
    truncate,
)
from bot.ids import REPLY_MARKER, Action
from bot.payloads import TicketRefPayload
from core.enums import Status
from core.results import TicketView
from core.sla import SlaState, sla_state

DESCRIPTION_PREVIEW = 600
REASON_PREVIEW = 500
CATEGORY_LIMIT = 80


def sla_text(ticket: TicketView, *, now: datetime) -> str:
    """The first-response SLA state in words (mrkdwn), as the card and lists show it."""
    now = as_utc(now)
    state = sla_state(ticket, now)
    if state is SlaState.MET and ticket.first_response_at is not None:
        taken = as_utc(ticket.first_response_at) - as_utc(ticket.created_at)
        return f"answered in {format_duration(taken)}"
    if ticket.deleted_at is not None:
        return "deleted"
    if ticket.status.is_done:
        return f"paused ({labels.status_label(ticket.status).lower()})"
    breach = ticket.sla_breach_at
    if state is SlaState.NONE or breach is None:
        return "no target"
    breach = as_utc(breach)
    if state is SlaState.BREACHED:
        late = now - breach
        return ":rotating_light: breached " + (
            "just now" if late < timedelta(minutes=1) else f"{format_duration(late)} ago"
        )
    if state is SlaState.AT_RISK:
        return f":warning: at risk, due in {format_duration(breach - now)}"
    return f"on track, first response due {format_time(breach)}"


def ticket_fields(ticket: TicketView, *, now: datetime | None = None) -> list[str]:
    """The card's fields: customer, priority, status, assignee, category and (with now) SLA."""
    category = ""
    if ticket.category_name:
        category = escape(truncate(single_line(ticket.category_name), CATEGORY_LIMIT))
    fields = [
        f"*Customer*\n{labels.person(ticket.customer)}",
        f"*Priority*\n{labels.priority_label(ticket.priority)}",
        f"*Status*\n{labels.status_label(ticket.status)}",
        f"*Assignee*\n{labels.person(ticket.assignee)}",
        f"*Category*\n{category or '—'}",
    ]
    if now is not None:
        fields.append(f"*SLA*\n{sla_text(ticket, now=now)}")
    return fields


def description_preview(ticket: TicketView, *, limit: int = DESCRIPTION_PREVIEW) -> str | None:
    """The description as a quote, cut to `limit` with a pointer to the full text; None if empty."""
    if not ticket.description.strip():
        return None
    full = quote(ticket.description)
    if len(full) <= limit:
        return full
    return f"{truncate(full, limit)}\n_Full text: {labels.show_hint(ticket.number)}_"


def ticket_buttons(ticket: TicketView) -> Json:
    """The card's actions: a closed ticket keeps only Status… (staff may reopen it)."""
    value = TicketRefPayload(ticket_id=ticket.id).dump()
    status = button("Status…", action_id=Action.STATUS_OPEN, value=value)
    if ticket.status is Status.CLOSED:
        return actions(status)
    return actions(
        button("Assign to me", action_id=Action.ASSIGN_TO_ME, value=value, style="primary"),
        button("Assign…", action_id=Action.ASSIGN_OPEN, value=value),
        status,
        button("Reply to customer", action_id=Action.REPLY_OPEN, value=value),
        button("Internal note", action_id=Action.NOTE_OPEN, value=value),
        button("Edit…", action_id=Action.EDIT_TICKET_OPEN, value=value),
    )


def thread_hint() -> str:
    """How the staff thread works: internal by default, the reply marker sends to the customer."""
    return (
        ":lock: Messages in this thread are *internal notes* (staff only). "
        f"Start a message with `{REPLY_MARKER}` to send it to the customer."
    )


def ticket_card(ticket: TicketView, *, now: datetime) -> list[Json]:
    """The staff-channel card of a ticket (a short 'deleted' card for a deleted ticket)."""
    if ticket.deleted_at is not None:
        return [
            section(f":wastebasket: {labels.ref(ticket)} was deleted."),
            context(f"Deleted {format_time(ticket.deleted_at)}. Its thread is no longer synced."),
        ]
    blocks: list[Json] = [
        header(labels.heading(ticket)),
        section(fields=ticket_fields(ticket, now=now)),
    ]
    preview = description_preview(ticket)
    if preview:
        blocks.append(section(preview))
    if ticket.status_reason:
        reason = escape(truncate(ticket.status_reason, REASON_PREVIEW))
        blocks.append(context(f"*{labels.status_label(ticket.status)}:* {reason}"))
    blocks.append(ticket_buttons(ticket))
    blocks.append(context(thread_hint()))
    return blocks


def ticket_card_text(ticket: TicketView) -> str:
    """The card's notification fallback: '#42 Title — High, Open, customer Alice'."""
    title = f"#{ticket.number} {labels.title(ticket)}"
    if ticket.deleted_at is not None:
        return f"{title} (deleted)"
    text = (
        f"{title} — {labels.priority_text(ticket.priority)}, "
        f"{labels.status_label(ticket.status)}, customer {labels.name(ticket.customer)}"
    )
    return truncate(text, FALLBACK_TEXT)
