"""The per-actor limit on messages written: replies, notes and edits share one budget, a refused
message writes nothing, the window passing frees it, and an idempotent replay is not counted."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.context import Core
from core.enums import Audience, Status
from core.errors import ErrorCode, RateLimited
from core.models import AuditEntry, ChatMessage, OutboxMessage, RateLimitCounter, Reply, ReplyEdit
from core.replies import MESSAGE_BUCKET, ChatOrigin, add_reply, edit_reply
from core.settings import CoreSettings
from core.tickets import get_ticket
from tests.conftest import settings_for
from tests.core.ticket_support import (
    bring_to,
    captured_sql,
    count_rows,
    history_rows,
    make_cast,
    reply_row,
    ticket_row,
)
from tests.factories import make_ticket


def limited_core(core: Core, database_url: str, limit: int = 3) -> Core:
    """The test's core with a small message limit per minute (the suite raises it for others)."""
    settings = settings_for(database_url, message_limit=limit, message_window_seconds=60)
    return Core(db=core.db, settings=settings, clock=core.clock)


async def write(core, actor, ticket, body="Hello", *, internal=False, **kwargs):
    return await add_reply(
        core, actor_id=actor.id, ticket=ticket.number, body=body, internal=internal, **kwargs
    )


async def counted(core: Core, actor_id: int, window_start) -> int | None:
    async with core.db.transaction() as session:
        counter = await session.get(RateLimitCounter, (actor_id, MESSAGE_BUCKET, window_start))
        return None if counter is None else counter.count


async def table_counts(core: Core) -> dict[str, int]:
    models = (Reply, ReplyEdit, ChatMessage, OutboxMessage, AuditEntry)
    return {model.__tablename__: await count_rows(core, model) for model in models}


def test_defaults_and_the_longest_window():
    fields = CoreSettings.model_fields
    assert (fields["message_limit"].default, fields["message_window_seconds"].default) == (30, 60)
    week = 7 * 24 * 3600
    longer = settings_for("sqlite+aiosqlite:///x.db", message_window_seconds=week)
    # Housekeeping keeps counters for the longest window: the message window is one of them.
    assert longer.longest_rate_limit_window == timedelta(seconds=week)


async def test_message_past_the_limit_is_refused_and_changes_nothing(core, clock, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=3)
    clock.advance(seconds=10)  # the clock starts on a whole minute: 50 s of this window are left
    for n in range(3):
        await write(limited, cast.alice, ticket, f"message {n}")
    # Waiting on the customer: an accepted answer from her would reopen the ticket.
    await bring_to(core, ticket, Status.WAITING_ON_CUSTOMER, by=cast.agent)
    before = await table_counts(core)
    row_before = await ticket_row(core, ticket.id)
    history_before = len(await history_rows(core, ticket.id))

    with captured_sql(core) as statements, pytest.raises(RateLimited) as refused:
        await write(
            limited,
            cast.alice,
            ticket,
            "one too many",
            origin=ChatOrigin(Audience.CUSTOMER, "D1", "1.4"),
            idempotency_key="message:D1:1.4",
        )

    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.retry_after_seconds == 50
    assert refused.value.message == (
        "You can write or edit a message at most 3 times per minute. "
        "Please try again in 50 seconds."
    )
    # Checked before anything is written: the refused call never reached an INSERT of a reply.
    assert not [s for s in statements if s.upper().startswith("INSERT INTO REPLIES")]
    assert await table_counts(core) == before
    row_after = await ticket_row(core, ticket.id)
    assert row_after.status == Status.WAITING_ON_CUSTOMER.value  # not reopened by the refusal
    assert row_after.updated_at == row_before.updated_at
    assert len(await history_rows(core, ticket.id)) == history_before
    # The refused attempt's increment went back with it.
    window_start = clock.now() - timedelta(seconds=10)
    assert await counted(core, cast.alice.id, window_start) == 3


