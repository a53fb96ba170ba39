"""Editing a ticket's title, description and category, and changing its priority."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.enums import Priority, Status
from core.errors import Forbidden, NotFound, TicketClosed, ValidationFailed
from core.replies import add_reply
from core.tickets import change_priority, change_status, update_ticket
from tests.core.ticket_support import (
    audit_actions,
    audit_entries,
    make_cast,
    sla_next_alert,
    ticket_row,
)
from tests.factories import make_category, make_ticket

# --------------------------------------------------------------------------------------------
# update


async def test_customer_updates_own_ticket(core, clock):
    cast = await make_cast(core)
    category = await make_category(core, "Network")
    ticket = await make_ticket(core, cast.alice)
    clock.advance(minutes=3)
    view = await update_ticket(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        title="  New\ttitle ",
        description="More detail\x00",
        category_id=category,
    )
    assert (view.title, view.description, view.category_name) == (
        "New title",
        "More detail",
        "Network",
    )
    assert view.updated_at == clock.now()
    entries = await audit_entries(core, ticket.id)
    assert entries[-1].action == "ticket.updated"
    assert entries[-1].details["fields"] == ["category_id", "description", "title"]


async def test_customer_cannot_update_another_customers_ticket(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound):
        await update_ticket(core, actor_id=cast.alice.id, ticket=ticket.number, title="mine now")
    assert (await ticket_row(core, ticket.id)).title == ticket.title


async def test_nobody_updates_a_closed_ticket(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Done"
    )
    for actor in (cast.alice, cast.agent, cast.admin):
        with pytest.raises(TicketClosed):
            await update_ticket(core, actor_id=actor.id, ticket=ticket.number, title="late")
    assert (await ticket_row(core, ticket.id)).title == ticket.title
    # Reopened by staff, it can be edited again.
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="open")
    view = await update_ticket(core, actor_id=cast.alice.id, ticket=ticket.number, title="ok")
    assert view.title == "ok"


async def test_staff_update_the_tickets_they_see(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    for actor, title in ((cast.agent, "by agent"), (cast.corp_a, "by corp"), (cast.admin, "adm")):
        view = await update_ticket(core, actor_id=actor.id, ticket=ticket.number, title=title)
        assert view.title == title
    for outsider in (cast.corp_none,):
        with pytest.raises(NotFound):
            await update_ticket(core, actor_id=outsider.id, ticket=ticket.number, title="x")
    other = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound):
        await update_ticket(core, actor_id=cast.corp_a.id, ticket=other.number, title="x")


async def test_update_validates_its_inputs_and_changes_nothing_on_error(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    cases = [
        ({"title": "  "}, "title"),
        ({"title": "t" * 151}, "title"),
        ({"description": "d" * 3001}, "description"),
        ({"category_id": 123_456}, "category"),
    ]
    for changes, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            await update_ticket(core, actor_id=cast.alice.id, ticket=ticket.number, **changes)
        assert refused.value.field == field
    row = await ticket_row(core, ticket.id)
    assert (row.title, row.description, row.category_id) == (
        ticket.title,
        ticket.description,
        None,
    )
    assert await audit_actions(core, ticket.id) == ["ticket.created"]


async def test_update_without_changes_writes_nothing(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await update_ticket(
        core, actor_id=cast.alice.id, ticket=ticket.number, title=ticket.title
    )
    assert view == ticket
    assert await audit_actions(core, ticket.id) == ["ticket.created"]


async def test_category_can_be_cleared(core):
    cast = await make_cast(core)
    category = await make_category(core)
    ticket = await make_ticket(core, cast.alice, category_id=category)
    view = await update_ticket(
        core, actor_id=cast.agent.id, ticket=ticket.number, clear_category=True
    )
    assert view.category_id is None and view.category_name is None


# --------------------------------------------------------------------------------------------
# priority


async def test_customer_cannot_change_priority(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(Forbidden):
        await change_priority(core, actor_id=cast.alice.id, ticket=ticket.number, priority="urgent")
    row = await ticket_row(core, ticket.id)
    assert row.priority == "medium"
    assert (row.sla_warning_at, row.sla_breach_at) == (ticket.sla_warning_at, ticket.sla_breach_at)
    assert await audit_actions(core, ticket.id) == ["ticket.created"]


@pytest.mark.parametrize("role", ["corp_a", "agent", "manager", "admin"])
async def test_staff_change_priority(core, role):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await change_priority(
        core, actor_id=getattr(cast, role).id, ticket=ticket.number, priority="high"
    )
    assert view.priority is Priority.HIGH
    entries = await audit_entries(core, ticket.id)
    assert entries[-1].action == "ticket.priority_changed"
    assert (entries[-1].details["previous"], entries[-1].details["priority"]) == ("medium", "high")


async def test_priority_change_recomputes_sla_deadlines_from_the_clock_start(core, clock):
    cast = await make_cast(core)
    created = clock.now()
    ticket = await make_ticket(core, cast.alice, priority="medium")
    assert ticket.sla_breach_at == created + timedelta(hours=8)
    clock.advance(minutes=10)
    view = await change_priority(
        core, actor_id=cast.agent.id, ticket=ticket.number, priority="urgent"
    )
    # Urgent: 30 minutes, warning at 75 %, counted from creation rather than from the change.
    assert view.sla_breach_at == created + timedelta(minutes=30)
    assert view.sla_warning_at == created + timedelta(minutes=22, seconds=30)
    assert await sla_next_alert(core, ticket.id) == view.sla_warning_at
    lowered = await change_priority(
        core, actor_id=cast.agent.id, ticket=ticket.number, priority=Priority.LOW
    )
    assert lowered.sla_breach_at == created + timedelta(hours=24)


async def test_priority_change_after_first_response_keeps_deadlines(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    clock.advance(minutes=5)
    await add_reply(core, actor_id=cast.agent.id, ticket=ticket.number, body="Hi", internal=False)
    view = await change_priority(core, actor_id=cast.agent.id, ticket=ticket.number, priority="low")
    assert (view.sla_warning_at, view.sla_breach_at) == (
        ticket.sla_warning_at,
        ticket.sla_breach_at,
    )
    assert await sla_next_alert(core, ticket.id) is None


async def test_priority_change_on_a_resolved_ticket_does_not_rearm_sla_alerts(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved")
    view = await change_priority(
        core, actor_id=cast.agent.id, ticket=ticket.number, priority="urgent"
    )
    assert view.status is Status.RESOLVED
    assert await sla_next_alert(core, ticket.id) is None


async def test_priority_change_refused_on_closed_ticket_and_for_bad_values(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(ValidationFailed) as refused:
        await change_priority(core, actor_id=cast.agent.id, ticket=ticket.number, priority="p1")
    assert refused.value.field == "priority"
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Done"
    )
    with pytest.raises(TicketClosed):
        await change_priority(core, actor_id=cast.agent.id, ticket=ticket.number, priority="high")
    assert (await ticket_row(core, ticket.id)).priority == "medium"


async def test_setting_the_same_priority_writes_nothing(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice, priority="high")
    await change_priority(core, actor_id=cast.agent.id, ticket=ticket.number, priority="high")
    assert await audit_actions(core, ticket.id) == ["ticket.created"]
