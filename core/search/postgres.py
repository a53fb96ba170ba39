"""PostgreSQL: ``ticket_search.document`` (a tsvector per live ticket, kept by triggers)
matched through its GIN index, ranked with ``ts_rank``, the newest tickets read in ranges of
numbers sized from the planner's estimate (see core.search)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    column,
    false,
    func,
    literal_column,
    null,
    select,
    table,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import UserDefinedType

from core.access import Actor
from core.enums import Role
from core.models import Reply, Ticket
from core.search.query import Terms
from core.search.ranking import (
    Match,
    SearchEngine,
    best_first,
    best_of,
    choose_snippet,
    public_reply,
)

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

_ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
_HEADLINE_OPTIONS: ColumnClause[Any] = literal_column(
    '\'MaxWords=18, MinWords=8, ShortWord=2, StartSel="", StopSel=""\''
)
_TICKET_VECTOR: ColumnClause[Any] = literal_column("tickets.search_vector")
_REPLY_VECTOR: ColumnClause[Any] = literal_column("replies.search_vector")
_Text = QueryableAttribute[Any] | ColumnElement[Any]


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


def _search_scope(actor: Actor) -> ColumnElement[bool]:
    """Actor.visible_tickets() on ticket_search, which mirrors the tickets' customer and
    company and holds live tickets only (the triggers delete a deleted ticket's row)."""
    if actor.role.is_global_staff:
        return true()
    if actor.role is Role.CORPORATE:
        if not actor.company_ids:
            return false()
        return _SEARCH.c.company_id.in_(sorted(actor.company_ids))
    own = _SEARCH.c.customer_id == actor.user.id
    company = actor.user.company_id
    if company is None:
        return own
    # Tickets raised in the company's customer channels (Ticket.shared_with_company).
    shared = select(Ticket.number).where(
        Ticket.shared_with_company.is_(True), Ticket.company_id == company
    )
    return own | ((_SEARCH.c.company_id == company) & _SEARCH.c.number.in_(shared))


class PostgresSearch(SearchEngine):
    def __init__(self, terms: Terms) -> None:
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
    ) -> tuple[list[Match], int]:
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
        candidates: list[Match] = []
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
                return best_first(candidates)[:best], found + (1 if more else 0)
            rows = (
                await session.execute(self._best_of_slice(scope, upper, lower, wanted, best))
            ).all()
            in_slice = int(rows[0].found) if rows else 0
            candidates += (Match(int(row.number), float(row.rank)) for row in rows)
            found += in_slice
            if in_slice > wanted or lower is None:
                return best_first(candidates)[:best], found
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
        return best_of(newest, rank, wanted, best)

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
                *public_reply(),
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
                choose_snippet(
                    row.Ticket,
                    description=row.description,
                    reply=row.reply,
                    title_hit=bool(row.title_hit),
                ),
            )
            for row in rows
        }
