"""Replies and internal notes: who writes and sees them, the first response, edits and deletes."""

from __future__ import annotations

import pytest

from core import repository
from core.enums import Audience, Role, Status
from core.errors import (
    Conflict,
    EditWindowExpired,
    Forbidden,
    NotFound,
    TicketClosed,
    ValidationFailed,
)
from core.models import ChatMessage, Reply, ReplyEdit
from core.replies import (
    ChatOrigin,
    add_reply,
    delete_reply,
    edit_reply,
    reply_for_audience,
    reply_history,
)
from core.tickets import change_status, delete_ticket, get_ticket
from tests.core.ticket_support import (
    audit_actions,
    captured_sql,
    count_rows,
    error_shape,
    history_rows,
    make_cast,
    reply_row,
    set_role,
    sla_next_alert,
    ticket_row,
)
from tests.factories import make_ticket, make_user, outbox_rows

MISSING_REPLY = 987_654


async def reply(core, actor, ticket, body="Hello", *, internal=False, **kwargs):
    return await add_reply(
        core, actor_id=actor.id, ticket=ticket.number, body=body, internal=internal, **kwargs
    )


async def bodies(core, actor, ticket) -> list[str]:
    detail = await get_ticket(core, actor_id=actor.id, ticket=ticket.number)
    return [r.body for r in detail.replies]


# --------------------------------------------------------------------------------------------
# internal notes


