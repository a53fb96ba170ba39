"""Replies and internal notes: add, edit (author only, within the window, history kept), delete."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import attachments, audit, outbox, ratelimit, repository, sla
from core.access import Actor, TicketRef, denied, load_actor, load_ticket
from core.attachments import AttachmentInput
from core.context import Core
from core.enums import Audience, Role, Status
from core.errors import Conflict, EditWindowExpired, NotFound, TicketClosed, ValidationFailed
from core.models import ChatMessage, Reply, ReplyAttachment, ReplyEdit, Ticket
from core.outbox import OutboxKind
from core.results import ReplyDraft, ReplyView, TicketView
from core.tickets import apply_status, clean_idempotency_key
from core.validation import BODY_MAX, clean_text

log = logging.getLogger("core.replies")

MESSAGE_BUCKET = "message_write"
MESSAGE_WHAT = "write or edit a message"


@dataclass(frozen=True)
class ChatOrigin:
    """The chat message a reply was written as: it is linked for edits and not relayed back."""

    audience: Audience
    channel_id: str
    ts: str


@dataclass(frozen=True)
class Composer:
    """What the reply form offers its actor, decided on the rows as they are now."""

    ticket: TicketView
    # The actor is staff: the form offers "internal note" (preselected) or "reply to customer".
    # Otherwise it can only send a public reply on the actor's own ticket.
    staff_form: bool


async def open_composer(core: Core, *, actor_id: int, ticket: TicketRef, note: bool) -> Composer:
    """The reply form for `ticket`. `note` is the person's intent (they asked to write an
    internal note): refused for someone who is not staff now, never offered as a public reply."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        row = await load_ticket(session, actor, ticket)
        if note and not actor.is_staff:
            raise denied(actor, "reply.internal", "Only support staff can write internal notes.")
        view = await repository.ticket_view(session, row)
        return Composer(ticket=view, staff_form=actor.is_staff)


