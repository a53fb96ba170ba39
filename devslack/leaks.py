"""The leak scanners, run over everything the stand-in recorded.

1. Internal notes: no text staff *meant* as internal may be visible to a customer, in a
   non-private channel or in a customer's ephemeral messages. What was meant is taken from what
   people did, not from what the bot stored: notes written in a staff thread without the reply
   marker, reply forms submitted as a note (or opened with the Note button), `/ticket note`,
   plus every row stored as a note. Text a staff member confirmed a customer may read (the
   create form's confirmation for text copied from staff) is not counted.
2. Ticket data: a person's direct messages, ephemerals, modals and App Home may show a
   ticket's title or description only while they may see that ticket. Someone demoted,
   deactivated or moved away from a company is judged from the moment they lost the right
   (with a second of slack, as the stand-in's message times run slightly ahead of the clock).
3. Files: no file staff shared as internal may reach a customer (devslack/file_leaks.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from core.access import actor_of
from core.context import Core
from core.enums import Audience, Role
from core.models import AuditEntry, ChatThread, Reply, ReplyEdit, Ticket, User
from devslack.connect import customer_channel_items
from devslack.file_leaks import internal_file_leaks
from devslack.server import FakeSlack, FakeView, VisibleItem

# Shorter texts ("ok", "thanks") say nothing and would match by chance.
MIN_NOTE = 6
MIN_TICKET_TEXT = 12
# The documented reply marker, read independently of the bot's own parser.
_PUBLIC_MARKER = re.compile(r"^\s*!reply(?:\s|$)", re.IGNORECASE)
# What takes a right away: the moment of the latest such change counts.
_RIGHT_CHANGES = (
    "user.role_changed",
    "user.deactivated",
    "user.chat_account_deleted",
    "user.company_changed",
)


@dataclass(frozen=True)
class Leak:
    note: str
    where: str


async def note_texts(core: Core) -> list[str]:
    """Every text a stored internal note ever had (edits included)."""
    async with core.db.transaction() as session:
        bodies = list(await session.scalars(select(Reply.body).where(Reply.is_internal.is_(True))))
        bodies += list(
            await session.scalars(
                select(ReplyEdit.previous_body)
                .join(Reply, Reply.id == ReplyEdit.reply_id)
                .where(Reply.is_internal.is_(True))
            )
        )
    return [b for b in bodies if len(b.strip()) >= MIN_NOTE]


async def meant_internal(core: Core, fake: FakeSlack) -> list[str]:
    """Every text staff meant as internal, whatever the bot made of it."""
    texts = set(await note_texts(core))
    texts |= {i.text for i in fake.intents if i.internal}
    async with core.db.transaction() as session:
        rows = await session.execute(
            select(ChatThread.channel_id, ChatThread.ts).where(
                ChatThread.audience == Audience.STAFF.value
            )
        )
        roots = {(channel, ts) for channel, ts in rows}
    for channel, ts in roots:
        for message in fake.messages(channel, include_deleted=True):
            if message.bot_id or not message.user or message.thread_ts != ts or message.ts == ts:
                continue
            if not _PUBLIC_MARKER.match(message.text or ""):
                texts.add(message.text or "")
    confirmed = [c.text for c in fake.confirmed_public]
    return sorted(
        t
        for t in texts
        if len(t.strip()) >= MIN_NOTE and not any(t.strip() in c for c in confirmed)
    )


async def customer_ids(core: Core, fake: FakeSlack) -> set[str]:
    """Customers known to the desk, plus every Slack user the desk does not count as staff."""
    async with core.db.transaction() as session:
        staff = set(
            await session.scalars(
                select(User.slack_user_id).where(User.role != Role.CUSTOMER.value)
            )
        )
    return {u for u in fake.users if u not in staff and u != fake.bot_user_id}


async def scan_for_leaks(core: Core, fake: FakeSlack) -> list[Leak]:
    """Every place a note's text or file, or a ticket's text, reached someone who must not
    see it."""
    files = await internal_file_leaks(
        core, fake, customers=await customer_ids(core, fake), public_marker=_PUBLIC_MARKER
    )
    files_leaked = [Leak(note=f"file {name}", where=where) for name, where in files]
    return await _note_leaks(core, fake) + await _ticket_data_leaks(core, fake) + files_leaked


async def _note_leaks(core: Core, fake: FakeSlack) -> list[Leak]:
    notes = await meant_internal(core, fake)
    if not notes:
        return []
    leaks: list[Leak] = []
    audiences = {
        f"customer {u}": [i for i in fake.visible_to(u) if getattr(i.source, "user", None) != u]
        for u in await customer_ids(core, fake)
    }  # (what a person wrote themselves they have seen anyway)
    audiences["a non-private channel"] = fake.visible_publicly()
    audiences["a customer channel"] = await customer_channel_items(core, fake)
    for where, items in audiences.items():
        for item in items:
            for note in notes:
                if note in item.text_content or note in item.raw_content:
                    leaks.append(
                        Leak(note=note, where=f"{where}: {item.kind} {item.channel or ''}")
                    )
    return leaks


async def _ticket_data_leaks(core: Core, fake: FakeSlack) -> list[Leak]:
    """Ticket titles and descriptions in a person's own surfaces, for tickets they may not see."""
    async with core.db.transaction() as session:
        tickets = list(await session.scalars(select(Ticket)))
        people = list(await session.scalars(select(User)))
        lost: dict[int, datetime] = {}
        changes = await session.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(_RIGHT_CHANGES))
        )
        for entry in changes:
            user_id = entry.details.get("user_id")
            if isinstance(user_id, int) and (
                user_id not in lost or entry.created_at > lost[user_id]
            ):
                lost[user_id] = entry.created_at
        hidden: dict[str, dict[str, float]] = {}
        for user in people:
            if user.slack_user_id not in fake.users:
                continue
            actor = await actor_of(session, user.id, user) if user.can_act else None
            visible = {t.id for t in tickets if actor is not None and actor.can_see(t)}
            seen = {x for t in tickets if t.id in visible for x in (t.title, t.description)}
            lost_at = lost[user.id].timestamp() + 1 if user.id in lost else float("-inf")
            secret: dict[str, float] = {}
            for ticket in tickets:
                if ticket.id in visible:
                    continue
                since = lost_at
                if ticket.deleted_at is not None:
                    since = max(since, ticket.deleted_at.timestamp() + 1)
                for text in (ticket.title, ticket.description):
                    if len(text.strip()) >= MIN_TICKET_TEXT and text not in seen:
                        secret[text] = min(since, secret.get(text, float("inf")))
            if secret:
                hidden[user.slack_user_id] = secret
    leaks: list[Leak] = []
    for slack_id, secret in hidden.items():
        for item in fake.visible_to(slack_id, include_public=False):
            if not _personal(fake, item):
                continue
            shown_at = _time_of(item)
            for text, since in secret.items():
                if shown_at >= since and (text in item.text_content or text in item.raw_content):
                    leaks.append(
                        Leak(note=text, where=f"{slack_id}: {item.kind} {item.channel or ''}")
                    )
    return leaks


def _personal(fake: FakeSlack, item: VisibleItem) -> bool:
    """A surface of the person's own: a DM, an ephemeral, a modal, the App Home. (Channel
    membership is the workspace admins' to manage.)"""
    if item.kind != "message":
        return True
    channel = fake.channels.get(item.channel or "")
    return channel is not None and channel.is_im


def _time_of(item: VisibleItem) -> float:
    """When the item was shown: a message's ts, or a view's last change (its hash starts with
    the time); unknown counts as now."""
    stamp = item.ts
    if stamp is None and isinstance(item.source, FakeView):
        stamp = item.source.hash.split(".")[0]
    try:
        return float(stamp) if stamp else float("inf")
    except ValueError:
        return float("inf")
