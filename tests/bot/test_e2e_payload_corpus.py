"""Every payload of the corpus in tests/fixtures/slack/, signed and sent to the running bot.

Each fixture is one realistic Slack event (written from Slack's documented shapes) with what it
must do: the replies it stores or changes (exact texts), what the other side's relayed copy
shows, and where the bot posts or answers (and so, that it posts nothing else). For each one
the test also checks that the bot acked it well within Slack's 3 seconds, that no listener
failed (no traceback in the logs), and that nothing the bot posted can notify anyone.

A fixture names the people, channels and threads of the test's workspace with placeholders
(`${CUSTOMER}`, `${STAFF_THREAD}`, …, see `Workspace.values`); `${TS1}`…`${TS9}` are the
timestamps of the messages the fixture's events post (bound when a message is first posted,
so a later `message_changed` can refer to it)."""

from __future__ import annotations

import copy
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devslack.render import render_message_as_text
from devslack.requests import SlackRequest, event_callback_body
from devslack.stage import AGENT, CUSTOMER, PUBLIC_CHANNEL, STAFF_CHANNEL, Person, Stage
from tests.bot.e2e_support import Opened, detail, open_ticket

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "slack"
FIXTURES = {path.stem: json.loads(path.read_text()) for path in sorted(CORPUS.glob("*.json"))}
ACK_WITHIN_SECONDS = 1.5  # Slack gives up at 3 s

GRID_CUSTOMER = Person("W0GRIDCUS1", "Gwen Grid", "gwen@grid.example", "customer")
EXTERNAL = "U0EXTERN01"  # a member of another organisation (Slack Connect)
EXTERNAL_TEAM = "T0OTHER01"
SHARED_CHANNEL = "CSHARED001"
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+)\}")
_PINGS = re.compile(r"<(?:@|!here|!channel|!everyone|!subteam)")
_PERSON_SUBTYPES = (None, "thread_broadcast", "file_share", "me_message")
# The card names its customer and assignee with a mention of its own (not from user text).
_CARD_PEOPLE = re.compile(r"\*(?:Customer|Assignee)\*\\n<@[UW][A-Z0-9]+>")


@dataclass
class Workspace:
    """The people, tickets and channels the fixtures refer to."""

    customer: Opened
    grid: Opened
    values: dict[str, Any]


async def workspace(stage: Stage) -> Workspace:
    fake = stage.fake
    fake.add_user(GRID_CUSTOMER.user_id, GRID_CUSTOMER.name, email=GRID_CUSTOMER.email)
    fake.add_user(EXTERNAL, "Erin External", team_id=EXTERNAL_TEAM)
    fake.add_user("USLACKBOT", "slackbot", is_bot=True)
    fake.add_channel(
        SHARED_CHANNEL, "ext-acme", is_private=False, members=[CUSTOMER.user_id, EXTERNAL]
    )
    fake.share_channel(SHARED_CHANNEL, team_id=EXTERNAL_TEAM)
    customer = await open_ticket(stage, CUSTOMER, title="VPN drops", description="Since Monday.")
    grid = await open_ticket(stage, GRID_CUSTOMER, title="Grid login", description="SSO loops.")
    shared_root = fake.post_as_user(SHARED_CHANNEL, EXTERNAL, "Anyone seen this?")
    values = {
        "CUSTOMER": CUSTOMER.user_id,
        "CUSTOMER_2": "UCUSTOMER2",
        "AGENT": AGENT.user_id,
        "GRID_CUSTOMER": GRID_CUSTOMER.user_id,
        "EXTERNAL": EXTERNAL,
        "EXTERNAL_TEAM": EXTERNAL_TEAM,
        "TEAM": fake.team_id,
        "DM": customer.dm,
        "CUSTOMER_THREAD": customer.confirmation.ts,
        "GRID_DM": grid.dm,
        "GRID_THREAD": grid.confirmation.ts,
        "STAFF_CHANNEL": STAFF_CHANNEL,
        "STAFF_THREAD": customer.card.ts,
        "GRID_STAFF_THREAD": grid.card.ts,
        "PUBLIC_CHANNEL": PUBLIC_CHANNEL,
        "SHARED_CHANNEL": SHARED_CHANNEL,
        "SHARED_THREAD": shared_root.ts,
    }
    return Workspace(customer=customer, grid=grid, values=values)


