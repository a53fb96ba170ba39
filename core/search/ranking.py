"""What both engines share: the interface a dialect's engine implements, the ranking rules
(the best of the newest matches, newest first among equals), the replies a search may read
(public, undeleted) and the choice of the snippet shown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, Subquery, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.access import Actor
from core.models import Reply, Ticket, User
from core.results import TicketView

SNIPPET_WORDS = 18
SNIPPET_MAX_CHARS = 200

# A ticket's rank: for each word of the query, the weight of the best part of the ticket that
# holds it, added up. A word in the title counts most, in the description less, in a public
# reply least; equal ranks are ordered newest first.
TITLE_WEIGHT = 4
DESCRIPTION_WEIGHT = 2
REPLY_WEIGHT = 1


@dataclass(frozen=True)
class Match:
    number: int  # the ticket's number
    rank: float


class SearchEngine(Protocol):
    """The dialect-specific parts: which tickets match (with a rank) and their snippets."""

    async def start(
        self, session: AsyncSession, actor_id: int, counting: dict[str, Any]
    ) -> tuple[User | None, int | None]:
        """The acting user's row (None: no such user) and, for a user that may act, the
        search counted against their rate limit (core.ratelimit.counting with the values
        `counting`): the count, this search included. None when nothing was counted."""
        ...

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[Match], int]:
        """Among the `newest` most recent matching tickets the actor may see (highest numbers),
        the `best` best ranked, best first (newest first among equals); and how many tickets
        match, counted up to `newest` + 1 only."""
        ...

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[TicketView, str]]:
        """The page's tickets (those the actor may see), each with its snippet, by number."""
        ...


def public_reply() -> list[ColumnElement[bool]]:
    return [not_(Reply.is_internal), Reply.deleted_at.is_(None)]


def best_of(
    newest: Subquery,
    rank: ColumnElement[float],
    keep: int | ColumnElement[int],
    best: int | ColumnElement[int],
) -> Select[Any]:
    """From `newest` (number and a rank, at most `keep` + 1 rows): the `best` best ranked of
    its `keep` newest, each with the number of rows of `newest` (to tell whether more match)."""
    counted = select(
        newest.c.number,
        rank.label("rank"),
        func.count().over().label("found"),
        func.row_number().over(order_by=newest.c.number.desc()).label("recency"),
    ).subquery("counted")
    return (
        select(counted.c.number, counted.c.rank, counted.c.found)
        .where(counted.c.recency <= keep)
        .order_by(counted.c.rank.desc(), counted.c.number.desc())
        .limit(best)
    )


def best_first(matches: Sequence[Match]) -> list[Match]:
    return sorted(matches, key=lambda match: (match.rank, match.number), reverse=True)


# --------------------------------------------------------------------------------------------
# snippets


def choose_snippet(
    ticket: Ticket, *, description: str | None, reply: str | None, title_hit: bool
) -> str:
    """The excerpt to show: where the description matched, else the newest matching public
    reply, else the title; the description's first words when no single part shows a term."""
    if description:
        return _shorten(description)
    if reply:
        return _shorten(reply)
    if title_hit or not ticket.description:
        return _shorten(ticket.title)
    return _shorten(" ".join(ticket.description.split()[:SNIPPET_WORDS]))


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SNIPPET_MAX_CHARS:
        return text
    return text[: SNIPPET_MAX_CHARS - 1].rstrip() + "…"
