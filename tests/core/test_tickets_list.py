"""Listing tickets: filters, pagination with a COUNT total, and 'my tickets'."""

from __future__ import annotations

import re

import pytest

from core.enums import Priority, Status
from core.errors import ValidationFailed
from core.tickets import (
    TicketFilters,
    UserRef,
    assign_ticket,
    change_status,
    count_by_status,
    delete_ticket,
    list_tickets,
    my_tickets,
)
from tests.core.ticket_support import captured_sql, make_cast
from tests.factories import make_category, make_ticket


async def numbers(core, actor, **filters) -> list[int]:
    page = await list_tickets(
        core, actor_id=actor.id, filters=TicketFilters(**filters), page_size=100
    )
    assert page.total == len(page.items)
    return [t.number for t in page.items]


async def test_list_total_comes_from_a_count_query_and_rows_are_paged_in_sql(core, clock):
    cast = await make_cast(core)
    for _ in range(12):
        await make_ticket(core, cast.alice)
        clock.advance(minutes=1)
    with captured_sql(core) as statements:
        page = await list_tickets(core, actor_id=cast.agent.id, page=2, page_size=5)
    assert page.total == 12 and len(page.items) == 5 and page.pages == 3
    ticket_queries = [s for s in statements if re.search(r"\bFROM tickets\b", s)]
    counts = [s for s in ticket_queries if re.search(r"count\(\*\)", s, re.IGNORECASE)]
    assert len(counts) == 1, ticket_queries
    row_queries = [s for s in ticket_queries if s not in counts]
    assert row_queries, ticket_queries
    # Every query that reads ticket rows is bounded: nothing fetches the whole table to count.
    assert all(re.search(r"\bLIMIT\b", s) for s in row_queries), row_queries


async def test_pages_are_newest_first_disjoint_and_complete(core, clock):
    cast = await make_cast(core)
    made = []
    for _ in range(7):
        made.append((await make_ticket(core, cast.alice)).number)
        clock.advance(seconds=30)
    made.append((await make_ticket(core, cast.alice)).number)  # same moment as the next one
    made.append((await make_ticket(core, cast.alice)).number)
    seen = []
    for page_number in (1, 2, 3):
        page = await list_tickets(core, actor_id=cast.alice.id, page=page_number, page_size=4)
        assert page.total == 9
        seen.extend(t.number for t in page.items)
    assert seen == list(reversed(made))


async def test_page_beyond_the_end_is_empty_with_the_right_total(core):
    cast = await make_cast(core)
    for _ in range(3):
        await make_ticket(core, cast.alice)
    page = await list_tickets(core, actor_id=cast.alice.id, page=5, page_size=2)
    assert page.items == () and page.total == 3 and page.page == 5
    empty = await list_tickets(core, actor_id=cast.bob.id)
    assert empty.items == () and empty.total == 0 and empty.pages == 1


