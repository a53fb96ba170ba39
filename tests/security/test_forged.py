"""Forged requests, end to end: what a client sends back (private_metadata, button values, view
ids, the fields of a modal) only names what is meant. The core re-checks every action with the
real actor on the real rows, so a customer cannot reach another customer's ticket, act as staff
or write an internal note; and every request path refuses a bad or missing signature with 401.

Every scenario also ends with the internal-note leak scanner (the `stage` fixture)."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from bot.blocks import modals
from bot.ids import Action
from bot.payloads import CreateTicketPayload, EditReplyPayload, ListPagePayload, TicketRefPayload
from core import replies
from core.enums import Status
from devslack.requests import (
    SlackRequest,
    SlackRequestSigner,
    event_callback_body,
    message_event,
    url_verification_body,
)
from devslack.stage import AGENT, CUSTOMER, CUSTOMER_2, SIGNING_SECRET, STAFF_CHANNEL, Stage
from tests.bot.e2e_support import Opened, detail, open_ticket, user
from tests.security.support import (
    assert_no_internals,
    counts,
    refusal_codes,
    shown_texts,
)


async def _two_customers(stage: Stage) -> tuple[Opened, Opened]:
    alice = await open_ticket(stage, CUSTOMER, title="Alice's VPN", description="alice secret")
    bob = await open_ticket(stage, CUSTOMER_2, title="Bob's laptop", description="bob secret")
    return alice, bob


async def _submit(stage: Stage, person: Any, view: dict[str, Any], values: dict[str, Any]) -> Any:
    """`person` submits `view` (built by the test: forged) with `values`; returns the answer
    and every text shown to anyone meanwhile."""
    mark = len(stage.fake.calls)
    response = await stage.act(stage.user(person).submit(view, values))
    assert response.status == 200
    texts = shown_texts(stage, mark, response)
    assert_no_internals(texts)
    return response, texts


async def _click(
    stage: Stage, person: Any, action_id: str, value: str, *, channel: str | None = None
) -> list[str]:
    mark = len(stage.fake.calls)
    request = stage.user(person).click(
        action_id, value=value, channel_id=channel or stage.dm(person)
    )
    response = await stage.act(request)
    assert response.status == 200
    texts = shown_texts(stage, mark)
    assert_no_internals(texts)
    return texts


def _ref(opened_id: Any) -> str:
    return TicketRefPayload(ticket_id=opened_id).dump()


# --------------------------------------------------------------------------- modals


async def test_reply_modal_aimed_at_another_customers_ticket_is_refused(stage):
    alice, _ = await _two_customers(stage)
    target = (await detail(stage, alice.number)).ticket
    before = await counts(stage)
    # Bob's client sends a reply modal whose private_metadata names Alice's ticket.
    forged = modals.reply_modal(target, staff=False)
    response, texts = await _submit(stage, CUSTOMER_2, forged, {"body_block": {"body": "mine now"}})
    assert response.json["response_action"] == "errors"
    assert "NOT_FOUND" in json.dumps(response.json)
    assert await counts(stage) == before
    assert not any("Alice's VPN" in t or "alice secret" in t for t in texts)
    assert not [m for m in stage.fake.messages(alice.dm) if "mine now" in m.text_content]


async def test_customer_choosing_internal_visibility_is_refused_never_made_public(stage):
    """A customer cannot write an internal note: a (staff-shaped) reply modal they submit with
    "internal" chosen is refused under the field, and nothing is stored or relayed; what they
    meant as internal is never turned into a public reply."""
    alice = await open_ticket(stage, CUSTOMER)
    ticket = (await detail(stage, alice.number)).ticket
    forged = modals.reply_modal(ticket, staff=True, internal_default=True)
    text = stage.unique("customer says")
    values = {"body_block": {"body": text}, "visibility_block": {"visibility": "internal"}}
    before = await counts(stage)
    response, _ = await _submit(stage, CUSTOMER, forged, values)
    assert response.json["response_action"] == "errors"
    assert "FORBIDDEN" in json.dumps(response.json)
    assert await counts(stage) == before
    assert not [r for r in (await detail(stage, alice.number)).replies if r.body == text]


async def test_customer_cannot_open_a_ticket_for_another_customer(stage):
    forged = modals.create_ticket_modal(
        categories=[], staff=True, metadata=CreateTicketPayload(), customer_slack_id=None
    )
    values = {
        "title_block": {"title": "Opened in Bob's name"},
        "description_block": {"description": "x"},
        "priority_block": {"priority": "high"},
        "customer_block": {"customer": CUSTOMER_2.user_id},
    }
    await _submit(stage, CUSTOMER, forged, values)
    bob = await user(stage, CUSTOMER_2)
    alice = await user(stage, CUSTOMER)
    from core import tickets

    assert (await tickets.my_tickets(stage.runtime.core, actor_id=bob.id)).total == 0
    mine = await tickets.my_tickets(stage.runtime.core, actor_id=alice.id)
    assert [t.title for t in mine.items] == ["Opened in Bob's name"]
    assert mine.items[0].customer.id == alice.id


@pytest.mark.parametrize(
    ("callback", "values"),
    [
        ("status", {"status_block": {"status": "in_progress"}, "reason_block": {"reason": "x"}}),
        ("assign", {"assignee_block": {"assignee": AGENT.user_id}}),
    ],
)
async def test_customer_cannot_submit_staff_modals(stage, callback, values):
    alice, bob = await _two_customers(stage)
    own = (await detail(stage, alice.number)).ticket
    other = (await detail(stage, bob.number)).ticket
    for ticket, code in ((own, "FORBIDDEN"), (other, "NOT_FOUND")):
        forged = (
            modals.status_modal(ticket, allowed=[Status.IN_PROGRESS, Status.CLOSED])
            if callback == "status"
            else modals.assign_modal(ticket)
        )
        before = await counts(stage)
        response, _ = await _submit(stage, CUSTOMER, forged, values)
        assert response.json["response_action"] == "errors"
        assert code in json.dumps(response.json), response.json
        assert await counts(stage) == before
    for opened in (alice, bob):
        after = (await detail(stage, opened.number)).ticket
        assert after.status is Status.OPEN and after.assignee is None


async def test_customer_cannot_edit_a_staff_note_or_reply_by_its_id(stage):
    alice = await open_ticket(stage, CUSTOMER)
    agent = await user(stage, AGENT)
    note_text = stage.unique("internal: customer is on the watch list")
    note = await replies.add_reply(
        stage.runtime.core, actor_id=agent.id, ticket=alice.number, body=note_text, internal=True
    )
    answer = await replies.add_reply(
        stage.runtime.core,
        actor_id=agent.id,
        ticket=alice.number,
        body="We are on it",
        internal=False,
    )
    await stage.settle()
    # The edit button's value naming the note: refused like a missing message, nothing shown.
    texts = await _click(
        stage, CUSTOMER, Action.EDIT_REPLY_OPEN, EditReplyPayload(reply_id=note.id).dump()
    )
    assert refusal_codes(texts) == ["NOT_FOUND"] and not any(note_text in t for t in texts)
    assert not [
        v for v in stage.fake.views_opened(CUSTOMER.user_id) if v.callback_id == "reply_edit"
    ]
    for reply in (note, answer):
        # the edit modal's private_metadata naming a staff message: the save is refused
        before = await counts(stage)
        forged = modals.edit_reply_modal(reply)
        response, texts = await _submit(stage, CUSTOMER, forged, {"body_block": {"body": "pwned"}})
        assert response.json["response_action"] == "errors"
        assert refusal_codes(texts)
        assert await counts(stage) == before
    bodies = {r.id: r.body for r in (await detail(stage, alice.number)).replies}
    assert bodies[note.id] == note_text and bodies[answer.id] == "We are on it"


async def test_a_view_id_used_by_someone_else_hands_nothing_over(stage):
    """Idempotency keys come from the client (view ids): replaying another person's key must
    neither return their ticket or note nor create anything."""
    await open_ticket(stage, CUSTOMER, title="Alice's private matter")
    alice_view_id = stage.fake.views_opened(CUSTOMER.user_id)[-1].id
    # Bob submits a create modal carrying the id of the view Alice created her ticket with.
    forged = modals.create_ticket_modal(categories=[], staff=False, metadata=CreateTicketPayload())
    forged["id"] = alice_view_id
    before = await counts(stage)
    values = {"title_block": {"title": "Bob's"}, "priority_block": {"priority": "low"}}
    response, texts = await _submit(stage, CUSTOMER_2, forged, values)
    assert response.json["response_action"] == "errors"
    assert "CONFLICT" in json.dumps(response.json)
    assert not any("Alice's private matter" in t for t in texts)
    assert await counts(stage) == before
    # The agent writes a note on Bob's ticket through the reply modal; Bob reuses its view id.
    bob = await open_ticket(stage, CUSTOMER_2)
    ticket = (await detail(stage, bob.number)).ticket
    note_view = modals.reply_modal(ticket, staff=True)
    note_view["id"] = "VNOTE00001"
    note_text = stage.unique("note about Bob")
    values = {"body_block": {"body": note_text}, "visibility_block": {"visibility": "internal"}}
    await _submit(stage, AGENT, note_view, values)
    before = await counts(stage)
    bobs = modals.reply_modal(ticket, staff=False)
    bobs["id"] = "VNOTE00001"
    response, texts = await _submit(stage, CUSTOMER_2, bobs, {"body_block": {"body": "hi"}})
    assert response.json["response_action"] == "errors"
    assert "CONFLICT" in json.dumps(response.json)
    assert not any(note_text in t for t in texts)
    assert await counts(stage) == before


# --------------------------------------------------------------------------- buttons


async def test_customer_clicking_staff_buttons_is_refused(stage):
    alice, bob = await _two_customers(stage)
    own, other = (
        (await detail(stage, alice.number)).ticket,
        (await detail(stage, bob.number)).ticket,
    )
    before = await counts(stage)
    texts = await _click(stage, CUSTOMER, Action.ASSIGN_TO_ME, _ref(own.id))
    assert "FORBIDDEN" in refusal_codes(texts)
    for action in (Action.ASSIGN_TO_ME, Action.ASSIGN_OPEN, Action.STATUS_OPEN, Action.NOTE_OPEN,
                   Action.REPLY_OPEN, Action.SHOW_TICKET):  # fmt: skip
        texts = await _click(stage, CUSTOMER, action, _ref(other.id))
        assert refusal_codes(texts) == ["NOT_FOUND"], (action, texts)
        assert not any("Bob's laptop" in t or "bob secret" in t for t in texts)
    assert await counts(stage) == before
    assert not stage.fake.views_opened(CUSTOMER.user_id)[1:]  # only the create modal
    assert (await detail(stage, alice.number)).ticket.assignee is None


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "",
        "null",
        '{"ticket_id": 1}',
        '{"ticket_id": "../../etc/passwd"}',
        '{"ticket_id": "00000000-0000-0000-0000-000000000000"}',
        '{"ticket_id": "%s", "internal": true}',
        '{"ticket_id": "%s", "actor_id": 1}',
        '["%s"]',
        "x" * 5000,
    ],
)
async def test_button_values_are_validated_not_trusted(stage, value):
    alice = await open_ticket(stage, CUSTOMER)
    ticket_id = str((await detail(stage, alice.number)).ticket.id)
    value = value.replace("%s", ticket_id) if "%s" in value else value
    before = await counts(stage)
    for person in (AGENT, CUSTOMER):
        for action in (Action.ASSIGN_TO_ME, Action.STATUS_OPEN, Action.SHOW_TICKET):
            texts = await _click(stage, person, action, value, channel=STAFF_CHANNEL)
            assert refusal_codes(texts) in (["VALIDATION"], ["NOT_FOUND"]), (value, texts)
    assert await counts(stage) == before
    assert (await detail(stage, alice.number)).ticket.assignee is None


async def test_a_forged_page_button_lists_only_the_clickers_tickets(stage):
    await _two_customers(stage)
    bob_user = await user(stage, CUSTOMER_2)
    for query in ("list", f"list customer:<@{CUSTOMER_2.user_id}>", "list assignee:none"):
        value = ListPagePayload(page=1, query=query).dump()
        texts = await _click(stage, CUSTOMER, Action.PAGE, value)
        assert not any("Bob's laptop" in t for t in texts), (query, texts)
    assert bob_user.id  # Bob exists; he is simply not Alice's to see


# --------------------------------------------------------------------------- events


async def test_a_message_event_claiming_another_customers_thread_adds_nothing(stage):
    alice, _ = await _two_customers(stage)
    before = await counts(stage)
    # An event as if Bob wrote in Alice's DM thread (Slack would never deliver it).
    event = message_event(
        user=CUSTOMER_2.user_id,
        channel=alice.dm,
        text="I am Alice now",
        thread_ts=alice.confirmation.ts,
        channel_type="im",
    )
    response = await stage.act(event_callback_body(event))
    assert response.status == 200
    assert await counts(stage) == before
    # A customer's message in the staff channel's thread is not a note either.
    event = message_event(
        user=CUSTOMER.user_id, channel=STAFF_CHANNEL, text="!reply hi", thread_ts=alice.card.ts
    )
    await stage.act(event_callback_body(event))
    assert await counts(stage) == before


# --------------------------------------------------------------------------- signatures


def _requests(stage: Stage) -> dict[str, SlackRequest]:
    customer = stage.user(CUSTOMER)
    return {
        "command": customer.slash_command("new Unsigned", channel_id=stage.dm(CUSTOMER)),
        "block_actions": customer.click(
            Action.HOME_NEW_TICKET, value=None, channel_id=stage.dm(CUSTOMER)
        ),
        "view_submission": customer.submit(
            modals.create_ticket_modal(categories=[], staff=False, metadata=CreateTicketPayload()),
            {"title_block": {"title": "Unsigned"}, "priority_block": {"priority": "low"}},
        ),
        "message_event": customer.says(stage.dm(CUSTOMER), "unsigned hello"),
        "home_event": customer.opens_home(),
        "url_verification": url_verification_body("challenge-1"),
        "garbage_form": SlackRequest("payload=%7B", "application/x-www-form-urlencoded", {}, "x"),
        "garbage_json": SlackRequest("[1, 2", "application/json", {}, "x"),
    }


def _variants(body: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = SlackRequestSigner(SIGNING_SECRET)
    return {
        "bad signature": {"X-Slack-Request-Timestamp": str(now),
                          "X-Slack-Signature": "v0=" + "0" * 64},
        "another secret": SlackRequestSigner("not-the-secret").headers(body),
        "stale timestamp": good.headers(body, timestamp=now - 6 * 60),
        "future timestamp": good.headers(body, timestamp=now + 6 * 60),
        "no headers": {},
        "no timestamp": {"X-Slack-Signature": good.headers(body)["X-Slack-Signature"]},
        "no signature": {"X-Slack-Request-Timestamp": str(now)},
        "timestamp not a number": {"X-Slack-Request-Timestamp": "soon",
                                   "X-Slack-Signature": "v0=1"},
        "signature of another body": good.headers(body + "&extra=1"),
        "signature without version": {
            "X-Slack-Request-Timestamp": str(now),
            "X-Slack-Signature": good.headers(body)["X-Slack-Signature"][3:],
        },
    }  # fmt: skip


async def test_every_path_refuses_bad_stale_or_missing_signatures_with_401(stage, caplog):
    caplog.set_level(logging.DEBUG)
    await open_ticket(stage, CUSTOMER)
    before = await counts(stage)
    mark = len(stage.fake.calls)
    refused = []
    for kind, request in _requests(stage).items():
        for variant, headers in _variants(request.body).items():
            response = await stage.send(request, sign=False, headers=headers)
            refused.append((kind, variant, response.status))
    await stage.settle()
    assert {s for _, _, s in refused} == {401}, [r for r in refused if r[2] != 401]
    assert await counts(stage) == before
    assert stage.fake.calls[mark:] == [], "a listener ran for an unsigned request"
    # and the same requests, properly signed, are served
    response = await stage.act(_requests(stage)["command"])
    assert response.status == 200 and stage.fake.views_opened(CUSTOMER.user_id)[-1].callback_id
    _no_secrets_in(caplog, stage)


def _no_secrets_in(caplog: pytest.LogCaptureFixture, stage: Stage) -> None:
    secrets = (SIGNING_SECRET, stage.fake.bot_token)
    for record in caplog.records:
        text = record.getMessage() + " " + json.dumps(record.__dict__, default=str)
        assert not any(s in text for s in secrets), f"a secret in the log: {record.getMessage()}"


async def test_no_secret_reaches_the_log_in_a_hostile_scenario(stage, caplog):
    caplog.set_level(logging.DEBUG)
    await test_customer_clicking_staff_buttons_is_refused(stage)
    request = stage.user(CUSTOMER).slash_command(
        f"new {SIGNING_SECRET[:6]}…", channel_id=stage.dm(CUSTOMER)
    )
    await stage.send(request, sign=False, headers={"X-Slack-Signature": "v0=bad"})
    await stage.act(_requests(stage)["garbage_form"])
    assert caplog.records
    _no_secrets_in(caplog, stage)
