"""Who sees which ticket, and that a hidden or deleted ticket looks exactly like a missing one."""

from __future__ import annotations

import logging
import uuid

import pytest

from core.errors import DomainError, ErrorCode, Forbidden, NotFound
from core.models import CorporateMembership
from core.replies import add_reply
from core.tickets import (
    allowed_transitions,
    assign_ticket,
    change_priority,
    change_status,
    delete_ticket,
    get_ticket,
    list_tickets,
    my_tickets,
    update_ticket,
)
from tests.core.ticket_support import (
    audit_entries,
    deactivate,
    error_shape,
    make_cast,
    sla_next_alert,
    ticket_row,
)
from tests.factories import make_ticket

MISSING_NUMBER = 987_654


async def visible_numbers(core, actor_id: int) -> set[int]:
    page = await list_tickets(core, actor_id=actor_id, page_size=100)
    return {t.number for t in page.items}


# Every call that names a ticket, as (name, call(core, actor_id, ref)).
TICKET_CALLS = [
    ("get", lambda core, a, ref: get_ticket(core, actor_id=a, ticket=ref)),
    ("update", lambda core, a, ref: update_ticket(core, actor_id=a, ticket=ref, title="new")),
    ("status", lambda core, a, ref: change_status(core, actor_id=a, ticket=ref, status="closed")),
    ("status choices", lambda core, a, ref: allowed_transitions(core, actor_id=a, ticket=ref)),
    (
        "priority",
        lambda core, a, ref: change_priority(core, actor_id=a, ticket=ref, priority="low"),
    ),
    ("assign", lambda core, a, ref: assign_ticket(core, actor_id=a, ticket=ref, assignee_id=None)),
    (
        "reply",
        lambda core, a, ref: add_reply(core, actor_id=a, ticket=ref, body="hi", internal=False),
    ),
    ("delete", lambda core, a, ref: delete_ticket(core, actor_id=a, ticket=ref)),
]


async def refusal(call, core, actor_id, ref) -> DomainError:
    with pytest.raises(DomainError) as raised:
        await call(core, actor_id, ref)
    return raised.value


async def test_customer_cannot_view_other_customer_tickets(core):
    cast = await make_cast(core)
    theirs = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound) as hidden:
        await get_ticket(core, actor_id=cast.alice.id, ticket=theirs.number)
    with pytest.raises(NotFound) as missing:
        await get_ticket(core, actor_id=cast.alice.id, ticket=MISSING_NUMBER)
    # No existence oracle: same type, code, field and wording as a number that never existed.
    assert error_shape(hidden.value, number=theirs.number) == error_shape(
        missing.value, number=MISSING_NUMBER
    )
    assert hidden.value.code is ErrorCode.NOT_FOUND
    assert str(theirs.number) in hidden.value.message  # it echoes what was asked, nothing more
    # Looked up by id, the two are indistinguishable outright.
    with pytest.raises(NotFound) as hidden_by_id:
        await get_ticket(core, actor_id=cast.alice.id, ticket=theirs.id)
    with pytest.raises(NotFound) as missing_by_id:
        await get_ticket(core, actor_id=cast.alice.id, ticket=uuid.uuid4())
    assert error_shape(hidden_by_id.value) == error_shape(missing_by_id.value)
    assert hidden_by_id.value.message == "That ticket was not found."
    assert await visible_numbers(core, cast.alice.id) == set()


@pytest.mark.parametrize(("name", "call"), TICKET_CALLS, ids=[name for name, _ in TICKET_CALLS])
async def test_every_call_on_a_hidden_ticket_fails_like_a_missing_one(core, name, call):
    cast = await make_cast(core)
    theirs = await make_ticket(core, cast.bob)
    for actor in (cast.alice, cast.corp_a, cast.corp_none):
        hidden = await refusal(call, core, actor.id, theirs.number)
        missing = await refusal(call, core, actor.id, MISSING_NUMBER)
        assert isinstance(hidden, NotFound), (name, actor.display_name, hidden)
        assert error_shape(hidden, number=theirs.number) == error_shape(
            missing, number=MISSING_NUMBER
        )
    # Nothing changed behind the refusals.
    row = await ticket_row(core, theirs.id)
    assert (row.title, row.status, row.priority, row.deleted_at) == (
        theirs.title,
        "open",
        "medium",
        None,
    )


async def test_customer_sees_own_tickets_including_those_staff_opened_for_them(core):
    cast = await make_cast(core)
    own = await make_ticket(core, cast.alice)
    for_her = await make_ticket(core, cast.alice, by=cast.agent)
    await make_ticket(core, cast.bob)
    await make_ticket(core, cast.carol)
    assert await visible_numbers(core, cast.alice.id) == {own.number, for_her.number}
    detail = await get_ticket(core, actor_id=cast.alice.id, ticket=for_her.number)
    assert detail.ticket.id == for_her.id


