"""PostgreSQL: ``ticket_search.document`` (a tsvector per part of a live ticket, kept by
triggers) matched through its GIN index, the parts put together and ranked per ticket, the
newest tickets read in ranges of numbers sized from the planner's estimate, or newest first
part by part for a common query (see core.search)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    column,
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

from core.access import Actor
from core.enums import Role
from core.models import Reply, Ticket
from core.search.query import Terms
from core.search.ranking import (
    DESCRIPTION_WEIGHT,
    REPLY_WEIGHT,
    TITLE_WEIGHT,
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
# A word the estimate puts in at least this share of the parts is read differently: the
# newest parts one after the other (the primary key, backwards), each tested, until enough
# tickets match. For a common word that reads a few thousand small rows; through the GIN index
# it would read the word's whole posting list, however old, on every search.
STREAM_SHARE = 0.02
# PostgreSQL: every statement of a search; past it the query is refused as too broad.
SEARCH_TIMEOUT_MS = 2000

_ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
_HEADLINE_OPTIONS: ColumnClause[Any] = literal_column(
    '\'MaxWords=18, MinWords=8, ShortWord=2, StartSel="", StopSel=""\''
)
_TICKET_VECTOR: ColumnClause[Any] = literal_column("tickets.search_vector")
_REPLY_VECTOR: ColumnClause[Any] = literal_column("replies.search_vector")
_TITLE_ONLY: ColumnClause[Any] = literal_column("'{a}'::\"char\"[]")
_TICKET_ONLY: ColumnClause[Any] = literal_column("'{a,b}'::\"char\"[]")
_Text = QueryableAttribute[Any] | ColumnElement[Any]


class _TsVector(UserDefinedType[Any]):
    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "tsvector"


# PostgreSQL's search parts (migration 0010), written by triggers: one row per live ticket
# (part 0: title A, description B and its first public, undeleted replies D) and one per later
# public, undeleted reply of it (part: the reply's id; weight D). `overflow`: the row belongs
# to a ticket that has such later replies (set on all its rows).
_SEARCH = table(
    "ticket_search",
    column("number", BigInteger),
    column("part", BigInteger),
    column("customer_id", Integer),
    column("company_id", Integer),
    column("overflow", Boolean),
    column("document", _TsVector()),
)


def _search_scope(actor: Actor) -> ColumnElement[bool]:
    """Actor.visible_tickets() on ticket_search, which mirrors the tickets' customer and
    company and holds live tickets only (the triggers delete a deleted ticket's rows)."""
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
        # All tokens in one part: a ticket without later replies matches through its part 0
        # alone (one GIN scan answers it); also the planner's estimate of how common it is.
        self.match_query = self._tsquery("search_all", terms.pg_tsquery("&"))
        # Any one token: the parts that may complete a match; and the part of a hit to show.
        self.any_query = self._tsquery("search_any", terms.pg_tsquery("|"))
        self.token_queries = [
            self._plain_tsquery(f"search_token_{index}", terms.pg_token(index))
            for index in range(len(terms.tokens))
        ]

    def _tsquery(self, name: str, tokens: str) -> ColumnElement[Any]:
        query = self._plain_tsquery(name, tokens)
        if self.terms.has_compound_words:
            query = query.op("||")(self._whole_text())
        return query

    def _plain_tsquery(self, name: str, tokens: str) -> ColumnElement[Any]:
        return func.to_tsquery(_ENGLISH, bindparam(name, tokens, type_=Text))

    def _whole_text(self) -> ColumnElement[Any]:
        # PostgreSQL's parser keeps 'a@b.com' or 'host.example.org' whole, so these are found
        # by the text as its parser reads it. plainto_tsquery reads no operators.
        raw = bindparam("search_text", self.terms.text, type_=Text)
        return func.plainto_tsquery(_ENGLISH, raw)

    def _rank(self) -> ColumnElement[Any]:
        """A ticket's rank from its matching parts (a GROUP BY number): for each token, the
        weight of the best part holding it, added up; NULL when a token is in none of them.
        A stop word (which the engine drops) counts as found, weighing nothing. Part 0 holds
        the title (A), the description (B) and the first replies (D); other parts, replies."""
        document = _SEARCH.c.document
        head = _SEARCH.c.part == 0

        def weight(
            found: ColumnElement[bool],
            in_title: ColumnElement[bool],
            in_ticket: ColumnElement[bool],
        ) -> Any:
            return func.max(
                case(
                    (not_(found), null()),
                    (not_(head), REPLY_WEIGHT),
                    (in_title, TITLE_WEIGHT),
                    (in_ticket, DESCRIPTION_WEIGHT),
                    else_=REPLY_WEIGHT,
                )
            )

        total: ColumnElement[Any] | None = None
        for index, token in enumerate(self.token_queries):
            title = self._plain_tsquery(f"search_title_{index}", self.terms.pg_token(index, "A"))
            ticket = self._plain_tsquery(f"search_ticket_{index}", self.terms.pg_token(index, "AB"))
            best = case(
                (func.numnode(token) == 0, 0),
                else_=weight(
                    document.bool_op("@@")(token),
                    document.bool_op("@@")(title),
                    document.bool_op("@@")(ticket),
                ),
            )
            total = best if total is None else total + best
        assert total is not None  # a search has at least one token
        if not self.terms.has_compound_words:
            return total
        whole = self._whole_text()
        title_part = func.ts_filter(document, _TITLE_ONLY)
        ticket_part = func.ts_filter(document, _TICKET_ONLY)
        whole_weight = weight(
            document.bool_op("@@")(whole),
            title_part.bool_op("@@")(whole),
            ticket_part.bool_op("@@")(whole),
        )
        return func.greatest(total, whole_weight * len(self.terms.tokens))

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[Match], int]:
        # Customers and corporate staff see a narrow share of the desk: reading it whole is
        # cheap (through the customer and company indexes), no estimate needed.
        whole_desk = actor.role.is_global_staff
        top, estimate, parts = (
            await session.execute(
                select(
                    select(func.max(_SEARCH.c.number)).scalar_subquery(),
                    func.ticket_search_estimate(self.match_query) if whole_desk else null(),
                    literal_column(
                        "(SELECT reltuples FROM pg_class WHERE oid = 'ticket_search'::regclass)"
                    ),
                    # For the rest of this transaction: the safety net; a commit that does
                    # not wait for the disk; plans made for each query's own words (a generic
                    # plan cannot tell a rare word from a common one); and page costs for a
                    # table that lives in memory, so that the planner weighs reading a few
                    # thousand rows against scanning a long range of the number index as the
                    # clock does.
                    func.set_config("statement_timeout", f"{SEARCH_TIMEOUT_MS}ms", True),
                    # A search writes only its rate-limit count: its commit need not wait for
                    # the disk (a crash could forget the last fraction of a second of counts).
                    func.set_config("synchronous_commit", "off", True),
                    func.set_config("plan_cache_mode", "force_custom_plan", True),
                    func.set_config("random_page_cost", "1.1", True),
                )
            )
        ).one()[:3]
        if top is None:
            return [], 0
        scope = _search_scope(actor)
        common = estimate is not None and estimate > newest * SLICE_MARGIN
        if common and parts and estimate >= float(parts) * STREAM_SHARE:
            rows = (await session.execute(self._best_of_newest(scope, newest, best))).all()
            found = int(rows[0].found) if rows else 0
            return [Match(int(row.number), float(row.rank)) for row in rows], found
        candidates: list[Match] = []
        found = 0
        upper = int(top)
        size = upper  # everything, unless the estimate says the newest matches are near
        if estimate is not None and common:
            size = math.ceil(newest * SLICE_MARGIN * upper / estimate)
        while True:
            lower: int | None = upper - size if upper - size > 0 else None
            wanted = newest - found  # matches still to rank; one more says there are more
            if wanted == 0:
                more = await session.scalar(
                    select(true())
                    .select_from(self._matches(scope, upper, lower).subquery())
                    .limit(1)
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
                size = size * SLICE_GROWTH if common else lower  # else everything older
            else:
                density = found / (top - lower)
                size = math.ceil((newest - found) / density * SLICE_MARGIN)
            upper = lower

    def _matches(
        self,
        scope: ColumnElement[bool],
        upper: int | None,
        lower: int | None,
        *,
        indexed: bool = True,
    ) -> Select[Any]:
        """The matching tickets the actor may see numbered in (lower, upper], each with its
        rank. A ticket whose replies all fit in its part 0 matches when that part holds every
        token (the GIN index answers it as one AND); the parts of the few tickets with later
        replies (`overflow`) that hold any token are put together per ticket. `indexed`:
        found through the GIN indexes (else each part is tested in turn)."""
        document = _SEARCH.c.document
        # Each side is answered by its own partial GIN index (migration 0010).
        relevant: ColumnElement[bool] = (
            not_(_SEARCH.c.overflow) & document.bool_op("@@")(self.match_query)
        ) | (_SEARCH.c.overflow & document.bool_op("@@")(self.any_query))
        if not indexed:
            # The same test in a form no index answers, so that the planner reads the parts
            # in the order of the primary key and stops when enough tickets match.
            relevant = case((relevant, true()), else_=false())
        conditions: list[ColumnElement[bool]] = [relevant, scope]
        if upper is not None:
            conditions.append(_SEARCH.c.number <= upper)
        if lower is not None:
            conditions.append(_SEARCH.c.number > lower)
        rank = self._rank()
        return (
            select(_SEARCH.c.number, rank.label("rank"))
            .where(*conditions)
            .group_by(_SEARCH.c.number)
            .having(rank.is_not(None))
        )

    def _best_of_slice(
        self, scope: ColumnElement[bool], upper: int, lower: int | None, wanted: int, best: int
    ) -> Select[Any]:
        """The slice's `wanted` newest matches, ranked, its `best` best with the number of
        matches (counted up to `wanted` + 1)."""
        # OFFSET 0 keeps the planner from walking the number index backwards and testing every
        # part until enough match: the GIN index is faster for all but common words, and for
        # those _best_of_newest asks for that walk itself.
        matches = self._matches(scope, upper, lower).offset(0).subquery("matches")
        newest = (
            select(matches.c.number, matches.c.rank)
            .order_by(matches.c.number.desc())
            .limit(wanted + 1)
            .subquery("newest")
        )
        return best_of(newest, newest.c.rank, wanted, best)

    def _best_of_newest(self, scope: ColumnElement[bool], wanted: int, best: int) -> Select[Any]:
        """The `wanted` newest matches of a common query, read newest first (parts in the
        order of the primary key, each tested) until one more than `wanted` is found."""
        matches = self._matches(scope, None, None, indexed=False)
        newest = matches.order_by(_SEARCH.c.number.desc()).limit(wanted + 1).subquery("newest")
        return best_of(newest, newest.c.rank, wanted, best)

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
