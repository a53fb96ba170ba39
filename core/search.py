"""Full-text ticket search: title, description and public replies, ranked, within visibility.

What a user types is data, never syntax. The query is cut into word tokens ([^\\W_]+: letters
and digits; underscores, quotes, ``%``, parentheses and every other character separate words)
and each token is passed to the full-text engine as a quoted literal, in a bound parameter. So
``AND``, ``OR``, ``NOT``, ``NEAR``, ``*``, ``^``, ``:`` or ``-`` are plain words or separators,
and ``%`` or ``_`` are never wildcards. Every token must occur somewhere in the ticket's
searchable text: its title, its description and its public, undeleted replies, taken together
as one document; the last token also matches as a prefix when it has 3 or more characters, so
a word still being typed finds its completions.

Which hits, in which order: the newest ``RANKED_LIMIT`` (500) matching tickets the actor may
see are ranked, best first (newest first among equals), and paged through. A query that
matches more tickets than that says so (``Page.capped``; ``total`` is then ``RANKED_LIMIT``)
rather than counting them all: a desk's recent conversations are what a search is for, 25
pages of 20 is more than anyone reads, and counting or ranking a fifth of a million tickets
took more than a second. One more word narrows it.

PostgreSQL matches ``ticket_search.document`` (one row per live ticket, kept in step by
triggers: title A, description B, public replies D) through its GIN index and ranks with
``ts_rank``. To find the newest matches without visiting every older one, a staff search reads
a range of the newest ticket numbers: as wide as the planner's estimate of the matches
(``ticket_search_estimate``) says holds ``RANKED_LIMIT`` of them, with a margin. Should it
hold fewer, the next range is sized from the density of matches actually seen, and a query too
rare to measure takes everything older at once (one the estimate calls common, but absent from
the newest tickets, takes ranges growing eightfold instead). Customers and corporate staff
see a narrow share of the desk and read it whole. It also accepts the text as
``plainto_tsquery`` sees it, so that e-mail addresses and host names, which its parser keeps
whole, are found. Every
statement of a search runs under a ``SEARCH_TIMEOUT_MS`` statement timeout: a query that still
takes longer is refused as too broad (VALIDATION), and the attempt still counts against the
rate limit.

SQLite matches the FTS5 table ``ticket_search_fts`` (title, description, replies) and ranks
with ``bm25``, a title hit weighing most and a reply hit least. It is there for correctness
(tests, a one-machine desk), not for a million tickets.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Select,
    Subquery,
    Text,
    bindparam,
    case,
    column,
    exc,
    false,
    func,
    literal_column,
    not_,
    null,
    select,
    table,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import UserDefinedType

from core import ratelimit, repository
from core.access import Actor, load_actor
from core.context import Core
from core.enums import Role
from core.errors import ValidationFailed
from core.models import Reply, Ticket
from core.validation import PAGE_SIZE_MAX, SEARCH_MAX, SEARCH_MIN, positive_int, single_line
from core.views import Page, TicketView

log = logging.getLogger("core.search")

# Letters and digits only: '_' is a word character for the regex module but a separator for both
# full-text parsers, so it must separate here too or 'broken_disk' would never match.
_TOKEN = re.compile(r"[^\W_]+")
PREFIX_MIN = 3
SNIPPET_WORDS = 18
SNIPPET_MAX_CHARS = 200

# Only the newest this many matches are ranked and paged through; past it, the page is capped.
# A common word's search costs more the larger it is: at a million tickets on two shared cores
# the bench's p95 was 16-18 ms with 500 and 18 ms with 1,000 (load 1.1), 19 and 23 ms (load 2).
RANKED_LIMIT = 500
# PostgreSQL reads the newest tickets in ranges of numbers ("slices"), each sized to hold the
# matches still wanted times this margin, from the planner's estimate and then from the
# density of matches seen so far.
SLICE_MARGIN = 1.25
# Fewer matches than this in the slices read so far: too few to size the next slice from, and
# few enough that reading everything older costs little...
MIN_SAMPLE = 10
# ... unless the planner's estimate says the words are common: then they are common further
# back (a word of old tickets that the newest ones lack), and reading everything older would
# rank a large share of the desk. The next slice is this many times wider instead.
SLICE_GROWTH = 8
# PostgreSQL: every statement of a search; past it the query is refused as too broad.
SEARCH_TIMEOUT_MS = 2000
TOO_BROAD = "This search matches too many tickets to finish quickly. Add a word to narrow it down."
QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by statement_timeout

_ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
_HEADLINE_OPTIONS: ColumnClause[Any] = literal_column(
    '\'MaxWords=18, MinWords=8, ShortWord=2, StartSel="", StopSel=""\''
)
_TICKET_VECTOR: ColumnClause[Any] = literal_column("tickets.search_vector")
_REPLY_VECTOR: ColumnClause[Any] = literal_column("replies.search_vector")
_Text = QueryableAttribute[Any] | ColumnElement[Any]
_TICKETS_FTS = table("tickets_fts", column("rowid"))
_REPLIES_FTS = table("replies_fts", column("rowid"))
_SEARCH_FTS = table("ticket_search_fts", column("rowid"))


class _TsVector(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "tsvector"


# PostgreSQL's search documents (migration 0004): one row per live ticket, written by triggers.
_SEARCH = table(
    "ticket_search",
    column("number", BigInteger),
    column("customer_id", Integer),
    column("company_id", Integer),
    column("document", _TsVector()),
)


@dataclass(frozen=True)
class SearchHit:
    """One search result: the ticket, its rank (higher is better) and a short plain-text
    excerpt of the description, public reply or title that matched."""

    ticket: TicketView
    rank: float
    snippet: str


@dataclass(frozen=True)
class _Match:
    number: int  # the ticket's number
    rank: float


@dataclass(frozen=True)
class _Terms:
    text: str  # the trimmed query, as typed
    tokens: tuple[str, ...]  # lower-cased word tokens, first occurrence order, no duplicates

    @property
    def has_compound_words(self) -> bool:
        """Whether a run of non-blank characters holds several tokens ('a@b.com', 'x-y')."""
        return any(len(_TOKEN.findall(chunk)) > 1 for chunk in self.text.split())

    def pg_tsquery(self, joiner: str) -> str:
        """to_tsquery input: each token a quoted literal, the last one a prefix if long."""
        parts = [f"'{token}'" for token in self.tokens]
        if len(self.tokens[-1]) >= PREFIX_MIN:
            parts[-1] += ":*"
        return f" {joiner} ".join(parts)

    def fts5_query(self, joiner: str, column_name: str | None = None) -> str:
        """FTS5 MATCH input: each token an FTS5 string, the last one a prefix if long."""
        parts = ['"' + token.replace('"', '""') + '"' for token in self.tokens]
        if len(self.tokens[-1]) >= PREFIX_MIN:
            parts[-1] += "*"
        expression = f" {joiner} ".join(parts)
        return f"{column_name} : ({expression})" if column_name else expression


def parse_query(query: object) -> _Terms:
    """Trim and check the query (3 to 200 characters) and extract its word tokens."""
    text = single_line(query, field="query", max_length=SEARCH_MAX)
    if len(text) < SEARCH_MIN:
        raise ValidationFailed(f"Search for at least {SEARCH_MIN} characters.", field="query")
    tokens = tuple(dict.fromkeys(token.lower() for token in _TOKEN.findall(text)))
    return _Terms(text=text, tokens=tokens)


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
            actor = await load_actor(session, actor_id)
            await _count_search(core, session, actor.id)
            if not terms.tokens:
                return Page.of([], total=0, page=page, page_size=page_size)
            engine: _Engine = (
                _Postgres(terms) if core.db.dialect == "postgresql" else _Sqlite(terms)
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
    session: AsyncSession, engine: _Engine, actor: Actor, *, page: int, page_size: int
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
    views = {
        view.number: view
        for view in await repository.ticket_views(session, [row for row, _ in loaded.values()])
    }
    log.info("tickets searched", extra={"actor_id": actor.id, "total": total, "capped": capped})
    return Page.of(
        [
            SearchHit(ticket=views[match.number], rank=match.rank, snippet=loaded[match.number][1])
            for match in chosen
            if match.number in loaded  # visibility is checked again on the tickets themselves
        ],
        total=total,
        page=page,
        page_size=page_size,
        capped=capped,
    )


# --------------------------------------------------------------------------------------------
# matching and ranking


class _Engine:
    """The dialect-specific parts: which tickets match (with a rank) and their snippets."""

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[_Match], int]:
        """Among the `newest` most recent matching tickets the actor may see (highest numbers),
        the `best` best ranked, best first (newest first among equals); and how many tickets
        match, counted up to `newest` + 1 only."""
        raise NotImplementedError

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[Ticket, str]]:
        """The page's tickets (those the actor may see), each with its snippet, by number."""
        raise NotImplementedError


