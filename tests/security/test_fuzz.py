"""Property-based fuzzing of what people (or anyone holding a signed request) can send the bot:
`/ticket` text, modal submissions with any state and private_metadata, and malformed bodies.

Each property holds for every generated input, end to end over signed HTTP on both databases:
the bot never answers 500, never shows anyone a traceback or library internals, refuses with a
clear message carrying a stable code, and a refused request leaves the database as it was.
Examples are few (the whole bot runs for each) and one `stage` serves all examples of a test."""

from __future__ import annotations

import json
import string
from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.ids import Action, Block, Callback
from devslack.requests import (
    FORM,
    JSON,
    SlackRequest,
    event_callback_body,
    view_submission_body,
)
from devslack.stage import AGENT, CUSTOMER, Stage
from tests.security.support import (
    assert_no_internals,
    counts,
    refusal_codes,
    shown_texts,
    uncoded_refusals,
)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

VERBS = [
    "help", "new", "open", "list", "mine", "show", "search", "assign", "status", "close",
    "reopen", "reply", "note", "delete", "role", "category", "sla",
]  # fmt: skip

# Hostile text: any unicode, control characters and bidi overrides, Slack markup, and huge bodies.
CONTROL = st.sampled_from(
    ["\x00", "\x07", "\x1b[31m", "\r\n", "\u202e", "\u2066", "\x7f", "\ufeff"]
)
MARKUP = st.sampled_from(
    ["<!channel>", "<!here>", "@everyone", "<@UAGENT0001>", "<http://evil.example|x>", "`", "*_~",
     "%", "_", "'", '"', "\\", "';--", "#1", "999999999999", "-1", "page 0", "page 99999999999"]
)  # fmt: skip
PIECE = st.one_of(st.text(max_size=40), CONTROL, MARKUP, st.integers().map(str))
HOSTILE = st.one_of(
    st.lists(PIECE, max_size=6).map(" ".join),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "😀 ", "\x00", "<!here>"]),
              st.sampled_from([3001, 20_000, 100_000])),
)  # fmt: skip


async def _send(stage: Stage, request: SlackRequest) -> tuple[Any, list[str]]:
    mark = len(stage.fake.calls)
    response = await stage.act(request)
    return response, shown_texts(stage, mark, response)


async def _seed_ticket(stage: Stage) -> None:
    """One ticket of the customer's, so that numbers, ids and replies can hit something."""
    if not (await counts(stage))["tickets"]:
        await stage.open_ticket(CUSTOMER, title="Printer on fire", description="Really.")


def _check(status: int, texts: list[str], before: dict[str, int], after: dict[str, int]) -> None:
    assert status < 500, f"HTTP {status}"
    assert_no_internals(texts)
    assert not uncoded_refusals(texts), uncoded_refusals(texts)
    if refusal_codes(texts):
        assert after == before, f"a refused request changed the database: {before} -> {after}"


# --------------------------------------------------------------------------- /ticket text


@FUZZ
@given(
    who=st.sampled_from([CUSTOMER, AGENT]),
    verb=st.sampled_from(VERBS),
    number=st.sampled_from(["1", "#1", "2", "0", "", "abc"]),
    rest=HOSTILE,
)
async def test_ticket_command_text_never_fails_or_leaks_internals(stage, who, verb, number, rest):
    await _seed_ticket(stage)
    before = await counts(stage)
    request = stage.user(who).slash_command(f"{verb} {number} {rest}", channel_id=stage.dm(who))
    response, texts = await _send(stage, request)
    _check(response.status, texts, before, await counts(stage))
    if response.status == 413:  # HTTP_MAX_UNSIGNED_BODY_BYTES: Slack never sends that much
        assert stage.server is not None
        limit = stage.server.settings.http_max_unsigned_body_bytes
        assert len(request.body.encode()) > limit and await counts(stage) == before
        return
    assert response.status == 200
    assert texts[:-1], "the user was told nothing"


@FUZZ
@given(text=HOSTILE)
async def test_arbitrary_command_text_is_answered_and_refusals_carry_a_code(stage, text):
    before = await counts(stage)
    response, texts = await _send(
        stage, stage.user(CUSTOMER).slash_command(text, channel_id=stage.dm(CUSTOMER))
    )
    _check(response.status, texts, before, await counts(stage))
    if response.status == 413:
        return
    told = " ".join(texts[:-1])
    assert told, "the user was told nothing"


# --------------------------------------------------------------------------- command form fields

FIELDS = [
    "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
    "command", "text", "api_app_id", "response_url", "trigger_id",
]  # fmt: skip


