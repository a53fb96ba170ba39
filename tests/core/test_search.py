"""Full-text ticket search on both databases: what matches, who sees it, and typed text as data."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, literal_column, select, text, update

from core import search
from core.access import load_actor
from core.context import Core
from core.enums import Role
from core.errors import Forbidden, RateLimited, ValidationFailed
from core.models import RateLimitCounter, Ticket, User
from core.replies import add_reply, delete_reply, edit_reply
from core.search import search_tickets
from core.tickets import delete_ticket, update_ticket
from tests.conftest import settings_for as settings_with
from tests.factories import make_company, make_ticket, make_user


async def numbers(core: Core, actor_id: int, query: str, **kwargs: int) -> list[int]:
    page = await search_tickets(core, actor_id=actor_id, query=query, **kwargs)
    return [hit.ticket.number for hit in page.items]


async def test_search_tickets_by_title(core):
    customer = await make_user(core)
    wanted = await make_ticket(core, customer, title="Laptop keyboard sticky", description="x")
    await make_ticket(core, customer, title="Monitor flickers", description="since Monday")
    page = await search_tickets(core, actor_id=customer.id, query="keyboard")
    assert [hit.ticket.number for hit in page.items] == [wanted.number]
    assert page.total == 1
    assert page.items[0].rank > 0
    assert page.items[0].snippet == "Laptop keyboard sticky"


async def test_search_tickets_by_description(core):
    customer = await make_user(core)
    wanted = await make_ticket(
        core, customer, title="Cannot log in", description="The VPN client shows error 809."
    )
    await make_ticket(core, customer, title="Printer jam", description="Tray two is stuck.")
    assert await numbers(core, customer.id, "vpn client") == [wanted.number]
    # Words are stemmed on both databases: 'errors' finds 'error'.
    assert await numbers(core, customer.id, "errors") == [wanted.number]


async def test_search_tickets_by_public_reply(core):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="Slow laptop", description="Very slow.")
    await add_reply(
        core,
        actor_id=agent.id,
        ticket=ticket.number,
        body="Please reinstall the antivirus agent.",
        internal=False,
    )
    for actor in (customer, agent):
        page = await search_tickets(core, actor_id=actor.id, query="antivirus")
        assert [hit.ticket.number for hit in page.items] == [ticket.number]
        assert "antivirus" in page.items[0].snippet


async def test_search_never_matches_internal_notes_for_customer_or_staff(core):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    admin = await make_user(core, Role.ADMIN)
    ticket = await make_ticket(core, customer, title="Slow laptop", description="Very slow.")
    await add_reply(
        core,
        actor_id=agent.id,
        ticket=ticket.number,
        body="Customer is a known reseller, escalate quietly.",
        internal=True,
    )
    for actor in (customer, agent, admin):
        page = await search_tickets(core, actor_id=actor.id, query="reseller")
        assert page.items == () and page.total == 0


async def test_deleted_public_reply_no_longer_matches(core):
    customer = await make_user(core)
    ticket = await make_ticket(core, customer, title="Slow laptop", description="Very slow.")
    reply = await add_reply(
        core, actor_id=customer.id, ticket=ticket.number, body="Serial ABC123XYZ", internal=False
    )
    assert await numbers(core, customer.id, "abc123xyz") == [ticket.number]
    await delete_reply(core, actor_id=customer.id, reply_id=reply.id)
    assert await numbers(core, customer.id, "abc123xyz") == []


async def test_customer_search_finds_only_own_tickets(core):
    alice = await make_user(core)
    bob = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    mine = await make_ticket(core, alice, title="Broken webcam")
    theirs = await make_ticket(core, bob, title="Broken webcam too")
    assert await numbers(core, alice.id, "webcam") == [mine.number]
    assert await numbers(core, bob.id, "webcam") == [theirs.number]
    assert sorted(await numbers(core, agent.id, "webcam")) == [mine.number, theirs.number]


async def test_corporate_search_finds_only_company_tickets(core):
    acme = await make_company(core)
    globex = await make_company(core)
    acme_customer = await make_user(core, company_id=acme)
    globex_customer = await make_user(core, company_id=globex)
    loner = await make_user(core)
    corporate = await make_user(core, Role.CORPORATE, company_id=acme)
    acme_ticket = await make_ticket(core, acme_customer, title="Badge reader offline")
    await make_ticket(core, globex_customer, title="Badge reader offline")
    await make_ticket(core, loner, title="Badge reader offline")
    page = await search_tickets(core, actor_id=corporate.id, query="badge reader")
    assert [hit.ticket.number for hit in page.items] == [acme_ticket.number]
    assert page.total == 1


async def test_deleted_ticket_never_matches(core):
    customer = await make_user(core)
    manager = await make_user(core, Role.MANAGER)
    ticket = await make_ticket(core, customer, title="Duplicate keyboard request")
    await delete_ticket(core, actor_id=manager.id, ticket=ticket.number)
    for actor in (customer, manager):
        assert await numbers(core, actor.id, "keyboard") == []


async def test_percent_and_underscore_are_literal_separators(core):
    customer = await make_user(core)
    disk = await make_ticket(core, customer, title="100% broken_disk", description="")
    await make_ticket(core, customer, title="Disk almost full", description="95 percent used")
    await make_ticket(core, customer, title="Other thing", description="nothing to see")
    assert await numbers(core, customer.id, "100%") == [disk.number]
    assert await numbers(core, customer.id, "broken_disk") == [disk.number]
    assert await numbers(core, customer.id, "100% broken_disk") == [disk.number]
    # Neither character is a wildcard: on its own, it matches nothing rather than everything.
    for query in ("%%%", "%_%", "___", "% _", "'%'"):
        page = await search_tickets(core, actor_id=customer.id, query=query)
        assert page.items == () and page.total == 0, query


# Where the printer ticket is found: every word of the query must be in it. PostgreSQL drops
# English stop words ('or', 'not') from a query; SQLite's FTS5 matches them like any word.
EVERYWHERE = {"sqlite", "postgresql"}
NOWHERE: set[str] = set()
STOP_WORDS_DROPPED = {"postgresql"}


@pytest.mark.parametrize(
    ("query", "finds_printer_on"),
    [
        ('printer" OR "', STOP_WORDS_DROPPED),
        ("printer' OR '1'='1", NOWHERE),  # '1' is not in it
        ("printer -- ;", EVERYWHERE),
        ("printer \\", EVERYWHERE),
        ("(printer", EVERYWHERE),
        ("printer)", EVERYWHERE),
        ("printer*", EVERYWHERE),
        ("printer:*", EVERYWHERE),
        ("title:printer", NOWHERE),  # 'title' is a word, not a column filter
        ("printer^2", NOWHERE),  # '2' is a word, not a boost
        ("-printer", EVERYWHERE),  # not a negation
        ("printer & !", EVERYWHERE),
        ("printer | toast", NOWHERE),  # not a disjunction: no ticket has both words
        ("NEAR(printer)", NOWHERE),  # 'near' is a word, not a proximity operator
        ("{title} : printer", NOWHERE),
        ("printer <-> x", NOWHERE),  # 'x' is a word, not a phrase operator's operand
        ("printer NOT", STOP_WORDS_DROPPED),
        ("toaster NOT printer", NOWHERE),  # not a negation: it would find the toaster
    ],
)
async def test_operators_quotes_and_backslashes_never_change_the_query(
    core, query, finds_printer_on
):
    customer = await make_user(core)
    printer = await make_ticket(core, customer, title="Printer on fire", description="")
    await make_ticket(core, customer, title="Toaster on fire", description="")
    result = await numbers(core, customer.id, query)
    # No operator widens, narrows or negates the search: the printer ticket is found exactly
    # when all the query's words are in it, and the toaster ticket never is.
    assert result == ([printer.number] if core.db.dialect in finds_printer_on else [])


async def test_or_and_not_are_words_not_operators(core):
    customer = await make_user(core)
    printer = await make_ticket(core, customer, title="Printer does not print", description="")
    await make_ticket(core, customer, title="Toaster is fine", description="")
    # 'OR' would otherwise widen the search to the toaster; here both words must match.
    assert await numbers(core, customer.id, "printer OR toaster") == []
    # 'NOT' would otherwise exclude the printer ticket.
    assert await numbers(core, customer.id, "NOT printer") == [printer.number]


async def test_last_word_matches_as_prefix(core):
    customer = await make_user(core)
    ticket = await make_ticket(core, customer, title="Invoice missing", description="")
    assert await numbers(core, customer.id, "invoi") == [ticket.number]
    # Only the last word is a prefix: earlier words match whole.
    assert await numbers(core, customer.id, "invoi missing") == []


async def test_email_address_is_found(core):
    customer = await make_user(core)
    ticket = await make_ticket(
        core, customer, title="Mail bounce", description="Mail to alice@example.com bounces."
    )
    await make_ticket(core, customer, title="Mail bounce", description="To bob@other.org.")
    assert await numbers(core, customer.id, "alice@example.com") == [ticket.number]


@pytest.mark.parametrize("query", ["", "   ", "ab", "  ab  ", "%"])
async def test_short_query_is_refused(core, query):
    customer = await make_user(core)
    with pytest.raises(ValidationFailed) as error:
        await search_tickets(core, actor_id=customer.id, query=query)
    assert error.value.field == "query"


async def test_overlong_query_is_refused(core):
    customer = await make_user(core)
    await search_tickets(core, actor_id=customer.id, query="a" * 200)
    with pytest.raises(ValidationFailed) as error:
        await search_tickets(core, actor_id=customer.id, query="a" * 201)
    assert error.value.field == "query"


async def test_search_is_rate_limited_per_actor(core, database_url, clock):
    limited = Core(
        db=core.db,
        settings=settings_with(database_url, search_limit=2, search_window_seconds=60),
        clock=clock,
    )
    alice = await make_user(core)
    bob = await make_user(core)
    for _ in range(2):
        await search_tickets(limited, actor_id=alice.id, query="anything")
    with pytest.raises(RateLimited):
        await search_tickets(limited, actor_id=alice.id, query="anything")
    await search_tickets(limited, actor_id=bob.id, query="anything")  # a separate budget
    clock.advance(seconds=60)
    await search_tickets(limited, actor_id=alice.id, query="anything")


async def test_a_deactivated_or_unknown_actor_is_refused_and_their_search_not_counted(
    core, database_url, clock
):
    """The actor's row and the rate-limit count are read in the search's first statement: a
    user who may not act is still refused, and nothing is counted against them (a refused
    search's count is rolled back with its transaction)."""
    limited = Core(
        db=core.db,
        settings=settings_with(database_url, search_limit=1, search_window_seconds=60),
        clock=clock,
    )
    await make_ticket(core, await make_user(core), title="Toner low")
    gone = await make_user(core, active=False)
    for _ in range(3):
        with pytest.raises(Forbidden):
            await search_tickets(limited, actor_id=gone.id, query="toner")
    with pytest.raises(Forbidden):
        await search_tickets(limited, actor_id=gone.id + 1000, query="toner")
    async with core.db.transaction() as session:
        counted = await session.scalar(
            select(func.count())
            .select_from(RateLimitCounter)
            .where(RateLimitCounter.actor_id == gone.id)
        )
    assert counted == 0
    async with core.db.transaction() as session:
        await session.execute(update(User).where(User.id == gone.id).values(is_active=True))
    await search_tickets(limited, actor_id=gone.id, query="toner")  # the one search of the window
    with pytest.raises(RateLimited):
        await search_tickets(limited, actor_id=gone.id, query="toner")


async def test_pagination_totals_and_pages(core, clock):
    customer = await make_user(core)
    created = []
    for n in range(23):
        clock.advance(minutes=1)
        created.append((await make_ticket(core, customer, title=f"Scanner fault {n}")).number)
    await make_ticket(core, customer, title="Unrelated")
    seen: list[int] = []
    for page_number, size in ((1, 10), (2, 10), (3, 3)):
        page = await search_tickets(
            core, actor_id=customer.id, query="scanner", page=page_number, page_size=10
        )
        assert page.total == 23 and page.page == page_number and page.pages == 3
        assert len(page.items) == size
        seen += [hit.ticket.number for hit in page.items]
    beyond = await search_tickets(core, actor_id=customer.id, query="scanner", page=9)
    assert beyond.items == () and beyond.total == 23
    # Equal ranks: newest first, and no ticket twice across pages.
    assert seen == list(reversed(created))


async def test_title_match_ranks_above_description_match(core, clock):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    in_title = await make_ticket(core, customer, title="Router reboots", description="Daily.")
    clock.advance(minutes=1)
    in_description = await make_ticket(
        core, customer, title="Network problem", description="The router reboots nightly."
    )
    clock.advance(minutes=1)
    in_reply = await make_ticket(core, customer, title="Network slow", description="Very.")
    await add_reply(
        core, actor_id=agent.id, ticket=in_reply.number, body="Check the router.", internal=False
    )
    page = await search_tickets(core, actor_id=customer.id, query="router")
    assert [hit.ticket.number for hit in page.items] == [
        in_title.number,
        in_description.number,
        in_reply.number,
    ]
    ranks = [hit.rank for hit in page.items]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > ranks[1]


async def test_snippet_shows_the_matching_description_words(core):
    customer = await make_user(core)
    before = " ".join(f"before{n}" for n in range(60))
    after = " ".join(f"after{n}" for n in range(60))
    await make_ticket(
        core,
        customer,
        title="Long story",
        description=f"{before} the projector bulb exploded {after}",
    )
    page = await search_tickets(core, actor_id=customer.id, query="projector")
    snippet = page.items[0].snippet
    assert "projector" in snippet and len(snippet) <= 200
    assert "before0 " not in snippet  # the excerpt is around the match, not the start


async def test_snippet_never_contains_note_text(core):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="Payment failed", description="Card declined")
    await add_reply(
        core,
        actor_id=agent.id,
        ticket=ticket.number,
        body="payment fraud suspected SECRETNOTE",
        internal=True,
    )
    await add_reply(
        core,
        actor_id=agent.id,
        ticket=ticket.number,
        body="We are checking the payment.",
        internal=False,
    )
    for actor in (customer, agent):
        for query in ("payment", "payment fraud", "declined"):
            page = await search_tickets(core, actor_id=actor.id, query=query)
            for hit in page.items:
                assert "SECRETNOTE" not in hit.snippet and "fraud" not in hit.snippet


