"""Chat messages: customer DMs, staff-thread relays, notices, lists, ticket detail and help."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from bot.blocks import files, labels
from bot.blocks.cards import description_preview, sla_text, ticket_fields
from bot.blocks.kit import (
    FALLBACK_TEXT,
    MESSAGE_BLOCKS,
    SECTION_TEXT,
    Json,
    actions,
    button,
    context,
    divider,
    header,
    section,
)
from bot.blocks.text import (
    escape,
    format_duration,
    format_time,
    plain,
    quote,
    single_line,
    split_text,
    truncate,
)
from bot.ids import REPLY_MARKER, Action
from bot.payloads import (
    EditReplyPayload,
    ListFiltersPayload,
    ListPagePayload,
    TicketRefPayload,
)
from core.enums import SlaThreshold, Status
from core.results import Page, ReplyView, TicketDetail, TicketView
from core.tickets import TicketFilters, UserRef

Message = tuple[str, list[Json]]

RELAY_LIMIT = 2500  # a relayed message body, quoted, before "read the rest"
DETAIL_REPLY_CHUNK = SECTION_TEXT - 600  # each reply in /ticket show, in full, over sections
DETAIL_DESCRIPTION_BLOCKS = 3
LIST_ITEMS = 40  # ticket rows per list message (header, footer and page buttons fit in 50)
QUERY_MAX = 300  # ListPagePayload.query
REASON_LIMIT = 500
SNIPPET_LIMIT = 300
HISTORY_ITEMS = 5
NOTIFICATION_BODY = 300
_PERMALINK = re.compile(r"https://[^\s<>|]+")


class SearchHitLike(Protocol):
    """What search_results needs of a hit (core.search.SearchHit fits)."""

    @property
    def ticket(self) -> TicketView: ...

    @property
    def snippet(self) -> str: ...


HitT = TypeVar("HitT", bound=SearchHitLike)


class SlaRowLike(Protocol):
    """What sla_overview needs of a row besides a bare TicketView (core.sla.SlaTicket fits)."""

    @property
    def ticket(self) -> TicketView: ...


def _fallback(text: str) -> str:
    return truncate(text, FALLBACK_TEXT)


def _read_the_rest(number: int) -> str:
    return f"_Read the rest: {labels.show_hint(number)}_"


def _quoted_body(body: str, *, limit: int, number: int) -> str:
    """A quoted body within `limit`, with a pointer to the full ticket when it was cut."""
    full = quote(body) or ">"
    if len(full) <= limit:
        return full
    return f"{truncate(full, limit)}\n{_read_the_rest(number)}"


def _is_customer(reply: ReplyView, ticket: TicketView) -> bool:
    return reply.author.id == ticket.customer.id


def _edited(reply: ReplyView) -> str:
    return " _(edited)_" if reply.edited_at is not None else ""


# --------------------------------------------------------------------------------------------
# customer DM and relays


def customer_confirmation(ticket: TicketView) -> Message:
    """First DM to the customer: the ticket, what happens next, and that this thread is the chat."""
    opened_for_them = ticket.created_by_id != ticket.customer.id
    intro = (
        f":ticket: Our support team opened ticket {labels.ref(ticket)} for you."
        if opened_for_them
        else f":white_check_mark: We received your request: ticket {labels.ref(ticket)}."
    )
    blocks = [
        section(intro),
        section(
            fields=[
                f"*Priority*\n{labels.priority_label(ticket.priority)}",
                f"*Status*\n{labels.status_label(ticket.status)}",
            ]
        ),
    ]
    preview = description_preview(ticket)
    if preview:
        blocks.append(section(preview))
    blocks.append(
        section(
            "*What happens next:* our support team looks at your ticket and answers here. "
            "*Reply in this thread* to add information."
        )
    )
    blocks.append(
        context(
            f"See the ticket any time with {labels.show_hint(ticket.number)}; "
            "`/ticket mine` lists your tickets."
        )
    )
    text = f"Ticket #{ticket.number} opened: {labels.title(ticket)}"
    return _fallback(text), blocks


def _reply_headline(reply: ReplyView, ticket: TicketView) -> str:
    who = labels.name(reply.author)
    if reply.is_internal:
        return f":lock: *Internal note* by *{who}*"
    if _is_customer(reply, ticket):
        return f":bust_in_silhouette: *{who}* (customer) wrote"
    return f":outbox_tray: *Reply sent to customer* by *{who}*"


def staff_relay(reply: ReplyView, ticket: TicketView) -> Message:
    """A reply shown in the staff thread: customer messages, and staff replies or notes made
    elsewhere (notes marked ':lock: Internal note by X')."""
    headline = _reply_headline(reply, ticket) + _edited(reply)
    body = _quoted_body(reply.body, limit=RELAY_LIMIT, number=ticket.number)
    body = files.with_files(body, reply)
    blocks = [section(f"{headline}\n{body}")]
    plain_headline = (
        "Internal note"
        if reply.is_internal
        else ("Customer" if _is_customer(reply, ticket) else "Reply sent to customer")
    )
    text = (
        f"{plain_headline} by {labels.name(reply.author)} on #{ticket.number}: "
        f"{escape(truncate(single_line(reply.body or files.file_names(reply)), NOTIFICATION_BODY))}"
    )
    return _fallback(text), blocks


def customer_relay(reply: ReplyView, ticket: TicketView) -> Message:
    """A public staff reply as the customer sees it: 'Alice (support): …'. Refuses notes."""
    if reply.is_internal:
        raise ValueError("internal notes are never relayed to the customer")
    if reply.ticket_id != ticket.id:
        raise ValueError("reply belongs to another ticket")
    who = labels.name(reply.author)
    role = "" if _is_customer(reply, ticket) else " (support)"
    body = _quoted_body(reply.body, limit=RELAY_LIMIT, number=ticket.number)
    body = files.with_files(body, reply)
    blocks = [section(f"*{who}*{role}:{_edited(reply)}\n{body}")]
    said = reply.body or files.file_names(reply)
    text = f"{who}{role}: {escape(truncate(single_line(said), NOTIFICATION_BODY))}"
    return _fallback(text), blocks


def _customer_next_step(status: Status, previous: Status) -> str | None:
    if status is Status.CLOSED:
        return closed_thread_hint()
    if status is Status.RESOLVED:
        return "If your problem is not solved, reply in this thread and the ticket reopens."
    if status is Status.WAITING_ON_CUSTOMER:
        return "We need more information from you: please reply in this thread."
    if previous.is_done:
        return "Your ticket was reopened; we will answer here."
    return None


def status_notice(
    ticket: TicketView,
    *,
    previous: Status,
    status: Status,
    reason: str | None,
    for_customer: bool,
) -> Message:
    """A status change, worded for the customer's DM thread or for the staff thread."""
    old, new = labels.status_label(previous), labels.status_label(status)
    if for_customer:
        line = f":arrows_counterclockwise: Your ticket {labels.ref(ticket)} is now *{new}*."
        text = f"Your ticket #{ticket.number} is now {new}."
    else:
        line = f":arrows_counterclockwise: {labels.ref(ticket)}: {old} → *{new}*"
        text = f"#{ticket.number}: {old} → {new}"
    blocks = [section(line)]
    if reason and reason.strip():
        blocks.append(section(f"*Reason:*\n{quote(reason, limit=REASON_LIMIT * 2)}"))
        text += f" Reason: {escape(truncate(single_line(reason), NOTIFICATION_BODY))}"
    if for_customer:
        step = _customer_next_step(status, previous)
        if step:
            blocks.append(context(step))
    return _fallback(text), blocks