@FUZZ
@given(
    dropped=st.sets(st.sampled_from(FIELDS), max_size=4),
    replaced=st.dictionaries(st.sampled_from(FIELDS), HOSTILE, max_size=3),
    extra=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=30), max_size=3),
)
async def test_slash_command_with_missing_wrong_or_extra_fields(stage, dropped, replaced, extra):
    base = stage.user(CUSTOMER).slash_command("mine", channel_id=stage.dm(CUSTOMER)).payload
    fields = {k: v for k, v in base.items() if k not in dropped}
    fields.update(replaced)
    fields.update({k: v for k, v in extra.items() if k not in base})
    before = await counts(stage)
    request = SlackRequest(urlencode(fields), FORM, fields, "command")
    response, texts = await _send(stage, request)
    _check(response.status, texts, before, await counts(stage))


# --------------------------------------------------------------------------- modal submissions

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
UUIDISH = st.one_of(st.uuids().map(str), st.text(max_size=40), st.integers(), st.none())


def _metadata_for(ticket_id: str) -> st.SearchStrategy[Any]:
    """private_metadata: valid for some modal, aimed elsewhere, wrong types, or not JSON."""
    shaped = st.fixed_dictionaries(
        {},
        optional={
            "ticket_id": st.one_of(st.just(ticket_id), UUIDISH),
            "reply_id": st.one_of(st.integers(), st.text(max_size=10), st.none()),
            "internal_default": JSONISH,
            "channel_id": JSONISH,
            "source_text": JSONISH,
            "smuggled": JSONISH,
        },
    ).map(json.dumps)
    return st.one_of(
        shaped,
        JSONISH.map(json.dumps),
        st.text(max_size=50),
        st.sampled_from(["", "{", "null", "[]", '{"ticket_id":', "\x00", "{}" * 2000]),
        JSONISH,  # not even a string
    )


INPUTS = [
    (Block.TITLE, Action.TITLE), (Block.DESCRIPTION, Action.DESCRIPTION),
    (Block.PRIORITY, Action.PRIORITY), (Block.CATEGORY, Action.CATEGORY),
    (Block.CUSTOMER, Action.CUSTOMER), (Block.BODY, Action.BODY),
    (Block.VISIBILITY, Action.VISIBILITY), (Block.STATUS, Action.STATUS),
    (Block.REASON, Action.REASON), (Block.ASSIGNEE, Action.ASSIGNEE),
]  # fmt: skip
ELEMENT = st.one_of(
    st.builds(lambda v: {"type": "plain_text_input", "value": v}, st.one_of(HOSTILE, JSONISH)),
    st.builds(
        lambda v: {"type": "static_select", "selected_option": v},
        st.one_of(st.builds(lambda x: {"value": x}, st.one_of(st.text(max_size=20), JSONISH)),
                  JSONISH),
    ),
    st.builds(lambda u: {"type": "users_select", "selected_user": u},
              st.one_of(st.sampled_from(["UCUSTOMER2", "UAGENT0001", "UBOT", "U0NOBODY"]),
                        JSONISH)),
    JSONISH,
)  # fmt: skip
# The inputs of the bot's modals, so that refusals can be shown under a field.
INPUT_BLOCKS = [
    {"type": "input", "block_id": block.value, "label": {"type": "plain_text", "text": "x"},
     "element": {"type": "plain_text_input", "action_id": action.value}}
    for block, action in INPUTS
]  # fmt: skip
STATE = st.one_of(
    st.dictionaries(
        st.sampled_from(INPUTS).map(lambda pair: pair[0].value),
        st.one_of(
            st.builds(lambda pair, el: {pair[1].value: el}, st.sampled_from(INPUTS), ELEMENT),
            JSONISH,
        ),
        max_size=6,
    ),
    JSONISH,
)


