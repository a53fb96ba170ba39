"""Rates shared by every process of the desk: a steady rate with a burst allowance (the generic
cell rate algorithm), kept in one row per key so that several replicas together never use more
than one budget. The keys are opaque here; the bot names them after what it paces.

A row holds `due_at`, the virtual time at which the next use would be due if uses had come at
exactly the steady rate, and `paused_until`, before which no use may start (set when the far
side said it was over its limit). A reservation moves `due_at` on in one atomic statement and
answers when the reserved use may start; nobody waits inside the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import case, literal
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.context import Core
from core.models import RateBudget


@dataclass(frozen=True)
class Rate:
    """`per_second` uses per second in the long run, up to `burst` of them back to back."""

    per_second: float
    burst: int = 1

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second

    @property
    def tolerance(self) -> float:
        """How far ahead of the steady schedule a use may start (the burst allowance)."""
        return max(0, self.burst - 1) * self.interval


@dataclass(frozen=True)
class Reservation:
    """When the last reserved use may start, and the pause in force when it was reserved."""

    start_at: float
    paused_until: float


def _insert(core: Core):  # type: ignore[no-untyped-def]
    return pg_insert if core.db.dialect == "postgresql" else sqlite_insert


async def reserve(core: Core, *, key: str, rate: Rate, now: float, uses: int = 1) -> Reservation:
    """Reserve `uses` consecutive uses of `key` (uses already made elsewhere count too); answer
    when the last of them may start: never before `now`, nor before a pause ends."""
    uses = max(1, uses)
    step = uses * rate.interval
    current_from = case(
        (
            (RateBudget.due_at >= RateBudget.paused_until) & (RateBudget.due_at >= now),
            RateBudget.due_at,
        ),
        (RateBudget.paused_until >= now, RateBudget.paused_until),
        else_=literal(now),
    )
    statement = (
        _insert(core)(RateBudget)
        .values(key=key, due_at=now + step, paused_until=0.0)
        .on_conflict_do_update(index_elements=["key"], set_={"due_at": current_from + step})
        .returning(RateBudget.due_at, RateBudget.paused_until)
    )
    # One upsert, atomic on its own (its row lock orders replicas): one round trip.
    async with core.db.single_statement() as session:
        row = (await session.execute(statement)).one()
    due_at, paused_until = float(row[0]), float(row[1])
    start = max(due_at - rate.interval - rate.tolerance, now, paused_until)
    return Reservation(start_at=start, paused_until=paused_until)


async def pause(core: Core, *, key: str, until: float) -> None:
    """No use of `key` starts before `until` (epoch seconds), whoever reserves it; a later pause
    already recorded stays."""
    later_pause = case((RateBudget.paused_until > until, RateBudget.paused_until), else_=until)
    later_due = case((RateBudget.due_at > until, RateBudget.due_at), else_=until)
    statement = (
        _insert(core)(RateBudget)
        .values(key=key, due_at=until, paused_until=until)
        .on_conflict_do_update(
            index_elements=["key"], set_={"paused_until": later_pause, "due_at": later_due}
        )
    )
    async with core.db.single_statement() as session:
        await session.execute(statement)


async def paused_until(core: Core, *, key: str) -> float:
    """The pause recorded for `key` (0 when none ever was)."""
    async with core.db.transaction() as session:
        row = await session.get(RateBudget, key)
        return float(row.paused_until) if row is not None else 0.0