async def test_page_size_is_at_most_100_and_pages_start_at_1(core):
    cast = await make_cast(core)
    page = await list_tickets(core, actor_id=cast.alice.id, page_size=100)
    assert page.page_size == 100
    for kwargs, field in (
        ({"page_size": 101}, "page size"),
        ({"page_size": 0}, "page size"),
        ({"page": 0}, "page"),
        ({"page": -1}, "page"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            await list_tickets(core, actor_id=cast.alice.id, **kwargs)
        assert refused.value.field == field
    with pytest.raises(ValidationFailed):
        await my_tickets(core, actor_id=cast.alice.id, page_size=101)


async def test_filter_by_status(core):
    cast = await make_cast(core)
    opened = await make_ticket(core, cast.alice)
    working = await make_ticket(core, cast.alice)
    done = await make_ticket(core, cast.bob)
    await change_status(core, actor_id=cast.agent.id, ticket=working.number, status="in_progress")
    await change_status(core, actor_id=cast.agent.id, ticket=done.number, status="resolved")
    assert await numbers(core, cast.agent, status=Status.OPEN) == [opened.number]
    assert await numbers(core, cast.agent, status=Status.IN_PROGRESS) == [working.number]
    assert await numbers(core, cast.agent, status=Status.RESOLVED) == [done.number]
    assert await numbers(core, cast.agent, status=Status.CLOSED) == []
    # The filter narrows what the actor may see; it never widens it.
    assert await numbers(core, cast.alice, status=Status.RESOLVED) == []


async def test_filter_by_priority(core):
    cast = await make_cast(core)
    low = await make_ticket(core, cast.alice, priority="low")
    urgent = await make_ticket(core, cast.alice, priority="urgent")
    urgent_b = await make_ticket(core, cast.bob, priority="urgent")
    assert await numbers(core, cast.agent, priority=Priority.LOW) == [low.number]
    assert await numbers(core, cast.agent, priority=Priority.URGENT) == [
        urgent_b.number,
        urgent.number,
    ]
    assert await numbers(core, cast.corp_a, priority=Priority.URGENT) == [urgent.number]
    assert await numbers(core, cast.agent, priority=Priority.HIGH) == []


async def test_filter_by_assignee_and_unassigned(core):
    cast = await make_cast(core)
    mine = await make_ticket(core, cast.alice)
    theirs = await make_ticket(core, cast.alice)
    loose = await make_ticket(core, cast.bob)
    await assign_ticket(core, actor_id=cast.agent.id, ticket=mine.number, assignee_id=cast.agent.id)
    await assign_ticket(
        core, actor_id=cast.agent.id, ticket=theirs.number, assignee_id=cast.manager.id
    )
    assert await numbers(core, cast.agent, assignee=UserRef(user_id=cast.agent.id)) == [mine.number]
    assert await numbers(core, cast.agent, assignee=UserRef(me=True)) == [mine.number]
    by_chat_id = UserRef(chat_user_id=cast.manager.slack_user_id)
    assert await numbers(core, cast.agent, assignee=by_chat_id) == [theirs.number]
    assert await numbers(core, cast.agent, unassigned=True) == [loose.number]
    with pytest.raises(ValidationFailed) as refused:
        await numbers(core, cast.agent, assignee=UserRef(chat_user_id="UNEVERSEEN1"))
    assert refused.value.field == "assignee"
    with pytest.raises(ValueError):
        UserRef(me=True, user_id=cast.agent.id)


async def test_filter_by_customer_company_and_category(core):
    cast = await make_cast(core)
    hardware = await make_category(core, "Hardware")
    a1 = await make_ticket(core, cast.alice, category_id=hardware)
    a2 = await make_ticket(core, cast.alice)
    b1 = await make_ticket(core, cast.bob, category_id=hardware)
    c1 = await make_ticket(core, cast.carol)
    alice = UserRef(user_id=cast.alice.id)
    assert await numbers(core, cast.agent, customer=alice) == [a2.number, a1.number]
    assert await numbers(core, cast.agent, company_id=cast.company_b) == [b1.number]
    assert await numbers(core, cast.agent, category_id=hardware) == [b1.number, a1.number]
    assert await numbers(core, cast.agent, customer=UserRef(user_id=cast.carol.id)) == [c1.number]
    assert await numbers(core, cast.agent, category_name="HARDWARE") == [b1.number, a1.number]
    with pytest.raises(ValidationFailed) as unknown:
        await numbers(core, cast.agent, category_name="Plumbing")
    assert unknown.value.field == "category" and "Plumbing" in unknown.value.message
    combined = await numbers(core, cast.agent, category_id=hardware, company_id=cast.company_a)
    assert combined == [a1.number]
    # Corporate staff of A asking for company B get nothing, not B's tickets.
    assert await numbers(core, cast.corp_a, company_id=cast.company_b) == []
    # A customer filtering on another customer gets nothing.
    assert await numbers(core, cast.alice, customer=UserRef(user_id=cast.bob.id)) == []


async def test_my_tickets_are_requested_for_customers_and_assigned_for_staff(core):
    cast = await make_cast(core)
    own = await make_ticket(core, cast.alice)
    for_her = await make_ticket(core, cast.alice, by=cast.agent)
    done = await make_ticket(core, cast.alice)
    bobs = await make_ticket(core, cast.bob)
    await change_status(core, actor_id=cast.agent.id, ticket=done.number, status="resolved")
    await assign_ticket(core, actor_id=cast.agent.id, ticket=bobs.number, assignee_id=cast.agent.id)
    await assign_ticket(core, actor_id=cast.agent.id, ticket=own.number, assignee_id=cast.corp_a.id)

    alice = await my_tickets(core, actor_id=cast.alice.id)
    assert [t.number for t in alice.items] == [done.number, for_her.number, own.number]
    assert alice.total == 3
    open_only = await my_tickets(core, actor_id=cast.alice.id, open_only=True)
    assert [t.number for t in open_only.items] == [for_her.number, own.number]

    agent = await my_tickets(core, actor_id=cast.agent.id)
    assert [t.number for t in agent.items] == [bobs.number]  # assigned, not created by them
    corp = await my_tickets(core, actor_id=cast.corp_a.id)
    assert [t.number for t in corp.items] == [own.number]
    assert (await my_tickets(core, actor_id=cast.manager.id)).total == 0


async def test_my_tickets_paginates_with_a_total(core):
    cast = await make_cast(core)
    for _ in range(5):
        await make_ticket(core, cast.alice)
    page = await my_tickets(core, actor_id=cast.alice.id, page=3, page_size=2)
    assert len(page.items) == 1 and page.total == 5


async def test_count_by_status_counts_live_tickets_with_every_status_present(core):
    cast = await make_cast(core)
    await make_ticket(core, cast.alice)
    working = await make_ticket(core, cast.bob)
    gone = await make_ticket(core, cast.bob)
    await change_status(core, actor_id=cast.agent.id, ticket=working.number, status="in_progress")
    await delete_ticket(core, actor_id=cast.manager.id, ticket=gone.number)
    counts = await count_by_status(core)
    assert counts == {
        Status.OPEN: 1,
        Status.IN_PROGRESS: 1,
        Status.WAITING_ON_CUSTOMER: 0,
        Status.RESOLVED: 0,
        Status.CLOSED: 0,
    }