@FUZZ
@given(data=st.data())
async def test_modal_submissions_with_any_state_and_metadata(stage, data):
    await _seed_ticket(stage)
    ticket_id = str((await _ticket_ids(stage))[0])
    who = data.draw(st.sampled_from([CUSTOMER, AGENT]), label="who")
    view: dict[str, Any] = {
        "callback_id": data.draw(
            st.sampled_from([c.value for c in Callback] * 4 + ["", "unknown", "create_ticket "]),
            label="callback_id",
        ),
        "private_metadata": data.draw(_metadata_for(ticket_id), label="private_metadata"),
        "state": {"values": data.draw(STATE, label="state")},
        "blocks": INPUT_BLOCKS if data.draw(st.booleans(), label="with input blocks") else [],
    }
    if data.draw(st.booleans(), label="drop view id"):
        view["id"] = data.draw(JSONISH, label="view id")
    request = view_submission_body(user_id=who.user_id, view=view)
    if data.draw(st.booleans(), label="raw state"):
        # Skip the builder's shaping: the state goes out exactly as drawn.
        payload = request.payload
        payload["view"]["state"] = {"values": view["state"]["values"]}
        request = SlackRequest(urlencode({"payload": json.dumps(payload)}), FORM, payload, "view")
    before = await counts(stage)
    response, texts = await _send(stage, request)
    _check(response.status, texts, before, await counts(stage))
    action = response.json.get("response_action")
    event(f"answer: {action or response.status}; refused: {bool(refusal_codes(texts))}")
    if action == "errors":
        errors = response.json.get("errors") or {}
        assert errors and all(refusal_codes([str(t)]) for t in errors.values()), errors
        assert await counts(stage) == before


async def _ticket_ids(stage: Stage) -> list[Any]:
    from sqlalchemy import select

    from core.models import Ticket

    async with stage.runtime.core.db.transaction() as session:
        return list(await session.scalars(select(Ticket.id).order_by(Ticket.number)))


# --------------------------------------------------------------------------- malformed bodies


@FUZZ
@given(
    shape=st.sampled_from(["form", "payload", "json", "event"]),
    junk=st.one_of(
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
        st.text(alphabet=string.printable, max_size=200),
        JSONISH.map(json.dumps),
        st.sampled_from(
            ["{", "payload=", "payload={", "payload=%7B%22type%22%3A", "payload=null",
             'payload={"type":"view_submission"}', 'payload={"type":"block_actions","actions":7}',
             'payload={"type":"block_actions","user":{"id":"UCUSTOMER1"},"actions":[{}]}',
             'payload={"type":"view_submission","user":{"id":"UCUSTOMER1"},"view":[]}',
             'payload={"type":"shortcut","user":{"id":"UCUSTOMER1"},"callback_id":7}',
             "payload=" + "A" * 100_000, "=&=&&==", "text=%ZZ&command=%2Fticket"]
        ),
    ),
)  # fmt: skip
async def test_malformed_bodies_are_refused_cleanly(stage, shape, junk):
    if shape == "payload":
        request = SlackRequest(urlencode({"payload": junk}), FORM, {}, "junk")
    elif shape == "form":
        request = SlackRequest(junk, FORM, {}, "junk")
    elif shape == "json":
        request = SlackRequest(junk, JSON, {}, "junk")
    else:
        try:
            event = json.loads(junk)
        except ValueError:
            event = {"type": "message", "text": junk}
        if not isinstance(event, dict):
            event = {"type": "message", "text": junk, "junk": event}
        event.setdefault("user", CUSTOMER.user_id)
        request = event_callback_body(event)
    before = await counts(stage)
    response, texts = await _send(stage, request)
    _check(response.status, texts, before, await counts(stage))
    assert await counts(stage) == before


async def test_a_hundred_kilobyte_ticket_is_refused_with_the_limit_named(stage):
    """The largest body a customer could paste: refused under the field, nothing stored."""
    await stage.act(stage.user(CUSTOMER).slash_command("new Huge", channel_id=stage.dm(CUSTOMER)))
    view = stage.fake.views_opened(CUSTOMER.user_id)[-1]
    before = await counts(stage)
    huge = ("0123456789" * 10_000) + "\x00"
    values = {
        "title_block": {"title": "Huge"},
        "description_block": {"description": huge},
        "priority_block": {"priority": "low"},
    }
    response = await stage.submit_view(CUSTOMER, view, values)
    assert response.status == 200 and response.json["response_action"] == "errors"
    assert "limit is 3000" in response.json["errors"]["description_block"]
    assert "(VALIDATION)" in response.json["errors"]["description_block"]
    assert await counts(stage) == before
    # and the same text as a command
    mark = len(stage.fake.calls)
    await stage.act(
        stage.user(CUSTOMER).slash_command(f"reply 1 {huge}", channel_id=stage.dm(CUSTOMER))
    )
    assert refusal_codes(shown_texts(stage, mark))
    assert await counts(stage) == before


def test_fuzz_strategies_generate_the_hostile_shapes() -> None:
    """The strategies reach what the properties are about (a guard against vacuous fuzzing)."""
    seen: list[str] = []

    @settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck))
    @given(HOSTILE)
    def collect(text: str) -> None:
        seen.append(text)

    collect()
    assert any(len(t) >= 100_000 for t in seen)
    assert any("\x00" in t for t in seen)
    assert any("<!channel>" in t or "<!here>" in t for t in seen)
