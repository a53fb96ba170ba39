"""Opening tickets: who may open them for whom, input cleaning, numbering, idempotency and the
creation rate limit."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.context import Core
from core.db import Database
from core.enums import Priority, Role, Status
from core.errors import (
    Conflict,
    ErrorCode,
    Forbidden,
    RateLimited,
    ValidationFailed,
)
from core.models import (
    AuditEntry,
    Category,
    OutboxMessage,
    RateLimitCounter,
    SlaTimer,
    Ticket,
)
from core.tickets import create_ticket, get_ticket
from tests.conftest import settings_for as settings_for
from tests.core.ticket_support import (
    audit_actions,
    audit_entries,
    count_rows,
    deactivate,
    history_rows,
    make_cast,
    ticket_row,
)
from tests.factories import make_category, make_user, outbox_rows

# --------------------------------------------------------------------------------------------
# who may open a ticket for whom


async def test_customer_opens_a_ticket_for_themselves(core, clock):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="VPN is down")
    assert view.customer.id == cast.alice.id
    assert view.created_by_id == cast.alice.id
    assert view.company_id == cast.company_a
    assert view.status is Status.OPEN and view.priority is Priority.MEDIUM
    assert view.created_at == clock.now() and view.first_response_at is None
    history = await history_rows(core, view.id)
    assert [(h.from_status, h.to_status) for h in history] == [(None, "open")]
    # Naming themselves as the customer is the same thing.
    again = await create_ticket(
        core, actor_id=cast.alice.id, title="Again", customer_id=cast.alice.id
    )
    assert again.customer.id == cast.alice.id


async def test_customer_cannot_create_ticket_for_other_customer(core):
    cast = await make_cast(core)
    with pytest.raises(Forbidden) as refused:
        await create_ticket(core, actor_id=cast.alice.id, title="Hi", customer_id=cast.bob.id)
    assert refused.value.code is ErrorCode.FORBIDDEN
    assert await count_rows(core, Ticket) == 0
    assert await count_rows(core, AuditEntry) == 0


async def test_corporate_opens_tickets_for_customers_of_their_companies(core):
    cast = await make_cast(core)
    own = await create_ticket(core, actor_id=cast.corp_a.id, title="x", customer_id=cast.alice.id)
    assert own.customer.id == cast.alice.id and own.company_id == cast.company_a
    assert own.created_by_id == cast.corp_a.id
    # Through a membership (corp_b_plus_a belongs to B and is a member of A) and own company.
    member = await create_ticket(
        core, actor_id=cast.corp_b_plus_a.id, title="x", customer_id=cast.alice.id
    )
    assert member.company_id == cast.company_a
    home = await create_ticket(
        core, actor_id=cast.corp_b_plus_a.id, title="x", customer_id=cast.bob.id
    )
    assert home.company_id == cast.company_b


@pytest.mark.parametrize("target", ["bob", "carol"])
async def test_corporate_cannot_open_tickets_outside_their_companies(core, target):
    cast = await make_cast(core)
    customer = getattr(cast, target)  # bob: other company; carol: no company at all
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=cast.corp_a.id, title="x", customer_id=customer.id)
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=cast.corp_none.id, title="x", customer_id=customer.id)
    assert await count_rows(core, Ticket) == 0


@pytest.mark.parametrize("role", ["agent", "manager", "admin"])
async def test_global_staff_open_tickets_for_any_active_customer(core, role):
    cast = await make_cast(core)
    actor = getattr(cast, role)
    for customer in (cast.alice, cast.bob, cast.carol):
        view = await create_ticket(core, actor_id=actor.id, title="x", customer_id=customer.id)
        assert view.customer.id == customer.id
        assert view.company_id == customer.company_id
        assert view.created_by_id == actor.id


async def test_target_must_be_an_existing_active_customer(core):
    cast = await make_cast(core)
    gone = await make_user(core, Role.CUSTOMER, active=False)
    for target in (gone.id, cast.agent.id, cast.corp_a.id, 999_999):
        with pytest.raises(ValidationFailed) as refused:
            await create_ticket(core, actor_id=cast.agent.id, title="x", customer_id=target)
        assert refused.value.field == "customer"
    assert await count_rows(core, Ticket) == 0


@pytest.mark.parametrize("role", ["corp_a", "agent", "manager", "admin"])
async def test_staff_must_pick_a_customer(core, role):
    cast = await make_cast(core)
    actor = getattr(cast, role)
    for customer_id in (None, actor.id):
        with pytest.raises(ValidationFailed) as refused:
            await create_ticket(core, actor_id=actor.id, title="x", customer_id=customer_id)
        assert refused.value.field == "customer"


async def test_deactivated_actor_cannot_open_tickets(core):
    cast = await make_cast(core)
    await deactivate(core, cast.alice.id)
    await deactivate(core, cast.agent.id)
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=cast.alice.id, title="x")
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=cast.agent.id, title="x", customer_id=cast.bob.id)
    with pytest.raises(Forbidden):
        await create_ticket(core, actor_id=424_242, title="x")  # no such user at all
    assert await count_rows(core, Ticket) == 0


# --------------------------------------------------------------------------------------------
# input cleaning


async def test_title_is_trimmed_and_folded_to_one_line(core):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="  Printer \n\t on   fire  ")
    assert view.title == "Printer on fire"


@pytest.mark.parametrize("title", ["", "   ", "\n\t", "\x00\x07"])
async def test_empty_title_refused(core, title):
    cast = await make_cast(core)
    with pytest.raises(ValidationFailed) as refused:
        await create_ticket(core, actor_id=cast.alice.id, title=title)
    assert refused.value.field == "title"
    assert await count_rows(core, Ticket) == 0


async def test_title_limit_is_150_characters(core):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="t" * 150)
    assert len(view.title) == 150
    with pytest.raises(ValidationFailed) as refused:
        await create_ticket(core, actor_id=cast.alice.id, title="t" * 151)
    assert refused.value.field == "title"
    assert "150" in refused.value.message
    assert await count_rows(core, Ticket) == 1


async def test_description_limit_is_3000_characters(core):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="x", description="d" * 3000)
    assert len(view.description) == 3000
    with pytest.raises(ValidationFailed) as refused:
        await create_ticket(core, actor_id=cast.alice.id, title="x", description="d" * 3001)
    assert refused.value.field == "description"
    assert await count_rows(core, Ticket) == 1


async def test_priority_is_parsed_and_bad_priority_refused(core):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="x", priority=" URGENT ")
    assert view.priority is Priority.URGENT
    for bad in ("critical", "", 3, None):
        with pytest.raises(ValidationFailed) as refused:
            await create_ticket(core, actor_id=cast.alice.id, title="x", priority=bad)
        assert refused.value.field == "priority"
    assert await count_rows(core, Ticket) == 1


async def test_control_characters_are_stripped(core):
    cast = await make_cast(core)
    view = await create_ticket(
        core,
        actor_id=cast.alice.id,
        title="Prin\x00ter\x07 \u202eon fire\x1b",
        description="line one\r\nline\x08 two\u2066\tend\x7f",
    )
    assert view.title == "Printer on fire"
    assert view.description == "line one\nline two\tend"


async def test_category_is_recorded_and_must_be_active(core):
    cast = await make_cast(core)
    category = await make_category(core, "Hardware")
    view = await create_ticket(core, actor_id=cast.alice.id, title="x", category_id=category)
    assert (view.category_id, view.category_name) == (category, "Hardware")
    retired = await make_category(core, "Retired")
    async with core.db.transaction() as session:
        row = await session.get(Category, retired)
        assert row is not None
        row.is_active = False
    for bad in (retired, 987_654):
        with pytest.raises(ValidationFailed) as refused:
            await create_ticket(core, actor_id=cast.alice.id, title="x", category_id=bad)
        assert refused.value.field == "category"
    assert await count_rows(core, Ticket) == 1


# --------------------------------------------------------------------------------------------
# numbering and idempotency


async def test_ticket_numbers_are_unique_and_increasing(core):
    cast = await make_cast(core)
    numbers = []
    for actor, customer in [(cast.alice, None), (cast.agent, cast.bob), (cast.carol, None)] * 3:
        view = await create_ticket(
            core, actor_id=actor.id, title="x", customer_id=customer.id if customer else None
        )
        numbers.append(view.number)
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 9
    assert numbers[0] >= 1


async def test_idempotency_key_returns_the_same_ticket_and_writes_nothing_twice(core):
    cast = await make_cast(core)
    first = await create_ticket(
        core, actor_id=cast.alice.id, title="Once", idempotency_key="trigger-1"
    )
    audit_before = await count_rows(core, AuditEntry)
    outbox_before = await count_rows(core, OutboxMessage)
    again = await create_ticket(
        core, actor_id=cast.alice.id, title="Once", idempotency_key="trigger-1"
    )
    assert again == first
    assert await count_rows(core, Ticket) == 1
    assert await count_rows(core, AuditEntry) == audit_before
    assert await count_rows(core, OutboxMessage) == outbox_before
    assert await audit_actions(core, first.id) == ["ticket.created"]
    # A different key makes a different ticket.
    other = await create_ticket(
        core, actor_id=cast.alice.id, title="Once", idempotency_key="trigger-2"
    )
    assert other.number != first.number


async def test_idempotency_key_of_another_actor_does_not_hand_over_their_ticket(core):
    cast = await make_cast(core)
    await create_ticket(core, actor_id=cast.alice.id, title="Mine", idempotency_key="k-1")
    with pytest.raises(Conflict):
        await create_ticket(core, actor_id=cast.bob.id, title="x", idempotency_key="k-1")
    with pytest.raises(Conflict):
        await create_ticket(
            core, actor_id=cast.agent.id, title="x", customer_id=cast.bob.id, idempotency_key="k-1"
        )
    assert await count_rows(core, Ticket) == 1


async def test_concurrent_calls_with_one_key_open_one_ticket(core, database_url):
    """Two replicas submit the same request at the same moment: whichever loses the race on
    the key's unique constraint answers with the winner's ticket, and its writes (the rate-limit
    count included) are rolled back."""
    cast = await make_cast(core)
    other_db = Database(database_url, pool_size=2, max_overflow=0)
    try:
        replica = Core(db=other_db, settings=core.settings, clock=core.clock)
        views = await asyncio.gather(
            *(
                create_ticket(instance, actor_id=cast.alice.id, title="Once", idempotency_key="v")
                for instance in (core, replica, core, replica)
            )
        )
    finally:
        await other_db.dispose()
    assert len({(v.id, v.number) for v in views}) == 1
    assert await count_rows(core, Ticket) == 1
    assert await count_rows(core, AuditEntry) == 1
    assert await count_rows(core, OutboxMessage) == 2
    assert await count_rows(core, SlaTimer) == 2
    async with core.db.transaction() as session:
        counted = await session.scalar(select(func.sum(RateLimitCounter.count)))
    assert counted == 1


async def test_blank_idempotency_key_means_no_key(core):
    cast = await make_cast(core)
    first = await create_ticket(core, actor_id=cast.alice.id, title="a", idempotency_key="")
    second = await create_ticket(core, actor_id=cast.alice.id, title="b", idempotency_key="  ")
    assert first.id != second.id
    assert (await ticket_row(core, first.id)).idempotency_key is None


async def test_overlong_idempotency_key_refused(core):
    cast = await make_cast(core)
    with pytest.raises(ValidationFailed) as refused:
        await create_ticket(core, actor_id=cast.alice.id, title="a", idempotency_key="k" * 201)
    assert refused.value.field == "idempotency_key"
    view = await create_ticket(core, actor_id=cast.alice.id, title="a", idempotency_key="k" * 200)
    assert (await ticket_row(core, view.id)).idempotency_key == "k" * 200


# --------------------------------------------------------------------------------------------
# rate limit


def limited_core(core: Core, database_url: str, limit: int = 2, db: Database | None = None) -> Core:
    settings = settings_for(
        database_url, ticket_create_limit=limit, ticket_create_window_seconds=3600
    )
    return Core(db=db or core.db, settings=settings, clock=core.clock)


async def test_rate_limit_refuses_past_the_limit_until_the_next_window(core, clock, database_url):
    cast = await make_cast(core)
    limited = limited_core(core, database_url)
    await create_ticket(limited, actor_id=cast.alice.id, title="1")
    clock.advance(minutes=10)
    await create_ticket(limited, actor_id=cast.alice.id, title="2")
    with pytest.raises(RateLimited) as refused:
        await create_ticket(limited, actor_id=cast.alice.id, title="3")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert 0 < refused.value.retry_after_seconds <= 3600
    # The clock starts at 09:00:00, so the hour window ends 50 minutes after the second call.
    assert refused.value.retry_after_seconds == 50 * 60
    assert await count_rows(core, Ticket) == 2
    # Other actors have their own budget.
    await create_ticket(limited, actor_id=cast.bob.id, title="bob")
    clock.advance(seconds=refused.value.retry_after_seconds - 1)
    with pytest.raises(RateLimited):
        await create_ticket(limited, actor_id=cast.alice.id, title="still too early")
    clock.advance(seconds=1)
    third = await create_ticket(limited, actor_id=cast.alice.id, title="3")
    assert third.title == "3"


async def test_refused_attempts_do_not_use_up_the_next_window(core, clock, database_url):
    cast = await make_cast(core)
    limited = limited_core(core, database_url, limit=1)
    await create_ticket(limited, actor_id=cast.alice.id, title="1")
    for _ in range(3):
        with pytest.raises(RateLimited):
            await create_ticket(limited, actor_id=cast.alice.id, title="x")
    async with core.db.transaction() as session:
        counter = await session.get(RateLimitCounter, (cast.alice.id, "ticket_create", clock.now()))
        assert counter is not None and counter.count == 1  # refusals rolled back
    clock.advance(hours=1)
    await create_ticket(limited, actor_id=cast.alice.id, title="2")


async def test_replaying_an_idempotency_key_is_not_rate_limited(core, database_url):
    cast = await make_cast(core)
    limited = limited_core(core, database_url, limit=1)
    first = await create_ticket(limited, actor_id=cast.alice.id, title="1", idempotency_key="r")
    again = await create_ticket(limited, actor_id=cast.alice.id, title="1", idempotency_key="r")
    assert again.id == first.id


async def test_rate_limit_counter_is_shared_across_core_instances(core, database_url):
    cast = await make_cast(core)
    other_db = Database(database_url, pool_size=2, max_overflow=0)
    try:
        first = limited_core(core, database_url)
        second = limited_core(core, database_url, db=other_db)
        await create_ticket(first, actor_id=cast.alice.id, title="1")
        await create_ticket(second, actor_id=cast.alice.id, title="2")
        for instance in (first, second):
            with pytest.raises(RateLimited):
                await create_ticket(instance, actor_id=cast.alice.id, title="3")
    finally:
        await other_db.dispose()
    assert await count_rows(core, Ticket) == 2


async def test_creation_is_visible_to_the_customer_right_away(core):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.agent.id, title="x", customer_id=cast.alice.id)
    detail = await get_ticket(core, actor_id=cast.alice.id, ticket=view.number)
    assert detail.ticket == view
    kinds = [m.kind for m in await outbox_rows(core, view.id)]
    assert kinds == ["staff_card_create", "customer_thread_create"]


async def test_creation_writes_exactly_these_rows(core, clock):
    """The rows of a new ticket, field by field, on either database (PostgreSQL writes them in
    one statement, SQLite one after the other): the view returned is the one read back."""
    cast = await make_cast(core)
    category = await make_category(core, "Network")
    view = await create_ticket(
        core,
        actor_id=cast.agent.id,
        title="VPN drops",
        description="Every hour",
        priority="high",
        category_id=category,
        customer_id=cast.alice.id,
        idempotency_key="view:V1",
    )
    now = clock.now()
    warning_at, breach_at = now + timedelta(minutes=90), now + timedelta(hours=2)
    assert view == (await get_ticket(core, actor_id=cast.agent.id, ticket=view.number)).ticket
    assert (view.category_name, view.customer.display_name) == ("Network", "Alice")
    row = await ticket_row(core, view.id)
    assert (row.number, row.title, row.description, row.status, row.priority) == (
        view.number,
        "VPN drops",
        "Every hour",
        "open",
        "high",
    )
    assert (row.category_id, row.customer_id, row.company_id, row.created_by_id) == (
        category,
        cast.alice.id,
        cast.company_a,
        cast.agent.id,
    )
    assert row.created_at == row.updated_at == row.sla_started_at == now
    assert (row.sla_warning_at, row.sla_breach_at) == (warning_at, breach_at)
    assert (row.idempotency_key, row.version) == ("view:V1", 1)
    assert row.assignee_id is row.first_response_at is row.deleted_at is row.status_reason is None
    history = await history_rows(core, view.id)
    assert [
        (h.from_status, h.to_status, h.reason, h.changed_by_id, h.changed_at) for h in history
    ] == [(None, "open", None, cast.agent.id, now)]
    entries = await audit_entries(core, view.id)
    assert [(e.actor_id, e.action, e.details, e.created_at) for e in entries] == [
        (
            cast.agent.id,
            "ticket.created",
            {"number": view.number, "customer_id": cast.alice.id, "priority": "high"},
            now,
        )
    ]
    messages = [
        (m.kind, m.thread_key, m.payload, m.created_at, m.next_attempt_at, m.attempts)
        for m in await outbox_rows(core, view.id)
    ]
    assert messages == [
        ("staff_card_create", f"staff:{view.id}", {}, now, now, 0),
        ("customer_thread_create", f"customer:{view.id}", {}, now, now, 0),
    ]
    async with core.db.transaction() as session:
        timers = (
            await session.execute(
                select(SlaTimer.threshold, SlaTimer.due_at).where(SlaTimer.ticket_id == view.id)
            )
        ).all()
    assert sorted(timers) == [("breach", breach_at), ("warning", warning_at)]
    async with core.db.transaction() as session:
        counter = await session.get(RateLimitCounter, (cast.agent.id, "ticket_create", now))
        assert counter is not None and counter.count == 1


async def test_replay_is_answered_before_the_other_checks_and_costs_nothing(
    core, clock, database_url
):
    """A replay of a key is recognised with the actor, before the customer, the category and
    the rate limit are looked at: it still answers when those changed since the first call."""
    cast = await make_cast(core)
    limited = limited_core(core, database_url, limit=1)
    category = await make_category(core, "Old")
    first = await create_ticket(
        limited,
        actor_id=cast.agent.id,
        title="x",
        customer_id=cast.alice.id,
        category_id=category,
        idempotency_key="view:R",
    )
    async with core.db.transaction() as session:
        row = await session.get(Category, category)
        assert row is not None
        row.is_active = False
    await deactivate(core, cast.alice.id)
    again = await create_ticket(
        limited,
        actor_id=cast.agent.id,
        title="x",
        customer_id=cast.alice.id,
        category_id=category,
        idempotency_key="view:R",
    )
    assert (again.id, again.number) == (first.id, first.number)
    assert not again.customer.is_active  # the ticket as it is now
    async with core.db.transaction() as session:
        counter = await session.get(RateLimitCounter, (cast.agent.id, "ticket_create", clock.now()))
        assert counter is not None and counter.count == 1
    # A new key is a new request: now the checks apply (the customer is gone).
    with pytest.raises(ValidationFailed) as refused:
        await create_ticket(
            limited,
            actor_id=cast.agent.id,
            title="x",
            customer_id=cast.alice.id,
            idempotency_key="view:S",
        )
    assert refused.value.field == "customer"


async def test_rate_limit_refusal_with_a_new_key_writes_nothing(core, database_url):
    cast = await make_cast(core)
    limited = limited_core(core, database_url, limit=1)
    await create_ticket(limited, actor_id=cast.alice.id, title="1", idempotency_key="a")
    with pytest.raises(RateLimited):
        await create_ticket(limited, actor_id=cast.alice.id, title="2", idempotency_key="b")
    assert await count_rows(core, Ticket) == 1
    assert await count_rows(core, SlaTimer) == 2
    assert await count_rows(core, OutboxMessage) == 2
    # The refused key was not used up: once allowed, it opens its ticket.
    roomy = limited_core(core, database_url, limit=2)
    second = await create_ticket(roomy, actor_id=cast.alice.id, title="2", idempotency_key="b")
    assert second.title == "2"


async def test_sla_deadlines_start_at_creation(core, clock):
    cast = await make_cast(core)
    view = await create_ticket(core, actor_id=cast.alice.id, title="x", priority="high")
    # Default targets: high = 2h, warning at 75 %.
    assert view.sla_breach_at == clock.now() + timedelta(hours=2)
    assert view.sla_warning_at == clock.now() + timedelta(minutes=90)