def _public_reply() -> list[ColumnElement[bool]]:
    return [not_(Reply.is_internal), Reply.deleted_at.is_(None)]


def _best_of(newest: Subquery, rank: ColumnElement[float], keep: int, best: int) -> Select[Any]:
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


def _best_first(matches: Sequence[_Match]) -> list[_Match]:
    return sorted(matches, key=lambda match: (match.rank, match.number), reverse=True)


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _search_scope(actor: Actor) -> ColumnElement[bool]:
    """Actor.visible_tickets() on ticket_search, which mirrors the tickets' customer and
    company and holds live tickets only (the triggers delete a deleted ticket's row)."""
    if actor.role.is_global_staff:
        return true()
    if actor.role is Role.CORPORATE:
        if not actor.company_ids:
            return false()
        return _SEARCH.c.company_id.in_(sorted(actor.company_ids))
    return _SEARCH.c.customer_id == actor.user.id


class _Postgres(_Engine):
    def __init__(self, terms: _Terms) -> None:
        self.terms = terms
        self.match_query = self._tsquery("search_all", terms.pg_tsquery("&"))
        # Any one token: to pick the part of a hit that shows it.
        self.any_query = self._tsquery("search_any", terms.pg_tsquery("|"))

    def _tsquery(self, name: str, tokens: str) -> ColumnElement[Any]:
        query: ColumnElement[Any] = func.to_tsquery(_ENGLISH, bindparam(name, tokens, type_=Text))
        if self.terms.has_compound_words:
            # PostgreSQL's parser keeps 'a@b.com' or 'host.example.org' whole, so these are
            # found by the text as its parser reads it. plainto_tsquery reads no operators.
            raw = bindparam("search_text", self.terms.text, type_=Text)
            query = query.op("||")(func.plainto_tsquery(_ENGLISH, raw))
        return query

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[_Match], int]:
        # Customers and corporate staff see a narrow share of the desk: reading it whole is
        # cheap (through the customer and company indexes), no estimate needed.
        whole_desk = actor.role.is_global_staff
        top, estimate = (
            await session.execute(
                select(
                    select(func.max(_SEARCH.c.number)).scalar_subquery(),
                    func.ticket_search_estimate(self.match_query) if whole_desk else null(),
                    # For the rest of this transaction: the safety net; plans made for each
                    # query's own words (a generic plan cannot tell a rare word from a common
                    # one); and page costs for a table that lives in memory, so that the
                    # planner weighs reading a few thousand rows against scanning a long range
                    # of the number index as the clock does.
                    func.set_config("statement_timeout", f"{SEARCH_TIMEOUT_MS}ms", True),
                    func.set_config("plan_cache_mode", "force_custom_plan", True),
                    func.set_config("random_page_cost", "1.1", True),
                )
            )
        ).one()[:2]
        if top is None:
            return [], 0
        scope = _search_scope(actor)
        candidates: list[_Match] = []
        found = 0
        upper = int(top)
        size = upper  # everything, unless the estimate says the newest matches are near
        if estimate is not None and estimate > newest * SLICE_MARGIN:
            size = math.ceil(newest * SLICE_MARGIN * upper / estimate)
        while True:
            lower: int | None = upper - size if upper - size > 0 else None
            wanted = newest - found  # matches still to rank; one more says there are more
            if wanted == 0:
                more = await session.scalar(
                    select(true()).where(*self._slice(scope, upper, lower)).limit(1)
                )
                return _best_first(candidates)[:best], found + (1 if more else 0)
            rows = (
                await session.execute(self._best_of_slice(scope, upper, lower, wanted, best))
            ).all()
            in_slice = int(rows[0].found) if rows else 0
            candidates += (_Match(int(row.number), float(row.rank)) for row in rows)
            found += in_slice
            if in_slice > wanted or lower is None:
                return _best_first(candidates)[:best], found
            if found < MIN_SAMPLE:
                common = estimate is not None and estimate > newest * SLICE_MARGIN
                size = size * SLICE_GROWTH if common else lower  # else everything older
            else:
                density = found / (top - lower)
                size = math.ceil((newest - found) / density * SLICE_MARGIN)
            upper = lower

    def _slice(
        self, scope: ColumnElement[bool], upper: int, lower: int | None
    ) -> list[ColumnElement[bool]]:
        """Matches the actor may see numbered in (lower, upper]."""
        conditions = [
            _SEARCH.c.document.bool_op("@@")(self.match_query),
            scope,
            _SEARCH.c.number <= upper,
        ]
        if lower is not None:
            conditions.append(_SEARCH.c.number > lower)
        return conditions

    def _best_of_slice(
        self, scope: ColumnElement[bool], upper: int, lower: int | None, wanted: int, best: int
    ) -> Select[Any]:
        """The slice's `wanted` newest matches, ranked (only those: ts_rank reads no other
        document), its `best` best with the number of matches (counted up to `wanted` + 1)."""
        # OFFSET 0 keeps the planner from walking the number index backwards and testing every
        # row until enough match: right for a word in every other ticket, but it guesses that
        # path cheap for one in every fifty too, where the GIN index is several times faster.
        matches = select(_SEARCH.c.number, _SEARCH.c.document).where(
            *self._slice(scope, upper, lower)
        )
        fenced = matches.offset(0).subquery("matches")
        newest = (
            select(fenced.c.number, fenced.c.document)
            .order_by(fenced.c.number.desc())
            .limit(wanted + 1)
            .subquery("newest")
        )
        rank = func.ts_rank(newest.c.document, self.match_query, type_=Float)
        return _best_of(newest, rank, wanted, best)

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[Ticket, str]]:
        if not numbers:
            return {}

        def hits(vector: ColumnElement[Any], weight: str) -> ColumnElement[bool]:
            # The stored vector's title (A) or description (B) lexemes: no text is re-parsed.
            part = func.ts_filter(vector, literal_column(f"'{{{weight}}}'::\"char\"[]"))
            return part.bool_op("@@")(self.any_query)

        def headline(text: _Text) -> ColumnElement[str]:
            return func.ts_headline(_ENGLISH, text, self.any_query, _HEADLINE_OPTIONS, type_=Text)

        description_hit = hits(_TICKET_VECTOR, "b")
        # The newest public reply that shows a word, if any: each page ticket's few replies are
        # tested one by one, which is cheaper than a GIN scan of every reply holding a word.
        reply = (
            select(headline(Reply.body))
            .where(
                Reply.ticket_id == Ticket.id,
                *_public_reply(),
                _REPLY_VECTOR.bool_op("@@")(self.any_query),
            )
            .order_by(Reply.created_at.desc(), Reply.id.desc())
            .limit(1)
            .correlate(Ticket)
            .scalar_subquery()
        )
        rows = (
            await session.execute(
                select(
                    Ticket,
                    hits(_TICKET_VECTOR, "a").label("title_hit"),
                    case((description_hit, headline(Ticket.description))).label("description"),
                    reply.label("reply"),
                ).where(Ticket.number.in_(numbers), actor.visible_tickets())
            )
        ).all()
        return {
            row.Ticket.number: (
                row.Ticket,
                _choose_snippet(
                    row.Ticket,
                    description=row.description,
                    reply=row.reply,
                    title_hit=bool(row.title_hit),
                ),
            )
            for row in rows
        }


