"""Reading the audit log: managers and admins (and the operator) only, by ticket (deleted ones
too), by person (what they did and what was done to them), since a time, newest first, paged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core import admin
from core.audit_log import AuditFilters, read_audit_log
from core.enums import Priority, Role, Status
from core.errors import Forbidden, NotFound, ValidationFailed
from core.tickets import change_priority, change_status, delete_ticket
from tests.factories import make_ticket, make_user


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.CORPORATE, Role.AGENT])
async def test_only_managers_and_admins_read_the_audit_log(core, role):
    reader = await make_user(core, role)
    with pytest.raises(Forbidden):
        await read_audit_log(core, actor_id=reader.id)


async def test_a_tickets_entries_newest_first_with_people_and_number_resolved(core, clock):
    manager = await make_user(core, Role.MANAGER, name="Max Manager")
    agent = await make_user(core, Role.AGENT, name="Dana Agent")
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    other = await make_ticket(core, customer, title="Another ticket")
    clock.advance(minutes=1)
    await change_priority(core, actor_id=agent.id, ticket=ticket.number, priority=Priority.HIGH)
    clock.advance(minutes=1)
    await change_status(
        core, actor_id=agent.id, ticket=ticket.number, status=Status.RESOLVED, reason="Fixed"
    )
    await change_priority(core, actor_id=agent.id, ticket=other.number, priority=Priority.LOW)

    page = await read_audit_log(
        core, actor_id=manager.id, filters=AuditFilters(ticket_number=ticket.number)
    )
    actions = [record.action for record in page.items]
    assert actions[:2] == ["ticket.status_changed", "ticket.priority_changed"]
    assert all(record.ticket_number == ticket.number for record in page.items)
    assert page.total == len(page.items)
    newest = page.items[0]
    assert newest.actor is not None and newest.actor.name == "Dana Agent"
    assert newest.actor.chat_user_id == agent.slack_user_id
    assert newest.at > page.items[1].at


async def test_a_person_filter_finds_what_they_did_and_what_was_done_to_them(core):
    boss = await make_user(core, Role.ADMIN, name="Ada Admin")
    dana = await make_user(core, Role.CUSTOMER, name="Dana")
    bystander = await make_user(core, Role.CUSTOMER)
    await admin.change_role(core, actor_id=boss.id, user_id=dana.id, role=Role.AGENT)
    await admin.change_role(core, actor_id=boss.id, user_id=bystander.id, role=Role.AGENT)
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    await change_priority(core, actor_id=dana.id, ticket=ticket.number, priority=Priority.URGENT)

    page = await read_audit_log(
        core, actor_id=boss.id, filters=AuditFilters(user=dana.slack_user_id)
    )
    assert [r.action for r in page.items] == ["ticket.priority_changed", "user.role_changed"]
    role_change = page.items[1]
    assert role_change.subject is not None and role_change.subject.name == "Dana"
    assert role_change.actor is not None and role_change.actor.name == "Ada Admin"
    assert role_change.details["role"] == "agent"


async def test_since_keeps_only_later_entries(core, clock):
    boss = await make_user(core, Role.ADMIN)
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    await change_priority(core, actor_id=boss.id, ticket=ticket.number, priority=Priority.LOW)
    clock.advance(hours=2)
    cut = clock.now() - timedelta(minutes=1)
    await change_priority(core, actor_id=boss.id, ticket=ticket.number, priority=Priority.HIGH)
    page = await read_audit_log(core, actor_id=None, filters=AuditFilters(since=cut))
    assert [(r.action, r.details["priority"]) for r in page.items] == [
        ("ticket.priority_changed", "high")
    ]
    with pytest.raises(ValidationFailed):
        await read_audit_log(
            core, actor_id=None, filters=AuditFilters(since=cut.replace(tzinfo=None))
        )


async def test_entries_are_paged_with_a_total(core, clock):
    boss = await make_user(core, Role.ADMIN)
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    for priority in [Priority.LOW, Priority.HIGH, Priority.URGENT, Priority.MEDIUM, Priority.LOW]:
        clock.advance(seconds=1)
        await change_priority(core, actor_id=boss.id, ticket=ticket.number, priority=priority)
    filters = AuditFilters(ticket_number=ticket.number)
    first = await read_audit_log(core, actor_id=boss.id, filters=filters, page_size=2)
    third = await read_audit_log(core, actor_id=boss.id, filters=filters, page=3, page_size=2)
    assert first.total == third.total == 6 and first.pages == 3  # the creation and 5 changes
    assert [r.details["priority"] for r in first.items] == ["low", "medium"]
    assert [(r.action, r.details["priority"]) for r in third.items] == [
        ("ticket.priority_changed", "low"),
        ("ticket.created", "medium"),
    ]
    with pytest.raises(ValidationFailed):
        await read_audit_log(core, actor_id=boss.id, page_size=500)


async def test_a_deleted_tickets_history_stays_readable_and_unknown_ones_are_not_found(core):
    boss = await make_user(core, Role.ADMIN)
    customer = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, customer)
    await delete_ticket(core, actor_id=boss.id, ticket=ticket.number, reason="Spam")
    page = await read_audit_log(
        core, actor_id=boss.id, filters=AuditFilters(ticket_number=ticket.number)
    )
    assert page.items[0].action == "ticket.deleted"
    with pytest.raises(NotFound):
        await read_audit_log(core, actor_id=boss.id, filters=AuditFilters(ticket_number=999_999))
    with pytest.raises(NotFound):
        await read_audit_log(core, actor_id=boss.id, filters=AuditFilters(user="UNOBODY99"))
