"""Where tickets and replies live in chat: thread roots, message links, handled deliveries.

The core stores these as opaque (channel, ts) pairs; it knows nothing of the chat platform."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.context import Core
from core.db import delete_where
from core.enums import Audience
from core.models import ChatMessage, ChatThread, InboundEvent, Ticket
from core.validation import opaque_key

# Slack retries a delivery for minutes, not days: a claim older than this guards nothing.
DELIVERY_CLAIM_RETENTION = timedelta(days=2)


@dataclass(frozen=True)
class ChatRef:
    channel_id: str
    ts: str


@dataclass(frozen=True)
class ThreadOwner:
    ticket_id: uuid.UUID
    number: int
    audience: Audience
    closed: bool


@dataclass(frozen=True)
class MessageLink:
    channel_id: str
    ts: str
    is_copy: bool


async def thread_of(core: Core, *, ticket_id: uuid.UUID, audience: Audience) -> ChatRef | None:
    async with core.db.transaction() as session:
        row = await session.get(ChatThread, (ticket_id, audience.value))
        return ChatRef(row.channel_id, row.ts) if row else None


async def owner_of_thread(core: Core, *, channel_id: str, ts: str) -> ThreadOwner | None:
    """The ticket whose conversation is rooted at (channel, ts), if any and not deleted."""
    async with core.db.transaction() as session:
        found = (
            await session.execute(
                select(ChatThread.ticket_id, ChatThread.audience, Ticket.number, Ticket.status)
                .join(Ticket, Ticket.id == ChatThread.ticket_id)
                .where(
                    ChatThread.channel_id == channel_id,
                    ChatThread.ts == ts,
                    Ticket.deleted_at.is_(None),
                )
            )
        ).first()
        if found is None:
            return None
        return ThreadOwner(
            ticket_id=found.ticket_id,
            number=found.number,
            audience=Audience(found.audience),
            closed=found.status == "closed",
        )


async def reply_of_message(core: Core, *, channel_id: str, ts: str) -> int | None:
    async with core.db.transaction() as session:
        return await session.scalar(
            select(ChatMessage.reply_id).where(
                ChatMessage.channel_id == channel_id, ChatMessage.ts == ts
            )
        )


async def messages_of_reply(core: Core, *, reply_id: int) -> list[MessageLink]:
    async with core.db.transaction() as session:
        rows = await session.scalars(select(ChatMessage).where(ChatMessage.reply_id == reply_id))
        return [MessageLink(r.channel_id, r.ts, r.is_copy) for r in rows]


def link_thread(
    session: AsyncSession, *, ticket_id: uuid.UUID, audience: Audience, ref: ChatRef
) -> None:
    session.add(
        ChatThread(
            ticket_id=ticket_id, audience=audience.value, channel_id=ref.channel_id, ts=ref.ts
        )
    )


def link_copy(session: AsyncSession, *, reply_id: int, ref: ChatRef) -> None:
    session.add(ChatMessage(channel_id=ref.channel_id, ts=ref.ts, reply_id=reply_id, is_copy=True))


async def claim_delivery(core: Core, *, key: str) -> bool:
    """Record that an inbound delivery (event id, trigger id) is being handled.

    False means another request (a Slack retry, maybe on another replica) already claimed it."""
    now = core.clock.now()
    # One statement, atomic on its own (claimed on every command: one round trip).
    async with core.db.single_statement() as session:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        result = await session.execute(
            insert(InboundEvent)
            .values(key=_claim_key(key), received_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
            .returning(InboundEvent.key)
        )
        return result.first() is not None


def _claim_key(key: str) -> str:
    return opaque_key(key, max_length=200)


async def release_delivery(core: Core, *, key: str) -> None:
    """Forget a claim whose handling failed before anything was written, so a retry may run."""
    async with core.db.transaction() as session:
        await session.execute(delete(InboundEvent).where(InboundEvent.key == _claim_key(key)))


async def prune_deliveries(core: Core, *, older_than: timedelta = DELIVERY_CLAIM_RETENTION) -> int:
    """Drop claims older than any Slack retry could be, in a transaction of their own."""
    cutoff = core.clock.now() - older_than
    async with core.db.transaction() as session:
        return await delete_claims(session, received_before=cutoff)


async def delete_claims(
    session: AsyncSession, *, received_before: datetime, limit: int | None = None
) -> int:
    """Delete delivery claims received before `received_before` (oldest first, at most `limit`)
    in the caller's transaction; returns how many were deleted."""
    return await delete_where(
        session,
        InboundEvent,
        InboundEvent.received_at < received_before,
        oldest_first=InboundEvent.received_at,
        limit=limit,
    )
