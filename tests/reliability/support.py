"""What the fault scenarios share: reading the outbox, counting what reached the fake Slack by
outbox id (message metadata), waiting for requests the fake still holds, a fault rotation."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from bot.ids import EVENT_METADATA_TYPE
from core.context import Core
from core.models import AuditEntry, OutboxMessage, Reply, Ticket
from devslack.server import FakeSlack, FaultRule, FaultStatus

# Outbox kinds whose delivery is a new message in Slack (the others edit or delete messages).
POSTING_KINDS = frozenset(
    {
        "staff_card_create",
        "customer_thread_create",
        "staff_thread_post",
        "customer_thread_post",
        "manager_alert",
        "assignee_dm",
    }
)


def outbox_id_of(message: Any) -> int | None:
    """The outbox id a bot message carries in its metadata, if any."""
    metadata = getattr(message, "metadata", None) or {}
    if metadata.get("event_type") != EVENT_METADATA_TYPE:
        return None
    value = (metadata.get("event_payload") or {}).get("outbox_id")
    return int(value) if value is not None else None


def posts_per_outbox_id(fake: FakeSlack) -> Counter[int]:
    """How many messages in the whole workspace (deleted ones too) carry each outbox id."""
    counts: Counter[int] = Counter()
    for message in fake.messages(include_deleted=True):
        outbox_id = outbox_id_of(message)
        if outbox_id is not None:
            counts[outbox_id] += 1
    return counts


async def wait_for_slack(fake: FakeSlack, *, within: float = 10.0) -> None:
    """Wait until the fake has answered every request it received (parked time-outs included):
    Slack has finished acting on whatever reached it."""
    deadline = time.monotonic() + within
    while any(call.response is None for call in fake.calls):
        assert time.monotonic() < deadline, "the fake Slack still holds requests"
        await asyncio.sleep(0.02)


async def table_counts(core: Core) -> dict[str, int]:
    """Row counts of the tables a ticket creation writes together."""
    async with core.db.transaction() as session:
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
        created = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "ticket.created")
        )
        cards = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "staff_card_create")
        )
        replies = await session.scalar(select(func.count()).select_from(Reply))
        return {
            "tickets": int(tickets or 0),
            "ticket.created audits": int(created or 0),
            "card messages": int(cards or 0),
            "replies": int(replies or 0),
        }


@dataclass(frozen=True)
class FaultStep:
    """One slot of a rotation: how the n-th matching call is answered (None: normally)."""

    status: FaultStatus | None
    retry_after: int = 1
    delay: float = 0.0
    then_process: bool = False


class FaultRotation:
    """Fail calls to `methods` in a fixed rotation of `steps` (by the order the fake received
    calls to any of them since the rotation began, so the first such call gets the first step
    whatever came before) until `stop()`: a stretch of mixed Slack trouble."""

    def __init__(self, fake: FakeSlack, methods: Iterable[str], steps: list[FaultStep]) -> None:
        self.fake = fake
        self.first_call = len(fake.calls)
        self.methods = frozenset(methods)
        self.steps = steps
        self.rules: list[tuple[FaultStep, FaultRule]] = []
        for index, step in enumerate(steps):
            if step.status is None:
                continue
            rule = fake.fail_for(
                self._matcher(index),
                status=step.status,
                retry_after=step.retry_after,
                delay=step.delay,
                then_process=step.then_process,
            )
            self.rules.append((step, rule))

    def _matcher(self, index: int) -> Any:
        def matches(method: str, params: Mapping[str, Any]) -> bool:
            if method not in self.methods:
                return False
            # The call being matched is already recorded (with these very params): its position
            # among the calls to the same method picks its slot in the rotation.
            since = self.fake.calls[self.first_call :]
            ours = [call for call in since if call.method in self.methods]
            position = next(i for i, call in enumerate(ours) if call.params is params)
            return position % len(self.steps) == index

        return matches

    def stop(self) -> None:
        for _, rule in self.rules:
            rule.cancel()

    def hits(self) -> dict[str, int]:
        """How often each kind of fault was injected."""
        counts: Counter[str] = Counter()
        for step, rule in self.rules:
            label = f"{step.status}{'+acted' if step.then_process else ''}"
            counts[label] += rule.hits
        return dict(counts)
