"""`/ticket audit N`: managers and admins read a ticket's audit log in Slack, newest first and
paged; everyone else is refused with FORBIDDEN, an unknown ticket is NOT_FOUND."""

from __future__ import annotations

from devslack.stage import ADMIN, AGENT, CUSTOMER, MANAGER
from tests.bot.e2e_support import open_ticket
from tests.bot.test_e2e_commands import run


async def test_managers_and_admins_read_a_tickets_audit_log(stage):
    opened = await open_ticket(stage)
    n = opened.number
    assert "is now urgent" in await run(stage, AGENT, f"priority {n} urgent")
    answer = await run(stage, MANAGER, f"audit #{n}")
    assert f"Audit log of ticket #{n}" in answer
    lines = [line for line in answer.splitlines() if "UTC" in line]
    assert "ticket.priority_changed" in lines[0] and f"#{n}" in lines[0]
    assert f"({AGENT.user_id})" in lines[0] and "priority=urgent" in lines[0]
    assert "ticket.created" in lines[-1]
    assert "page 1 of 1" in answer
    assert f"Audit log of ticket #{n}" in await run(stage, ADMIN, f"audit {n}")


async def test_audit_is_refused_to_agents_and_customers_and_unknown_tickets_are_not_found(stage):
    opened = await open_ticket(stage)
    assert "FORBIDDEN" in await run(stage, AGENT, f"audit {opened.number}")
    assert "FORBIDDEN" in await run(stage, CUSTOMER, f"audit {opened.number}")
    assert "NOT_FOUND" in await run(stage, MANAGER, "audit 999")
    for bad in (
        "audit",
        "audit x",
        f"audit {opened.number} extra",
        f"audit {opened.number} page 0",
    ):
        assert "VALIDATION" in await run(stage, MANAGER, bad), bad


async def test_a_long_audit_log_is_paged(stage):
    opened = await open_ticket(stage)
    n = opened.number
    for level in ("low", "high", "urgent", "medium") * 6:
        await run(stage, AGENT, f"priority {n} {level}")
    first = await run(stage, MANAGER, f"audit {n}")
    assert "page 1 of 2, 25 entries in all" in first and f"/ticket audit {n} page 2" in first
    second = await run(stage, MANAGER, f"audit {n} page 2")
    assert "page 2 of 2" in second and "ticket.created" in second
