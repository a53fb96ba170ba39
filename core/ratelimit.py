"""Per-actor fixed-window rate limits, counted in the database so every process shares them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import delete_where
from core.errors import RateLimited
from core.models import RateLimitCounter


async def consume(
    session: AsyncSession,
    *,
    actor_id: int,
    bucket: str,
    limit: int,
    window_seconds: int,
    now: datetime,
    what: str,
) -> None:
    """Count one use in the current window; raise RateLimited past `limit`.

    The upsert takes a row lock on PostgreSQL (SQLite serialises writers), so concurrent
    requests from several replicas are counted exactly. A refused or failed operation rolls
    its increment back with the rest of its transaction.
    """
    window_start, retry_after = window(now, window_seconds)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = insert(RateLimitCounter).values(
        actor_id=actor_id, bucket=bucket, window_start=window_start, count=1
    )
    statement = values.on_conflict_do_update(
        index_elements=["actor_id", "bucket", "window_start"],
        set_={"count": RateLimitCounter.count + 1},
    ).returning(RateLimitCounter.count)
    count = (await session.execute(statement)).scalar_one()
    if count > limit:
        raise refusal(
            what=what,
            limit=limit,
            window_seconds=window_seconds,
            retry_after=retry_after,
            resets_at=window_start + timedelta(seconds=window_seconds),
        )


def window(now: datetime, window_seconds: int) -> tuple[datetime, int]:
    """The start of the fixed window `now` falls in, and the seconds until it ends."""
    epoch = int(now.timestamp())
    start_epoch = epoch - epoch % window_seconds
    start = now - timedelta(seconds=epoch - start_epoch, microseconds=now.microsecond)
    return start, start_epoch + window_seconds - epoch


def refusal(
    *,
    what: str,
    limit: int,
    window_seconds: int,
    retry_after: int,
    resets_at: datetime | None = None,
) -> RateLimited:
    """The error for a use past `limit` (for callers that count in a statement of their own:
    the counter row is the same, `rate_limit_counters` keyed by actor, bucket and window)."""
    return RateLimited(
        f"You can {what} at most {limit} times per {_window_text(window_seconds)}. "
        f"Please try again in {_duration_text(retry_after)}.",
        retry_after_seconds=retry_after,
        resets_at=resets_at,
    )


async def prune(session: AsyncSession, *, older_than: datetime, limit: int | None = None) -> int:
    """Drop counters of windows that started before `older_than` (oldest first, at most
    `limit`); returns how many were dropped. The caller picks `older_than` at least one whole
    window back (see CoreSettings.longest_rate_limit_window), so no counter that still counts
    is lost."""
    return await delete_where(
        session,
        RateLimitCounter,
        RateLimitCounter.window_start < older_than,
        oldest_first=RateLimitCounter.window_start,
        limit=limit,
    )


def _window_text(seconds: int) -> str:
    """A window as in "per minute", "per 2 hours"."""
    text = _duration_text(seconds)
    return text.removeprefix("1 ")


def _duration_text(seconds: int) -> str:
    """A wait as in "in 1 minute", "in 45 seconds" (rounded to whole minutes past one)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = seconds // 3600
        return "1 hour" if hours == 1 else f"{hours} hours"
    if seconds >= 60:
        minutes = max(1, round(seconds / 60))
        return "1 minute" if minutes == 1 else f"{minutes} minutes"
    return "1 second" if seconds == 1 else f"{seconds} seconds"