# --------------------------------------------------------------------------------------------
# one document per ticket, kept in step with every change


async def test_words_may_be_spread_over_the_ticket_and_its_public_replies(core):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="VPN drops", description="Since Monday.")
    await make_ticket(core, customer, title="VPN slow", description="Only at home.")
    await add_reply(
        core,
        actor_id=agent.id,
        ticket=ticket.number,
        body="Try the backup gateway.",
        internal=False,
    )
    for actor in (customer, agent):
        assert await numbers(core, actor.id, "vpn gateway") == [ticket.number]


async def test_internal_note_words_never_complete_a_match(core):
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, customer, title="VPN drops", description="Since Monday.")
    await add_reply(
        core, actor_id=agent.id, ticket=ticket.number, body="Gateway misconfigured.", internal=True
    )
    for actor in (customer, agent):
        assert await numbers(core, actor.id, "vpn gateway") == []
        assert await numbers(core, actor.id, "vpn") == [ticket.number]


async def test_edited_title_and_description_are_searched_as_they_now_read(core):
    customer = await make_user(core)
    ticket = await make_ticket(core, customer, title="Scanner jam", description="Tray one.")
    await update_ticket(
        core,
        actor_id=customer.id,
        ticket=ticket.number,
        title="Plotter jam",
        description="Tray two.",
    )
    assert await numbers(core, customer.id, "plotter") == [ticket.number]
    assert await numbers(core, customer.id, "two") == [ticket.number]
    assert await numbers(core, customer.id, "scanner") == []


