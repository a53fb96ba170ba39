"""Property test of the permission matrix: random companies, users, tickets and replies, and for
every actor the services must agree with an oracle written in plain Python.

Hypothesis drives a plain (sync) test; each example runs its async scenario on an event loop
in a worker thread, with an engine of its own on the session's database, and starts by
emptying the tables; the fixture empties them again when the test ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from core.enums import Priority, Role, Status
from core.errors import Forbidden, NotFound
from core.models import Base, User
from core.replies import add_reply, delete_reply, reply_history
from core.tickets import (
    assign_ticket,
    change_status,
    create_ticket,
    delete_ticket,
    get_ticket,
    list_tickets,
    my_tickets,
)
from tests.conftest import settings_for as settings_for
from tests.conftest import truncate_all
from tests.core.ticket_support import deactivate
from tests.factories import make_company, make_user

T = TypeVar("T")
GLOBAL_STAFF = (Role.AGENT, Role.MANAGER, Role.ADMIN)
PAGE_SIZE = 3

# --------------------------------------------------------------------------------------------
# the scenario and the oracle


@dataclass
class UserSpec:
    role: Role
    company: int | None  # index into the scenario's companies
    memberships: frozenset[int]  # corporate only
    active: bool
    id: int = 0  # filled in once the row exists

    def scope(self) -> set[int]:
        """Company indexes a corporate user covers."""
        return ({self.company} if self.company is not None else set()) | set(self.memberships)


@dataclass
class ReplySpec:
    author: int  # index into users (the admin when -1)
    internal: bool
    deleted: bool
    body: str = ""
    id: int = 0


@dataclass
class TicketSpec:
    customer: int  # index into users
    priority: Priority
    status: Status
    deleted: bool
    assignee: int | None  # index into users
    customer_moves_to: int | str | None  # a company index, None (no company) or "stay"
    replies: list[ReplySpec] = field(default_factory=list)
    company: int | None = None  # the customer's company when the ticket was opened
    number: int = 0


@dataclass
class Scenario:
    companies: int
    users: list[UserSpec]
    tickets: list[TicketSpec]


def sees(user: UserSpec, ticket: TicketSpec, users: list[UserSpec]) -> bool:
    """The matrix: global staff see all, corporate their companies', customers their own."""
    if ticket.deleted:
        return False
    if user.role in GLOBAL_STAFF:
        return True
    if user.role is Role.CORPORATE:
        return ticket.company is not None and ticket.company in user.scope()
    return users[ticket.customer] is user


def reads_reply(user: UserSpec, reply: ReplySpec) -> bool:
    return not reply.deleted and (not reply.internal or user.role is not Role.CUSTOMER)


