"""Per-actor fixed-window rate limits, counted in the database so every process shares them."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Insert, Integer, String, Table, bindparam, exists, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import UTCDateTime, delete_where
from core.errors import RateLimited
from core.models import RateLimitCounter, User


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
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    values = count_values(actor_id=actor_id, bucket=bucket, now=now, window_seconds=window_seconds)
    count = (await session.execute(counting(dialect), values)).scalar_one()
    check(count, limit=limit, window_seconds=window_seconds, now=now, what=what)


# The values of `counting`, bound at execution.
_ACTOR = bindparam("count_actor", type_=Integer)
_BUCKET = bindparam("count_bucket", type_=String)
_WINDOW = bindparam("count_window", type_=UTCDateTime)


@cache
def counting(dialect: str, *, known_users_only: bool = False) -> Insert:
    """The upsert that counts one use and returns the window's count (one statement per
    dialect, its values bound from `count_values`), for `consume` and for services that count
    within a statement of their own. `known_users_only`: an unknown user counts nothing (no
    row comes back) instead of breaking the foreign key, for a statement that reads the user
    in the same round trip."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    row = select(_ACTOR, _BUCKET, _WINDOW, literal(1, Integer))
    if known_users_only:
        row = row.where(exists().where(User.id == _ACTOR))
    counters = cast(Table, RateLimitCounter.__table__)
    values = insert(counters).from_select(["actor_id", "bucket", "window_start", "count"], row)
    statement: Insert = values.on_conflict_do_update(
        index_elements=["actor_id", "bucket", "window_start"],
        set_={"count": counters.c.count + 1},
    ).returning(counters.c.count)
    return statement


def count_values(
    *, actor_id: int, bucket: str, now: datetime, window_seconds: int
) -> dict[str, Any]:
    """The values `counting` binds: one use by `actor_id` in `bucket`'s window of `now`."""
    window_start, _ = window(now, window_seconds)
    return {_ACTOR.key: actor_id, _BUCKET.key: bucket, _WINDOW.key: window_start}


def check(count: int, *, limit: int, window_seconds: int, now: datetime, what: str) -> None:
    """Raise RateLimited when `count` (this use included) is past `limit`."""
    if count <= limit:
        return
    window_start, retry_after = window(now, window_seconds)
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
