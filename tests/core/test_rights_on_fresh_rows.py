"""Rights decided on the rows as they are now: demotion and deactivation release assignments,
delivery asks whether its recipient may still see the ticket, intent is never widened, and
text copied from staff is internal until someone confirms it."""

from __future__ import annotations

import pytest

from core import admin, replies, tickets, users
from core.enums import Audience, Role
from core.errors import Forbidden, NotFound, ValidationFailed
from core.models import Reply
from core.outbox import OutboxKind
from core.replies import ChatOrigin
from tests.core.ticket_support import audit_entries, count_rows, make_cast
from tests.factories import make_ticket, make_user, outbox_rows


async def _agent_with_own_ticket(core, cast):
    """Someone who opened a ticket as a customer and was then made agent (so that after a
    demotion they still see that one ticket)."""
    person = await make_user(core, Role.CUSTOMER)
    ticket = await make_ticket(core, person)
    await admin.change_role(core, actor_id=cast.admin.id, user_id=person.id, role=Role.AGENT)
    return person, ticket


async def _assign(core, cast, ticket, assignee):
    await tickets.assign_ticket(
        core, actor_id=cast.admin.id, ticket=ticket.id, assignee_id=assignee.id
    )


async def _assignee(core, cast, ticket):
    return (
        await tickets.get_ticket(core, actor_id=cast.admin.id, ticket=ticket.id)
    ).ticket.assignee


async def test_demoting_an_agent_to_customer_unassigns_their_tickets_audited_with_card_refresh(
    core,
):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    await _assign(core, cast, ticket, agent)
    refreshes_before = sum(
        1 for m in await outbox_rows(core, ticket.id) if m.kind == OutboxKind.STAFF_CARD_REFRESH
    )
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.CUSTOMER)
    assert await _assignee(core, cast, ticket) is None
    released = [e for e in await audit_entries(core, ticket.id) if e.action == "ticket.unassigned"]
    assert len(released) == 1 and released[0].details["previous_assignee_id"] == agent.id
    assert "not support staff" in released[0].details["reason"]
    refreshes = sum(
        1 for m in await outbox_rows(core, ticket.id) if m.kind == OutboxKind.STAFF_CARD_REFRESH
    )
    assert refreshes == refreshes_before + 1


async def test_promoting_or_moving_between_staff_roles_keeps_assignments(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    await _assign(core, cast, ticket, agent)
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.MANAGER)
    assignee = await _assignee(core, cast, ticket)
    assert assignee is not None and assignee.id == agent.id


async def test_an_agent_made_corporate_keeps_only_tickets_of_their_companies(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT, company_id=cast.company_a)
    of_a = await make_ticket(core, cast.alice)  # company A
    of_b = await make_ticket(core, cast.bob)  # company B
    await _assign(core, cast, of_a, agent)
    await _assign(core, cast, of_b, agent)
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.CORPORATE)
    assert (await _assignee(core, cast, of_a)).id == agent.id
    assert await _assignee(core, cast, of_b) is None


