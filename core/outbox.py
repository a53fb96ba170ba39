"""The outbox: what must reach chat after a change is written in the change's transaction and
delivered later by a worker that claims rows, retries with backoff and never sends twice."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from core import chat, coalescing
from core.chat import ChatRef
from core.context import Core
from core.enums import Audience
from core.models import ChatSurface, OutboxMessage


class OutboxKind(StrEnum):
    """What a message asks the delivery worker to do; the payload carries ids, not text."""

    STAFF_CARD_CREATE = "staff_card_create"
    STAFF_CARD_REFRESH = "staff_card_refresh"
    STAFF_THREAD_POST = "staff_thread_post"
    CUSTOMER_THREAD_CREATE = "customer_thread_create"
    CUSTOMER_THREAD_POST = "customer_thread_post"
    # One file of a reply copied into the other side's thread, after the reply's text.
    THREAD_FILE_COPY = "thread_file_copy"
    REPLY_COPIES_UPDATE = "reply_copies_update"
    REPLY_COPIES_DELETE = "reply_copies_delete"
    MANAGER_ALERT = "manager_alert"
    ASSIGNEE_DM = "assignee_dm"
    # Claimed SLA alerts, written by the scan: delivering one writes each alert's own messages
    # (core.sla.fan_out) and talks to no one.
    SLA_ALERTS = "sla_alerts"
    # Managers are told that an audience's chat surface became unsafe, or safe again
    # (core.surfaces).
    SURFACE_NOTICE = "surface_notice"


def thread_key(audience: Audience | str, ticket_id: uuid.UUID) -> str:
    """Messages with the same key are delivered one at a time, in the order they were written."""
    return f"{audience}:{ticket_id}"


def audience_of(key: str) -> Audience | None:
    """The audience whose thread a message key belongs to (None for other keys)."""
    try:
        return Audience(key.partition(":")[0])
    except ValueError:
        return None


def enqueue(
    session: AsyncSession,
    *,
    kind: OutboxKind,
    ticket_id: uuid.UUID | None,
    key: str,
    now: datetime,
    **payload: Any,
) -> OutboxMessage:
    """Add a message to the session; it is committed (or rolled back) with the change."""
    message = OutboxMessage(
        kind=kind.value,
        ticket_id=ticket_id,
        thread_key=key,
        payload=payload,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(message)
    return message


@dataclass(frozen=True)
class ClaimedMessage:
    id: int
    kind: OutboxKind
    ticket_id: uuid.UUID | None
    thread_key: str
    payload: dict[str, Any]
    attempts: int


async def claim_batch(
    core: Core,
    *,
    worker_id: str,
    limit: int = 20,
    lease: timedelta = timedelta(seconds=60),
    kinds: Collection[OutboxKind] | None = None,
) -> list[ClaimedMessage]:
    """Claim up to `limit` deliverable messages (of `kinds`, default all) for `worker_id` for
    the lease time.

    A message is deliverable when it is due, not leased by a live worker, no older message of
    its thread is still undelivered (per-thread order), and its audience's chat surface is not
    recorded unsafe (held, not failed: it goes out once the surface is safe again). On
    PostgreSQL the candidate rows are locked with SKIP LOCKED so that replicas claiming at the
    same moment share the work.
    """
    now = core.clock.now()
    async with core.db.transaction() as session:
        earlier = aliased(OutboxMessage)
        blocked = exists().where(
            and_(
                earlier.thread_key == OutboxMessage.thread_key,
                earlier.id < OutboxMessage.id,
                earlier.delivered_at.is_(None),
                earlier.failed_at.is_(None),
            )
        )
        # An audience's messages wait while its chat surface is recorded unsafe (core.surfaces):
        # every replica's worker sees the record here, in the claim itself.
        held = exists().where(
            ChatSurface.problem.is_not(None),
            OutboxMessage.thread_key.like(ChatSurface.audience + ":%"),
        )
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.locked_until.is_(None), OutboxMessage.locked_until < now),
                ~blocked,
                ~held,
                *([OutboxMessage.kind.in_([kind.value for kind in kinds])] if kinds else []),
            )
            .order_by(coalescing.rank(), OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if core.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=OutboxMessage)
        rows = await coalescing.claimable(session, query, limit=limit, now=now)
        claimed: list[ClaimedMessage] = []
        for row in rows:
            row.locked_until = now + lease
            row.locked_by = worker_id
            row.attempts += 1
            claimed.append(
                ClaimedMessage(
                    id=row.id,
                    kind=OutboxKind(row.kind),
                    ticket_id=row.ticket_id,
                    thread_key=row.thread_key,
                    payload=dict(row.payload),
                    attempts=row.attempts,
                )
            )
        return claimed


async def extend_lease(
    core: Core, *, worker_id: str, message_ids: list[int], lease: timedelta
) -> int:
    """Renew the lease of messages `worker_id` is still delivering (a heartbeat), so that a short
    lease never expires under a live worker; returns how many leases were renewed."""
    if not message_ids:
        return 0
    now = core.clock.now()
    async with core.db.transaction() as session:
        outcome = await session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_(message_ids),
                OutboxMessage.locked_by == worker_id,
                OutboxMessage.locked_until.is_not(None),  # not released by mark_retry meanwhile
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.failed_at.is_(None),
            )
            .values(locked_until=now + lease)
        )
        return int(getattr(outcome, "rowcount", 0) or 0)


async def mark_delivered(
    core: Core,
    *,
    message_id: int,
    worker_id: str,
    result: dict[str, Any] | None = None,
    thread: tuple[uuid.UUID, Audience, ChatRef] | None = None,
    copy: tuple[int, ChatRef] | None = None,
) -> bool:
    """Record success, and in the same transaction where the message now lives in chat (a new
    thread root, or a relayed copy of a reply). False when the lease was lost meanwhile."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        outcome = await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(delivered_at=now, locked_until=None, last_error=None, result=result)
        )
        if thread is not None:
            ticket_id, audience, ref = thread
            chat.link_thread(session, ticket_id=ticket_id, audience=audience, ref=ref)
        if copy is not None:
            reply_id, ref = copy
            chat.link_copy(session, reply_id=reply_id, ref=ref)
        return bool(getattr(outcome, "rowcount", 0))


async def mark_retry(
    core: Core, *, message_id: int, worker_id: str, error: str, delay: timedelta
) -> None:
    """Record a failed attempt and when to try again."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(next_attempt_at=now + delay, locked_until=None, last_error=error[:2000])
        )


async def release(core: Core, *, message_id: int, worker_id: str) -> None:
    """Give a claimed message back unattempted (its surface turned unsafe after the claim): the
    attempt is not counted and the message is due again at once."""
    async with core.db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(locked_until=None, attempts=OutboxMessage.attempts - 1)
        )


async def postpone(core: Core, *, message_id: int, worker_id: str, delay: timedelta) -> None:
    """Give a claimed message back unattempted, due again after `delay` (its Slack budget
    has no slot for it sooner): the attempt is not counted."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(
                locked_until=None,
                next_attempt_at=now + delay,
                attempts=OutboxMessage.attempts - 1,
            )
        )


async def mark_failed(core: Core, *, message_id: int, worker_id: str, error: str) -> None:
    """Give up on a message (a permanent error); later messages of its thread go ahead."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.locked_by == worker_id)
            .values(failed_at=now, locked_until=None, last_error=error[:2000])
        )


async def backlog(core: Core) -> int:
    """How many messages still wait for delivery."""
    async with core.db.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))
        )
        return int(count or 0)