async def test_edited_reply_is_searched_as_it_now_reads(core):
    customer = await make_user(core)
    ticket = await make_ticket(core, customer, title="Slow laptop", description="Very slow.")
    reply = await add_reply(
        core, actor_id=customer.id, ticket=ticket.number, body="Model XQ100", internal=False
    )
    await add_reply(
        core, actor_id=customer.id, ticket=ticket.number, body="Bought in May", internal=False
    )
    await edit_reply(core, actor_id=customer.id, reply_id=reply.id, body="Model ZR200")
    assert await numbers(core, customer.id, "zr200") == [ticket.number]
    assert await numbers(core, customer.id, "xq100") == []
    assert await numbers(core, customer.id, "bought") == [ticket.number]  # the other reply stays


# --------------------------------------------------------------------------------------------
# only the newest matches are ranked


async def test_only_the_newest_matches_are_ranked_and_the_total_says_there_are_more(
    core, clock, monkeypatch
):
    monkeypatch.setattr(search.service, "RANKED_LIMIT", 3)
    customer = await make_user(core)
    created = []
    for n in range(5):  # the two oldest match in the title: the best matches of all
        clock.advance(minutes=1)
        title, description = ("Router fault", "x") if n < 2 else (f"Case {n}", "router fault")
        created.append(await make_ticket(core, customer, title=title, description=description))
    page = await search_tickets(core, actor_id=customer.id, query="router")
    newest = [ticket.number for ticket in reversed(created[2:])]
    assert [hit.ticket.number for hit in page.items] == newest  # equal ranks: newest first
    assert page.total == 3 and page.capped and page.pages == 1
    paged = await search_tickets(core, actor_id=customer.id, query="router", page=2, page_size=2)
    assert [hit.ticket.number for hit in paged.items] == newest[2:]
    assert paged.total == 3 and paged.capped and paged.pages == 2
    assert (await search_tickets(core, actor_id=customer.id, query="router", page=3)).items == ()
    # A deleted ticket leaves the newest matches: the next older one takes its place.
    manager = await make_user(core, Role.MANAGER)
    await delete_ticket(core, actor_id=manager.id, ticket=created[-1].number)
    page = await search_tickets(core, actor_id=customer.id, query="router")
    assert page.items[0].ticket.number == created[1].number  # a title match: ranked first
    assert page.total == 3 and page.capped
    # Exactly as many matches as are ranked: the total is exact.
    await delete_ticket(core, actor_id=manager.id, ticket=created[0].number)
    page = await search_tickets(core, actor_id=customer.id, query="router")
    assert page.total == 3 and not page.capped