# --------------------------------------------------------------------------------------------
# SQLite


class _Sqlite(_Engine):
    def __init__(self, terms: _Terms) -> None:
        self.terms = terms

    def _match(self, fts: str, query: str, name: str) -> ColumnElement[bool]:
        return literal_column(fts).bool_op("MATCH")(bindparam(name, query, type_=Text))

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[_Match], int]:
        # bm25 is lower for better matches; a title hit weighs most, a reply hit least.
        rank = -func.bm25(
            literal_column("ticket_search_fts"),
            literal_column("4.0"),
            literal_column("1.0"),
            literal_column("0.25"),
        )
        matches = (
            select(Ticket.number, rank.label("rank"))
            .select_from(_SEARCH_FTS)
            .join(Ticket, Ticket.number == _SEARCH_FTS.c.rowid)
            .where(
                self._match("ticket_search_fts", self.terms.fts5_query("AND"), "search_all"),
                actor.visible_tickets(),
            )
            .order_by(Ticket.number.desc())
            .limit(newest + 1)
            .subquery("newest")
        )
        rows = (await session.execute(_best_of(matches, matches.c.rank, newest, best))).all()
        found = int(rows[0].found) if rows else 0
        return [_Match(int(row.number), float(row.rank)) for row in rows], found

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[Ticket, str]]:
        if not numbers:
            return {}
        tickets = list(
            (
                await session.scalars(
                    select(Ticket).where(Ticket.number.in_(numbers), actor.visible_tickets())
                )
            ).all()
        )
        numbers = [ticket.number for ticket in tickets]
        in_page = _TICKETS_FTS.c.rowid.in_(numbers)
        description_snippet = func.snippet(
            literal_column("tickets_fts"),
            literal_column("1"),
            literal_column("''"),
            literal_column("''"),
            literal_column("'…'"),
            literal_column(str(SNIPPET_WORDS)),
            type_=Text,
        )
        described = await session.execute(
            select(_TICKETS_FTS.c.rowid, description_snippet.label("text")).where(
                self._match(
                    "tickets_fts",
                    self.terms.fts5_query("OR", "description"),
                    "search_description",
                ),
                in_page,
            )
        )
        descriptions = {row.rowid: row.text for row in described}
        titled = await session.scalars(
            select(_TICKETS_FTS.c.rowid).where(
                self._match("tickets_fts", self.terms.fts5_query("OR", "title"), "search_title"),
                in_page,
            )
        )
        title_hits = set(titled)
        reply_snippet = func.snippet(
            literal_column("replies_fts"),
            literal_column("0"),
            literal_column("''"),
            literal_column("''"),
            literal_column("'…'"),
            literal_column(str(SNIPPET_WORDS)),
            type_=Text,
        )
        replied = await session.execute(
            select(Reply.ticket_id, reply_snippet.label("text"))
            .select_from(_REPLIES_FTS)
            .join(Reply, Reply.id == _REPLIES_FTS.c.rowid)
            .where(
                self._match("replies_fts", self.terms.fts5_query("OR"), "search_reply_any"),
                Reply.ticket_id.in_([ticket.id for ticket in tickets]),
                *_public_reply(),
            )
            .order_by(Reply.created_at.desc(), Reply.id.desc())
        )
        reply_snippets: dict[uuid.UUID, str] = {}
        for row in replied:
            reply_snippets.setdefault(row.ticket_id, row.text)
        return {
            ticket.number: (
                ticket,
                _choose_snippet(
                    ticket,
                    description=descriptions.get(ticket.number),
                    reply=reply_snippets.get(ticket.id),
                    title_hit=ticket.number in title_hits,
                ),
            )
            for ticket in tickets
        }


# --------------------------------------------------------------------------------------------
# snippets


def _choose_snippet(
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
