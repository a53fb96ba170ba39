"""`search_tickets`: the query checked, the search counted against the actor's rate limit,
the engine of the database chosen, the newest matches ranked and paged, and a search stopped
by the statement timeout refused as too broad."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit
from core.access import Actor, actor_of, load_actor
from core.context import Core
from core.errors import ValidationFailed
from core.results import Page, TicketView
from core.search.postgres import PostgresSearch
from core.search.query import Terms, parse_query
from core.search.ranking import SearchEngine
from core.search.sqlite import SqliteSearch
from core.validation import PAGE_SIZE_MAX, positive_int

log = logging.getLogger("core.search")

# Only the newest this many matches are ranked and paged through; past it, the page is capped.
# A common word's search costs more the larger it is: at a million tickets on two shared cores
# the bench's p95 was 16-18 ms with 500 and 18 ms with 1,000 (load 1.1), 19 and 23 ms (load 2).
RANKED_LIMIT = 500
TOO_BROAD = "This search matches too many tickets to finish quickly. Add a word to narrow it down."
QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by statement_timeout


@dataclass(frozen=True)
class SearchHit:
    """One search result: the ticket, its rank (higher is better) and a short plain-text
    excerpt of the description, public reply or title that matched."""

    ticket: TicketView
    rank: float
    snippet: str


async def search_tickets(
    core: Core, *, actor_id: int, query: str, page: int = 1, page_size: int = 20
) -> Page[SearchHit]:
    """Tickets the actor may see whose title, description and public replies hold every word
    of `query`: the newest RANKED_LIMIT such tickets, best match first, newest first among
    equals.

    `total` counts the hits there are to page through. When more tickets match than
    RANKED_LIMIT, only the newest RANKED_LIMIT are ranked and paged, `total` is RANKED_LIMIT
    and `capped` is set: show "500+" and suggest another word, never a made-up count.

    Visibility is part of the SQL (customers: their own tickets; corporate staff: their
    companies'; deleted tickets never). Internal notes never make a ticket match and never
    appear in a snippet, for staff as well as customers: search results are shown in places a
    customer may read, so the search only knows what a customer could be told. Staff find notes
    by opening the ticket. A query without any letter or digit (say '%%%') finds nothing.
    Each call counts against the actor's 'search' rate limit. One transaction; on PostgreSQL a
    search still running after SEARCH_TIMEOUT_MS is stopped and refused as too broad
    (VALIDATION on `query`), and counted all the same.
    """
    terms = parse_query(query)
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=PAGE_SIZE_MAX)
    try:
        async with core.db.transaction() as session:
            if not terms.tokens:
                actor = await load_actor(session, actor_id)
                await _count_search(core, session, actor.id)
                return Page.of([], total=0, page=page, page_size=page_size)
            engine = engine_for(core.db.dialect, terms)
            # The actor's row and the rate-limit count come with the search's first statement
            # (one round trip on PostgreSQL); the checks are the same as load_actor's and
            # ratelimit.consume's, on that row and that count.
            now = core.clock.now()
            counting = ratelimit.count_values(
                actor_id=actor_id,
                bucket="search",
                now=now,
                window_seconds=core.settings.search_window_seconds,
            )
            user, count = await engine.start(session, actor_id, counting)
            actor = await actor_of(session, actor_id, user)
            assert count is not None  # counted for every user that may act
            ratelimit.check(
                count,
                limit=core.settings.search_limit,
                window_seconds=core.settings.search_window_seconds,
                now=now,
                what="search",
            )
            return await _search(session, engine, actor, page=page, page_size=page_size)
    except exc.DBAPIError as error:
        if _sqlstate(error) != QUERY_CANCELED:
            raise
    # The statement timeout stopped it; that transaction is gone, the attempt still counts.
    log.warning("search too broad", extra={"actor_id": actor_id, "tokens": len(terms.tokens)})
    async with core.db.transaction() as session:
        await _count_search(core, session, actor_id)
    raise ValidationFailed(TOO_BROAD, field="query")


async def _count_search(core: Core, session: AsyncSession, actor_id: int) -> None:
    await ratelimit.consume(
        session,
        actor_id=actor_id,
        bucket="search",
        limit=core.settings.search_limit,
        window_seconds=core.settings.search_window_seconds,
        now=core.clock.now(),
        what="search",
    )


def _sqlstate(error: exc.DBAPIError) -> str | None:
    state = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return state if isinstance(state, str) else None


async def _search(
    session: AsyncSession, engine: SearchEngine, actor: Actor, *, page: int, page_size: int
) -> Page[SearchHit]:
    start = (page - 1) * page_size
    # Past the ranked hits there is nothing to show, but the total is still wanted.
    wanted = start + page_size if start < RANKED_LIMIT else 1
    best, total = await engine.rank_newest(
        session, actor, newest=RANKED_LIMIT, best=min(wanted, RANKED_LIMIT)
    )
    capped = total > RANKED_LIMIT
    total = min(total, RANKED_LIMIT)
    chosen = best[start : start + page_size]
    loaded = await engine.load(session, actor, [match.number for match in chosen])
    log.info("tickets searched", extra={"actor_id": actor.id, "total": total, "capped": capped})
    return Page.of(
        [
            SearchHit(
                ticket=loaded[match.number][0], rank=match.rank, snippet=loaded[match.number][1]
            )
            for match in chosen
            if match.number in loaded  # visibility is checked again on the tickets themselves
        ],
        total=total,
        page=page,
        page_size=page_size,
        capped=capped,
    )


def engine_for(dialect: str, terms: Terms) -> SearchEngine:
    """The full-text engine of the database: tsvector on PostgreSQL, FTS5 elsewhere (SQLite)."""
    return PostgresSearch(terms) if dialect == "postgresql" else SqliteSearch(terms)