async def test_corporate_sees_only_their_companies_tickets(core):
    cast = await make_cast(core)
    a = await make_ticket(core, cast.alice)
    b = await make_ticket(core, cast.bob)
    none = await make_ticket(core, cast.carol)
    assert await visible_numbers(core, cast.corp_a.id) == {a.number}
    assert await visible_numbers(core, cast.corp_b_plus_a.id) == {a.number, b.number}
    assert await visible_numbers(core, cast.corp_none.id) == set()
    await get_ticket(core, actor_id=cast.corp_a.id, ticket=a.number)
    for corporate in (cast.corp_a, cast.corp_b_plus_a, cast.corp_none):
        with pytest.raises(NotFound):
            await get_ticket(core, actor_id=corporate.id, ticket=none.number)
    with pytest.raises(NotFound):
        await get_ticket(core, actor_id=cast.corp_a.id, ticket=b.number)


async def test_corporate_scope_is_read_fresh_on_every_call(core):
    cast = await make_cast(core)
    b = await make_ticket(core, cast.bob)
    assert await visible_numbers(core, cast.corp_a.id) == set()
    async with core.db.transaction() as session:
        session.add(CorporateMembership(user_id=cast.corp_a.id, company_id=cast.company_b))
    assert await visible_numbers(core, cast.corp_a.id) == {b.number}


@pytest.mark.parametrize("role", ["agent", "manager", "admin"])
async def test_global_staff_see_every_ticket(core, role):
    cast = await make_cast(core)
    tickets = [await make_ticket(core, c) for c in (cast.alice, cast.bob, cast.carol)]
    actor = getattr(cast, role)
    assert await visible_numbers(core, actor.id) == {t.number for t in tickets}
    for ticket in tickets:
        await get_ticket(core, actor_id=actor.id, ticket=ticket.number)


async def test_deactivated_user_reads_nothing(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await deactivate(core, cast.alice.id)
    await deactivate(core, cast.agent.id)
    for actor in (cast.alice, cast.agent):
        with pytest.raises(Forbidden):
            await get_ticket(core, actor_id=actor.id, ticket=ticket.number)
        with pytest.raises(Forbidden):
            await list_tickets(core, actor_id=actor.id)


# --------------------------------------------------------------------------------------------
# deletion


async def test_deleted_ticket_vanishes_and_refuses_every_change(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await assign_ticket(
        core, actor_id=cast.agent.id, ticket=ticket.number, assignee_id=cast.agent.id
    )
    kept = await make_ticket(core, cast.alice)
    await delete_ticket(core, actor_id=cast.manager.id, ticket=ticket.number, reason="spam")

    for actor in (cast.alice, cast.corp_a, cast.agent, cast.manager, cast.admin):
        with pytest.raises(NotFound):
            await get_ticket(core, actor_id=actor.id, ticket=ticket.number)
        assert ticket.number not in await visible_numbers(core, actor.id)
    assert {t.number for t in (await my_tickets(core, actor_id=cast.alice.id)).items} == {
        kept.number
    }
    assert (await my_tickets(core, actor_id=cast.agent.id)).items == ()

    for name, call in TICKET_CALLS:
        for actor in (cast.alice, cast.manager, cast.admin):
            error = await refusal(call, core, actor.id, ticket.number)
            assert isinstance(error, NotFound), (name, error)
            missing = await refusal(call, core, actor.id, MISSING_NUMBER)
            assert error_shape(error, number=ticket.number) == error_shape(
                missing, number=MISSING_NUMBER
            )

    row = await ticket_row(core, ticket.id)
    assert row.deleted_at == clock.now() and row.deleted_by_id == cast.manager.id
    assert await sla_next_alert(core, ticket.id) is None
    entries = await audit_entries(core, ticket.id)
    assert entries[-1].action == "ticket.deleted"
    assert entries[-1].actor_id == cast.manager.id
    assert entries[-1].details["reason"] == "spam"
    assert entries[-1].details["number"] == ticket.number


@pytest.mark.parametrize("role", ["alice", "corp_a", "agent"])
async def test_only_managers_and_admins_delete_tickets(core, role):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(Forbidden):
        await delete_ticket(core, actor_id=getattr(cast, role).id, ticket=ticket.number)
    assert (await ticket_row(core, ticket.id)).deleted_at is None
    await delete_ticket(core, actor_id=cast.admin.id, ticket=ticket.number)
    assert (await ticket_row(core, ticket.id)).deleted_at is not None


async def test_permission_denials_are_logged(core, caplog):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with caplog.at_level(logging.WARNING, logger="core.access"), pytest.raises(Forbidden):
        await delete_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    denial = [r for r in caplog.records if r.getMessage() == "permission denied"]
    assert denial and denial[0].__dict__["action"] == "ticket.delete"
    assert denial[0].__dict__["actor_id"] == cast.alice.id


def test_error_codes_are_stable():
    # The Slack layer maps these codes to text; renaming one is a breaking change.
    assert {code.value for code in ErrorCode} >= {
        "NOT_FOUND",
        "FORBIDDEN",
        "VALIDATION",
        "INVALID_TRANSITION",
        "TICKET_CLOSED",
        "EDIT_WINDOW_EXPIRED",
        "RATE_LIMITED",
        "CONFLICT",
    }
    assert NotFound("x").code is ErrorCode.NOT_FOUND
    assert Forbidden("x").code is ErrorCode.FORBIDDEN
