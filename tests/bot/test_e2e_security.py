"""Security at the edges, end to end: request signatures, a public staff channel, mention
injection through ticket text, and who may use the desk at all."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from bot.app import StartupError
from bot.identity import LOOKUP_TIMEOUT_SECONDS
from core.admin import create_company
from core.context import Core
from devslack.requests import SlackUser, url_verification_body
from devslack.stage import ADMIN, AGENT, CUSTOMER, CUSTOMER_2, STAFF_CHANNEL, Person, Stage
from tests.bot.e2e_support import detail, last_ephemeral, open_ticket, staff_cards, user
from tests.conftest import settings_for as core_settings
from tests.conftest import truncate_all

# --------------------------------------------------------------------------- signatures


async def test_request_with_a_bad_signature_is_refused_with_401(stage):
    request = stage.user(CUSTOMER).slash_command("new Hello", channel_id=stage.dm(CUSTOMER))
    response = await stage.send(
        request,
        sign=False,
        headers={
            "X-Slack-Request-Timestamp": str(int(time.time())),
            "X-Slack-Signature": "v0=" + "0" * 64,
        },
    )
    await stage.settle()
    assert response.status == 401
    assert not stage.fake.views_opened()


async def test_request_signed_with_another_secret_is_refused_with_401(stage):
    from devslack.requests import SlackRequestSigner

    request = stage.user(CUSTOMER).slash_command("help", channel_id=stage.dm(CUSTOMER))
    forged = SlackRequestSigner("not-the-signing-secret").headers(request.body)
    response = await stage.send(request, sign=False, headers=forged)
    await stage.settle()
    assert response.status == 401
    assert not stage.fake.ephemerals(CUSTOMER.user_id)


async def test_request_with_a_stale_timestamp_is_refused_with_401(stage):
    request = stage.user(CUSTOMER).slash_command("help", channel_id=stage.dm(CUSTOMER))
    six_minutes_ago = int(time.time()) - 6 * 60
    response = await stage.send(request, timestamp=six_minutes_ago)
    await stage.settle()
    assert response.status == 401
    assert not stage.fake.ephemerals(CUSTOMER.user_id)


async def test_request_four_minutes_old_is_still_accepted(stage):
    request = stage.user(CUSTOMER).slash_command("help", channel_id=stage.dm(CUSTOMER))
    response = await stage.act(request, timestamp=int(time.time()) - 4 * 60)
    assert response.status == 200
    assert "/ticket new" in last_ephemeral(stage, CUSTOMER)


async def test_request_without_signature_is_refused_with_401(stage):
    card_before = len(staff_cards(stage))
    request = stage.user(CUSTOMER).says(stage.dm(CUSTOMER), "hello?")
    response = await stage.send(request, sign=False)
    await stage.settle()
    assert response.status == 401
    assert len(staff_cards(stage)) == card_before
    assert [m for m in stage.fake.messages(stage.dm(CUSTOMER)) if m.bot_id] == []


async def test_url_verification_answers_the_challenge_only_when_signed(stage):
    request = url_verification_body("challenge-token-123")
    response = await stage.send(request)
    assert response.status == 200
    body = response.body if isinstance(response.body, str) else json.dumps(response.body)
    assert "challenge-token-123" in body
    unsigned = await stage.send(request, sign=False)
    assert unsigned.status == 401


# --------------------------------------------------------------------------- start-up


async def test_public_staff_channel_stops_start_up(database, database_url, clock):
    core = Core(db=database, settings=core_settings(database_url), clock=clock)
    stage = Stage(database_url=database_url, clock=clock, core=core, staff_channel_private=False)
    try:
        with pytest.raises(StartupError) as caught:
            await stage.start()
    finally:
        await stage.stop()
        await truncate_all(database)
    message = str(caught.value)
    assert "STAFF_CHANNEL_ID" in message and "must be private" in message
    assert stage.server is not None and stage.server.base_url == ""  # never served


# --------------------------------------------------------------------------- mention injection

INJECTION = "<!channel> @here <@UAGENT0001> <http://evil.example|click>"
_LIVE = [
    re.compile(r"<!(?:channel|here|everyone)"),
    re.compile(r"<!subteam\^"),
    re.compile(r"<@UAGENT0001"),
    re.compile(r"<https?://evil[^>]*\|"),  # a link may be clickable, never relabelled
    re.compile(r"(?<![\w.+-])@(?:channel|here|everyone)\b"),  # link_names-style broadcasts
]


def _mrkdwn_texts(obj: Any, *, top: bool = True) -> list[str]:
    """Every string Slack would parse as mrkdwn: a message's `text`, mrkdwn text objects and
    section fields. plain_text objects are shown literally and never ping (header blocks)."""
    found: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
            found.append(obj["text"])
        if obj.get("type") == "plain_text":
            return found
        for key, value in obj.items():
            if key == "text" and isinstance(value, str) and top:
                found.append(value)
            elif isinstance(value, dict | list):
                found.extend(_mrkdwn_texts(value, top=False))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(_mrkdwn_texts(item, top=False))
    return found


def _live_tokens(params: dict[str, Any]) -> list[str]:
    texts = _mrkdwn_texts({k: v for k, v in params.items() if k in ("text", "blocks")})
    for key in ("blocks", "view"):
        if isinstance(params.get(key), dict):
            texts += _mrkdwn_texts(params[key], top=False)
    return [t for t in texts if any(p.search(t) for p in _LIVE)]


async def test_mention_injection_through_ticket_text_is_neutralised(stage):
    opened = await open_ticket(stage, title=INJECTION, description=INJECTION)
    customer = stage.user(CUSTOMER)
    await stage.act(customer.says(opened.dm, INJECTION, thread_ts=opened.confirmation.ts))
    agent = stage.user(AGENT)
    await stage.act(agent.says(STAFF_CHANNEL, f"!reply {INJECTION}", thread_ts=opened.card.ts))
    await stage.act(
        agent.slash_command(f"close {opened.number} {INJECTION}", channel_id=STAFF_CHANNEL)
    )
    await stage.act(customer.slash_command(f"show {opened.number}", channel_id=opened.dm))
    await stage.act(customer.slash_command("mine", channel_id=opened.dm))
    await stage.act(customer.opens_home())
    # The text reached the core unchanged: only its rendering is defused.
    ticket = (await detail(stage, opened.number)).ticket
    assert ticket.title == INJECTION
    methods = (
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "response_url",
        "views.open",
        "views.publish",
    )
    calls = [c for c in stage.fake.calls if c.method in methods and c.ok]
    assert {c.method for c in calls} >= {"chat.postMessage", "chat.update", "response_url"}
    offending = [(c.method, t) for c in calls for t in _live_tokens(c.params)]
    assert not offending, offending
    # Staff and customer still read what was written (escaped, not dropped).
    relayed = [m for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id]
    assert any("evil.example" in m.text_content for m in relayed)
    # The customer's link reached staff clickable, showing where it goes, with its label.
    assert any("click (<http://evil.example>)" in m.text for m in relayed)
    assert all(not c.params.get("link_names") for c in stage.fake.calls_to("chat.postMessage"))


async def test_mention_injection_through_a_display_name_is_neutralised(stage):
    mallory = Person("UMALLORY01", "<!here> <@UAGENT0001> Mallory", "m@example.net", "customer")
    stage.fake.add_user(mallory.user_id, mallory.name, email=mallory.email)
    opened = await open_ticket(stage, mallory, title="Harmless title")
    await stage.act(
        stage.user(mallory).says(opened.dm, "harmless text", thread_ts=opened.confirmation.ts)
    )
    await stage.act(
        stage.user(AGENT).slash_command(
            f"assign {opened.number} <@{AGENT.user_id}>", channel_id=STAFF_CHANNEL
        )
    )
    calls = [
        c
        for c in stage.fake.calls
        if c.ok and c.method in ("chat.postMessage", "chat.update", "response_url")
    ]
    relayed = [m for m in stage.fake.replies(STAFF_CHANNEL, opened.card.ts) if m.bot_id]
    assert any("Mallory" in m.text_content for m in relayed)  # the name is shown, defused
    offending = [
        (c.method, t)
        for c in calls
        for t in _live_tokens(c.params)
        if "<@UAGENT0001" not in t or "Mallory" in t  # the assignee field mentions Dana: fine
    ]
    assert not offending, offending


# --------------------------------------------------------------------------- identity


async def test_a_bot_user_cannot_open_a_ticket(stage):
    stage.fake.add_user("UROBOT0001", "Some Integration", is_bot=True)
    robot = stage.user("UROBOT0001")
    channel = stage.fake.open_dm("UROBOT0001")
    await stage.act(robot.slash_command("new I am a bot", channel_id=channel))
    assert not stage.fake.views_opened("UROBOT0001")
    answer = stage.fake.ephemerals("UROBOT0001")[-1].text_content
    assert "Bots cannot use the support desk" in answer and "FORBIDDEN" in answer


async def test_a_deactivated_slack_user_is_refused(stage):
    stage.fake.add_user("UGONE00001", "Former Employee", email="gone@example.com", deleted=True)
    gone = stage.user("UGONE00001")
    channel = stage.fake.open_dm("UGONE00001")
    await stage.act(gone.slash_command("new Let me in", channel_id=channel))
    await stage.act(gone.slash_command("mine", channel_id=channel))
    assert not stage.fake.views_opened("UGONE00001")
    answers = [e.text_content for e in stage.fake.ephemerals("UGONE00001")]
    assert len(answers) == 2 and all("FORBIDDEN" in a and "not active" in a for a in answers)


async def test_a_user_deactivated_after_first_contact_is_refused(stage):
    opened = await open_ticket(stage)
    stage.fake.users[CUSTOMER.user_id].deleted = True
    await stage.act(stage.user(CUSTOMER).slash_command("mine", channel_id=opened.dm))
    assert "FORBIDDEN" in last_ephemeral(stage, CUSTOMER)
    await stage.act(
        stage.user(CUSTOMER).says(opened.dm, "still there?", thread_ts=opened.confirmation.ts)
    )
    assert not any(r.body == "still there?" for r in (await detail(stage, opened.number)).replies)


async def test_a_user_from_another_workspace_is_refused(stage):
    # Slack Connect: someone from another organisation in a shared channel. ticketbot only
    # serves members of its own workspace (documented); they are told so, nothing is created.
    stage.fake.add_user("UEXTERN001", "Partner Person", email="p@partner.example", team_id="T2")
    outsider = SlackUser("UEXTERN001", team_id="T2", fake=stage.fake)
    channel = stage.fake.open_dm("UEXTERN001")
    await stage.act(outsider.slash_command("new Help from outside", channel_id=channel))
    assert not stage.fake.views_opened("UEXTERN001")
    answer = stage.fake.ephemerals("UEXTERN001")[-1].text_content
    assert "only serves members of this workspace" in answer and "FORBIDDEN" in answer


async def test_role_change_invalidates_the_cached_role_for_the_next_command(stage):
    stage.runtime.identity.ttl = 3600  # cache for real, as in production
    customer = stage.user(CUSTOMER)
    dm = stage.dm(CUSTOMER)
    await stage.act(customer.slash_command("help", channel_id=dm))
    assert "/ticket note" not in last_ephemeral(stage, CUSTOMER)
    await stage.act(
        stage.user(ADMIN).slash_command(f"role <@{CUSTOMER.user_id}|alice> agent", channel_id=dm)
    )
    assert "is now agent" in last_ephemeral(stage, ADMIN)
    await stage.act(customer.slash_command("help", channel_id=dm))
    assert "/ticket note" in last_ephemeral(stage, CUSTOMER)
    # and back: a demoted agent loses staff surfaces at once
    await stage.act(
        stage.user(ADMIN).slash_command(f"role <@{CUSTOMER.user_id}|alice> customer", channel_id=dm)
    )
    await stage.act(customer.slash_command("help", channel_id=dm))
    assert "/ticket note" not in last_ephemeral(stage, CUSTOMER)


async def test_slow_users_info_cannot_delay_the_ack_past_three_seconds(stage):
    assert LOOKUP_TIMEOUT_SECONDS < 2.5 and stage.runtime.identity.lookup_timeout < 2.5
    stage.runtime.identity.lookup_timeout = 0.2  # the same path, quicker
    stage.fake.add_user("UNEWCOMER1", "New Person", email="new@example.com")
    stage.fake.fail_next("users.info", status="timeout", delay=5)
    newcomer = stage.user("UNEWCOMER1")
    channel = stage.fake.open_dm("UNEWCOMER1")
    started = time.monotonic()
    response = await stage.send(newcomer.slash_command("new Slow Slack", channel_id=channel))
    assert response.status == 200 and time.monotonic() - started < 1.5
    await stage.settle()
    answer = stage.fake.ephemerals("UNEWCOMER1")[-1].text_content
    assert "UNAVAILABLE" in answer and "try again" in answer
    assert not stage.fake.views_opened("UNEWCOMER1")


async def test_a_known_user_goes_on_when_users_info_hangs(stage):
    stage.runtime.identity.lookup_timeout = 0.2
    stage.fake.fail_next("users.info", status="timeout", delay=5)
    started = time.monotonic()
    response = await stage.send(
        stage.user(CUSTOMER).slash_command("new Still works", channel_id=stage.dm(CUSTOMER))
    )
    assert response.status == 200 and time.monotonic() - started < 1.5
    await stage.settle()
    assert stage.fake.views_opened(CUSTOMER.user_id)[-1].callback_id == "create_ticket"


async def test_corporate_staff_see_the_tickets_of_their_companys_customers_only(stage):
    # Companies are matched by email domain (admin-managed): alice@example.com belongs to
    # Example Inc, bob@example.org does not.
    admin = await user(stage, ADMIN)
    await create_company(
        stage.runtime.core, actor_id=admin.id, name="Example Inc", domains=["example.com"]
    )
    stage.fake.add_user("UCORP00001", "Carla Corporate", email="carla@example.com")
    await stage.act(
        stage.user(ADMIN).slash_command(
            "role <@UCORP00001|carla> corporate", channel_id=STAFF_CHANNEL
        )
    )
    alice = await open_ticket(stage, title="Printer jams on tray two")
    bob = await open_ticket(stage, CUSTOMER_2, title="Laptop battery swelling")
    carla = stage.user("UCORP00001")
    channel = stage.fake.open_dm("UCORP00001")
    await stage.act(carla.slash_command("list", channel_id=channel))
    listed = stage.fake.ephemerals("UCORP00001")[-1].text_content
    assert "Printer jams" in listed and "Laptop battery" not in listed
    await stage.act(carla.slash_command(f"show {bob.number}", channel_id=channel))
    assert "NOT_FOUND" in stage.fake.ephemerals("UCORP00001")[-1].text_content
    await stage.act(carla.slash_command(f"note {alice.number} checked on site", channel_id=channel))
    assert "Internal note added" in stage.fake.ephemerals("UCORP00001")[-1].text_content