async def add_reply(
    core: Core,
    *,
    actor_id: int,
    ticket: TicketRef,
    body: str,
    internal: bool,
    origin: ChatOrigin | None = None,
    idempotency_key: str | None = None,
    files: Sequence[AttachmentInput] = (),
) -> ReplyView:
    """Add a public reply or (staff only) an internal note; a repeated key returns the first
    (and is not counted again against the actor's message limit). `files` shared with it are
    recorded, and copied wherever the reply is relayed; with files the text may be empty."""
    files = attachments.clean_attachments(files)
    text = clean_text(body, field="message", max_length=BODY_MAX, required=not files)
    idempotency_key = clean_idempotency_key(idempotency_key)
    try:
        async with core.db.transaction() as session:
            actor = await load_actor(session, actor_id)
            row = await load_ticket(session, actor, ticket, for_update=True)
            if idempotency_key:
                existing = await session.scalar(
                    select(Reply).where(Reply.idempotency_key == idempotency_key)
                )
                if existing is not None:
                    return await _replayed(session, actor, row, existing)
            return await add_in_session(
                core, session, actor, row, text, internal, origin, idempotency_key, files
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        # A concurrent call with the same key won the race: answer with its reply.
        async with core.db.transaction() as session:
            actor = await load_actor(session, actor_id)
            row = await load_ticket(session, actor, ticket)
            existing = await session.scalar(
                select(Reply).where(Reply.idempotency_key == idempotency_key)
            )
            if existing is None:
                raise
            return await _replayed(session, actor, row, existing)


async def _replayed(session: AsyncSession, actor: Actor, row: Ticket, reply: Reply) -> ReplyView:
    """The reply an earlier call with the same key added: only to its author, on its ticket.

    Keys come from the caller; a key that names someone else's message (an internal note,
    say) must not hand that message over."""
    if reply.author_id != actor.id or reply.ticket_id != row.id:
        log.warning(
            "idempotency key reused for another message",
            extra={"actor_id": actor.id, "ticket": row.number},
        )
        raise Conflict("That request was already used for another message; nothing was added.")
    return (await repository.reply_views(session, [reply]))[0]


async def add_in_session(
    core: Core,
    session: AsyncSession,
    actor: Actor,
    row: Ticket,
    text: str,
    internal: bool,
    origin: ChatOrigin | None,
    idempotency_key: str | None,
    files: Sequence[AttachmentInput] = (),
) -> ReplyView:
    """Add a reply inside the caller's transaction, on rows it loaded: every rule of
    `add_reply` applies (for services that add a reply as part of a larger change)."""
    if internal and not actor.is_staff:
        raise denied(actor, "reply.internal", "Only support staff can write internal notes.")
    if origin is not None and origin.audience is Audience.STAFF and not actor.is_staff:
        # A staff thread is a staff surface whatever its marker says.
        raise denied(actor, "reply.staff_thread", "Only support staff can write in a staff thread.")
    if row.status == Status.CLOSED.value:
        raise TicketClosed(
            f"Ticket #{row.number} is closed, so this message was not added. "
            "Open a new ticket with /ticket new if you need more help."
        )
    now = core.clock.now()
    await _count_message(core, session, actor, now)
    reply = Reply(
        ticket_id=row.id,
        author_id=actor.id,
        body=text,
        is_internal=internal,
        created_at=now,
        idempotency_key=idempotency_key,
    )
    session.add(reply)
    await session.flush()
    if origin is not None:
        session.add(
            ChatMessage(
                channel_id=origin.channel_id, ts=origin.ts, reply_id=reply.id, is_copy=False
            )
        )
    copies = attachments.record(session, reply=reply, items=files, now=now)
    if copies:
        await session.flush()
    card_changed = False
    is_customer = actor.id == row.customer_id
    if not internal and not is_customer and actor.is_staff and row.first_response_at is None:
        # First response: the first public reply by staff who are not the ticket's customer.
        row.first_response_at = now
        await sla.stop(session, row.id)
        card_changed = True
    row.updated_at = now
    audit.record(
        session,
        actor_id=actor.id,
        action="note.added" if internal else "reply.added",
        ticket_id=row.id,
        now=now,
        reply_id=reply.id,
        **({"attachments": attachments.audit_details(files)} if files else {}),
    )
    for audience, kind in _relay_targets(internal, origin):
        outbox.enqueue(
            session,
            kind=kind,
            ticket_id=row.id,
            key=outbox.thread_key(audience, row.id),
            now=now,
            event="reply",
            reply_id=reply.id,
        )
        # Each file after the text, in the same thread: in order, and only where it may go.
        for copy in copies:
            outbox.enqueue(
                session,
                kind=OutboxKind.THREAD_FILE_COPY,
                ticket_id=row.id,
                key=outbox.thread_key(audience, row.id),
                now=now,
                attachment_id=copy.id,
                audience=audience.value,
            )
    if is_customer and row.status in (Status.RESOLVED.value, Status.WAITING_ON_CUSTOMER.value):
        # The customer answered: the ticket needs staff attention again.
        await apply_status(
            core, session, row, Status.OPEN, reason="Customer replied", actor=actor, now=now
        )
    elif card_changed:
        outbox.enqueue(
            session,
            kind=OutboxKind.STAFF_CARD_REFRESH,
            ticket_id=row.id,
            key=outbox.thread_key(Audience.STAFF, row.id),
            now=now,
        )
    log.info(
        "reply added",
        extra={"actor_id": actor.id, "ticket": row.number, "internal": internal},
    )
    return (await repository.reply_views(session, [reply]))[0]


def _relay_targets(internal: bool, origin: ChatOrigin | None) -> list[tuple[Audience, OutboxKind]]:
    """Where a new reply must be shown besides where it was written. Notes never go to customers."""
    targets = [(Audience.STAFF, OutboxKind.STAFF_THREAD_POST)]
    if not internal:
        targets.append((Audience.CUSTOMER, OutboxKind.CUSTOMER_THREAD_POST))
    source = origin.audience if origin is not None else None
    return [(audience, kind) for audience, kind in targets if audience is not source]


async def edit_reply(core: Core, *, actor_id: int, reply_id: int, body: str) -> ReplyView:
    """The author changes a reply's text within the edit window; the old text is kept.

    An edit cannot turn a note public or a reply internal: the flag is not an input. An edit
    that changes the text counts against the actor's message limit (see _count_message). The
    text of a message that carries files may become empty."""
    text = clean_text(body, field="message", max_length=BODY_MAX, required=False)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        reply, row = await _load_reply(session, actor, reply_id)
        if reply.author_id != actor.id:
            raise denied(actor, "reply.edit", "Only the author can edit a message.")
        if not text and not await session.scalar(
            select(ReplyAttachment.id).where(ReplyAttachment.reply_id == reply.id).limit(1)
        ):
            raise ValidationFailed("Message must not be empty.", field="message")
        if row.status == Status.CLOSED.value:
            raise TicketClosed(f"Ticket #{row.number} is closed; its messages can't be edited.")
        now = core.clock.now()
        if now - reply.created_at > core.settings.reply_edit_window:
            hours = core.settings.reply_edit_window_hours
            raise EditWindowExpired(f"Messages can only be edited within {hours:g} hours.")
        if text == reply.body:
            return (await repository.reply_views(session, [reply]))[0]
        await _count_message(core, session, actor, now)
        session.add(
            ReplyEdit(
                reply_id=reply.id, previous_body=reply.body, edited_at=now, edited_by_id=actor.id
            )
        )
        reply.body = text
        reply.edited_at = now
        reply.edited_by_id = actor.id
        audit.record(
            session,
            actor_id=actor.id,
            action="reply.edited",
            ticket_id=row.id,
            now=now,
            reply_id=reply.id,
        )
        _sync_copies(session, reply, row, OutboxKind.REPLY_COPIES_UPDATE, now)
        await session.flush()
        return (await repository.reply_views(session, [reply]))[0]


async def _count_message(core: Core, session: AsyncSession, actor: Actor, now: datetime) -> None:
    """Count one written message against the actor's limit before anything is written; past
    it, RateLimited (the increment rolls back with the refused call).

    Replies, notes and edits share one budget: an edit costs what a new message costs (a
    history row, an audit entry, every copy in Slack updated), and separate budgets would only
    let a script write twice as much by alternating the two."""
    await ratelimit.consume(
        session,
        actor_id=actor.id,
        bucket=MESSAGE_BUCKET,
        limit=core.settings.message_limit,
        window_seconds=core.settings.message_window_seconds,
        now=now,
        what=MESSAGE_WHAT,
    )


async def delete_reply(core: Core, *, actor_id: int, reply_id: int) -> None:
    """Soft-delete a reply: its author, or a manager or admin."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        reply, row = await _load_reply(session, actor, reply_id)
        if reply.author_id != actor.id and actor.role not in (Role.MANAGER, Role.ADMIN):
            raise denied(actor, "reply.delete", "Only the author or a manager can delete it.")
        # Deleting stays possible on closed tickets: it is how a message sent by mistake
        # (a pasted password, say) is taken back, and it changes nothing else on the ticket.
        now = core.clock.now()
        reply.deleted_at = now
        reply.deleted_by_id = actor.id
        audit.record(
            session,
            actor_id=actor.id,
            action="reply.deleted",
            ticket_id=row.id,
            now=now,
            reply_id=reply.id,
        )
        _sync_copies(session, reply, row, OutboxKind.REPLY_COPIES_DELETE, now)


async def reply_to_edit(core: Core, *, actor_id: int, reply_id: int) -> ReplyDraft:
    """The reply its author is about to edit, with its edit history for the form. A reply the
    actor may not see, on a ticket they may not see, deleted or missing, answers the same
    NotFound: nothing can be probed."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        reply, _ = await _load_reply(session, actor, reply_id)
        if reply.author_id != actor.id:
            raise denied(actor, "reply.edit", "Only the author can edit a message.")
        view = (await repository.reply_views(session, [reply]))[0]
        return ReplyDraft(reply=view, history=tuple(await _previous_bodies(session, reply)))


async def reply_history(core: Core, *, actor_id: int, reply_id: int) -> list[str]:
    """Earlier texts of a reply, oldest first (whoever may see the reply may see its history)."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        reply, _ = await _load_reply(session, actor, reply_id)
        return await _previous_bodies(session, reply)


async def _previous_bodies(session: AsyncSession, reply: Reply) -> list[str]:
    rows = await session.scalars(
        select(ReplyEdit.previous_body)
        .where(ReplyEdit.reply_id == reply.id)
        .order_by(ReplyEdit.edited_at, ReplyEdit.id)
    )
    return list(rows)


async def _load_reply(session: AsyncSession, actor: Actor, reply_id: int) -> tuple[Reply, Ticket]:
    """A reply the actor may see (internal notes: staff only); NotFound otherwise."""
    query = select(Reply).where(Reply.id == reply_id, Reply.deleted_at.is_(None))
    if not actor.is_staff:
        query = query.where(Reply.is_internal.is_(False))
    reply = await session.scalar(query.with_for_update(of=Reply))
    if reply is None:
        raise NotFound("That message was not found.")
    try:
        row = await load_ticket(session, actor, reply.ticket_id, for_update=True)
    except NotFound:
        raise NotFound("That message was not found.") from None
    return reply, row


def _sync_copies(
    session: AsyncSession, reply: Reply, row: Ticket, kind: OutboxKind, now: datetime
) -> None:
    audiences = [Audience.STAFF] if reply.is_internal else [Audience.STAFF, Audience.CUSTOMER]
    for audience in audiences:
        outbox.enqueue(
            session,
            kind=kind,
            ticket_id=row.id,
            key=outbox.thread_key(audience, row.id),
            now=now,
            reply_id=reply.id,
            audience=audience.value,
        )


async def reply_for_audience(core: Core, *, reply_id: int, audience: Audience) -> ReplyView | None:
    """System read for delivery: a live reply as `audience` may see it. A note is never returned
    for the customer audience, whatever the caller asks; a deleted reply is never returned."""
    async with core.db.transaction() as session:
        query = select(Reply).where(Reply.id == reply_id, Reply.deleted_at.is_(None))
        if audience is Audience.CUSTOMER:
            query = query.where(Reply.is_internal.is_(False))
        reply = await session.scalar(query)
        if reply is None:
            if audience is Audience.CUSTOMER and await session.scalar(
                select(Reply.id).where(Reply.id == reply_id, Reply.is_internal.is_(True))
            ):
                log.error("refused to render a note for a customer", extra={"reply_id": reply_id})
            return None
        return (await repository.reply_views(session, [reply]))[0]