async def test_window_passing_lets_them_write_again(core, clock, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=2)
    await write(limited, cast.alice, ticket, "1")
    await write(limited, cast.alice, ticket, "2")
    with pytest.raises(RateLimited) as refused:
        await write(limited, cast.alice, ticket, "3")
    # Refused at the window's first second: the whole minute is left, and said so.
    assert refused.value.retry_after_seconds == 60
    assert refused.value.message.endswith("Please try again in 1 minute.")
    clock.advance(seconds=refused.value.retry_after_seconds - 1)
    with pytest.raises(RateLimited):
        await write(limited, cast.alice, ticket, "still too early")
    clock.advance(seconds=1)
    await write(limited, cast.alice, ticket, "3")
    detail = await get_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    assert [r.body for r in detail.replies] == ["1", "2", "3"]


async def test_limit_is_per_actor(core, database_url):
    cast = await make_cast(core)
    alices = await make_ticket(core, cast.alice)
    bobs = await make_ticket(core, cast.bob)
    limited = limited_core(core, database_url, limit=2)
    await write(limited, cast.alice, alices, "1")
    await write(limited, cast.alice, alices, "2")
    with pytest.raises(RateLimited):
        await write(limited, cast.alice, alices, "3")
    # Another customer, and staff on the very ticket Alice flooded, still have their budget.
    await write(limited, cast.bob, bobs, "bob 1")
    await write(limited, cast.bob, bobs, "bob 2")
    await write(limited, cast.agent, alices, "agent reply")
    await write(limited, cast.agent, alices, "agent note", internal=True)
    assert await count_rows(core, Reply) == 6


async def test_replies_notes_and_edits_share_one_budget(core, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=3)
    public = await write(limited, cast.agent, ticket, "Please reboot")
    await write(limited, cast.agent, ticket, "Probably the VPN client", internal=True)
    await edit_reply(limited, actor_id=cast.agent.id, reply_id=public.id, body="Please restart")

    with pytest.raises(RateLimited):
        await write(limited, cast.agent, ticket, "another note", internal=True)
    with pytest.raises(RateLimited):
        await write(limited, cast.agent, ticket, "another reply")
    with pytest.raises(RateLimited):
        await edit_reply(limited, actor_id=cast.agent.id, reply_id=public.id, body="Reboot twice")
    # The refused edit wrote nothing: the text and its history are as the accepted edit left them.
    assert (await reply_row(core, public.id)).body == "Please restart"
    assert await count_rows(core, ReplyEdit) == 1
    assert await count_rows(core, Reply) == 2


async def test_an_edit_that_changes_nothing_is_not_counted(core, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=2)
    first = await write(limited, cast.alice, ticket, "Same text")
    for _ in range(3):
        await edit_reply(limited, actor_id=cast.alice.id, reply_id=first.id, body="Same text")
    await write(limited, cast.alice, ticket, "second")  # the second of two: still allowed
    with pytest.raises(RateLimited):
        await write(limited, cast.alice, ticket, "third")


async def test_replayed_idempotent_call_does_not_count(core, clock, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=2)
    first = await write(limited, cast.alice, ticket, "once", idempotency_key="message:D1:1.1")
    for _ in range(3):  # Slack retrying the same message
        again = await write(limited, cast.alice, ticket, "once", idempotency_key="message:D1:1.1")
        assert again.id == first.id
    assert await counted(core, cast.alice.id, clock.now()) == 1
    await write(limited, cast.alice, ticket, "second", idempotency_key="message:D1:1.2")
    # At the limit a replay still answers with its message, while a new one is refused.
    replayed = await write(limited, cast.alice, ticket, "once", idempotency_key="message:D1:1.1")
    assert replayed.id == first.id
    with pytest.raises(RateLimited):
        await write(limited, cast.alice, ticket, "third", idempotency_key="message:D1:1.3")
    assert await counted(core, cast.alice.id, clock.now()) == 2
    assert await count_rows(core, Reply) == 2


async def test_a_refused_key_is_not_used_up(core, clock, database_url):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    limited = limited_core(core, database_url, limit=1)
    await write(limited, cast.alice, ticket, "first", idempotency_key="k1")
    with pytest.raises(RateLimited) as refused:
        await write(limited, cast.alice, ticket, "later", idempotency_key="k2")
    clock.advance(seconds=refused.value.retry_after_seconds)
    sent = await write(limited, cast.alice, ticket, "later", idempotency_key="k2")
    assert sent.body == "later"
    assert await count_rows(core, Reply) == 2