def substitute(obj: Any, values: dict[str, Any]) -> Any:
    """`obj` with every `${NAME}` replaced (a string that is only a placeholder takes the
    value as it is); placeholders without a value yet are left for later."""
    if isinstance(obj, str):
        whole = _PLACEHOLDER.fullmatch(obj)
        if whole and whole[1] in values:
            return values[whole[1]]
        return _PLACEHOLDER.sub(lambda m: str(values.get(m[1], m[0])), obj)
    if isinstance(obj, dict):
        return {key: substitute(value, values) for key, value in obj.items()}
    if isinstance(obj, list):
        return [substitute(item, values) for item in obj]
    return obj


def post_in_fake(stage: Stage, event: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A person's new message is also put where Slack keeps it (the fake), so the bot can
    react to it or find it; its `${TSn}` placeholder is bound to the ts the fake gave it."""
    placeholder = _PLACEHOLDER.fullmatch(str(event.get("ts", "")))
    if placeholder is None:
        return event
    if event.get("subtype") in _PERSON_SUBTYPES and not event.get("bot_id"):
        stored = stage.fake.post_as_user(
            event["channel"],
            event.get("user") or "",
            event.get("text") or "",
            thread_ts=event.get("thread_ts"),
            blocks=event.get("blocks"),
        )
        stored.attachments = copy.deepcopy(event.get("attachments") or [])
        values[placeholder[1]] = stored.ts
    else:
        values[placeholder[1]] = stage.fake.next_ts()
    return substitute(event, values)


def where(stage: Stage, ws: Workspace, channel: str, thread_ts: str | None) -> str:
    """A short name for a place in the workspace: staff_thread, customer_thread, dm, …"""
    threads = {
        (STAFF_CHANNEL, ws.customer.card.ts): "staff_thread",
        (STAFF_CHANNEL, ws.grid.card.ts): "grid_staff_thread",
        (ws.customer.dm, ws.customer.confirmation.ts): "customer_thread",
        (ws.grid.dm, ws.grid.confirmation.ts): "grid_customer_thread",
    }
    if thread_ts and (channel, thread_ts) in threads:
        return threads[(channel, thread_ts)]
    kind = "dm" if stage.fake.channels[channel].is_im else "channel"
    return f"{kind}_thread" if thread_ts else kind


def rendered(message: Any) -> str:
    """The message as a reader sees it (mention defusing aside)."""
    return render_message_as_text(message.text, message.blocks).replace("\u200b", "")


async def replies_by_id(stage: Stage, number: int) -> dict[int, str]:
    return {r.id: r.body for r in (await detail(stage, number)).replies}


async def send(stage: Stage, envelope: dict[str, Any], event: dict[str, Any]) -> float:
    request = event_callback_body(
        event,
        team_id=envelope.get("team_id", stage.fake.team_id),
        is_ext_shared_channel=bool(envelope.get("is_ext_shared_channel", False)),
    )
    payload = request.payload
    for key in ("team_id", "context_team_id", "enterprise_id", "context_enterprise_id"):
        if key in envelope:
            payload[key] = envelope[key]
    if "authorizations" in envelope:
        payload["authorizations"] = envelope["authorizations"]
    request = SlackRequest(
        body=json.dumps(payload), content_type=request.content_type, payload=payload, kind="event"
    )
    started = time.monotonic()
    response = await stage.send(request)
    took = time.monotonic() - started
    assert response.status == 200, response
    await stage.settle()
    return took


@pytest.mark.parametrize("name", sorted(FIXTURES))
async def test_each_corpus_payload_has_its_declared_effect_and_nothing_else(
    stage, clock, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    fixture = FIXTURES[name]
    expect = fixture["expect"]
    ws = await workspace(stage)
    values = dict(ws.values)
    envelope = substitute(fixture.get("envelope") or {}, values)
    if fixture.get("intent"):  # what staff meant, for the leak scan at the end
        intent = substitute(fixture["intent"], values)
        stage.fake.record_intent(intent["user"], intent["text"], internal=intent["internal"])
    for setup in fixture.get("setup") or []:
        await send(stage, envelope, post_in_fake(stage, substitute(setup, values), values))
    if fixture.get("advance_hours"):
        clock.advance(hours=fixture["advance_hours"])
    ticket = ws.grid if fixture.get("ticket") == "grid" else ws.customer
    before = await replies_by_id(stage, ticket.number)
    messages_before = {(m.channel, m.ts) for m in stage.fake.messages()}
    calls_before = len(stage.fake.calls)
    ephemerals_before = len(stage.fake.ephemerals())
    caplog.clear()
    caplog.set_level(logging.INFO)

    event = post_in_fake(stage, substitute(fixture["event"], values), values)
    took = await send(stage, envelope, event)

    assert took < ACK_WITHIN_SECONDS, f"acked after {took:.2f} s"
    failures = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]

    after = await replies_by_id(stage, ticket.number)
    new = [body for rid, body in after.items() if rid not in before]
    changed = [body for rid, body in after.items() if rid in before and before[rid] != body]
    if "stored_contains" in expect:  # (files: the text part only)
        assert len(new) == 1 and all(part in new[0] for part in expect["stored_contains"]), new
    else:
        assert new == expect.get("stored", []), new
    if "changed_contains" in expect:  # (files: the text part only)
        assert len(changed) == 1, changed
        assert all(part in changed[0] for part in expect["changed_contains"]), changed
    else:
        assert changed == expect.get("changed", []), changed
    removed = [body for rid, body in before.items() if rid not in after]
    assert removed == expect.get("removed", []), removed

    posted = [
        m
        for m in stage.fake.messages(include_deleted=True)
        if (m.channel, m.ts) not in messages_before and m.bot_id
    ]
    calls = stage.fake.calls[calls_before:]
    updated = [
        stage.fake.message(c.params["channel"], c.params["ts"])
        for c in calls
        if c.method == "chat.update" and c.ok
    ]
    ephemerals = stage.fake.ephemerals()[ephemerals_before:]
    if "posts" in expect:
        assert sorted(where(stage, ws, m.channel, m.thread_ts) for m in posted) == sorted(
            expect["posts"]
        ), [(m.channel, m.thread_ts, m.text) for m in posted]
        assert sorted(
            where(stage, ws, m.channel, m.thread_ts) for m in updated if m is not None
        ) == sorted(expect.get("updates", []))
        assert sorted(where(stage, ws, e.channel, e.thread_ts) for e in ephemerals) == sorted(
            expect.get("ephemerals", [])
        )
    shown = "\n".join(rendered(m) for m in [*posted, *(u for u in updated if u)])
    shown += "\n".join(e.text_content for e in ephemerals)
    for part in expect.get("shown", []):
        assert part in shown, (part, shown)
    for part in expect.get("not_shown", []):
        assert part not in shown, (part, shown)
    mrkdwn = [
        _CARD_PEOPLE.sub("", json.dumps(c.params))
        for c in calls
        if c.method in ("chat.postMessage", "chat.update", "chat.postEphemeral") and c.ok
    ]
    for link in expect.get("links", []):
        assert any(f"<{link}>" in text for text in mrkdwn), link
    assert not any(_PINGS.search(text) for text in mrkdwn), mrkdwn
    assert not any("&amp;lt;" in text or "&amp;gt;" in text for text in mrkdwn), mrkdwn


def test_the_corpus_covers_every_documented_shape() -> None:
    kinds = {fixture.get("kind") for fixture in FIXTURES.values()}
    assert len(FIXTURES) >= 20
    assert kinds >= {
        "links",
        "mentions",
        "channels",
        "user_groups",
        "broadcasts",
        "rich_text_only",
        "forwarded",
        "file_share_one",
        "file_share_several",
        "message_changed",
        "message_deleted",
        "thread_broadcast",
        "bot_message",
        "slackbot",
        "enterprise_grid",
        "slack_connect",
    }