async def test_staff_search_over_several_ranges_finds_exactly_the_newest_matches(
    core, database_url, clock, monkeypatch
):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL reads the desk in ranges of ticket numbers; SQLite in one query")
    monkeypatch.setattr(search.service, "RANKED_LIMIT", 4)
    monkeypatch.setattr(search.postgres, "MIN_SAMPLE", 1)
    monkeypatch.setattr(search.postgres, "STREAM_SHARE", 2.0)  # never read newest first
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    matching = []
    for n in range(80):  # common among the older tickets, rare among the newest
        clock.advance(minutes=1)
        toner = n % 2 == 0 if n < 40 else n in (45, 60, 61, 70)
        ticket = await make_ticket(
            core, customer, title=f"Ticket {n}", description="toner ok" if toner else "paper ok"
        )
        if toner:
            matching.append(ticket.number)
    async with core.db.engine.begin() as connection:  # statistics, as autovacuum keeps them
        await connection.execute(text("ANALYZE ticket_search"))
    slices: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "ticket_search.document @@" in statement and "OFFSET" in statement:
            slices.append(statement)

    event.listen(core.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        # A last word of two letters is no prefix: the planner estimates 'toner & ok' well.
        page = await search_tickets(core, actor_id=agent.id, query="toner ok")
    finally:
        event.remove(core.db.engine.sync_engine, "before_cursor_execute", count)
    assert [hit.ticket.number for hit in page.items] == sorted(matching, reverse=True)[:4]
    assert page.total == 4 and page.capped
    assert len(slices) >= 2  # the estimate's first range held too few: a second one was read


async def test_a_common_word_absent_from_the_newest_tickets_is_read_in_growing_ranges(
    core, database_url, monkeypatch
):
    """Not everything older at once: that would rank a large share of the desk."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL reads the desk in ranges of ticket numbers; SQLite in one query")
    monkeypatch.setattr(search.service, "RANKED_LIMIT", 4)
    monkeypatch.setattr(search.postgres, "STREAM_SHARE", 2.0)  # never read newest first
    customer = await make_user(core)
    agent = await make_user(core, Role.AGENT)
    async with core.db.engine.begin() as connection:
        # 600 tickets: every other one of the oldest 300 mentions toner, none of the newest 300.
        await connection.execute(
            text(
                """
                INSERT INTO tickets (id, number, title, description, status, priority,
                    customer_id, created_by_id, created_at, updated_at)
                SELECT gen_random_uuid(), g, 'Ticket ' || g,
                    CASE WHEN g <= 300 AND g % 2 = 0 THEN 'toner ok' ELSE 'paper ok' END,
                    'open', 'medium', :c, :c, now(), now()
                FROM generate_series(1, 600) AS g
                """
            ),
            {"c": customer.id},
        )
        await connection.execute(text("ANALYZE ticket_search"))
    slices: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "ticket_search.document @@" in statement and "OFFSET" in statement:
            slices.append(statement)

    event.listen(core.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        page = await search_tickets(core, actor_id=agent.id, query="toner ok")
    finally:
        event.remove(core.db.engine.sync_engine, "before_cursor_execute", count)
    assert [hit.ticket.number for hit in page.items] == [300, 298, 296, 294]
    assert page.total == 4 and page.capped
    # The estimate's range, then one eight times wider (still empty), then the rest.
    assert len(slices) == 3


async def test_search_still_running_at_the_timeout_is_refused_and_still_counted(
    core, database_url, clock, monkeypatch
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the statement timeout is PostgreSQL's")
    limited = Core(
        db=core.db,
        settings=settings_with(database_url, search_limit=1, search_window_seconds=60),
        clock=clock,
    )
    agent = await make_user(core, Role.AGENT)
    await make_ticket(core, await make_user(core), title="Toner low")
    slow = literal_column("(SELECT 1 FROM pg_sleep(0.3)) = 1")
    original = search.postgres.PostgresSearch._matches
    # Statements are built once per shape: these are built anew, with the slow condition.
    monkeypatch.setattr(search.postgres.PostgresSearch, "_STATEMENTS", {})
    monkeypatch.setattr(
        search.postgres.PostgresSearch,
        "_matches",
        lambda self, *args, **kwargs: original(self, *args, **kwargs).where(slow),
    )
    monkeypatch.setattr(search.postgres, "SEARCH_TIMEOUT_MS", 50)
    with pytest.raises(ValidationFailed) as error:
        await search_tickets(limited, actor_id=agent.id, query="toner")
    assert error.value.field == "query" and "Add a word" in str(error.value)
    monkeypatch.undo()
    with pytest.raises(RateLimited):  # the refused search used the actor's one search
        await search_tickets(limited, actor_id=agent.id, query="toner")


async def test_searches_of_the_same_shape_each_bind_their_own_actors_scope(core):
    """Statements are built once per shape of query and scope and reused: each search still
    sees only what its own actor may see, whoever built the statement first."""
    north, south = await make_company(core, "North"), await make_company(core, "South")
    alice = await make_user(core, company_id=north)
    bob = await make_user(core, company_id=south)
    carol = await make_user(core)
    norths_staff = await make_user(core, Role.CORPORATE, company_id=north)
    souths_staff = await make_user(core, Role.CORPORATE, company_id=south)
    tickets = {
        user.id: (await make_ticket(core, user, title="Gasket leaking", description="x")).number
        for user in (alice, bob, carol)
    }
    for actor, expected in (
        (alice, [tickets[alice.id]]),
        (bob, [tickets[bob.id]]),
        (carol, [tickets[carol.id]]),
        (norths_staff, [tickets[alice.id]]),
        (souths_staff, [tickets[bob.id]]),
    ):
        for query in ("gasket", "leaking", "gasket leaking"):
            page = await search_tickets(core, actor_id=actor.id, query=query)
            assert [hit.ticket.number for hit in page.items] == expected, (actor.id, query)


async def test_long_queries_are_not_kept_so_the_statement_cache_stays_small(core):
    """Whatever anyone types, the statements kept per process stay few: a query of more words
    than CACHED_TOKENS is built for that search only (and still found)."""
    customer = await make_user(core)
    words = " ".join(f"w{n}" for n in range(search.postgres.CACHED_TOKENS + 3))
    ticket = await make_ticket(core, customer, title="Long one", description=words)
    before = dict(search.postgres.PostgresSearch._STATEMENTS)
    page = await search_tickets(core, actor_id=customer.id, query=words)
    assert [hit.ticket.number for hit in page.items] == [ticket.number]
    assert before == search.postgres.PostgresSearch._STATEMENTS


async def test_a_pages_tickets_are_read_with_the_visibility_of_every_other_read(core):
    """PostgreSQL reads a page's tickets with a statement built once per kind of scope, the
    actor's values bound at execution: for every kind of actor it selects exactly the tickets
    that Actor.visible_tickets() selects, deleted and other companies' tickets excluded."""
    if core.db.dialect != "postgresql":
        pytest.skip("the statement built per kind of scope is PostgreSQL's")
    north, south = await make_company(core, "North"), await make_company(core, "South")
    alice = await make_user(core, company_id=north)
    bob = await make_user(core, company_id=north)
    dave = await make_user(core)
    erin = await make_user(core, company_id=south)
    agent = await make_user(core, Role.AGENT)
    manager = await make_user(core, Role.MANAGER)
    actors = {
        "own and shared": alice,
        "own": dave,
        "companies": await make_user(core, Role.CORPORATE, company_id=north),
        "nobody": await make_user(core, Role.CORPORATE),
        "everyone": agent,
    }
    for customer in (alice, bob, bob, dave, erin):
        await make_ticket(core, customer, title="Fan noise")
    shared = await make_ticket(core, bob, title="Shared in the North channel")
    gone = await make_ticket(core, alice, title="Deleted")
    await delete_ticket(core, actor_id=manager.id, ticket=gone.number)
    async with core.db.transaction() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == shared.id).values(shared_with_company=True)
        )
    for kind, user in actors.items():
        async with core.db.transaction() as session:
            actor = await load_actor(session, user.id)
            expected = set(
                await session.scalars(select(Ticket.number).where(actor.visible_tickets()))
            )
            scope, values = search.postgres._search_scope(actor)
            bound = select(Ticket.number).where(search.postgres._visible_tickets(scope))
            selected = set(await session.scalars(bound, values))
        assert scope == kind
        assert selected == expected, kind
        assert gone.number not in selected
        if kind != "nobody":
            assert expected, kind  # something to compare
    assert shared.number in expected  # the agent's: every live ticket
