"""Races on one ticket (PostgreSQL): two replicas of the bot and 50 concurrent staff actions
(assignments, status changes, replies, notes, assign-to-me clicks) sent at once over signed
HTTP. Whatever order the database picked, the result must be one of the valid serialisations:

* every action was answered exactly once, applied or refused with a code (never INTERNAL);
* the audit log records every applied change, and the status history and the assignment
  entries each form an unbroken chain (each change starts from the previous one's result), so
  no update was lost to a concurrent one;
* the ticket ends in the state of the last entry of each chain, and every message was stored
  and relayed exactly once.

Ticket changes lock the row (SELECT ... FOR UPDATE in core.access.load_ticket) and the version
column (version_id_col) turns a write that skipped the lock into a Conflict, not a lost update.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from bot.ids import Action
from core import tickets
from core.errors import Conflict
from core.models import AuditEntry, Reply, StatusChange, Ticket, User
from devslack.stage import ADMIN, AGENT, MANAGER, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import open_ticket, user
from tests.security.support import INTERNALS

pytestmark = pytest.mark.usefixtures("postgresql_only")

EXTRA_AGENTS = ["UAGENTX001", "UAGENTX002", "UAGENTX003"]
STATUSES = ["in_progress", "waiting_on_customer", "open", "resolved"]
ANSWER = re.compile(
    r"is assigned to|is now (?:in progress|waiting on customer|open|resolved)|Reply sent on"
    r"|Internal note added to|`(?:INVALID_TRANSITION|TICKET_CLOSED|CONFLICT|VALIDATION)`"
)


async def _staff(stage: Stage) -> list[str]:
    admin = stage.user(ADMIN)
    for index, slack_id in enumerate(EXTRA_AGENTS):
        stage.fake.add_user(slack_id, f"Extra Agent {index}", email=f"x{index}@support.test")
        await stage.act(admin.slash_command(f"role <@{slack_id}> agent", channel_id=STAFF_CHANNEL))
    return [AGENT.user_id, MANAGER.user_id, ADMIN.user_id, *EXTRA_AGENTS]


async def test_fifty_concurrent_staff_actions_on_two_replicas_serialise(stage, replica):
    staff = await _staff(stage)
    opened = await open_ticket(stage, title="Shared drive is read-only")
    number = opened.number
    rng = random.Random(5)
    requests: list[tuple[str, Any]] = []
    for i in range(50):
        actor = staff[i % len(staff)]
        person = stage.user(actor)
        kind = ["assign", "status", "reply", "note", "click"][i % 5]
        if kind == "assign":
            target = rng.choice(staff)
            text = f"assign {number} <@{target}>"
        elif kind == "status":
            text = f"status {number} {rng.choice(STATUSES)} race {i}"
        elif kind == "reply":
            text = f"reply {number} public answer [{i:02d}]"
        elif kind == "note":
            text = f"note {number} internal note [{i:02d}]"
        if kind == "click":
            card = stage.fake.message(STAFF_CHANNEL, opened.card.ts)
            request = person.click(Action.ASSIGN_TO_ME, message=card, channel_id=STAFF_CHANNEL)
        else:
            request = person.slash_command(text, channel_id=STAFF_CHANNEL)
        requests.append((kind, request))
    mark = len(stage.fake.calls)
    targets = [stage if i % 2 == 0 else replica for i in range(len(requests))]
    responses = await asyncio.gather(
        *(target.send(request) for target, (_, request) in zip(targets, requests, strict=True))
    )
    await stage.settle()
    assert all(r.status == 200 for r in responses), [r.status for r in responses]

    # Every command was answered once, applied or refused with a code; never an internal error.
    answers = [
        c.params.get("text", "") for c in stage.fake.calls[mark:] if c.method == "response_url"
    ]
    commands = sum(kind != "click" for kind, _ in requests)
    assert commands <= len(answers) <= len(requests), answers  # a click answers only if refused
    assert not [a for a in answers if INTERNALS.search(a)], answers
    assert all(ANSWER.search(a) for a in answers), [a for a in answers if not ANSWER.search(a)]
    applied = Counter(
        "status" if " is now " in a else "reply" if "Reply sent" in a else "note"
        for a in answers
        if "is now" in a or "Reply sent" in a or "Internal note added" in a
    )

    async with stage.runtime.core.db.transaction() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        audit = list(
            await session.scalars(
                select(AuditEntry).where(AuditEntry.ticket_id == ticket.id).order_by(AuditEntry.id)
            )
        )
        history = list(
            await session.scalars(
                select(StatusChange)
                .where(StatusChange.ticket_id == ticket.id)
                .order_by(StatusChange.id)
            )
        )
        stored = list(await session.scalars(select(Reply).where(Reply.ticket_id == ticket.id)))
        slack_ids = dict((await session.execute(select(User.id, User.slack_user_id))).all())

    # Status: an unbroken chain from creation, ending where the ticket is; one audit entry each.
    assert history[0].from_status is None and history[0].to_status == "open"
    for previous, change in itertools.pairwise(history):
        assert change.from_status == previous.to_status, (previous.to_status, change.from_status)
    assert ticket.status == history[-1].to_status
    status_audit = [a for a in audit if a.action == "ticket.status_changed"]
    assert len(status_audit) == len(history) - 1 == applied["status"]
    assert [a.details["status"] for a in status_audit] == [h.to_status for h in history[1:]]
    assert status_audit[-1].details["status"] == ticket.status

    # Assignment: each entry starts from the previous one's assignee; the last one holds.
    moves = [
        a
        for a in audit
        if a.action in ("ticket.assigned", "ticket.transferred", "ticket.unassigned")
    ]
    assert moves, "no assignment was applied"
    holder = None
    for move in moves:
        assert move.details["previous_assignee_id"] == holder, "a concurrent assignment was lost"
        holder = move.details["assignee_id"]
    assert ticket.assignee_id == holder
    assignments = [a for a in answers if "is assigned to" in a]
    assert len(moves) <= len(assignments) + sum(k == "click" for k, _ in requests)
    assert slack_ids[holder] in {*staff}

    # Replies and notes: every confirmed one stored once, with its audit entry.
    public = [r for r in stored if not r.is_internal]
    notes = [r for r in stored if r.is_internal]
    assert len(public) == applied["reply"] and len(notes) == applied["note"]
    assert len({r.body for r in stored}) == len(stored)
    assert Counter(a.action for a in audit)["reply.added"] == len(public)
    assert Counter(a.action for a in audit)["note.added"] == len(notes)
    assert ticket.version >= 1 + len(moves) + len(history) - 1

    # Every public reply reached the customer's thread once; no note did (the fixture's leak
    # scanner checks the second part over everything the customer can see).
    thread = [m.text_content for m in stage.fake.replies(opened.dm, opened.confirmation.ts)]
    for reply in public:
        assert sum(reply.body in t for t in thread) == 1, reply.body


async def test_a_write_that_skipped_the_row_lock_is_a_conflict_not_a_lost_update(stage):
    """The version column catches an update based on a stale read: the second writer gets a
    Conflict with a clear message and its change is rolled back; the first one's change holds."""
    opened = await open_ticket(stage, title="Version check")
    agent = await user(stage, AGENT)
    core = stage.runtime.core
    with pytest.raises(Conflict) as caught:
        async with core.db.transaction() as session:
            stale = await session.scalar(select(Ticket).where(Ticket.number == opened.number))
            assert stale is not None
            # meanwhile another request changes the ticket and commits
            await tickets.change_status(
                core, actor_id=agent.id, ticket=opened.number, status="in_progress"
            )
            stale.title = "Written from a stale copy"
    assert "changed" in caught.value.message and "try again" in caught.value.message.lower()
    detail = await tickets.get_ticket(core, actor_id=agent.id, ticket=opened.number)
    assert detail.ticket.status.value == "in_progress"
    assert detail.ticket.title == "Version check"