def closed_thread_hint() -> str:
    """How to get help once a ticket is closed."""
    return "This ticket is closed. To get more help, open a new ticket with `/ticket new`."


def closed_thread_notice(number: int) -> Message:
    """Told to whoever writes in a closed ticket's thread: not recorded, open a new ticket."""
    line = (
        f":no_entry: Ticket *#{number}* is closed, so your message was not added to it. "
        "To get more help, open a new ticket with `/ticket new`."
    )
    return f"Ticket #{number} is closed; your message was not added.", [section(line)]


def refused_thread_notice(number: int, refusal: str) -> Message:
    """Told in a ticket's thread when a message written there was refused (`refusal`: the
    error text, e.g. empty or too long): it was not added to the ticket."""
    line = f"{refusal}\nYour message was not added to ticket *#{number}*."
    return line, [section(line)]


def rate_limited_thread_notice(number: int, refusal: str) -> Message:
    """Told once per rate-limit window to whoever writes in a ticket's thread too fast:
    `refusal` is the error text (limit and wait); what they write meanwhile is not recorded.
    The text is the whole notice, so it also reads as an ephemeral or a notification."""
    line = (
        f"{refusal}\nUntil then, what you write in this thread is not added to "
        f"ticket *#{number}*; please send it again after the wait."
    )
    return line, [section(line)]


