"""Chat surfaces: whether the channel an audience's messages go to is safe to post to now.

Internal notes are posted in the staff channel, so the bot may post there only while that
channel stays private, unshared and reachable. Every process checks the channel and records
what it saw here; the record is shared through the database, so one process's finding holds
the audience's outbox messages on every process (core.outbox.claim_batch skips them), and any
process's later check that finds the channel safe again releases them. The change from safe to
unsafe (or back) is made by one conditional write of a locked row, and the managers' notice is
queued in that same transaction: however many processes notice, managers are told once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core import outbox
from core.context import Core
from core.enums import Audience
from core.models import ChatSurface
from core.outbox import OutboxKind

# Managers' notices about one audience's surface go out one at a time, in order.
NOTICE_KEY = "manager:surface:{audience}"


class SurfaceProblem(StrEnum):
    """Why posting to a surface is not safe, most serious first."""

    PUBLIC = "public"  # anyone in the workspace can read and join it
    SHARED = "shared"  # shared with another organisation
    ARCHIVED = "archived"
    NOT_A_MEMBER = "not_a_member"  # the bot was removed from it, or it no longer exists
    UNVERIFIED = "unverified"  # the chat platform refused to describe it


class SurfaceChange(StrEnum):
    """What recording a check changed."""

    BECAME_UNSAFE = "became_unsafe"
    BECAME_SAFE = "became_safe"
    UNCHANGED = "unchanged"
    STALE = "stale"  # a newer check was already recorded: this one changed nothing


@dataclass(frozen=True)
class SurfaceState:
    """A surface as last recorded."""

    audience: Audience
    channel_id: str
    channel_name: str | None
    problem: SurfaceProblem | None
    detail: str | None
    unsafe_since: datetime | None
    checked_at: datetime

    @property
    def safe(self) -> bool:
        return self.problem is None


async def record_check(
    core: Core,
    *,
    audience: Audience,
    channel_id: str,
    channel_name: str | None,
    problem: SurfaceProblem | None,
    detail: str | None,
    observed_at: datetime,
) -> SurfaceChange:
    """Record what a check made at `observed_at` saw; on a change between safe and unsafe,
    queue the managers' notice in the same transaction."""
    now = core.clock.now()
    async with core.db.transaction() as session:
        dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await session.execute(
            insert(ChatSurface)
            .values(audience=audience.value, channel_id=channel_id, checked_at=observed_at)
            .on_conflict_do_nothing(index_elements=["audience"])
        )
        row = await session.scalar(
            select(ChatSurface).where(ChatSurface.audience == audience.value).with_for_update()
        )
        assert row is not None  # inserted above or by a concurrent transaction
        if row.checked_at > observed_at:
            return SurfaceChange.STALE
        previous, was_safe = row.problem, row.problem is None
        row.channel_id = channel_id
        row.channel_name = channel_name or row.channel_name
        row.checked_at = observed_at
        row.problem = problem.value if problem is not None else None
        row.detail = detail[:300] if problem is not None and detail else None
        if problem is None:
            row.unsafe_since = None
            change = SurfaceChange.UNCHANGED if was_safe else SurfaceChange.BECAME_SAFE
        else:
            if was_safe:
                row.unsafe_since = now
            change = SurfaceChange.BECAME_UNSAFE if was_safe else SurfaceChange.UNCHANGED
        if change is not SurfaceChange.UNCHANGED:
            outbox.enqueue(
                session,
                kind=OutboxKind.SURFACE_NOTICE,
                ticket_id=None,
                key=NOTICE_KEY.format(audience=audience.value),
                now=now,
                audience=audience.value,
                channel_id=channel_id,
                channel_name=row.channel_name,
                problem=row.problem,
                detail=row.detail,
                previous=previous,
            )
        return change


async def state_of(core: Core, *, audience: Audience) -> SurfaceState | None:
    """The surface as last recorded; None before any check was recorded."""
    async with core.db.transaction() as session:
        row = await session.scalar(select(ChatSurface).where(ChatSurface.audience == audience))
        if row is None:
            return None
        return SurfaceState(
            audience=Audience(row.audience),
            channel_id=row.channel_id,
            channel_name=row.channel_name,
            problem=SurfaceProblem(row.problem) if row.problem else None,
            detail=row.detail,
            unsafe_since=row.unsafe_since,
            checked_at=row.checked_at,
        )
