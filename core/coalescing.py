"""What the outbox claim leaves out because a later message makes it obsolete, and who goes first.

A staff card shows the ticket as it is when the card is rendered, never as it was when its
refresh was queued. So:

- a pending card refresh followed in its thread by another pending refresh is superseded: the
  later one renders the latest state, in its own place in the thread's order;
- pending refreshes queued before the card itself is first rendered (its creation, claimed for
  the first time) are absorbed by it: the card is created showing their state.

Both are recorded as delivered with the id that stands for them, in the claim's transaction.
Nothing else is coalesced: replies, relays, status notices and alerts are read as separate
messages. Per-thread order is untouched: a superseded message is only ever replaced by a later
one of its own thread, and what is claimed is still the thread's oldest undelivered message.

When more is due than one claim takes, people go before decoration: alerts and thread messages
(relays of what someone wrote, notices) first, new cards and DMs next, card refreshes last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import OutboxMessage

# Outbox kinds by value (core.outbox.OutboxKind, which imports this module).
CARD_CREATE = "staff_card_create"
CARD_REFRESH = "staff_card_refresh"
_FIRST = ("manager_alert", "sla_alerts", "staff_thread_post", "customer_thread_post")
_LAST = (CARD_REFRESH,)
# How many times one claim looks again after leaving obsolete messages out.
_ROUNDS = 4


def rank() -> Any:
    """Claim order when the backlog is longer than a claim: 0 first."""
    return case(
        (OutboxMessage.kind.in_(_FIRST), 0),
        (OutboxMessage.kind.in_(_LAST), 2),
        else_=1,
    )


async def claimable(
    session: AsyncSession, query: Select[OutboxMessage], *, limit: int, now: datetime
) -> list[OutboxMessage]:
    """Run the claim query, recording obsolete card refreshes as delivered instead of claiming
    them; look again (in the same transaction) while that left room in the claim."""
    claimed: list[OutboxMessage] = []
    for _ in range(_ROUNDS):
        again = (
            query.where(OutboxMessage.id.not_in([row.id for row in claimed])) if claimed else query
        )
        rows = list(await session.scalars(again.limit(limit - len(claimed))))
        obsolete = await _obsolete(session, rows, now)
        for row in rows:
            if row.id in obsolete:
                row.delivered_at = now
                row.locked_until = None
                row.result = {"coalesced_into": obsolete[row.id]}
        claimed.extend(row for row in rows if row.id not in obsolete)
        await session.flush()
        if not obsolete or len(claimed) >= limit:
            break
    return claimed


async def _obsolete(
    session: AsyncSession, rows: list[OutboxMessage], now: datetime
) -> dict[int, int]:
    """{id of an obsolete message: id of the message that stands for it}, among `rows` and the
    refreshes a first rendering of a card in `rows` absorbs."""
    refreshes = {row.thread_key: row for row in rows if row.kind == CARD_REFRESH}
    creates = {row.thread_key: row for row in rows if row.kind == CARD_CREATE and row.attempts == 0}
    keys = set(refreshes) | set(creates)
    if not keys:
        return {}
    result = await session.execute(
        select(OutboxMessage.thread_key, func.max(OutboxMessage.id))
        .where(
            OutboxMessage.kind == CARD_REFRESH,
            OutboxMessage.thread_key.in_(keys),
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.failed_at.is_(None),
        )
        .group_by(OutboxMessage.thread_key)
    )
    latest = {str(key): int(newest) for key, newest in result}
    obsolete: dict[int, int] = {}
    for key, row in refreshes.items():
        if latest.get(key, row.id) > row.id:
            obsolete[row.id] = latest[key]
    for key, create in creates.items():
        if key in latest:
            # Not in `rows` (blocked behind the create): recorded here directly.
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.kind == CARD_REFRESH,
                    OutboxMessage.thread_key == key,
                    OutboxMessage.id > create.id,
                    OutboxMessage.delivered_at.is_(None),
                    OutboxMessage.failed_at.is_(None),
                )
                .values(
                    delivered_at=now,
                    result={"coalesced_into": create.id},
                )
            )
    return obsolete
