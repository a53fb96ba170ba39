"""Every state change is audited, and one service call is one transaction: when a later write
of a call fails, none of its earlier writes remain."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from core import audit, outbox
from core.context import Core
from core.models import Base, SlaTimer
from core.replies import add_reply, delete_reply, edit_reply
from core.tickets import (
    assign_ticket,
    change_priority,
    change_status,
    create_ticket,
    delete_ticket,
    update_ticket,
)
from tests.core.ticket_support import Cast, audit_entries, count_rows, make_cast
from tests.factories import make_ticket

WATCHED_TABLES = [
    "tickets",
    "replies",
    "reply_edits",
    "status_history",
    "audit_log",
    "outbox",
    "rate_limit_counters",
    "chat_messages",
]


class Boom(RuntimeError):
    """The injected failure."""


async def snapshot(core) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables a service call writes to."""
    state: dict[str, list[tuple[Any, ...]]] = {}
    async with core.db.transaction() as session:
        for name in WATCHED_TABLES:
            table = Base.metadata.tables[name]
            rows = (await session.execute(select(table))).all()
            state[name] = sorted((tuple(row) for row in rows), key=repr)
    return state


def fail_on_call(monkeypatch, module: Any, name: str, *, nth: int = 1, when=None) -> None:
    """Make `module.name` raise Boom on its nth call (among calls matching `when`)."""
    original = getattr(module, name)
    calls = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if when is None or when(kwargs):
            calls += 1
            if calls == nth:
                raise Boom(f"{name} failed on purpose")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, failing)


async def test_every_state_change_writes_an_audit_entry(core, clock):
    cast = await make_cast(core)
    ticket = await create_ticket(
        core, actor_id=cast.agent.id, title="Audit me", customer_id=cast.alice.id
    )
    n = ticket.number
    steps: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        (
            "ticket.updated",
            lambda: update_ticket(core, actor_id=cast.alice.id, ticket=n, title="t"),
        ),
        (
            "ticket.priority_changed",
            lambda: change_priority(core, actor_id=cast.agent.id, ticket=n, priority="high"),
        ),
        (
            "ticket.assigned",
            lambda: assign_ticket(
                core, actor_id=cast.agent.id, ticket=n, assignee_id=cast.agent.id
            ),
        ),
        (
            "ticket.transferred",
            lambda: assign_ticket(
                core, actor_id=cast.agent.id, ticket=n, assignee_id=cast.manager.id
            ),
        ),
        (
            "reply.added",
            lambda: add_reply(core, actor_id=cast.agent.id, ticket=n, body="hi", internal=False),
        ),
        (
            "note.added",
            lambda: add_reply(core, actor_id=cast.agent.id, ticket=n, body="nb", internal=True),
        ),
        (
            "ticket.status_changed",
            lambda: change_status(core, actor_id=cast.agent.id, ticket=n, status="resolved"),
        ),
        (
            "ticket.unassigned",
            lambda: assign_ticket(core, actor_id=cast.agent.id, ticket=n, assignee_id=None),
        ),
        ("ticket.deleted", lambda: delete_ticket(core, actor_id=cast.admin.id, ticket=n)),
    ]
    expected = ["ticket.created"]
    for action, step in steps:
        clock.advance(minutes=1)
        await step()
        expected.append(action)
        entries = await audit_entries(core, ticket.id)
        assert [e.action for e in entries] == expected
        assert entries[-1].created_at == clock.now()
    actors = [e.actor_id for e in await audit_entries(core, ticket.id)]
    assert actors[0] == cast.agent.id and actors[1] == cast.alice.id and actors[-1] == cast.admin.id


async def test_reply_edits_and_deletes_are_audited(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    message = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="a", internal=False
    )
    await edit_reply(core, actor_id=cast.alice.id, reply_id=message.id, body="b")
    await delete_reply(core, actor_id=cast.alice.id, reply_id=message.id)
    entries = await audit_entries(core, ticket.id)
    assert [e.action for e in entries] == [
        "ticket.created",
        "reply.added",
        "reply.edited",
        "reply.deleted",
    ]
    assert all(e.details["reply_id"] == message.id for e in entries[1:])


# --------------------------------------------------------------------------------------------
# rollback


