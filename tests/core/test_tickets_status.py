"""The status life cycle: the transition table, who may make which move, reasons, timestamps."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from core.enums import Status
from core.errors import (
    DomainError,
    Forbidden,
    InvalidTransition,
    NotFound,
    TicketClosed,
    ValidationFailed,
)
from core.tickets import allowed_transitions, change_status, get_ticket
from tests.core.ticket_support import (
    audit_entries,
    bring_to,
    history_rows,
    make_cast,
    sla_next_alert,
    ticket_row,
)
from tests.factories import make_ticket, outbox_rows

OPEN, WORKING, WAITING, RESOLVED, CLOSED = (
    Status.OPEN,
    Status.IN_PROGRESS,
    Status.WAITING_ON_CUSTOMER,
    Status.RESOLVED,
    Status.CLOSED,
)

# Written out independently of core.tickets.TRANSITIONS: the moves staff may make.
STAFF_MOVES = {
    OPEN: {WORKING, WAITING, RESOLVED, CLOSED},
    WORKING: {OPEN, WAITING, RESOLVED, CLOSED},
    WAITING: {OPEN, WORKING, RESOLVED, CLOSED},
    RESOLVED: {OPEN, WORKING, CLOSED},
    CLOSED: {OPEN},
}
STATUS_IDS = [s.value for s in Status]


def customer_outcome(current: Status, target: Status) -> type[DomainError] | None:
    """What a customer gets for a move on their own ticket (None: allowed)."""
    if current is CLOSED:
        return TicketClosed
    if current is target or target not in STAFF_MOVES[current]:
        return InvalidTransition
    if target is CLOSED or (current is RESOLVED and target is OPEN):
        return None
    return Forbidden


async def tickets_in(core, cast, current: Status) -> dict[Status, object]:
    """One ticket in `current` per target status, so each move starts from a fresh ticket."""
    tickets = {}
    for target in Status:
        ticket = await make_ticket(core, cast.alice)
        await bring_to(core, ticket, current, by=cast.agent)
        tickets[target] = ticket
    return tickets


@pytest.mark.parametrize("current", list(Status), ids=STATUS_IDS)
async def test_staff_transition_table(core, current):
    cast = await make_cast(core)
    for target, ticket in (await tickets_in(core, cast, current)).items():
        before = len(await history_rows(core, ticket.id))
        if target in STAFF_MOVES[current]:
            view = await change_status(
                core, actor_id=cast.agent.id, ticket=ticket.number, status=target, reason="Why"
            )
            assert view.status is target
            history = await history_rows(core, ticket.id)
            assert len(history) == before + 1
            assert (history[-1].from_status, history[-1].to_status) == (
                current.value,
                target.value,
            )
            continue
        with pytest.raises(InvalidTransition) as refused:
            await change_status(
                core, actor_id=cast.agent.id, ticket=ticket.number, status=target, reason="Why"
            )
        message = refused.value.message
        assert f"#{ticket.number}" in message
        if current is target:
            assert f"already {current.value.replace('_', ' ')}" in message
        else:
            assert (
                f"from {current.value.replace('_', ' ')} to {target.value.replace('_', ' ')}"
                in message
            )
        assert (await ticket_row(core, ticket.id)).status == current.value
        assert len(await history_rows(core, ticket.id)) == before


@pytest.mark.parametrize("current", list(Status), ids=STATUS_IDS)
async def test_customer_transitions_on_own_ticket(core, current):
    cast = await make_cast(core)
    for target, ticket in (await tickets_in(core, cast, current)).items():
        expected = customer_outcome(current, target)
        if expected is None:
            view = await change_status(
                core, actor_id=cast.alice.id, ticket=ticket.number, status=target
            )
            assert view.status is target, (current, target)
            continue
        with pytest.raises(expected):
            await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status=target)
        assert (await ticket_row(core, ticket.id)).status == current.value


def test_customer_expectations_cover_the_allowed_moves():
    # The expectation table itself: a customer can close from anywhere but closed, and reopen
    # only a resolved ticket; everything else is staff work.
    allowed = {(a, b) for a in Status for b in Status if customer_outcome(a, b) is None}
    assert allowed == {
        (OPEN, CLOSED),
        (WORKING, CLOSED),
        (WAITING, CLOSED),
        (RESOLVED, CLOSED),
        (RESOLVED, OPEN),
    }


@pytest.mark.parametrize("current", list(Status), ids=STATUS_IDS)
async def test_allowed_transitions_offer_exactly_what_change_status_accepts(core, current):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await bring_to(core, ticket, current, by=cast.agent)
    staff = await allowed_transitions(core, actor_id=cast.agent.id, ticket=ticket.number)
    assert set(staff.targets) == STAFF_MOVES[current]
    assert list(staff.targets) == [s for s in Status if s in staff.targets]  # life-cycle order
    assert staff.reason_required == ({CLOSED} & STAFF_MOVES[current])
    assert staff.ticket.number == ticket.number and staff.ticket.status is current
    own = await allowed_transitions(core, actor_id=cast.alice.id, ticket=ticket.number)
    assert set(own.targets) == {t for t in Status if customer_outcome(current, t) is None}
    assert own.reason_required == frozenset()  # closing their own ticket needs no reason


async def test_allowed_transitions_of_a_hidden_ticket_is_not_found(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound):
        await allowed_transitions(core, actor_id=cast.alice.id, ticket=ticket.number)


@pytest.mark.parametrize("reason", [None, "", "   "])
async def test_staff_closing_without_a_reason_is_refused_and_changes_nothing(core, reason):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await history_rows(core, ticket.id))
    with pytest.raises(ValidationFailed) as refused:
        await change_status(
            core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason=reason
        )
    assert refused.value.field == "reason"
    assert f"#{ticket.number}" in refused.value.message
    assert (await ticket_row(core, ticket.id)).status == "open"
    assert len(await history_rows(core, ticket.id)) == before
    # Other moves need no reason, and the customer closes their own ticket without one.
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved")
    view = await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status="closed")
    assert view.status is CLOSED and view.status_reason is None


async def test_customer_cannot_change_status_of_someone_elses_ticket(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.bob)
    with pytest.raises(NotFound):
        await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status="closed")
    assert (await ticket_row(core, ticket.id)).status == "open"


async def test_closed_is_final_for_customers_but_staff_may_reopen(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status="closed")
    for target in Status:
        with pytest.raises(TicketClosed) as refused:
            await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status=target)
        assert "closed" in refused.value.message
    view = await change_status(
        core, actor_id=cast.corp_a.id, ticket=ticket.number, status="open", reason="Not fixed"
    )
    assert view.status is OPEN and view.status_reason == "Not fixed"


async def test_reason_is_stored_on_the_ticket_and_in_the_history(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    clock.advance(minutes=7)
    view = await change_status(
        core,
        actor_id=cast.agent.id,
        ticket=ticket.number,
        status="waiting-on-customer",
        reason="  Need the serial number\x00 ",
    )
    assert view.status is WAITING and view.status_reason == "Need the serial number"
    detail = await get_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    last = detail.history[-1]
    assert (last.from_status, last.to_status, last.reason) == (
        OPEN,
        WAITING,
        "Need the serial number",
    )
    assert (last.changed_by_id, last.changed_at) == (cast.agent.id, clock.now())
    # A move without a reason clears the previous one from the ticket.
    view = await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="open")
    assert view.status_reason is None
    with pytest.raises(ValidationFailed) as refused:
        await change_status(
            core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="r" * 501
        )
    assert refused.value.field == "reason"


async def test_bad_status_value_refused(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(ValidationFailed) as refused:
        await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="done")
    assert refused.value.field == "status"


async def test_resolved_and_closed_timestamps(core, clock):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    clock.advance(hours=1)
    resolved = await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved"
    )
    assert resolved.resolved_at == clock.now() and resolved.closed_at is None
    resolved_at = clock.now()
    clock.advance(hours=1)
    closed = await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="closed", reason="Fixed"
    )
    assert closed.closed_at == clock.now() and closed.resolved_at == resolved_at
    clock.advance(hours=1)
    reopened = await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="open"
    )
    assert reopened.resolved_at is None and reopened.closed_at is None
    # Closing straight from open also records when it was resolved.
    clock.advance(hours=1)
    direct = await change_status(
        core, actor_id=cast.alice.id, ticket=ticket.number, status="closed"
    )
    assert direct.closed_at == direct.resolved_at == clock.now()


async def test_moving_back_to_work_clears_resolution(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved")
    view = await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="in_progress"
    )
    assert view.resolved_at is None


async def test_resolving_stops_sla_alerts_and_reopening_an_unanswered_ticket_restarts_them(
    core, clock
):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)  # medium: 8 h, warning at 6 h
    await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved")
    assert await sla_next_alert(core, ticket.id) is None
    clock.advance(hours=3)
    view = await change_status(core, actor_id=cast.alice.id, ticket=ticket.number, status="open")
    assert view.sla_breach_at == clock.now() + timedelta(hours=8)
    assert view.sla_warning_at == clock.now() + timedelta(hours=6)
    assert await sla_next_alert(core, ticket.id) == view.sla_warning_at


async def test_status_change_is_audited_and_announced_to_both_threads(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    await change_status(
        core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved", reason="Fixed"
    )
    entry = (await audit_entries(core, ticket.id))[-1]
    assert entry.action == "ticket.status_changed" and entry.actor_id == cast.agent.id
    assert entry.details == {"previous": "open", "status": "resolved", "reason": "Fixed"}
    new = (await outbox_rows(core, ticket.id))[before:]
    assert sorted(m.kind for m in new) == [
        "customer_thread_post",
        "staff_card_refresh",
        "staff_thread_post",
    ]
    post = next(m for m in new if m.kind == "customer_thread_post")
    assert post.payload["status"] == "resolved" and post.payload["previous"] == "open"


async def test_status_changes_are_logged(core, caplog):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with caplog.at_level(logging.INFO, logger="core.tickets"):
        await change_status(core, actor_id=cast.agent.id, ticket=ticket.number, status="resolved")
    record = next(r for r in caplog.records if r.getMessage() == "ticket status changed")
    assert (record.__dict__["from"], record.__dict__["to"]) == ("open", "resolved")
    assert record.__dict__["ticket"] == ticket.number
    assert record.__dict__["actor_id"] == cast.agent.id