# --------------------------------------------------------------------------------------------
# lists


def _list_line(ticket: TicketView) -> str:
    parts = [
        labels.priority_label(ticket.priority),
        labels.status_label(ticket.status),
        labels.person(ticket.assignee),
    ]
    if ticket.category_name:
        parts.append(escape(truncate(single_line(ticket.category_name), 80)))
    return f"{labels.ref(ticket, limit=120)}\n" + " · ".join(parts)


def _show_button(ticket: TicketView) -> Json:
    return button(
        "Show",
        action_id=Action.SHOW_TICKET,
        value=TicketRefPayload(ticket_id=ticket.id).dump(),
    )


def _page_nav(
    number: int, pages: int, query: str, filters: TicketFilters | None = None
) -> list[Json]:
    """Prev/Next page buttons (each in its own block: action_ids are unique per block); a
    ticket list's buttons carry its typed `filters`, other lists their command text `query`."""
    if pages <= 1:
        return []
    carried = ListFiltersPayload.of(filters) if filters is not None else None
    query = "" if carried is not None else plain(query)
    if len(query) > QUERY_MAX:
        return [context("Narrow the filters to move between pages.")]
    nav: list[Json] = []
    if number > 1:
        value = ListPagePayload(page=min(number - 1, pages), query=query, filters=carried).dump()
        nav.append(
            actions(button("◀ Previous", action_id=Action.PAGE, value=value), block_id="page_prev")
        )
    if number < pages:
        value = ListPagePayload(page=number + 1, query=query, filters=carried).dump()
        nav.append(
            actions(button("Next ▶", action_id=Action.PAGE, value=value), block_id="page_next")
        )
    return nav


def _listing(
    rows: Sequence[tuple[TicketView, str | None]],
    *,
    number: int,
    pages: int,
    total: int,
    heading: str,
    query: str,
    empty: str,
    capped: bool = False,
    filters: TicketFilters | None = None,
) -> list[Json]:
    blocks = [section(heading)]
    if not rows:
        blocks.append(section(empty))
    for ticket, extra in rows[:LIST_ITEMS]:
        text = _list_line(ticket) + (f"\n{extra}" if extra else "")
        blocks.append(section(text, accessory=_show_button(ticket)))
    plural = "" if total == 1 and not capped else "s"
    footer = f"Page {number} of {pages} · {total}{'+' if capped else ''} ticket{plural}"
    if capped:
        footer += f" · showing the newest {total}; add a word to narrow the search"
    if len(rows) > LIST_ITEMS:
        footer += f" · {len(rows) - LIST_ITEMS} more on this page not shown"
    blocks.append(context(footer))
    blocks.extend(_page_nav(number, pages, query, filters))
    return blocks[:MESSAGE_BLOCKS]


def ticket_list(
    page: Page[TicketView], *, title: str, query: str = "", filters: TicketFilters | None = None
) -> list[Json]:
    """A page of tickets, one compact section each, with Prev/Next buttons carrying the list's
    `filters` (a `/ticket list`) or else its command text `query` (e.g. 'mine')."""
    rows = [(ticket, None) for ticket in page.items]
    return _listing(
        rows,
        number=page.page,
        pages=page.pages,
        total=page.total,
        heading=f"*{escape(truncate(single_line(title), 200))}*",
        query=query,
        empty="_No tickets found._",
        filters=filters,
    )


