"""SQLite: the FTS5 tables ``tickets_fts`` (title, description; rowid = number) and
``replies_fts`` (public, undeleted replies; rowid = reply id), one row per ticket or reply
(so a reply writes only its own row), put together per ticket at search time; ranked by where
each word was found (see core.search.ranking). There for correctness (tests, a one-machine
desk), not for a million tickets."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Text,
    bindparam,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from core import ratelimit, repository
from core.access import Actor
from core.models import Reply, Ticket, User
from core.results import TicketView
from core.search.query import Terms
from core.search.ranking import (
    DESCRIPTION_WEIGHT,
    REPLY_WEIGHT,
    SNIPPET_WORDS,
    TITLE_WEIGHT,
    Match,
    SearchEngine,
    best_of,
    choose_snippet,
    public_reply,
)

_TICKETS_FTS = table("tickets_fts", column("rowid"))
_REPLIES_FTS = table("replies_fts", column("rowid"))


class SqliteSearch(SearchEngine):
    def __init__(self, terms: Terms) -> None:
        self.terms = terms

    async def start(
        self, session: AsyncSession, actor_id: int, counting: dict[str, Any]
    ) -> tuple[User | None, int | None]:
        user = await session.get(User, actor_id)
        if user is None or not user.can_act:
            return user, None
        count = (await session.execute(ratelimit.counting("sqlite"), counting)).scalar_one()
        return user, int(count)

    def _match(self, fts: str, query: str, name: str) -> ColumnElement[bool]:
        return literal_column(fts).bool_op("MATCH")(bindparam(name, query, type_=Text))

    async def rank_newest(
        self, session: AsyncSession, actor: Actor, *, newest: int, best: int
    ) -> tuple[list[Match], int]:
        # Each token's hits: a title, a description or a public reply that holds it, with that
        # part's weight. A ticket matches when every token has a hit; its rank is the sum of
        # each token's best weight.
        hits: list[Select[Any]] = []  # each: (number, token, weight)
        for index in range(len(self.terms.tokens)):
            token = literal(index)
            for name, weight in (("title", TITLE_WEIGHT), ("description", DESCRIPTION_WEIGHT)):
                hits.append(
                    select(
                        _TICKETS_FTS.c.rowid.label("number"),
                        token.label("token"),
                        literal(weight).label("weight"),
                    ).where(
                        self._match(
                            "tickets_fts",
                            self.terms.fts5_token(index, name),
                            f"search_{name}_{index}",
                        )
                    )
                )
            reply_hits = (
                select(Ticket.number.label("number"), token, literal(REPLY_WEIGHT))
                .select_from(_REPLIES_FTS)
                .join(Reply, Reply.id == _REPLIES_FTS.c.rowid)
                .join(Ticket, Ticket.id == Reply.ticket_id)
                .where(
                    self._match(
                        "replies_fts", self.terms.fts5_token(index), f"search_reply_{index}"
                    ),
                    *public_reply(),
                )
            )
            hits.append(cast("Select[Any]", reply_hits))
        every = union_all(*hits).subquery("hits")
        per_token = (
            select(every.c.number, func.max(every.c.weight).label("weight"))
            .group_by(every.c.number, every.c.token)
            .subquery("per_token")
        )
        ranked = (
            select(per_token.c.number, func.sum(per_token.c.weight).label("rank"))
            .group_by(per_token.c.number)
            .having(func.count() == len(self.terms.tokens))
            .subquery("ranked")
        )
        matches = (
            select(Ticket.number, ranked.c.rank)
            .join(ranked, ranked.c.number == Ticket.number)
            .where(actor.visible_tickets())
            .order_by(Ticket.number.desc())
            .limit(newest + 1)
            .subquery("newest")
        )
        rows = (await session.execute(best_of(matches, matches.c.rank, newest, best))).all()
        found = int(rows[0].found) if rows else 0
        return [Match(int(row.number), float(row.rank)) for row in rows], found

    async def load(
        self, session: AsyncSession, actor: Actor, numbers: Sequence[int]
    ) -> dict[int, tuple[TicketView, str]]:
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
                *public_reply(),
            )
            .order_by(Reply.created_at.desc(), Reply.id.desc())
        )
        reply_snippets: dict[uuid.UUID, str] = {}
        for row in replied:
            reply_snippets.setdefault(row.ticket_id, row.text)
        views = {view.number: view for view in await repository.ticket_views(session, tickets)}
        return {
            ticket.number: (
                views[ticket.number],
                choose_snippet(
                    ticket,
                    description=descriptions.get(ticket.number),
                    reply=reply_snippets.get(ticket.id),
                    title_hit=ticket.number in title_hits,
                ),
            )
            for ticket in tickets
        }
