"""The App Home tab: customers see their tickets; staff see their queue and unassigned tickets."""

from __future__ import annotations

from datetime import datetime

from bot.blocks import labels
from bot.blocks.cards import sla_text
from bot.blocks.kit import VIEW_BLOCKS, Json, actions, button, context, divider, header, section
from bot.blocks.text import format_time
from bot.ids import REPLY_MARKER, Action
from bot.payloads import TicketRefPayload
from core.results import Page, TicketView, UserView

HOME_ITEMS = 40  # per list: two lists and their headings stay well under 100 blocks


def _row(ticket: TicketView, *, staff: bool, now: datetime) -> Json:
    parts = [labels.status_label(ticket.status), labels.priority_label(ticket.priority)]
    if staff:
        parts += [labels.person(ticket.customer), sla_text(ticket, now=now)]
    else:
        parts.append(f"updated {format_time(ticket.updated_at)}")
    text = f"{labels.ref(ticket, limit=120)}\n" + " · ".join(parts)
    show = button(
        "Show", action_id=Action.SHOW_TICKET, value=TicketRefPayload(ticket_id=ticket.id).dump()
    )
    return section(text, accessory=show)


def _ticket_rows(
    page: Page[TicketView], *, staff: bool, now: datetime, empty: str, more: str
) -> list[Json]:
    if not page.items:
        return [context(empty)]
    shown = page.items[:HOME_ITEMS]
    blocks = [_row(ticket, staff=staff, now=now) for ticket in shown]
    hidden = page.total - len(shown)
    if hidden > 0:
        blocks.append(context(f"{hidden} more: {more}"))
    return blocks


def home_view(
    *,
    user: UserView,
    mine: Page[TicketView],
    unassigned: Page[TicketView] | None,
    now: datetime,
) -> Json:
    """The App Home view for `user` (type 'home', at most 100 blocks)."""
    staff = user.role.is_staff
    new_ticket = actions(
        button("New ticket", action_id=Action.HOME_NEW_TICKET, style="primary"),
        block_id="home_actions",
    )
    blocks: list[Json] = []
    if staff:
        blocks += [header("Your queue"), new_ticket]
        blocks += _ticket_rows(
            mine,
            staff=True,
            now=now,
            empty="Nothing assigned to you. :tada:",
            more="`/ticket list assignee:me`",
        )
        if unassigned is not None:
            blocks += [divider(), header("Unassigned")]
            blocks += _ticket_rows(
                unassigned,
                staff=True,
                now=now,
                empty="No unassigned tickets.",
                more="`/ticket list assignee:none`",
            )
        blocks.append(divider())
        blocks.append(
            context(
                "`/ticket help` lists every command; `/ticket sla` shows tickets at risk. "
                "In a ticket's staff thread, messages are internal notes unless they start "
                f"with `{REPLY_MARKER}`."
            )
        )
    else:
        blocks += [header("Your tickets"), new_ticket]
        blocks += _ticket_rows(
            mine,
            staff=False,
            now=now,
            empty="You have no tickets. Open one with *New ticket* or `/ticket new`.",
            more="`/ticket mine`",
        )
        blocks.append(
            context("Replies from support arrive in your messages with this app. `/ticket help`")
        )
    if len(blocks) > VIEW_BLOCKS:
        blocks = [*blocks[: VIEW_BLOCKS - 1], context("…more not shown.")]
    return {"type": "home", "blocks": blocks}
