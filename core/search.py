"""Full-text ticket search: title, description and public replies, ranked, within visibility.

What a user types is data, never syntax. The query is cut into word tokens ([^\\W_]+: letters
and digits; underscores, quotes, ``%``, parentheses and every other character separate words)
and each token is passed to the full-text engine as a quoted literal, in a bound parameter. So
``AND``, ``OR``, ``NOT``, ``NEAR``, ``*``, ``^``, ``:`` or ``-`` are plain words or separators,
and ``%`` or ``_`` are never wildcards. All tokens must match (in the ticket, or all in one
public reply); the last token also matches as a prefix when it has 3 or more characters, so a
word still being typed finds its completions.

PostgreSQL matches the generated, weighted ``search_vector`` columns (title A, description B;
replies through their partial GIN index) and ranks with ``ts_rank``; it also accepts the text
as ``plainto_tsquery`` sees it, so that e-mail addresses and host names, which its parser keeps
whole, are found. SQLite matches the FTS5 tables and ranks with ``bm25``. Both add to the
ticket's own rank the best rank of its matching public replies, and order the hits best first,
newest first among equals.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Text,
    bindparam,
    case,
    column,
    desc,
    func,
    literal,
    literal_column,
    not_,
    select,
    table,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnClause

from core import ratelimit, repository
from core.access import Actor, load_actor
from core.context import Core
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

_ENGLISH: ColumnClause[Any] = literal_column("'english'::regconfig")
_HEADLINE_OPTIONS: ColumnClause[Any] = literal_column(
    '\'MaxWords=18, MinWords=8, ShortWord=2, StartSel="", StopSel=""\''
)
_TICKET_VECTOR: ColumnClause[Any] = literal_column("tickets.search_vector")
_REPLY_VECTOR: ColumnClause[Any] = literal_column("replies.search_vector")
_Text = QueryableAttribute[Any] | ColumnElement[Any]
_TICKETS_FTS = table("tickets_fts", column("rowid"))
_REPLIES_FTS = table("replies_fts", column("rowid"))


@dataclass(frozen=True)
class SearchHit:
    """One search result: the ticket, its rank (higher is better) and a short plain-text
    excerpt of the description, public reply or title that matched."""

    ticket: TicketView
    rank: float
    snippet: str


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
    """Tickets the actor may see whose title, description or a public reply match `query`.

    Visibility is part of the SQL (customers: their own tickets; corporate staff: their
    companies'; deleted tickets never). Internal notes never make a ticket match and never
    appear in a snippet, for staff as well as customers: search results are shown in places a
    customer may read, so the search only knows what a customer could be told. Staff find notes
    by opening the ticket. A query without any letter or digit (say '%%%') finds nothing.
    Each call counts against the actor's 'search' rate limit. One transaction.
    """
    terms = parse_query(query)
    page = positive_int(page, field="page")
    page_size = positive_int(page_size, field="page size", maximum=PAGE_SIZE_MAX)
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        await ratelimit.consume(
            session,
            actor_id=actor.id,
            bucket="search",
            limit=core.settings.search_limit,
            window_seconds=core.settings.search_window_seconds,
            now=core.clock.now(),
            what="search",
        )
        if not terms.tokens:
            return Page.of([], total=0, page=page, page_size=page_size)
        engine: _Engine = _Postgres(terms) if core.db.dialect == "postgresql" else _Sqlite(terms)
        hits, total = await _ranked_page(session, engine, actor, page=page, page_size=page_size)
        loaded = await engine.load(session, [ticket_id for ticket_id, _ in hits])
        views = {
            view.id: view
            for view in await repository.ticket_views(session, [row for row, _ in loaded.values()])
        }
        log.info(
            "tickets searched",
            extra={"actor_id": actor.id, "tokens": len(terms.tokens), "total": total},
        )
        return Page.of(
            [
                SearchHit(ticket=views[ticket_id], rank=rank, snippet=loaded[ticket_id][1])
                for ticket_id, rank in hits
            ],
            total=total,
            page=page,
            page_size=page_size,
        )


# --------------------------------------------------------------------------------------------
# ranking


class _Engine:
    """The dialect-specific parts: which tickets match (with a rank) and their snippets."""

    def ticket_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        raise NotImplementedError

    def reply_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        raise NotImplementedError

    async def load(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Ticket, str]]:
        """The page's tickets, each with its snippet."""
        raise NotImplementedError


async def _ranked_page(
    session: AsyncSession, engine: _Engine, actor: Actor, *, page: int, page_size: int
) -> tuple[list[tuple[uuid.UUID, float]], int]:
    """The page's (ticket id, rank) pairs, best first, and the number of matching tickets."""
    visible = actor.visible_tickets()
    matches = union_all(engine.ticket_matches(visible), engine.reply_matches(visible)).subquery(
        "matches"
    )
    # The ticket's own rank plus that of its best matching public reply.
    rank = (
        func.coalesce(func.max(case((matches.c.source == "t", matches.c.rank))), 0.0)
        + func.coalesce(func.max(case((matches.c.source == "r", matches.c.rank))), 0.0)
    ).label("rank")
    grouped = select(matches.c.id, rank).group_by(
        matches.c.id, matches.c.created_at, matches.c.number
    )
    query = (
        grouped.add_columns(func.count().over().label("total"))
        .order_by(desc(rank), matches.c.created_at.desc(), matches.c.number.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    rows = (await session.execute(query)).all()
    if rows:
        total = int(rows[0].total)
    elif page == 1:
        total = 0
    else:  # past the last page: the window count saw no rows, so count them on their own
        total = int(await session.scalar(select(func.count()).select_from(grouped.subquery())) or 0)
    return [(row.id, float(row.rank)) for row in rows], total


def _match_columns(source: str) -> list[ColumnElement[Any]]:
    return [
        literal(source, String).label("source"),
        Ticket.id.label("id"),
        Ticket.created_at.label("created_at"),
        Ticket.number.label("number"),
    ]


def _public_reply() -> list[ColumnElement[bool]]:
    # Spelled exactly like the partial index's predicate (NOT is_internal AND deleted_at IS
    # NULL) so that PostgreSQL can use it; on SQLite the FTS table holds public replies only,
    # and this repeats the rule in the query.
    return [not_(Reply.is_internal), Reply.deleted_at.is_(None)]


# --------------------------------------------------------------------------------------------
# PostgreSQL


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

    def ticket_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        rank = func.ts_rank(_TICKET_VECTOR, self.match_query, type_=Float)
        return select(*_match_columns("t"), rank.label("rank")).where(
            _TICKET_VECTOR.bool_op("@@")(self.match_query), visible
        )

    def reply_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        rank = func.ts_rank(_REPLY_VECTOR, self.match_query, type_=Float)
        return (
            select(*_match_columns("r"), rank.label("rank"))
            .select_from(Reply)
            .join(Ticket, Ticket.id == Reply.ticket_id)
            .where(*_public_reply(), _REPLY_VECTOR.bool_op("@@")(self.match_query), visible)
        )

    async def load(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Ticket, str]]:
        if not ids:
            return {}

        def hits(vector: ColumnElement[Any], weight: str) -> ColumnElement[bool]:
            # The stored vector's title (A) or description (B) lexemes: no text is re-parsed.
            part = func.ts_filter(vector, literal_column(f"'{{{weight}}}'::\"char\"[]"))
            return part.bool_op("@@")(self.any_query)

        def headline(text: _Text) -> ColumnElement[str]:
            return func.ts_headline(_ENGLISH, text, self.any_query, _HEADLINE_OPTIONS, type_=Text)

        description_hit = hits(_TICKET_VECTOR, "b")
        own = await session.execute(
            select(
                Ticket,
                hits(_TICKET_VECTOR, "a").label("title_hit"),
                case((description_hit, headline(Ticket.description))).label("description"),
            ).where(Ticket.id.in_(ids))
        )
        rows = own.all()
        # The page's few public replies are tested one by one (the match is a column, not a
        # condition), which is cheaper than a GIN scan for every reply holding any of the words.
        reply_hit = _REPLY_VECTOR.bool_op("@@")(self.any_query)
        replies = await session.execute(
            select(Reply.ticket_id, case((reply_hit, headline(Reply.body))).label("body"))
            .where(Reply.ticket_id.in_(ids), *_public_reply())
            .order_by(Reply.created_at.desc(), Reply.id.desc())
        )
        reply_snippets: dict[uuid.UUID, str] = {}
        for reply in replies:
            if reply.body is not None:
                reply_snippets.setdefault(reply.ticket_id, reply.body)
        return {
            row.Ticket.id: (
                row.Ticket,
                _choose_snippet(
                    row.Ticket,
                    description=row.description,
                    reply=reply_snippets.get(row.Ticket.id),
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

    def ticket_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        # bm25 is lower for better matches; a title hit weighs more than a description hit.
        rank = -func.bm25(
            literal_column("tickets_fts"), literal_column("4.0"), literal_column("1.0")
        )
        return (
            select(*_match_columns("t"), rank.label("rank"))
            .select_from(_TICKETS_FTS)
            .join(Ticket, Ticket.number == _TICKETS_FTS.c.rowid)
            .where(self._match("tickets_fts", self.terms.fts5_query("AND"), "search_all"), visible)
        )

    def reply_matches(self, visible: ColumnElement[bool]) -> Select[Any]:
        # A reply's score is not comparable with a ticket's: scale it down so that it orders
        # hits without outweighing a match in the ticket itself.
        rank = -func.bm25(literal_column("replies_fts")) * literal_column("0.25")
        return (
            select(*_match_columns("r"), rank.label("rank"))
            .select_from(_REPLIES_FTS)
            .join(Reply, Reply.id == _REPLIES_FTS.c.rowid)
            .join(Ticket, Ticket.id == Reply.ticket_id)
            .where(
                self._match("replies_fts", self.terms.fts5_query("AND"), "search_reply"),
                *_public_reply(),
                visible,
            )
        )

    async def load(
        self, session: AsyncSession, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, tuple[Ticket, str]]:
        if not ids:
            return {}
        tickets = list((await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))).all())
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
            ticket.id: (
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
