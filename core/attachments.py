"""Files shared with a reply: checked and recorded with it, listed with it, read for delivery.

The desk keeps a description of each file (name, title, type, size and the chat platform's
opaque id of it); the bytes stay in chat. A file copied to the other side of a ticket is an
outbox message of its own, written after the reply's text relay in the same thread, so it
arrives in order with the text it came with and never on a side the reply may not reach."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.enums import Audience
from core.errors import ValidationFailed
from core.models import AttachmentCopy, OutboxMessage, Reply, ReplyAttachment, User
from core.results import AttachmentView
from core.validation import opaque_key, single_line

log = logging.getLogger("core.attachments")

# Slack allows 10 files per message; the margin covers other platforms without inviting floods.
MAX_ATTACHMENTS = 20
NAME_MAX = 255
SOURCE_ID_MAX = 64
UNNAMED = "unnamed file"
# Rows per IN (...) list when loading the attachments of many replies.
_CHUNK = 500


@dataclass(frozen=True)
class AttachmentInput:
    """A file as the chat platform described it when the person shared it."""

    source_id: str
    name: str | None = None
    title: str | None = None
    mimetype: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class AttachmentDelivery:
    """What the delivery worker needs to copy a file to a thread: the file and its reply's
    author (the copy says who shared it)."""

    attachment: AttachmentView
    reply_id: int
    is_internal: bool
    author_name: str


def clean_attachments(items: Sequence[AttachmentInput]) -> list[AttachmentInput]:
    """Checked descriptions: an id each, names and types on one line within their limits, a
    size that is a count of bytes. A file the platform withholds may come without a name."""
    if len(items) > MAX_ATTACHMENTS:
        raise ValidationFailed(
            f"A message can carry at most {MAX_ATTACHMENTS} files; this one has {len(items)}.",
            field="files",
        )
    cleaned: list[AttachmentInput] = []
    seen: set[str] = set()
    for item in items:
        source = str(item.source_id or "").strip()
        if not source:
            raise ValidationFailed("A shared file has no id.", field="files")
        source = opaque_key(source, max_length=SOURCE_ID_MAX)
        if source in seen:
            continue  # the same file listed twice is one attachment
        seen.add(source)
        name = _line(item.name, "file name") or _line(item.title, "file name") or UNNAMED
        size = item.size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ValidationFailed("A shared file's size must be a number of bytes.", field="files")
        cleaned.append(
            AttachmentInput(
                source_id=source,
                name=name,
                title=_line(item.title, "file title"),
                mimetype=_line(item.mimetype, "file type"),
                size=size,
            )
        )
    return cleaned


def _line(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    text = single_line(value, field=field, max_length=NAME_MAX * 4, required=False)
    return text[:NAME_MAX].rstrip() or None


def record(
    session: AsyncSession, *, reply: Reply, items: Sequence[AttachmentInput], now: datetime
) -> list[ReplyAttachment]:
    """Add the reply's attachments (already cleaned) to the session, in the order shared."""
    rows = [
        ReplyAttachment(
            reply_id=reply.id,
            position=position,
            source_id=item.source_id,
            name=item.name or UNNAMED,
            title=item.title,
            mimetype=item.mimetype,
            size=item.size,
            created_at=now,
        )
        for position, item in enumerate(items)
    ]
    session.add_all(rows)
    return rows


def audit_details(items: Sequence[AttachmentInput]) -> list[dict[str, Any]]:
    """How the audit log names the files of a reply."""
    return [
        {"name": i.name, "mimetype": i.mimetype, "size": i.size, "source_id": i.source_id}
        for i in items
    ]


def view(row: ReplyAttachment) -> AttachmentView:
    return AttachmentView(
        id=row.id,
        reply_id=row.reply_id,
        position=row.position,
        source_id=row.source_id,
        name=row.name,
        title=row.title,
        mimetype=row.mimetype,
        size=row.size,
    )