def may_be_assigned(user: UserSpec, ticket: TicketSpec) -> bool:
    if user.role in GLOBAL_STAFF:
        return True
    return (
        user.role is Role.CORPORATE
        and ticket.company is not None
        and ticket.company in user.scope()
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    companies = draw(st.integers(min_value=0, max_value=3))
    company = (
        st.none() | st.integers(min_value=0, max_value=companies - 1) if companies else st.none()
    )
    users: list[UserSpec] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        role = draw(st.sampled_from(list(Role)))
        memberships: frozenset[int] = frozenset()
        if role is Role.CORPORATE and companies:
            memberships = frozenset(
                draw(st.sets(st.integers(min_value=0, max_value=companies - 1), max_size=2))
            )
        users.append(
            UserSpec(
                role=role,
                company=draw(company),
                memberships=memberships,
                active=draw(st.booleans().map(lambda b: b or draw(st.booleans()))),
            )
        )
    customers = [i for i, u in enumerate(users) if u.role is Role.CUSTOMER]
    tickets: list[TicketSpec] = []
    if customers:
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            ticket = TicketSpec(
                customer=draw(st.sampled_from(customers)),
                priority=draw(st.sampled_from(list(Priority))),
                status=draw(st.sampled_from(list(Status))),
                deleted=draw(st.integers(min_value=0, max_value=5)) == 0,
                assignee=draw(st.none() | st.integers(min_value=0, max_value=len(users) - 1)),
                customer_moves_to=draw(st.just("stay") | company),
            )
            for _ in range(draw(st.integers(min_value=0, max_value=3))):
                ticket.replies.append(
                    ReplySpec(
                        author=draw(st.integers(min_value=-1, max_value=len(users) - 1)),
                        internal=draw(st.booleans()),
                        deleted=draw(st.integers(min_value=0, max_value=4)) == 0,
                    )
                )
            tickets.append(ticket)
    return Scenario(companies=companies, users=users, tickets=tickets)


# --------------------------------------------------------------------------------------------
# building the scenario through the services


async def build(core: Core, scenario: Scenario, clock: FrozenClock) -> UserSpec:
    company_ids = [await make_company(core) for _ in range(scenario.companies)]
    admin = UserSpec(role=Role.ADMIN, company=None, memberships=frozenset(), active=True)
    admin.id = (await make_user(core, Role.ADMIN, name="Scenario admin")).id
    for user in scenario.users:
        user.id = (
            await make_user(
                core,
                user.role,
                company_id=company_ids[user.company] if user.company is not None else None,
                extra_companies=tuple(company_ids[m] for m in sorted(user.memberships)),
            )
        ).id
    users = scenario.users
    for index, ticket in enumerate(scenario.tickets):
        customer = users[ticket.customer]
        ticket.company = customer.company
        view = await create_ticket(
            core,
            actor_id=admin.id,
            title=f"Ticket {index}",
            priority=ticket.priority,
            customer_id=customer.id,
        )
        ticket.number = view.number
        if ticket.assignee is not None and may_be_assigned(users[ticket.assignee], ticket):
            await assign_ticket(
                core,
                actor_id=admin.id,
                ticket=ticket.number,
                assignee_id=users[ticket.assignee].id,
            )
        else:
            ticket.assignee = None
        for position, reply in enumerate(ticket.replies):
            author = users[reply.author] if reply.author >= 0 else admin
            if not sees(author, ticket, users) or (reply.internal and author.role is Role.CUSTOMER):
                reply.author, author = -1, admin
            reply.body = f"reply {index}.{position}"
            clock.advance(seconds=1)
            view_reply = await add_reply(
                core,
                actor_id=author.id,
                ticket=ticket.number,
                body=reply.body,
                internal=reply.internal,
            )
            reply.id = view_reply.id
            if reply.deleted:
                await delete_reply(core, actor_id=admin.id, reply_id=reply.id)
        if ticket.status is not Status.OPEN:
            await change_status(
                core, actor_id=admin.id, ticket=ticket.number, status=ticket.status, reason="Set up"
            )
        if ticket.customer_moves_to != "stay":
            moved = ticket.customer_moves_to
            async with core.db.transaction() as session:
                await session.execute(
                    update(User)
                    .where(User.id == customer.id)
                    .values(company_id=company_ids[moved] if isinstance(moved, int) else None)
                )
            customer.company = moved if isinstance(moved, int) else None
        if ticket.deleted:
            await delete_ticket(core, actor_id=admin.id, ticket=ticket.number)
        clock.advance(seconds=1)
    for user in users:
        if not user.active:
            await deactivate(core, user.id)
    return admin


# --------------------------------------------------------------------------------------------
# checking every actor against the oracle


async def check_actor(core: Core, user: UserSpec, scenario: Scenario) -> None:
    users, tickets = scenario.users, scenario.tickets
    if not user.active:
        with pytest.raises(Forbidden):
            await list_tickets(core, actor_id=user.id)
        for ticket in tickets[:1]:
            with pytest.raises(Forbidden):
                await get_ticket(core, actor_id=user.id, ticket=ticket.number)
        return

    expected = {t.number for t in tickets if sees(user, t, users)}
    listed: list[int] = []
    page_number = 1
    while True:
        page = await list_tickets(core, actor_id=user.id, page=page_number, page_size=PAGE_SIZE)
        assert page.total == len(expected)
        listed.extend(t.number for t in page.items)
        if not page.items:
            break
        page_number += 1
    assert sorted(listed) == sorted(expected), (user, listed, expected)
    assert len(listed) == len(set(listed))

    if user.role is Role.CUSTOMER:
        mine = {t.number for t in tickets if users[t.customer] is user and not t.deleted}
    else:
        mine = {
            t.number
            for t in tickets
            if t.assignee is not None and users[t.assignee] is user and sees(user, t, users)
        }
    page = await my_tickets(core, actor_id=user.id, page_size=100)
    assert {t.number for t in page.items} == mine and page.total == len(mine)

    for ticket in tickets:
        if sees(user, ticket, users):
            detail = await get_ticket(core, actor_id=user.id, ticket=ticket.number)
            assert [r.body for r in detail.replies] == [
                r.body for r in ticket.replies if reads_reply(user, r)
            ]
            assert all(not r.is_internal for r in detail.replies) or user.role is not Role.CUSTOMER
        else:
            with pytest.raises(NotFound) as hidden:
                await get_ticket(core, actor_id=user.id, ticket=ticket.number)
            assert hidden.value.message == f"Ticket #{ticket.number} was not found."
        for reply in ticket.replies:
            if sees(user, ticket, users) and reads_reply(user, reply):
                assert await reply_history(core, actor_id=user.id, reply_id=reply.id) == []
            else:
                with pytest.raises(NotFound) as hidden_reply:
                    await reply_history(core, actor_id=user.id, reply_id=reply.id)
                assert hidden_reply.value.message == "That message was not found."


async def empty_tables(database: Database) -> None:
    """Delete every row (children first); cheaper than TRUNCATE for a handful of rows."""
    async with database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != "ticket_counter":
                await session.execute(table.delete())


async def run_scenario(database: Database, scenario: Scenario) -> None:
    clock = FrozenClock()
    core = Core(db=database, settings=settings_for(database.url), clock=clock)
    await empty_tables(database)
    admin = await build(core, scenario, clock)
    for user in [*scenario.users, admin]:
        await check_actor(core, user, scenario)


class LoopThread:
    """An event loop of its own in a worker thread: the session's loop is not running while a
    sync test runs, and asyncpg connections belong to the loop that opened them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


@pytest.fixture
def scenario_db(database_url: str) -> Iterator[tuple[LoopThread, Database]]:
    """A worker loop and an engine on the session's database, emptied when the test ends."""
    worker = LoopThread()
    database = Database(database_url, pool_size=2, max_overflow=2)
    try:
        yield worker, database
    finally:
        worker.run(truncate_all(database))
        worker.run(database.dispose())
        worker.close()


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_services_agree_with_the_visibility_oracle(
    scenario_db: tuple[LoopThread, Database], scenario: Scenario
) -> None:
    worker, database = scenario_db
    worker.run(run_scenario(database, scenario))