def filters_label(filters: TicketFilters) -> str:
    """The filters as `/ticket list` takes them, e.g. 'status:open assignee:me' (plain)."""
    parts: list[str] = []
    if filters.status is not None:
        parts.append(f"status:{filters.status.value}")
    if filters.priority is not None:
        parts.append(f"priority:{filters.priority.value}")
    if filters.unassigned:
        parts.append("assignee:none")
    elif filters.assignee is not None:
        parts.append(f"assignee:{_person_label(filters.assignee)}")
    if filters.customer is not None:
        parts.append(f"customer:{_person_label(filters.customer)}")
    if filters.category_name is not None:
        parts.append(f"category:{filters.category_name}")
    return " ".join(parts)


def _person_label(ref: UserRef) -> str:
    if ref.me:
        return "me"
    return f"<@{ref.chat_user_id}>" if ref.chat_user_id else f"user {ref.user_id}"


def search_results(page: Page[HitT], *, text: str, query: str) -> list[Json]:
    """Search hits with their snippets; page buttons carry `query` (e.g. 'search <text>')."""
    rows = [
        (hit.ticket, quote(hit.snippet, limit=SNIPPET_LIMIT) if hit.snippet.strip() else None)
        for hit in page.items
    ]
    searched = escape(truncate(single_line(text), 200))
    return _listing(
        rows,
        number=page.page,
        pages=page.pages,
        total=page.total,
        heading=f"*Search results for* “{searched}”",
        query=query,
        empty="_No ticket matches._",
        capped=page.capped,
    )


# --------------------------------------------------------------------------------------------
# ticket detail


def _quote_chunks(text: str, size: int) -> list[str]:
    """User text as block-quote pieces of at most `size` characters each."""
    pieces: list[str] = []
    current: list[str] = []
    length = 0
    for line in escape(text).strip("\n").split("\n"):
        for part in split_text(line, size - 2) or [""]:
            quoted = f"> {part}" if part.strip() else ">"
            if current and length + len(quoted) + 1 > size:
                pieces.append("\n".join(current))
                current, length = [], 0
            current.append(quoted)
            length += len(quoted) + 1
    if current:
        pieces.append("\n".join(current))
    return pieces


def _detail_reply(
    reply: ReplyView, ticket: TicketView, *, viewer_id: int | None = None
) -> list[Json]:
    """A reply in full (this is where relays send people to "read the rest"): the headline and
    the start of the text, then as many sections as the rest needs."""
    who = labels.name(reply.author)
    if reply.is_internal:
        headline = f":lock: *Internal note* · *{who}*"
    elif _is_customer(reply, ticket):
        headline = f":bust_in_silhouette: *{who}*"
    else:
        headline = f":speech_balloon: *{who}* (support)"
    headline += f" · {format_time(reply.created_at)}{_edited(reply)}"
    chunks = _quote_chunks(reply.body, DETAIL_REPLY_CHUNK) or [">"]
    edit = None
    if viewer_id is not None and reply.author.id == viewer_id:
        # Only the author may edit (the core checks it again); the button is theirs alone.
        edit = button(
            "Edit",
            action_id=Action.EDIT_REPLY_OPEN,
            value=EditReplyPayload(reply_id=reply.id).dump(),
        )
    first = section(f"{headline}\n{chunks[0]}", accessory=edit)
    return [first, *(section(chunk) for chunk in chunks[1:]), *files.file_blocks(reply)]


def _history_line(detail: TicketDetail) -> str | None:
    changes = detail.history[-HISTORY_ITEMS:]
    if not changes:
        return None
    lines = []
    for change in changes:
        old = labels.status_label(change.from_status) if change.from_status else "new"
        line = f"{old} → {labels.status_label(change.to_status)} · {format_time(change.changed_at)}"
        if change.reason:
            line += f" · {escape(truncate(single_line(change.reason), 200))}"
        lines.append(line)
    return "*History:* " + "\n".join(lines)


