"""Chat surfaces: a check recorded by any process holds or releases an audience's outbox
messages for every worker, and the managers' notice is queued once per change however many
processes record the same finding at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import select

from core import outbox, surfaces
from core.enums import Audience
from core.models import OutboxMessage
from core.outbox import OutboxKind
from core.surfaces import SurfaceChange, SurfaceProblem

CHANNEL = "CSTAFF0001"


async def record(core, problem, *, seconds_ago: float = 0, name: str = "support-triage"):
    return await surfaces.record_check(
        core,
        audience=Audience.STAFF,
        channel_id=CHANNEL,
        channel_name=name,
        problem=problem,
        detail=None,
        observed_at=core.clock.now() - timedelta(seconds=seconds_ago),
    )


async def notices(core) -> list[dict]:
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == OutboxKind.SURFACE_NOTICE.value)
            .order_by(OutboxMessage.id)
        )
        return [row.payload for row in rows]


async def test_unsafe_then_safe_again_is_told_once_each(core):
    assert await record(core, None) is SurfaceChange.UNCHANGED
    assert await record(core, SurfaceProblem.PUBLIC) is SurfaceChange.BECAME_UNSAFE
    assert await record(core, SurfaceProblem.PUBLIC) is SurfaceChange.UNCHANGED
    assert await record(core, SurfaceProblem.SHARED) is SurfaceChange.UNCHANGED
    state = await surfaces.state_of(core, audience=Audience.STAFF)
    assert state is not None and state.problem is SurfaceProblem.SHARED
    assert state.unsafe_since == core.clock.now()
    assert await record(core, None) is SurfaceChange.BECAME_SAFE
    told = await notices(core)
    assert [(n["problem"], n["previous"]) for n in told] == [("public", None), (None, "shared")]
    assert all(n["channel_id"] == CHANNEL and n["channel_name"] == "support-triage" for n in told)


async def test_an_older_observation_never_overwrites_a_newer_one(core):
    await record(core, SurfaceProblem.PUBLIC)
    # A replica whose conversations.info was sent before the newer check answers late.
    assert await record(core, None, seconds_ago=5) is SurfaceChange.STALE
    state = await surfaces.state_of(core, audience=Audience.STAFF)
    assert state is not None and state.problem is SurfaceProblem.PUBLIC


async def test_replicas_finding_the_same_exposure_at_once_queue_one_notice(core):
    await record(core, None)
    changes = await asyncio.gather(*(record(core, SurfaceProblem.PUBLIC) for _ in range(6)))
    assert changes.count(SurfaceChange.BECAME_UNSAFE) == 1
    assert len(await notices(core)) == 1


async def test_claims_skip_the_unsafe_audience_only_and_release_gives_back_unattempted(core):
    ticket = uuid.uuid4()
    now = core.clock.now()
    async with core.db.transaction() as session:
        for audience in (Audience.STAFF, Audience.CUSTOMER):
            outbox.enqueue(
                session,
                kind=OutboxKind.CUSTOMER_THREAD_POST
                if audience is Audience.CUSTOMER
                else OutboxKind.STAFF_THREAD_POST,
                ticket_id=None,
                key=outbox.thread_key(audience, ticket),
                now=now,
            )
    await record(core, SurfaceProblem.PUBLIC)

    claimed = await outbox.claim_batch(core, worker_id="w1")
    assert sorted(m.thread_key.partition(":")[0] for m in claimed) == ["customer", "manager"]

    await record(core, None)
    [staff] = await outbox.claim_batch(core, worker_id="w2")
    assert outbox.audience_of(staff.thread_key) is Audience.STAFF and staff.attempts == 1
    await outbox.release(core, message_id=staff.id, worker_id="w2")
    async with core.db.transaction() as session:
        row = await session.get(OutboxMessage, staff.id)
        assert row is not None and row.attempts == 0 and row.locked_until is None
        assert row.delivered_at is None and row.failed_at is None
    assert [m.id for m in await outbox.claim_batch(core, worker_id="w3")] == [staff.id]