async def test_deactivating_staff_unassigns_their_tickets(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    await _assign(core, cast, ticket, agent)
    await admin.set_active(core, actor_id=cast.admin.id, user_id=agent.id, active=False)
    assert await _assignee(core, cast, ticket) is None


async def test_an_operator_demotion_through_the_cli_unassigns_too(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    await _assign(core, cast, ticket, agent)
    await admin.set_role_as_operator(core, slack_user_id=agent.slack_user_id, role="customer")
    assert await _assignee(core, cast, ticket) is None


async def test_an_account_deleted_in_chat_releases_its_assignments(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    await _assign(core, cast, ticket, agent)
    await users.provision_user(
        core,
        slack_user_id=agent.slack_user_id,
        display_name=agent.display_name,
        email=None,
        chat_account_deleted=True,
    )
    assert await _assignee(core, cast, ticket) is None


async def test_a_recipient_is_asked_for_their_right_to_see_the_ticket_now(core):
    cast = await make_cast(core)
    agent = await make_user(core, Role.AGENT)
    ticket = await make_ticket(core, cast.alice)
    seen = await tickets.ticket_for_recipient(core, ticket_id=ticket.id, user_id=agent.id)
    assert seen is not None and seen.id == ticket.id
    assert (
        await tickets.ticket_for_recipient(core, ticket_id=ticket.id, user_id=cast.bob.id) is None
    )
    assert await tickets.ticket_for_recipient(core, ticket_id=ticket.id, user_id=cast.corp_a.id)
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.CUSTOMER)
    assert await tickets.ticket_for_recipient(core, ticket_id=ticket.id, user_id=agent.id) is None
    await admin.set_active(core, actor_id=cast.admin.id, user_id=cast.alice.id, active=False)
    assert (
        await tickets.ticket_for_recipient(core, ticket_id=ticket.id, user_id=cast.alice.id) is None
    )


async def test_the_reply_form_asked_as_a_note_is_refused_to_someone_no_longer_staff(core):
    cast = await make_cast(core)
    agent, ticket = await _agent_with_own_ticket(core, cast)
    composer = await replies.open_composer(core, actor_id=agent.id, ticket=ticket.id, note=True)
    assert composer.staff_form is True
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.CUSTOMER)
    with pytest.raises(Forbidden):
        await replies.open_composer(core, actor_id=agent.id, ticket=ticket.id, note=True)
    plain = await replies.open_composer(core, actor_id=agent.id, ticket=ticket.id, note=False)
    assert plain.staff_form is False


async def test_a_note_meant_by_someone_no_longer_staff_is_refused_not_made_public(core):
    cast = await make_cast(core)
    agent, ticket = await _agent_with_own_ticket(core, cast)
    await admin.change_role(core, actor_id=cast.admin.id, user_id=agent.id, role=Role.CUSTOMER)
    with pytest.raises(Forbidden):
        await replies.add_reply(
            core, actor_id=agent.id, ticket=ticket.id, body="meant as a note", internal=True
        )
    assert await count_rows(core, Reply, Reply.ticket_id == ticket.id) == 0


async def test_writing_in_a_staff_thread_needs_staff_now_even_with_the_reply_marker(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(Forbidden):
        await replies.add_reply(
            core,
            actor_id=cast.alice.id,
            ticket=ticket.id,
            body="public from a staff thread",
            internal=False,
            origin=ChatOrigin(Audience.STAFF, "CSTAFF", "1.000001"),
        )
    assert await count_rows(core, Reply, Reply.ticket_id == ticket.id) == 0


async def test_text_copied_from_staff_needs_a_confirmation_before_a_customer_sees_it(core):
    cast = await make_cast(core)
    with pytest.raises(ValidationFailed) as refused:
        await tickets.create_ticket(
            core,
            actor_id=cast.agent.id,
            title="From a note",
            description="internal words",
            customer_id=cast.alice.id,
            copied_from_staff=True,
        )
    assert refused.value.field == "customer_may_see"
    opened = await tickets.create_ticket(
        core,
        actor_id=cast.agent.id,
        title="From a note",
        description="checked words",
        customer_id=cast.alice.id,
        copied_from_staff=True,
        customer_may_see_confirmed=True,
    )
    created = [e for e in await audit_entries(core, opened.id) if e.action == "ticket.created"]
    assert created[0].details.get("copied_from_staff") is True


async def test_an_edit_form_answers_alike_for_hidden_tickets_and_missing_replies(core):
    cast = await make_cast(core)
    theirs = await make_ticket(core, cast.bob)
    reply = await replies.add_reply(
        core, actor_id=cast.bob.id, ticket=theirs.id, body="mine", internal=False
    )
    note = await replies.add_reply(
        core, actor_id=cast.agent.id, ticket=theirs.id, body="a note", internal=True
    )
    messages = []
    for reply_id in (reply.id, note.id, 999_999):
        with pytest.raises(NotFound) as missing:
            await replies.reply_to_edit(core, actor_id=cast.alice.id, reply_id=reply_id)
        messages.append(missing.value.message)
    assert len(set(messages)) == 1
    own = await replies.reply_to_edit(core, actor_id=cast.bob.id, reply_id=reply.id)
    assert own.reply.body == "mine" and own.history == ()
    with pytest.raises(Forbidden):
        await replies.reply_to_edit(core, actor_id=cast.agent.id, reply_id=reply.id)