async def test_customer_cannot_see_internal_notes(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await reply(core, cast.agent, ticket, "Public answer")
    await reply(core, cast.agent, ticket, "Customer seems confused", internal=True)
    await reply(core, cast.alice, ticket, "Thanks")
    assert await bodies(core, cast.alice, ticket) == ["Public answer", "Thanks"]
    staff_view = ["Public answer", "Customer seems confused", "Thanks"]
    for staff in (cast.agent, cast.corp_a, cast.corp_b_plus_a, cast.admin):
        assert await bodies(core, staff, ticket) == staff_view
    detail = await get_ticket(core, actor_id=cast.agent.id, ticket=ticket.number)
    assert [r.is_internal for r in detail.replies] == [False, True, False]


async def test_internal_notes_are_filtered_in_the_sql_query(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await reply(core, cast.agent, ticket, "public")
    await reply(core, cast.agent, ticket, "secret", internal=True)
    with captured_sql(core) as statements:
        await get_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    reply_queries = [s for s in statements if "FROM replies" in s]
    assert reply_queries, statements
    assert all("is_internal" in s.split("WHERE", 1)[1] for s in reply_queries)
    async with core.db.transaction() as session:
        public = await repository.visible_replies(session, ticket.id, include_internal=False)
        everything = await repository.visible_replies(session, ticket.id, include_internal=True)
    assert [r.body for r in public] == ["public"]
    assert [r.body for r in everything] == ["public", "secret"]


async def test_customer_cannot_write_an_internal_note(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(Forbidden):
        await reply(core, cast.alice, ticket, "let me in", internal=True)
    assert await count_rows(core, Reply) == 0
    assert await audit_actions(core, ticket.id) == ["ticket.created"]


async def test_customer_cannot_reach_a_note_by_its_id(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    note = await reply(core, cast.agent, ticket, "internal", internal=True)
    await edit_reply(core, actor_id=cast.agent.id, reply_id=note.id, body="internal v2")
    calls = [
        lambda rid: edit_reply(core, actor_id=cast.alice.id, reply_id=rid, body="x"),
        lambda rid: delete_reply(core, actor_id=cast.alice.id, reply_id=rid),
        lambda rid: reply_history(core, actor_id=cast.alice.id, reply_id=rid),
    ]
    for call in calls:
        with pytest.raises(NotFound) as hidden:
            await call(note.id)
        with pytest.raises(NotFound) as missing:
            await call(MISSING_REPLY)
        assert error_shape(hidden.value) == error_shape(missing.value)
    row = await reply_row(core, note.id)
    assert (row.body, row.deleted_at) == ("internal v2", None)


async def test_reply_for_audience_never_returns_a_note_to_the_customer_audience(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    note = await reply(core, cast.agent, ticket, "internal", internal=True)
    public = await reply(core, cast.agent, ticket, "public")
    assert await reply_for_audience(core, reply_id=note.id, audience=Audience.CUSTOMER) is None
    staff_copy = await reply_for_audience(core, reply_id=note.id, audience=Audience.STAFF)
    assert staff_copy is not None and staff_copy.body == "internal"
    customer_copy = await reply_for_audience(core, reply_id=public.id, audience=Audience.CUSTOMER)
    assert customer_copy is not None and customer_copy.body == "public"


async def test_a_note_never_produces_a_customer_outbox_message(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    notes = [
        await reply(core, cast.agent, ticket, "plain note", internal=True),
        await reply(
            core,
            cast.agent,
            ticket,
            "note from the staff thread",
            internal=True,
            origin=ChatOrigin(Audience.STAFF, "C1", "1.1"),
        ),
        await reply(
            core,
            cast.corp_a,
            ticket,
            "note typed in the customer thread",
            internal=True,
            origin=ChatOrigin(Audience.CUSTOMER, "D1", "1.2"),
        ),
    ]
    await edit_reply(core, actor_id=cast.agent.id, reply_id=notes[0].id, body="edited note")
    await delete_reply(core, actor_id=cast.agent.id, reply_id=notes[1].id)
    new = (await outbox_rows(core, ticket.id))[before:]
    assert new, "the staff side must still hear about the notes"
    for message in new:
        assert not message.kind.startswith("customer_"), message.kind
        assert not message.thread_key.startswith("customer:"), message.thread_key
        assert message.payload.get("audience") != "customer"
    # A public reply, by contrast, goes to both threads.
    await reply(core, cast.agent, ticket, "public")
    latest = (await outbox_rows(core, ticket.id))[-4:]
    assert "customer_thread_post" in [m.kind for m in latest]


async def test_reply_written_in_chat_is_linked_and_not_relayed_back(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    view = await reply(
        core, cast.agent, ticket, "from slack", origin=ChatOrigin(Audience.STAFF, "C9", "9.9")
    )
    kinds = [m.kind for m in (await outbox_rows(core, ticket.id))[before:]]
    assert "staff_thread_post" not in kinds
    assert "customer_thread_post" in kinds
    async with core.db.transaction() as session:
        link = await session.get(ChatMessage, ("C9", "9.9"))
        assert link is not None and link.reply_id == view.id and link.is_copy is False


# --------------------------------------------------------------------------------------------
# replying


async def test_cannot_reply_to_closed_ticket(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Done"
    )
    for actor, internal in ((cast.alice, False), (cast.agent, False), (cast.agent, True)):
        with pytest.raises(TicketClosed) as refused:
            await reply(core, actor, ticket, "anyone there?", internal=internal)
        assert f"#{ticket.number}" in refused.value.message
    assert await count_rows(core, Reply) == 0
    assert (await ticket_row(core, ticket.id)).status == "closed"


async def test_cannot_reply_to_deleted_or_hidden_ticket(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(NotFound):
        await reply(core, cast.bob, ticket, "hi")
    with pytest.raises(NotFound):
        await reply(core, cast.corp_none, ticket, "hi", internal=True)
    await delete_ticket(core, actor_id=cast.admin.id, ticket=ticket.number)
    for actor in (cast.alice, cast.agent, cast.admin):
        with pytest.raises(NotFound):
            await reply(core, actor, ticket, "hi")
    assert await count_rows(core, Reply) == 0


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.WAITING_ON_CUSTOMER])
async def test_customer_reply_reopens_the_ticket(core, clock, status):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status=status, reason="Done"
    )
    clock.advance(minutes=1)
    await reply(core, cast.alice, ticket, "It broke again")
    row = await ticket_row(core, ticket.id)
    assert row.status == "open" and row.resolved_at is None
    last = (await history_rows(core, ticket.id))[-1]
    assert (last.from_status, last.to_status, last.reason) == (
        status.value,
        "open",
        "Customer replied",
    )
    assert last.changed_by_id == cast.alice.id and last.changed_at == clock.now()
    assert (await audit_actions(core, ticket.id))[-2:] == ["reply.added", "ticket.status_changed"]


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.WAITING_ON_CUSTOMER])
async def test_staff_reply_leaves_the_status_alone(core, status):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status=status, reason="Done"
    )
    await reply(core, cast.agent, ticket, "Any news?")
    await reply(core, cast.corp_a, ticket, "Note", internal=True)
    assert (await ticket_row(core, ticket.id)).status == status.value


async def test_reply_body_is_cleaned_and_validated(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await reply(core, cast.alice, ticket, "  Hi\x00 there \r\n ")
    assert view.body == "Hi there"
    for bad in ("", "   ", "x" * 3001):
        with pytest.raises(ValidationFailed) as refused:
            await reply(core, cast.alice, ticket, bad)
        assert refused.value.field == "message"
    assert await count_rows(core, Reply) == 1


async def test_first_response_timestamp_set_correctly(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)

    async def first_response():
        return (await ticket_row(core, ticket.id)).first_response_at

    clock.advance(minutes=1)
    await reply(core, cast.alice, ticket, "Any update?")  # the customer: not a response
    await reply(core, cast.agent, ticket, "Checking logs", internal=True)  # a note: not either
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="in_progress")
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="waiting_on_customer"
    )
    await reply(core, cast.alice, ticket, "Here is the serial")  # reopens, still no response
    assert await first_response() is None
    assert await sla_next_alert(core, ticket.id) is not None

    clock.advance(minutes=20)
    answered_at = clock.now()
    await reply(core, cast.corp_a, ticket, "We are on it")
    assert await first_response() == answered_at
    assert await sla_next_alert(core, ticket.id) is None

    clock.advance(hours=1)
    await reply(core, cast.agent, ticket, "Fixed now")
    await reply(core, cast.admin, ticket, "Confirmed")
    assert await first_response() == answered_at  # never overwritten
    detail = await get_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    assert detail.ticket.first_response_at == answered_at


async def test_staff_member_who_is_the_customer_does_not_give_a_first_response(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await set_role(core, cast.alice.id, Role.AGENT)  # promoted after opening the ticket
    await reply(core, cast.alice, ticket, "Adding detail as the requester")
    assert (await ticket_row(core, ticket.id)).first_response_at is None


# --------------------------------------------------------------------------------------------
# editing


async def test_edit_reply(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    original = await reply(core, cast.alice, ticket, "Teh printer")
    clock.advance(minutes=5)
    edited = await edit_reply(
        core, actor_id=cast.alice.id, reply_id=original.id, body="The printer"
    )
    assert (edited.body, edited.edited_at, edited.is_internal) == (
        "The printer",
        clock.now(),
        False,
    )
    clock.advance(minutes=5)
    await edit_reply(core, actor_id=cast.alice.id, reply_id=original.id, body="The printer, again")
    assert await reply_history(core, actor_id=cast.alice.id, reply_id=original.id) == [
        "Teh printer",
        "The printer",
    ]
    # Staff who see the reply see its history too.
    assert len(await reply_history(core, actor_id=cast.agent.id, reply_id=original.id)) == 2
    assert await count_rows(core, ReplyEdit, ReplyEdit.reply_id == original.id) == 2
    row = await reply_row(core, original.id)
    assert (row.body, row.edited_by_id) == ("The printer, again", cast.alice.id)
    assert await bodies(core, cast.alice, ticket) == ["The printer, again"]
    assert (await audit_actions(core, ticket.id)).count("reply.edited") == 2
    # The same text again is not an edit.
    await edit_reply(core, actor_id=cast.alice.id, reply_id=original.id, body="The printer, again")
    assert await count_rows(core, ReplyEdit) == 2


async def test_editing_a_note_keeps_it_internal(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    note = await reply(core, cast.agent, ticket, "internal", internal=True)
    edited = await edit_reply(core, actor_id=cast.agent.id, reply_id=note.id, body="still internal")
    assert edited.is_internal is True
    assert (await reply_row(core, note.id)).is_internal is True
    assert await bodies(core, cast.alice, ticket) == []
    kinds = [m.payload.get("audience") for m in await outbox_rows(core, ticket.id)]
    assert "customer" not in kinds


async def test_edit_window_is_24_hours(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    early = await reply(core, cast.agent, ticket, "v1")
    late = await reply(core, cast.agent, ticket, "v1")
    clock.advance(hours=24)
    await edit_reply(core, actor_id=cast.agent.id, reply_id=early.id, body="v2")  # just in time
    clock.advance(seconds=1)
    with pytest.raises(EditWindowExpired) as refused:
        await edit_reply(core, actor_id=cast.agent.id, reply_id=late.id, body="v2")
    assert "24" in refused.value.message
    assert (await reply_row(core, late.id)).body == "v1"


async def test_only_the_author_edits_a_reply(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    staff_reply = await reply(core, cast.agent, ticket, "from agent")
    customer_reply = await reply(core, cast.alice, ticket, "from alice")
    for actor, target in (
        (cast.alice, staff_reply),
        (cast.manager, staff_reply),
        (cast.admin, customer_reply),
        (cast.corp_a, customer_reply),
    ):
        with pytest.raises(Forbidden):
            await edit_reply(core, actor_id=actor.id, reply_id=target.id, body="hijack")
    with pytest.raises(NotFound):  # cannot even see it
        await edit_reply(core, actor_id=cast.bob.id, reply_id=customer_reply.id, body="x")
    assert await count_rows(core, ReplyEdit) == 0


async def test_no_edits_on_closed_tickets(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    mine = await reply(core, cast.alice, ticket, "typo")
    await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status="closed")
    with pytest.raises(TicketClosed):
        await edit_reply(core, actor_id=cast.alice.id, reply_id=mine.id, body="fixed")
    assert (await reply_row(core, mine.id)).body == "typo"


async def test_edit_body_is_validated(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    mine = await reply(core, cast.alice, ticket, "text")
    with pytest.raises(ValidationFailed) as refused:
        await edit_reply(core, actor_id=cast.alice.id, reply_id=mine.id, body=" \n ")
    assert refused.value.field == "message"


# --------------------------------------------------------------------------------------------
# deleting


async def test_author_deletes_own_reply(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    mine = await reply(core, cast.alice, ticket, "oops")
    await delete_reply(core, actor_id=cast.alice.id, reply_id=mine.id)
    assert await bodies(core, cast.alice, ticket) == []
    assert await bodies(core, cast.agent, ticket) == []
    row = await reply_row(core, mine.id)
    assert (row.deleted_at, row.deleted_by_id) == (clock.now(), cast.alice.id)
    assert (await audit_actions(core, ticket.id))[-1] == "reply.deleted"
    for call in (
        delete_reply(core, actor_id=cast.alice.id, reply_id=mine.id),
        edit_reply(core, actor_id=cast.alice.id, reply_id=mine.id, body="back"),
    ):
        with pytest.raises(NotFound):
            await call


async def test_only_author_manager_or_admin_delete_a_reply(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    target = await reply(core, cast.agent, ticket, "agent text")
    for actor in (cast.alice, cast.corp_a, await make_user(core, Role.AGENT)):
        with pytest.raises(Forbidden):
            await delete_reply(core, actor_id=actor.id, reply_id=target.id)
    assert (await reply_row(core, target.id)).deleted_at is None
    await delete_reply(core, actor_id=cast.manager.id, reply_id=target.id)
    other = await reply(core, cast.alice, ticket, "alice text")
    await delete_reply(core, actor_id=cast.admin.id, reply_id=other.id)
    assert await bodies(core, cast.agent, ticket) == []


async def test_messages_of_a_closed_ticket_can_still_be_taken_back(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    mine = await reply(core, cast.alice, ticket, "password: hunter2")
    staff = await reply(core, cast.agent, ticket, "noted")
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Done"
    )
    await delete_reply(core, actor_id=cast.alice.id, reply_id=mine.id)
    assert (await reply_row(core, mine.id)).deleted_by_id == cast.alice.id
    with pytest.raises(Forbidden):  # still only the author or a manager
        await delete_reply(core, actor_id=cast.alice.id, reply_id=staff.id)
    assert (await ticket_row(core, ticket.id)).status == "closed"


# --------------------------------------------------------------------------------------------
# idempotency


async def test_reply_idempotency_key_returns_the_first_reply(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    first = await reply(core, cast.alice, ticket, "once", idempotency_key="evt-1")
    outbox_before = len(await outbox_rows(core, ticket.id))
    again = await reply(core, cast.alice, ticket, "once", idempotency_key="evt-1")
    assert again == first
    assert await count_rows(core, Reply) == 1
    assert len(await outbox_rows(core, ticket.id)) == outbox_before
    assert (await audit_actions(core, ticket.id)).count("reply.added") == 1


async def test_reply_idempotency_key_never_hands_over_someone_elses_note(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await reply(core, cast.agent, ticket, "secret note", internal=True, idempotency_key="evt-9")
    with pytest.raises(Conflict) as refused:
        await reply(core, cast.alice, ticket, "hello", idempotency_key="evt-9")
    assert "secret" not in refused.value.message
    other = await make_ticket(core, cast.alice)
    with pytest.raises(Conflict):  # same author, another ticket
        await reply(core, cast.agent, other, "x", idempotency_key="evt-9")
    assert await count_rows(core, Reply) == 1


async def test_blank_reply_idempotency_key_means_no_key(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    a = await reply(core, cast.alice, ticket, "a", idempotency_key="")
    b = await reply(core, cast.alice, ticket, "b", idempotency_key="")
    assert a.id != b.id
