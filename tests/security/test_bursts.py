"""Bursts (what the load benchmark showed): acks go out at once, the work after them queues
behind a bounded number of slots instead of flooding the event loop and the connection pool,
and one person's burst costs one users.info lookup, not one per request."""

from __future__ import annotations

import asyncio
import time

from core import tickets
from devslack.stage import CUSTOMER, Stage
from tests.security.support import INTERNALS


async def test_a_burst_of_one_persons_requests_makes_one_users_info_call(stage: Stage):
    stage.fake.add_user("UNEWBIE001", "New Person", email="new@example.com")
    newbie = stage.user("UNEWBIE001")
    dm = stage.fake.open_dm("UNEWBIE001")
    before = len(stage.fake.calls_to("users.info"))
    responses = await asyncio.gather(
        *(stage.send(newbie.slash_command("mine", channel_id=dm)) for _ in range(20))
    )
    await stage.settle()
    assert all(r.status == 200 for r in responses)
    assert len(stage.fake.calls_to("users.info")) - before == 1
    answers = [e.text_content for e in stage.fake.ephemerals("UNEWBIE001")]
    assert len(answers) == 20 and not any(INTERNALS.search(a) for a in answers)


async def test_work_after_the_ack_waits_for_a_slot_and_acks_do_not(stage: Stage, monkeypatch):
    runtime = stage.runtime
    runtime.work_slots = asyncio.Semaphore(2)
    running = 0
    most = 0
    real = tickets.list_tickets

    async def slow_list(*args, **kwargs):
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.1)
            return await real(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(tickets, "list_tickets", slow_list)
    customer = stage.user(CUSTOMER)
    dm = stage.dm(CUSTOMER)
    started = time.monotonic()
    responses = await asyncio.gather(
        *(stage.send(customer.slash_command("list", channel_id=dm)) for _ in range(12))
    )
    acked_after = time.monotonic() - started
    assert all(r.status == 200 for r in responses)
    # every ack went out long before the queued work was done (12 x 100 ms / 2 slots = 600 ms)
    assert acked_after < 0.4, acked_after
    await stage.settle()
    assert most == 2
    assert len(stage.fake.ephemerals(CUSTOMER.user_id)) == 12
