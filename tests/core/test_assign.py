"""Assigning, transferring and unassigning tickets: staff only, to active staff who cover the
ticket's company."""

from __future__ import annotations

import pytest

from core.enums import Role
from core.errors import Forbidden, NotFound, TicketClosed, ValidationFailed
from core.tickets import assign_ticket, change_status, my_tickets
from tests.core.ticket_support import (
    audit_actions,
    audit_entries,
    deactivate,
    make_cast,
    ticket_row,
)
from tests.factories import make_ticket, make_user, outbox_rows


async def test_customer_cannot_assign_tickets(core):
    cast = await make_cast(core)
    own = await make_ticket(core, cast.alice)
    other = await make_ticket(core, cast.bob)
    for assignee in (cast.agent.id, cast.alice.id, None):
        with pytest.raises(Forbidden):
            await assign_ticket(
                core, actor_id=cast.alice.id, ticket=own.number, assignee_id=assignee
            )
    with pytest.raises(NotFound):
        await assign_ticket(
            core, actor_id=cast.alice.id, ticket=other.number, assignee_id=cast.agent.id
        )
    assert (await ticket_row(core, own.id)).assignee_id is None
    assert (await ticket_row(core, other.id)).assignee_id is None
    assert await audit_actions(core, own.id) == ["ticket.created"]


async def test_user_validation_on_assign(core):
    cast = await make_cast(core)
    ticket_a = await make_ticket(core, cast.alice)  # company A
    ticket_none = await make_ticket(core, cast.carol)  # no company
    retired_agent = await make_user(core, Role.AGENT)
    await deactivate(core, retired_agent.id)
    retired_corp = await make_user(core, Role.CORPORATE, company_id=cast.company_a)
    await deactivate(core, retired_corp.id)
    corp_b = await make_user(core, Role.CORPORATE, company_id=cast.company_b)

    refused = [
        (ticket_a, 999_999),  # no such user
        (ticket_a, retired_agent.id),  # deactivated staff
        (ticket_a, retired_corp.id),  # deactivated corporate of the right company
        (ticket_a, cast.alice.id),  # the customer herself
        (ticket_a, cast.bob.id),  # another customer
        (ticket_a, corp_b.id),  # corporate of another company
        (ticket_a, cast.corp_none.id),  # corporate without companies
        (ticket_none, cast.corp_a.id),  # corporate on a ticket without a company
    ]
    for ticket, assignee in refused:
        with pytest.raises(ValidationFailed) as error:
            await assign_ticket(
                core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=assignee
            )
        assert error.value.field == "assignee", assignee
        if assignee in (corp_b.id, cast.corp_a.id):
            assert "does not cover this ticket's company" in error.value.message
    for ticket in (ticket_a, ticket_none):
        assert (await ticket_row(core, ticket.id)).assignee_id is None

    accepted = [
        (ticket_a, cast.agent.id),
        (ticket_a, cast.manager.id),
        (ticket_a, cast.admin.id),
        (ticket_a, cast.corp_a.id),  # own company
        (ticket_a, cast.corp_b_plus_a.id),  # through a membership
        (ticket_none, cast.agent.id),
    ]
    for ticket, assignee in accepted:
        view = await assign_ticket(
            core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=assignee
        )
        assert view.assignee is not None and view.assignee.id == assignee


@pytest.mark.parametrize("role", ["corp_a", "agent", "manager", "admin"])
async def test_staff_who_see_the_ticket_may_assign_it(core, role):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    actor = getattr(cast, role)
    view = await assign_ticket(
        core, actor_id=actor.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    assert view.assignee is not None and view.assignee.id == cast.agent.id


async def test_corporate_cannot_assign_tickets_of_other_companies(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound):
        await assign_ticket(
            core, actor_id=cast.corp_a.id, ticket=ticket.number, assignee_id=cast.agent.id
        )


async def test_assign_transfer_unassign_are_audited(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    await assign_ticket(
        core,
        actor_id=cast.manager.id,
        ticket=ticket.number,
        assignee_id=cast.admin.id,
        note="Needs admin rights",
    )
    view = await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=None
    )
    assert view.assignee is None
    entries = (await audit_entries(core, ticket.id))[1:]
    assert [e.action for e in entries] == [
        "ticket.assigned",
        "ticket.transferred",
        "ticket.unassigned",
    ]
    assert [(e.details["previous_assignee_id"], e.details["assignee_id"]) for e in entries] == [
        (None, cast.agent.id),
        (cast.agent.id, cast.admin.id),
        (cast.admin.id, None),
    ]
    assert entries[1].details["note"] == "Needs admin rights"
    assert all(e.actor_id == cast.manager.id for e in entries)


async def test_assigning_the_current_assignee_again_writes_nothing(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    before = len(await outbox_rows(core, ticket.id))
    await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    assert await audit_actions(core, ticket.id) == ["ticket.created", "ticket.assigned"]
    assert len(await outbox_rows(core, ticket.id)) == before
    # Unassigning a ticket nobody holds is a no-op as well.
    loose = await make_ticket(core, cast.alice)
    await assign_ticket(core, actor_id=cast.manager.id, ticket=loose.number, assignee_id=None)
    assert await audit_actions(core, loose.id) == ["ticket.created"]


async def test_assignee_gets_a_direct_message_unless_they_assigned_themselves(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    dms = [m for m in await outbox_rows(core, ticket.id) if m.kind == "assignee_dm"]
    assert len(dms) == 1
    assert dms[0].thread_key == f"user:{cast.agent.id}"
    assert dms[0].payload["assignee_id"] == cast.agent.id
    assert dms[0].payload["assigned_by_id"] == cast.manager.id
    await assign_ticket(
        core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.manager.id
    )
    dms = [m for m in await outbox_rows(core, ticket.id) if m.kind == "assignee_dm"]
    assert len(dms) == 1  # taking a ticket yourself sends no message


async def test_closed_ticket_cannot_be_assigned(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Done"
    )
    with pytest.raises(TicketClosed):
        await assign_ticket(
            core, actor_id=cast.manager.id, ticket=ticket.number, assignee_id=cast.agent.id
        )


async def test_assignment_note_is_validated(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(ValidationFailed) as refused:
        await assign_ticket(
            core,
            actor_id=cast.manager.id,
            ticket=ticket.number,
            assignee_id=cast.agent.id,
            note="n" * 501,
        )
    assert refused.value.field == "note"


async def test_assigned_tickets_are_the_staff_members_own_list(core):
    cast = await make_cast(core)
    mine = await make_ticket(core, cast.alice)
    await make_ticket(core, cast.bob)
    await assign_ticket(core, actor_id=cast.agent.id, ticket=mine.number, assignee_id=cast.agent.id)
    page = await my_tickets(core, actor_id=cast.agent.id)
    assert [t.number for t in page.items] == [mine.number] and page.total == 1