async def views_by_reply(
    session: AsyncSession, reply_ids: Iterable[int]
) -> dict[int, tuple[AttachmentView, ...]]:
    """The attachments of replies the caller has already decided the reader may see."""
    wanted = sorted(set(reply_ids))
    found: dict[int, list[AttachmentView]] = {}
    for start in range(0, len(wanted), _CHUNK):
        rows = await session.scalars(
            select(ReplyAttachment)
            .where(ReplyAttachment.reply_id.in_(wanted[start : start + _CHUNK]))
            .order_by(ReplyAttachment.reply_id, ReplyAttachment.position)
        )
        for row in rows:
            found.setdefault(row.reply_id, []).append(view(row))
    return {reply_id: tuple(items) for reply_id, items in found.items()}


async def attachment_for_delivery(
    core: Core, *, attachment_id: int, audience: Audience
) -> AttachmentDelivery | None:
    """System read for delivery: a file of a live reply, as `audience` may receive it. A note's
    file is never returned for the customer audience, whatever the caller asks; a deleted
    reply's files are never returned."""
    async with core.db.transaction() as session:
        found = (
            await session.execute(
                select(ReplyAttachment, Reply, User.display_name)
                .join(Reply, Reply.id == ReplyAttachment.reply_id)
                .join(User, User.id == Reply.author_id)
                .where(ReplyAttachment.id == attachment_id)
            )
        ).first()
        if found is None:
            return None
        row, reply, author_name = found
        if reply.deleted_at is not None:
            return None
        if reply.is_internal and audience is Audience.CUSTOMER:
            log.error(
                "refused to hand a note's file to a customer",
                extra={"reply_id": reply.id, "attachment_id": attachment_id},
            )
            return None
        return AttachmentDelivery(
            attachment=view(row),
            reply_id=reply.id,
            is_internal=reply.is_internal,
            author_name=str(author_name),
        )


async def uploads_started(core: Core, *, message_id: int) -> list[str]:
    """The uploads earlier attempts of an outbox message began (see record_upload_started)."""
    async with core.db.transaction() as session:
        result = await session.scalar(
            select(OutboxMessage.result).where(OutboxMessage.id == message_id)
        )
    uploads = (result or {}).get("uploads_started") or []
    return [str(u) for u in uploads]


async def record_upload_started(
    core: Core, *, message_id: int, worker_id: str, upload_id: str
) -> bool:
    """Remember, before the upload is completed, the platform's id of the file an attempt is
    uploading: a later attempt (after a crash or a time-out that hid whether the upload
    completed) looks for that file in the thread before uploading again. False when the lease
    was lost meanwhile (another worker has the message: this attempt must stop)."""
    started = await uploads_started(core, message_id=message_id)
    async with core.db.transaction() as session:
        outcome = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.locked_by == worker_id,
                OutboxMessage.delivered_at.is_(None),
            )
            .values(result={"uploads_started": [*started, upload_id]})
        )
        return bool(getattr(outcome, "rowcount", 0))


async def record_copy_delivered(
    core: Core,
    *,
    message_id: int,
    worker_id: str,
    result: dict[str, Any],
    attachment_id: int,
    audience: Audience,
    copy_id: str,
) -> bool:
    """Mark a file copy's outbox message delivered and remember the copy, in one transaction
    (deleting the reply later takes the copy back). False when the lease was lost meanwhile:
    nothing is recorded, the worker that holds the message now records it."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        outcome = await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(delivered_at=now, locked_until=None, last_error=None, result=result)
        )
        if not getattr(outcome, "rowcount", 0):
            return False
        await session.merge(
            AttachmentCopy(
                attachment_id=attachment_id,
                audience=audience.value,
                copy_id=copy_id,
                created_at=now,
            )
        )
        return True


async def copies_of_reply(core: Core, *, reply_id: int, audience: Audience) -> list[str]:
    """The platform's ids of the copies made of a reply's files for `audience` (any state of
    the reply: a deleted reply's copies are what deletion takes back)."""
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(AttachmentCopy.copy_id)
            .join(ReplyAttachment, ReplyAttachment.id == AttachmentCopy.attachment_id)
            .where(
                ReplyAttachment.reply_id == reply_id,
                AttachmentCopy.audience == audience.value,
            )
            .order_by(ReplyAttachment.position)
        )
        return list(rows)