@asynccontextmanager
async def failing_insert(core: Core, table: str, condition: str) -> AsyncIterator[None]:
    """Make the database itself refuse inserts into `table` of rows matching `condition` (on
    NEW), as a constraint would: the failure happens inside the service's own writes, after the
    ones that precede it, whichever statements the service uses to make them."""
    if core.db.dialect == "postgresql":
        setup = [
            "CREATE FUNCTION injected_failure() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'injected failure' USING ERRCODE = 'check_violation'; END $$",
            f"CREATE TRIGGER injected_failure BEFORE INSERT ON {table} FOR EACH ROW "
            f"WHEN ({condition}) EXECUTE FUNCTION injected_failure()",
        ]
        teardown = [
            f"DROP TRIGGER injected_failure ON {table}",
            "DROP FUNCTION injected_failure()",
        ]
    else:
        setup = [
            f"CREATE TRIGGER injected_failure BEFORE INSERT ON {table} WHEN {condition} "
            "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        ]
        teardown = ["DROP TRIGGER injected_failure"]
    async with core.db.transaction() as session:
        for statement in setup:
            await session.execute(text(statement))
    try:
        yield
    finally:
        async with core.db.transaction() as session:
            for statement in teardown:
                await session.execute(text(statement))


async def test_transaction_rollback_on_error(core):
    """Ticket creation: the ticket row is written, then the database refuses the audit entry."""
    cast = await make_cast(core)
    before = await snapshot(core)
    async with failing_insert(core, "audit_log", "NEW.action = 'ticket.created'"):
        with pytest.raises(IntegrityError, match="injected failure"):
            await create_ticket(core, actor_id=cast.alice.id, title="Never saved")
    after = await snapshot(core)
    assert after == before
    assert after["tickets"] == [] and after["status_history"] == []
    assert after["rate_limit_counters"] == []  # the rate-limit increment went with it
    assert await count_rows(core, SlaTimer) == 0
    view = await create_ticket(core, actor_id=cast.alice.id, title="Saved")
    assert view.title == "Saved"


async def test_creation_rolls_back_when_the_second_outbox_message_fails(core):
    cast = await make_cast(core)
    before = await snapshot(core)
    async with failing_insert(core, "outbox", "NEW.kind = 'customer_thread_create'"):
        with pytest.raises(IntegrityError, match="injected failure"):
            await create_ticket(core, actor_id=cast.agent.id, title="x", customer_id=cast.bob.id)
    assert await snapshot(core) == before
    assert await count_rows(core, SlaTimer) == 0


async def test_creation_rolls_back_on_a_constraint_violation(core):
    cast = await make_cast(core)
    first = await make_ticket(core, cast.alice)
    before = await snapshot(core)
    # Set the number source back: the next ticket gets the number of the first one.
    async with core.db.transaction() as session:
        if core.db.dialect == "postgresql":
            await session.execute(
                text("SELECT setval('ticket_number_seq', :n, false)"), {"n": first.number}
            )
        else:
            await session.execute(
                text("UPDATE ticket_counter SET value = :n"), {"n": first.number - 1}
            )
    with pytest.raises(IntegrityError):
        await create_ticket(core, actor_id=cast.alice.id, title="Clash")
    assert await snapshot(core) == before  # the rate-limit count of the failed call is gone


async def _ticket_for(core, cast: Cast, status: str | None = None):
    ticket = await make_ticket(core, cast.alice)
    if status:
        await change_status(
            core, actor_id=cast.agent.id, ticket=ticket.number, status=status, reason="Done"
        )
    return ticket


# (name, status to start from, module to break, function to break, the call under test)
OPERATIONS: list[tuple[str, str | None, Any, str, Callable[..., Awaitable[Any]]]] = [
    (
        "update",
        None,
        outbox,
        "enqueue",
        lambda core, cast, t: update_ticket(
            core, actor_id=cast.alice.id, ticket=t.number, title="u"
        ),
    ),
    (
        "priority",
        None,
        outbox,
        "enqueue",
        lambda core, cast, t: change_priority(
            core, actor_id=cast.agent.id, ticket=t.number, priority="urgent"
        ),
    ),
    (
        "status",
        None,
        outbox,
        "enqueue",
        lambda core, cast, t: change_status(
            core, actor_id=cast.agent.id, ticket=t.number, status="resolved", reason="r"
        ),
    ),
    (
        "assign",
        None,
        outbox,
        "enqueue",
        lambda core, cast, t: assign_ticket(
            core, actor_id=cast.manager.id, ticket=t.number, assignee_id=cast.agent.id
        ),
    ),
    (
        "first response",
        None,
        audit,
        "record",
        lambda core, cast, t: add_reply(
            core, actor_id=cast.agent.id, ticket=t.number, body="hello", internal=False
        ),
    ),
    (
        "reopening reply",
        "resolved",
        outbox,
        "enqueue",
        # The reply and its outbox rows are written; the status change that follows fails.
        lambda core, cast, t: add_reply(
            core, actor_id=cast.alice.id, ticket=t.number, body="again", internal=False
        ),
    ),
    (
        "delete",
        None,
        audit,
        "record",
        lambda core, cast, t: delete_ticket(core, actor_id=cast.admin.id, ticket=t.number),
    ),
]


@pytest.mark.parametrize(
    ("name", "setup", "module", "function", "call"),
    OPERATIONS,
    ids=[op[0] for op in OPERATIONS],
)
async def test_a_failed_write_leaves_no_trace_of_the_earlier_ones(
    core, monkeypatch, name, setup, module, function, call
):
    cast = await make_cast(core)
    ticket = await _ticket_for(core, cast, setup)
    before = await snapshot(core)
    if name == "reopening reply":
        fail_on_call(
            monkeypatch,
            module,
            function,
            when=lambda kwargs: kwargs.get("event") == "status_changed",
        )
    elif module is outbox:
        fail_on_call(monkeypatch, module, function, nth=1)
    else:
        fail_on_call(monkeypatch, module, function)
    with pytest.raises(Boom):
        await call(core, cast, ticket)
    assert await snapshot(core) == before
    monkeypatch.undo()
    await call(core, cast, ticket)  # and without the fault it goes through
    assert await snapshot(core) != before


async def test_failed_reply_edit_keeps_the_old_text_and_no_history(core, monkeypatch):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    message = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="old", internal=False
    )
    before = await snapshot(core)
    fail_on_call(monkeypatch, outbox, "enqueue", nth=2)  # the customer copy sync fails
    with pytest.raises(Boom):
        await edit_reply(core, actor_id=cast.alice.id, reply_id=message.id, body="new")
    assert await snapshot(core) == before