def ticket_detail(
    detail: TicketDetail,
    *,
    staff: bool,
    max_blocks: int = MESSAGE_BLOCKS,
    viewer_id: int | None = None,
) -> list[Json]:
    """A ticket in full: header, fields, description, history, then replies oldest first (the
    latest ones when they do not all fit, saying how many are hidden)."""
    ticket = detail.ticket
    if ticket.deleted_at is not None:
        return [section(f":wastebasket: {labels.ref(ticket)} was deleted.")]
    blocks: list[Json] = [header(labels.heading(ticket)), section(fields=ticket_fields(ticket))]
    chunks = _quote_chunks(ticket.description, SECTION_TEXT - 200) if ticket.description else []
    if len(chunks) > DETAIL_DESCRIPTION_BLOCKS:
        chunks = [*chunks[: DETAIL_DESCRIPTION_BLOCKS - 1], "_… description shortened._"]
    blocks.extend(section(chunk) for chunk in chunks)
    if ticket.status_reason:
        reason = escape(truncate(ticket.status_reason, REASON_LIMIT))
        blocks.append(context(f"*{labels.status_label(ticket.status)}:* {reason}"))
    own = viewer_id is not None and viewer_id == ticket.customer.id
    if own and not staff and ticket.status is not Status.CLOSED:
        # Their own open ticket: they may edit its title, description and category.
        value = TicketRefPayload(ticket_id=ticket.id).dump()
        blocks.append(actions(button("Edit…", action_id=Action.EDIT_TICKET_OPEN, value=value)))
    history = _history_line(detail)
    if history:
        blocks.append(context(history))
    # Notes are in the detail only for staff (the core filters them); never show one otherwise.
    replies = [r for r in detail.replies if staff or not r.is_internal]
    replies.sort(key=lambda r: (r.created_at, r.id))
    if not replies:
        blocks.append(context("No replies yet."))
        return blocks[:max_blocks]
    blocks.append(divider())
    room = max_blocks - len(blocks) - 1  # one block for the "hidden" note if needed
    groups: list[list[Json]] = []  # newest first while collecting
    used = 0
    for reply in reversed(replies):
        group = _detail_reply(reply, ticket, viewer_id=viewer_id)
        if groups and used + len(group) > room + 1:
            break
        groups.append(group)
        used += len(group)
    if len(groups) < len(replies):
        while len(groups) > 1 and used > room:  # leave a block for the "not shown" note
            used -= len(groups.pop())
    groups.reverse()
    hidden = len(replies) - len(groups)
    if hidden:
        blocks.append(context(f"{hidden} earlier repl{'y' if hidden == 1 else 'ies'} not shown."))
    for group in groups:
        blocks.extend(group)
    return blocks[:max_blocks]


# --------------------------------------------------------------------------------------------
# help


