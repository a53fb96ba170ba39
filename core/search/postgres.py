"""PostgreSQL: ``ticket_search.document`` (a tsvector per part of a live ticket, kept by
triggers) matched through its GIN index, the parts put together and ranked per ticket, the
newest tickets read in ranges of numbers sized from the planner's estimate, or newest first
part by part for a common query (see core.search)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    ColumnElement,
    Executable,
    Integer,
    Select,
    Text,
    any_,
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
from sqlalchemy.orm import QueryableAttribute, aliased
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import UserDefinedType

from core import ratelimit
from core.access import Actor
from core.enums import Role
from core.models import Category, Reply, Ticket, User
from core.repository import view_of
from core.results import TicketView
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
from core.search.recent import INDEX_PREFIX

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
# Statements of queries of up to this many words are built once and kept (see _statement).
CACHED_TOKENS = 8
# PostgreSQL: every statement of a search; past it the query is refused as too broad.
SEARCH_TIMEOUT_MS = 2000

# The lower bound of the recent search index in place (core.search.recent), if any.
_RECENT_START = (
    f"(SELECT max(substr(c.relname, {len(INDEX_PREFIX) + 1})::bigint) "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE i.indrelid = 'ticket_search'::regclass AND i.indisvalid "
    f"AND c.relname LIKE '{INDEX_PREFIX.replace('_', chr(92) + '_')}%')"
)
# How many parts there are, as the last ANALYZE of ticket_search counted them.
_PARTS_ESTIMATE = "(SELECT reltuples FROM pg_class WHERE oid = 'ticket_search'::regclass)"

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


# Values of a search's statements that come from the actor: bound at execution (the statements
# are built once per shape of query and scope, see PostgresSearch._statement).
_SCOPE_CUSTOMER = "scope_customer"
_SCOPE_COMPANY = "scope_company"
_SCOPE_COMPANIES = "scope_companies"


def _search_scope(actor: Actor) -> tuple[str, dict[str, Any]]:
    """Actor.visible_tickets() on ticket_search, which mirrors the tickets' customer and
    company and holds live tickets only (the triggers delete a deleted ticket's rows): the
    kind of condition (see _scope_condition) and the values it binds."""
    if actor.role.is_global_staff:
        return "everyone", {}
    if actor.role is Role.CORPORATE:
        if not actor.company_ids:
            return "nobody", {}
        return "companies", {_SCOPE_COMPANIES: sorted(actor.company_ids)}
    if actor.user.company_id is None:
        return "own", {_SCOPE_CUSTOMER: actor.user.id}
    return "own and shared", {
        _SCOPE_CUSTOMER: actor.user.id,
        _SCOPE_COMPANY: actor.user.company_id,
    }


def _scope_condition(kind: str) -> ColumnElement[bool]:
    if kind == "everyone":
        return true()
    if kind == "nobody":
        return false()
    if kind == "companies":
        return _SEARCH.c.company_id.in_(bindparam(_SCOPE_COMPANIES, expanding=True))
    own = _SEARCH.c.customer_id == bindparam(_SCOPE_CUSTOMER, type_=Integer)
    if kind == "own":
        return own
    assert kind == "own and shared", kind
    company = bindparam(_SCOPE_COMPANY, type_=Integer)
    # Tickets raised in the company's customer channels (Ticket.shared_with_company).
    shared = select(Ticket.number).where(
        Ticket.shared_with_company.is_(True), Ticket.company_id == company
    )
    return own | ((_SEARCH.c.company_id == company) & _SEARCH.c.number.in_(shared))


def _visible_tickets(kind: str) -> ColumnElement[bool]:
    """Actor.visible_tickets() on the tickets, for a statement built once per kind of scope:
    the values _search_scope gives are bound at execution (the same names as _scope_condition
    binds). tests/core/test_search.py holds both to selecting the same tickets."""
    alive = Ticket.deleted_at.is_(None)
    if kind == "everyone":
        return alive
    if kind == "nobody":
        return false()
    if kind == "companies":
        return alive & Ticket.company_id.in_(bindparam(_SCOPE_COMPANIES, expanding=True))
    own = Ticket.customer_id == bindparam(_SCOPE_CUSTOMER, type_=Integer)
    if kind == "own":
        return alive & own
    assert kind == "own and shared", kind
    company = bindparam(_SCOPE_COMPANY, type_=Integer)
    return alive & (own | (Ticket.shared_with_company.is_(True) & (Ticket.company_id == company)))


# The page's ticket numbers (load), bound at execution.
_NUMBERS = bindparam("numbers", type_=ARRAY(BigInteger))

# The bounds and sizes of one range's statement, bound at execution.
_UPPER = bindparam("range_upper", type_=BigInteger)
_LOWER = bindparam("range_lower", type_=BigInteger)
_WANTED = bindparam("wanted", type_=Integer)  # matches still to rank
_WANTED_AND_ONE = bindparam("wanted_and_one", type_=Integer)  # one more says there are more
_BEST = bindparam("best", type_=Integer)
# The actor of the search (start) and the statement timeout of its transaction.
_ACTOR = bindparam("search_actor", type_=Integer)
_TIMEOUT = bindparam("timeout", type_=Text)


class PostgresSearch(SearchEngine):
    """A search's statements depend on its values only through their shape (how many tokens,
    whether some are compound words, the kind of scope, whether a range has a lower bound):
    each shape's statement is built once per process (_statement, _STATEMENTS) and every
    value is bound at execution. Building one cost about 1.4 ms of Python, per statement."""

    # (statement, token count, compound words, scope kind, lower bound) -> the statement
    _STATEMENTS: ClassVar[dict[tuple[Any, ...], Executable]] = {}

    def __init__(self, terms: Terms) -> None:
        self.terms = terms
        self.tokens = len(terms.tokens)
        self.compound = terms.has_compound_words
        # All tokens in one part: a ticket without later replies matches through its part 0
        # alone (one GIN scan answers it); also the planner's estimate of how common it is.
        self.match_query = self._tsquery("search_all")
        # Any one token: the parts that may complete a match; and the part of a hit to show.
        self.any_query = self._tsquery("search_any")
        self.token_queries = [
            self._plain_tsquery(f"search_token_{index}") for index in range(self.tokens)
        ]
        values: dict[str, Any] = {
            "search_all": terms.pg_tsquery("&"),
            "search_any": terms.pg_tsquery("|"),
            "search_text": terms.text,
        }
        for index in range(self.tokens):
            values[f"search_token_{index}"] = terms.pg_token(index)
            values[f"search_title_{index}"] = terms.pg_token(index, "A")
            values[f"search_ticket_{index}"] = terms.pg_token(index, "AB")
        self.values = values
        # (newest number, estimate, parts, recent index's bound): read by start, for rank_newest
        self.head: tuple[Any, ...] | None = None

    def _tsquery(self, name: str) -> ColumnElement[Any]:
        query = self._plain_tsquery(name)
        if self.compound:
            query = query.op("||")(self._whole_text())
        return query

    def _plain_tsquery(self, name: str) -> ColumnElement[Any]:
        return func.to_tsquery(_ENGLISH, bindparam(name, type_=Text))

    def _whole_text(self) -> ColumnElement[Any]:
        # PostgreSQL's parser keeps 'a@b.com' or 'host.example.org' whole, so these are found
        # by the text as its parser reads it. plainto_tsquery reads no operators.
        return func.plainto_tsquery(_ENGLISH, bindparam("search_text", type_=Text))

    def _statement(self, name: str, scope: str, lower: bool, build: Any, *args: Any) -> Executable:
        """The statement `name` of this shape, made by build(*args) the first time. Queries of
        more than CACHED_TOKENS words are built every time: the cache stays small (at most a
        few hundred statements), whatever anyone types."""
        if self.tokens > CACHED_TOKENS:
            built: Executable = build(*args)
            return built
        key = (name, self.tokens, self.compound, scope, lower)
        kept = self._STATEMENTS.get(key)
        if kept is None:
            kept = self._STATEMENTS[key] = build(*args)
        return kept

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
            title = self._plain_tsquery(f"search_title_{index}")
            ticket = self._plain_tsquery(f"search_ticket_{index}")
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
        if not self.compound:
            return total
        whole = self._whole_text()
        title_part = func.ts_filter(document, _TITLE_ONLY)
        ticket_part = func.ts_filter(document, _TICKET_ONLY)
        whole_weight = weight(
            document.bool_op("@@")(whole),
            title_part.bool_op("@@")(whole),
            ticket_part.bool_op("@@")(whole),
        )
        return func.greatest(total, whole_weight * self.tokens)

    async def start(
        self, session: AsyncSession, actor_id: int, counting: dict[str, Any]
    ) -> tuple[User | None, int | None]:
        """One round trip: the actor's row, the search counted, and the head of the search
        (see _start), kept for rank_newest."""
        statement = self._statement("start", "", False, self._start)
        timeout = f"{SEARCH_TIMEOUT_MS}ms"
        values = self.values | counting | {_ACTOR.key: actor_id, _TIMEOUT.key: timeout}
        row = (await session.execute(statement, values)).first()
        if row is None:
            return None, None
        user, count, *head = row
        self.head = tuple(head[:4])
        return user, count

    def _start(self) -> Select[Any]:
        """The actor's row with the rate-limit count of this search (counted for any user,
        checked by the caller, rolled back with the transaction when the user may not act)
        and the head of the search: the newest ticket's number, the planner's estimate of the
        matching parts (global staff only: the others read their share of the desk whole),
        how many parts there are, the recent index's lower bound; and this transaction's
        settings."""
        counted = ratelimit.counting("postgresql", known_users_only=True).cte("counted")
        whole_desk = User.role.in_([role.value for role in Role if role.is_global_staff])
        return select(
            User,
            select(counted.c.count).scalar_subquery(),
            # The newest ticket's number bounds the first range read.
            select(func.max(Ticket.number)).scalar_subquery(),
            case((whole_desk, func.ticket_search_estimate(self.match_query))),
            literal_column(_PARTS_ESTIMATE),
            literal_column(_RECENT_START),
            # For the rest of this transaction: the safety net; a commit that does not wait for
            # the disk; plans made for each query's own words (a generic plan cannot tell a rare
            # word from a common one); and page costs for a table that
            # lives in memory, so that the planner weighs reading a few thousand rows against
            # scanning a long range of the number index as the clock does.
            func.set_config("statement_timeout", _TIMEOUT, True),
            # A search writes only its rate-limit count: its commit need not wait for the disk
            # (a crash could forget the last fraction of a second of counts).
            func.set_config("synchronous_commit", "off", True),
            func.set_config("plan_cache_mode", "force_custom_plan", True),
            func.set_config("random_page_cost", "1.1", True),
        ).where(User.id == _ACTOR)

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[Match], int]:
        # Customers and corporate staff see a narrow share of the desk: reading it whole is
        # cheap (through the customer and company indexes), no estimate needed.
        assert self.head is not None, "a search starts with start()"
        top, estimate, parts, recent_start = self.head
        if top is None:
            return [], 0
        scope, scope_values = _search_scope(actor)
        values = {**self.values, **scope_values, _BEST.key: best}
        common = estimate is not None and estimate > newest * SLICE_MARGIN
        if common and parts and estimate >= float(parts) * STREAM_SHARE:
            statement = self._statement("newest", scope, False, self._best_of_newest, scope)
            values |= {_WANTED.key: newest, _WANTED_AND_ONE.key: newest + 1}
            rows = (await session.execute(statement, values)).all()
            found = int(rows[0].found) if rows else 0
            return [Match(int(row.number), float(row.rank)) for row in rows], found
        candidates: list[Match] = []
        found = 0
        upper = int(top)
        size = upper  # everything, unless the estimate says the newest matches are near
        if estimate is not None and common:
            size = math.ceil(newest * SLICE_MARGIN * upper / estimate)
            # A first range reaching past the recent index's lower bound stops at it: the
            # small index answers that range (core.search.recent), and the older range after
            # it is sized from the matches found in it.
            if recent_start is not None and upper - size < recent_start < upper:
                size = upper - int(recent_start)
        while True:
            lower: int | None = upper - size if upper - size > 0 else None
            bounds = {_UPPER.key: upper} | ({} if lower is None else {_LOWER.key: lower})
            wanted = newest - found  # matches still to rank; one more says there are more
            if wanted == 0:
                below = lower is not None
                more = self._statement("more", scope, below, self._more, scope, below)
                return best_first(candidates)[:best], found + (
                    1 if await session.scalar(more, values | bounds) else 0
                )
            below = lower is not None
            statement = self._statement("slice", scope, below, self._best_of_slice, scope, below)
            values |= {_WANTED.key: wanted, _WANTED_AND_ONE.key: wanted + 1}
            rows = (await session.execute(statement, values | bounds)).all()
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
        *,
        bounded: bool = True,
        bounded_below: bool = True,
        indexed: bool = True,
    ) -> Select[Any]:
        """The matching tickets the actor may see, numbered in (range_lower, range_upper] if
        `bounded` (without a lower bound unless `bounded_below`), each with its rank. A ticket
        whose replies all fit in its part 0 matches when that part holds every token (the GIN
        index answers it as one AND); the parts of the few tickets with later replies
        (`overflow`) that hold any token are put together per ticket. `indexed`: found
        through the GIN indexes (else each part is tested in turn)."""
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
        if bounded:
            conditions.append(_SEARCH.c.number <= _UPPER)
            if bounded_below:
                conditions.append(_SEARCH.c.number > _LOWER)
        rank = self._rank()
        return (
            select(_SEARCH.c.number, rank.label("rank"))
            .where(*conditions)
            .group_by(_SEARCH.c.number)
            .having(rank.is_not(None))
        )

    def _more(self, scope: str, bounded_below: bool) -> Select[Any]:
        """Whether the range holds any match at all."""
        matches = self._matches(_scope_condition(scope), bounded_below=bounded_below)
        return select(true()).select_from(matches.subquery()).limit(1)

    def _best_of_slice(self, scope: str, bounded_below: bool) -> Select[Any]:
        """The range's `wanted` newest matches, ranked, its `best` best with the number of
        matches (counted up to `wanted` + 1)."""
        # OFFSET 0 keeps the planner from walking the number index backwards and testing every
        # part until enough match: the GIN index is faster for all but common words, and for
        # those _best_of_newest asks for that walk itself.
        matching = self._matches(_scope_condition(scope), bounded_below=bounded_below)
        matches = matching.offset(0).subquery("matches")
        newest = (
            select(matches.c.number, matches.c.rank)
            .order_by(matches.c.number.desc())
            .limit(_WANTED_AND_ONE)
            .subquery("newest")
        )
        return best_of(newest, newest.c.rank, _WANTED, _BEST)

    def _best_of_newest(self, scope: str) -> Select[Any]:
        """The `wanted` newest matches of a common query, read newest first (parts in the
        order of the primary key, each tested) until one more than `wanted` is found."""
        matches = self._matches(_scope_condition(scope), bounded=False, indexed=False)
        newest = matches.order_by(_SEARCH.c.number.desc()).limit(_WANTED_AND_ONE).subquery("newest")
        return best_of(newest, newest.c.rank, _WANTED, _BEST)

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[TicketView, str]]:
        if not numbers:
            return {}
        scope, scope_values = _search_scope(actor)
        statement = self._statement("load", scope, False, self._load, scope)
        values = {**self.values, **scope_values, _NUMBERS.key: list(numbers)}
        rows = (await session.execute(statement, values)).all()
        return {
            row.Ticket.number: (
                view_of(
                    row.Ticket,
                    customer=row.customer,
                    assignee=row.assignee,
                    category_name=row.category_name,
                ),
                choose_snippet(
                    row.Ticket,
                    description=row.description,
                    reply=row.reply,
                    title_hit=bool(row.title_hit),
                ),
            )
            for row in rows
        }

    def _load(self, scope: str) -> Select[Any]:
        """The tickets numbered `numbers` that the actor may see (_visible_tickets: the same
        condition as Actor.visible_tickets, its values bound), with their people, category
        and what the snippet is cut from."""

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
        # The page's people and category come in the same statement (one round trip, not
        # the three of repository.ticket_views).
        customer, assignee = aliased(User, name="customer"), aliased(User, name="assignee")
        return (
            select(
                Ticket,
                customer,
                assignee,
                Category.name.label("category_name"),
                hits(_TICKET_VECTOR, "a").label("title_hit"),
                case((description_hit, headline(Ticket.description))).label("description"),
                reply.label("reply"),
            )
            .join(customer, customer.id == Ticket.customer_id)
            .outerjoin(assignee, assignee.id == Ticket.assignee_id)
            .outerjoin(Category, Category.id == Ticket.category_id)
            .where(Ticket.number == any_(_NUMBERS), _visible_tickets(scope))
        )