def help_text(*, staff: bool, admin: bool, manager: bool = False) -> str:
    """The /ticket subcommands this user may run (mrkdwn)."""
    lines = [
        "*`/ticket` commands*",
        "`/ticket help` — this help",
        "`/ticket new [title]` — open a ticket",
        "`/ticket list [status:…] [priority:…] [assignee:…] [category:…] [page N]` — list tickets",
        "`/ticket mine` — your tickets",
        "`/ticket show N` — a ticket in full (`42` or `#42`)",
        "`/ticket search <text>` — search titles, descriptions and replies",
        "`/ticket status N <status> [reason]` — change the status",
        (
            "`/ticket close N <reason>` — close a ticket (the customer sees the reason)"
            if staff
            else "`/ticket close N [reason]` — close your ticket"
        ),
        "`/ticket reopen N` — reopen a ticket",
        "`/ticket reply N <text>` — reply on a ticket",
        "`/ticket category list` — the categories",
    ]
    if staff:
        lines += [
            "`/ticket assign N @user` — assign a ticket",
            "`/ticket priority N <low|medium|high|urgent>` — change the priority",
            "`/ticket note N <text>` — add an internal note (staff only)",
            "`/ticket sla` — tickets at risk of missing their first-response target",
            f"In a ticket's staff thread, messages are internal notes; start one with "
            f"`{REPLY_MARKER}` to reply to the customer.",
        ]
    if manager or admin:
        lines.append("`/ticket delete N` — delete a ticket")
        lines.append("`/ticket audit N [page N]` — who changed the ticket, what and when")
    if admin:
        lines += [
            "`/ticket role @user <customer|corporate|agent|manager|admin>` — change a role",
            "`/ticket category add <name>` — add a category",
            "`/ticket category deactivate <name>` — retire a category (tickets keep it)",
            "`/ticket user deactivate @user` / `user activate @user` — stop or restore someone's "
            "access (deactivating unassigns their tickets)",
            "`/ticket company add|list|show|domain|grant|revoke …` — companies, their email "
            "domains and corporate staff (`/ticket company` for the details)",
            "`/ticket channel link|unlink|intake|list …` — customer channels: requests become "
            "tickets there (`/ticket channel` for the details)",
        ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# staff notices


def _permalink(url: str | None) -> str | None:
    if not url or not _PERMALINK.fullmatch(url):
        return None
    return url.replace("&", "&amp;")


def manager_alert(
    ticket: TicketView, *, threshold: str, waited: timedelta, permalink: str | None
) -> Message:
    """An SLA warning or breach for the manager channel."""
    breached = threshold == SlaThreshold.BREACH
    title = ":rotating_light: *SLA breached*" if breached else ":warning: *SLA warning*"
    link = _permalink(permalink)
    blocks = [
        section(f"{title}: {labels.ref(ticket)}"),
        section(
            fields=[
                f"*Priority*\n{labels.priority_label(ticket.priority)}",
                f"*Customer*\n{labels.person(ticket.customer)}",
                f"*Assignee*\n{labels.person(ticket.assignee)}",
                f"*Waiting*\n{format_duration(waited)} without a first response",
            ]
        ),
    ]
    if link:
        blocks.append(context(f"<{link}|Open the ticket thread>"))
    else:
        blocks.append(context(f"See {labels.show_hint(ticket.number)}"))
    kind = "SLA breached" if breached else "SLA warning"
    text = f"{kind}: #{ticket.number} {labels.title(ticket)} (waiting {format_duration(waited)})"
    return _fallback(text), blocks


def assignee_notice(ticket: TicketView, *, by_name: str | None, reason: str) -> Message:
    """A DM to an assignee: `reason` says what happened (e.g. 'You were assigned')."""
    what = escape(truncate(single_line(reason), 200)) or "Ticket update"
    by = f" by {escape(truncate(single_line(by_name), 80))}" if by_name else ""
    blocks = [
        section(f":bust_in_silhouette: {what}{by}: {labels.ref(ticket)}"),
        section(fields=ticket_fields(ticket)),
    ]
    preview = description_preview(ticket)
    if preview:
        blocks.append(section(preview))
    blocks.append(context(f"See {labels.show_hint(ticket.number)}"))
    plain_by = f" by {escape(single_line(by_name))}" if by_name else ""
    text = f"{what}{plain_by}: #{ticket.number} {labels.title(ticket)}"
    return _fallback(text), blocks


def sla_overview(rows: Sequence[TicketView | SlaRowLike], *, now: datetime) -> list[Json]:
    """`/ticket sla`: tickets with their SLA state, soonest breach first."""
    tickets = [row if isinstance(row, TicketView) else row.ticket for row in rows]
    far = datetime.max.replace(tzinfo=now.tzinfo)
    tickets.sort(key=lambda t: (t.sla_breach_at or far, t.number))
    blocks: list[Json] = [section("*First-response SLA: tickets at risk*")]
    if not tickets:
        blocks.append(section(":white_check_mark: No ticket is at risk."))
    for ticket in tickets[:LIST_ITEMS]:
        line = (
            f"{labels.ref(ticket, limit=120)}\n{sla_text(ticket, now=now)} · "
            f"{labels.priority_label(ticket.priority)} · {labels.person(ticket.assignee)}"
        )
        blocks.append(section(line, accessory=_show_button(ticket)))
    if len(tickets) > LIST_ITEMS:
        blocks.append(context(f"{len(tickets) - LIST_ITEMS} more not shown."))
    return blocks


def dm_guidance() -> Message:
    """The answer to a DM written outside any ticket thread: how to open or follow a ticket."""
    text = (
        "To open a ticket, use `/ticket new` followed by a short title. "
        "To add to an existing ticket, reply in the thread under its confirmation message; "
        "`/ticket mine` lists your tickets."
    )
    return text, [section(text)]
