"""FakeSlack, the request builders/signer and the Block Kit renderer behave like the real thing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from devslack import (
    BotClient,
    FakeSlack,
    SlackRequestSigner,
    SlackUser,
    block_actions_body,
    build_state_values,
    button_action,
    event_callback_body,
    render_blocks_as_text,
    render_view_as_text,
    slash_command_body,
    url_verification_body,
    view_submission_body,
)
from devslack.requests import static_select_value, users_select_value

TOKEN = "xoxb-test-token"
SECRET = "test-signing-secret"

CUSTOMER = "UCUST"
STAFF = "USTAFF"
OTHER = "UOTHER"
PRIVATE = "CPRIV"

MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "new_ticket",
    "title": {"type": "plain_text", "text": "New ticket"},
    "submit": {"type": "plain_text", "text": "Create"},
    "private_metadata": "secret-meta",
    "blocks": [
        {
            "type": "input",
            "block_id": "subject",
            "label": {"type": "plain_text", "text": "Subject"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        },
        {
            "type": "input",
            "block_id": "priority",
            "label": {"type": "plain_text", "text": "Priority"},
            "element": {
                "type": "static_select",
                "action_id": "value",
                "options": [
                    {"text": {"type": "plain_text", "text": "High"}, "value": "high"},
                    {"text": {"type": "plain_text", "text": "Low"}, "value": "low"},
                ],
            },
        },
    ],
}

CARD: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": "Ticket #42"}},
    {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*Printer on fire* from <@UCUST>"},
        "fields": [
            {"type": "mrkdwn", "text": "*Status:*\nOpen"},
            {"type": "mrkdwn", "text": "*Priority:*\nHigh"},
        ],
    },
    {"type": "divider"},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "SLA due in 2h"}]},
    {
        "type": "actions",
        "block_id": "ticket_actions",
        "elements": [
            {
                "type": "button",
                "action_id": "claim",
                "text": {"type": "plain_text", "text": "Claim"},
                "value": "42",
            },
            {
                "type": "button",
                "action_id": "close",
                "text": {"type": "plain_text", "text": "Close"},
                "value": "42",
            },
        ],
    },
]


async def _raw_post(url: str, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
    """POST with plain aiohttp; return status, headers and the JSON (or text) body."""
    async with aiohttp.ClientSession() as session, session.post(url, **kwargs) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, dict(resp.headers), body


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    """A running FakeSlack with a customer, a staff member and a private staff channel."""
    server = FakeSlack(bot_token=TOKEN)
    server.add_user(CUSTOMER, "carla", email="carla@example.com")
    server.add_user(STAFF, "sam", email="sam@support.example")
    server.add_user(OTHER, "olga")
    server.add_channel(PRIVATE, "support-triage", is_private=True, members=[STAFF])
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(fake: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    """A slack_sdk client pointed at the fake."""
    web_client = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
    yield web_client
    if web_client.session is not None:
        await web_client.session.close()


async def test_start_returns_loopback_api_url(fake: FakeSlack) -> None:
    assert fake.api_url.startswith("http://127.0.0.1:")
    assert fake.api_url.endswith("/api/")
    assert fake.port != 0


async def test_auth_and_users(client: AsyncWebClient, fake: FakeSlack) -> None:
    auth = await client.auth_test()
    assert auth["ok"] and auth["user_id"] == "UBOT" and auth["bot_id"] == "BBOT"
    assert auth["team_id"] == "T1"

    info = await client.users_info(user=CUSTOMER)
    user = info["user"]
    assert user["id"] == CUSTOMER and user["name"] == "carla" and user["team_id"] == "T1"
    assert user["profile"]["email"] == "carla@example.com"
    assert user["deleted"] is False and user["is_bot"] is False

    with pytest.raises(SlackApiError) as err:
        await client.users_info(user="UNOPE")
    assert err.value.response["error"] == "user_not_found"
    assert [c.method for c in fake.calls] == ["auth.test", "users.info", "users.info"]


async def test_invalid_token_is_rejected(fake: FakeSlack) -> None:
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as err:
        await bad.chat_postMessage(channel=PRIVATE, text="hi")
    assert err.value.response["error"] == "invalid_auth"
    assert fake.messages() == []
    assert fake.calls_to("chat.postMessage")[0].error == "invalid_auth"


async def test_token_form_field_and_form_encoded_blocks(fake: FakeSlack) -> None:
    form = {"token": TOKEN, "channel": PRIVATE, "text": "x", "blocks": json.dumps(CARD)}
    _, _, body = await _raw_post(fake.api_url + "chat.postMessage", data=form)
    assert body["ok"] is True
    assert fake.messages(PRIVATE)[0].blocks == CARD
    assert "token" not in fake.calls[0].params


async def test_conversations_info_and_open(client: AsyncWebClient, fake: FakeSlack) -> None:
    info = await client.conversations_info(channel=PRIVATE)
    assert info["channel"]["is_private"] is True and info["channel"]["name"] == "support-triage"
    assert info["channel"]["is_im"] is False

    with pytest.raises(SlackApiError) as err:
        await client.conversations_info(channel="CNOPE")
    assert err.value.response["error"] == "channel_not_found"

    first = await client.conversations_open(users=CUSTOMER)
    second = await client.conversations_open(users=[CUSTOMER])
    other = await client.conversations_open(users=OTHER)
    dm = first["channel"]["id"]
    assert dm.startswith("D") and second["channel"]["id"] == dm
    assert other["channel"]["id"] != dm
    # The bot never reads a DM's info, so its manifest has no im:read: installed here only.
    fake.scopes = fake.scopes | {"im:read"}
    im = await client.conversations_info(channel=dm)
    assert im["channel"]["is_im"] is True and im["channel"]["user"] == CUSTOMER
    members = await client.conversations_members(channel=dm)
    assert set(members["members"]) == {"UBOT", CUSTOMER}


async def test_post_update_delete_thread_and_history(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    posted = await client.chat_postMessage(
        channel=PRIVATE,
        text="Ticket #42",
        blocks=CARD,
        metadata={"event_type": "ticket", "event_payload": {"id": 42}},
    )
    ts = posted["ts"]
    assert posted["channel"] == PRIVATE and posted["message"]["text"] == "Ticket #42"
    reply = await client.chat_postMessage(channel=PRIVATE, text="on it", thread_ts=ts)
    assert reply["message"]["thread_ts"] == ts

    updated = await client.chat_update(channel=PRIVATE, ts=ts, text="Ticket #42 (claimed)")
    assert updated["ts"] == ts
    stored = fake.message(PRIVATE, ts)
    assert stored is not None and stored.edited is not None
    assert stored.history[0].text == "Ticket #42"
    assert stored.metadata == {"event_type": "ticket", "event_payload": {"id": 42}}

    history = await client.conversations_history(channel=PRIVATE)
    assert [m["ts"] for m in history["messages"]] == [ts]
    assert history["messages"][0]["reply_count"] == 1
    replies = await client.conversations_replies(channel=PRIVATE, ts=ts)
    assert [m["text"] for m in replies["messages"]] == ["Ticket #42 (claimed)", "on it"]
    assert [m.text for m in fake.replies(PRIVATE, ts)] == ["on it"]

    link = await client.chat_getPermalink(channel=PRIVATE, message_ts=reply["ts"])
    assert link["permalink"].startswith("https://") and f"thread_ts={ts}" in link["permalink"]

    await client.chat_delete(channel=PRIVATE, ts=reply["ts"])
    assert [m.text for m in fake.messages(PRIVATE)] == ["Ticket #42 (claimed)"]
    deleted = fake.messages(PRIVATE, include_deleted=True)[-1]
    assert deleted.deleted is True and deleted.text == "on it"

    for call in (
        client.chat_update(channel=PRIVATE, ts="1.000001", text="x"),
        client.chat_update(channel=PRIVATE, ts=reply["ts"], text="x"),
    ):
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == "message_not_found"


async def test_ts_values_are_unique_and_increasing(client: AsyncWebClient, fake: FakeSlack) -> None:
    sequential = [
        (await client.chat_postMessage(channel=PRIVATE, text=str(i)))["ts"] for i in range(5)
    ]
    concurrent = await asyncio.gather(
        *(client.chat_postMessage(channel=PRIVATE, text=f"c{i}") for i in range(10))
    )
    all_ts = sequential + [r["ts"] for r in concurrent]
    assert len(set(all_ts)) == len(all_ts)
    assert sequential == sorted(sequential, key=float)
    stored = [m.ts for m in fake.messages(PRIVATE)]
    assert sorted(stored) == sorted(all_ts)
    assert all(len(ts.split(".")[1]) == 6 for ts in all_ts)


async def test_ts_increases_under_a_frozen_clock() -> None:
    frozen = FakeSlack(clock=lambda: 1700000000.0)
    stamps = [frozen.next_ts() for _ in range(3)]
    assert stamps == ["1700000000.000000", "1700000000.000100", "1700000000.000200"]


async def test_not_in_channel_and_archived(client: AsyncWebClient, fake: FakeSlack) -> None:
    fake.add_channel("CNOBOT", "general", is_private=False, members=[STAFF], bot_member=False)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="CNOBOT", text="hello")
    assert err.value.response["error"] == "not_in_channel"
    fake.archive_channel(PRIVATE)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=PRIVATE, text="hello")
    assert err.value.response["error"] == "is_archived"


async def test_channel_changes_answer_as_slack_and_produce_its_events(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    [public] = fake.make_public(PRIVATE, by=STAFF)
    assert public["type"] == "message" and public["subtype"] == "channel_convert_to_public"
    assert public["channel"] == PRIVATE and public["channel_type"] == "channel"
    assert (await client.conversations_info(channel=PRIVATE))["channel"]["is_private"] is False
    [private] = fake.make_private(PRIVATE, by=STAFF)
    assert private["subtype"] == "channel_convert_to_private"
    assert private["channel_type"] == "group"

    [shared] = fake.share_channel(PRIVATE, team_id="T0OTHER")
    assert shared == {
        "type": "channel_shared",
        "connected_team_id": "T0OTHER",
        "channel": PRIVATE,
        "event_ts": shared["event_ts"],
    }
    info = (await client.conversations_info(channel=PRIVATE))["channel"]
    assert info["is_ext_shared"] is True and info["is_shared"] is True
    [unshared] = fake.unshare_channel(PRIVATE, team_id="T0OTHER")
    assert unshared["type"] == "channel_unshared" and unshared["is_ext_shared"] is False

    left, member_left = fake.kick(PRIVATE, fake.bot_user_id, by=STAFF)
    assert left == {
        "type": "group_left",
        "channel": PRIVATE,
        "actor_id": STAFF,
        "event_ts": left["event_ts"],
    }
    assert member_left["type"] == "member_left_channel" and member_left["channel_type"] == "G"
    # A private channel the bot is not in does not exist for it.
    for method in (client.conversations_info, client.conversations_members):
        with pytest.raises(SlackApiError) as err:
            await method(channel=PRIVATE)
        assert err.value.response["error"] == "channel_not_found"
    [joined] = fake.invite(PRIVATE, fake.bot_user_id, by=STAFF)
    assert joined["type"] == "member_joined_channel" and joined["inviter"] == STAFF
    [archived] = fake.archive_channel(PRIVATE, by=STAFF)
    assert archived["type"] == "group_archive" and archived["user"] == STAFF
    assert (await client.conversations_info(channel=PRIVATE))["channel"]["is_archived"] is True


async def test_a_channel_public_for_a_while_counts_its_messages_as_seen(fake: FakeSlack) -> None:
    before = fake.post_as_user(PRIVATE, STAFF, "written while private")
    fake.make_public(PRIVATE, by=STAFF)
    during = fake.post_as_user(PRIVATE, STAFF, "written while public")
    fake.make_private(PRIVATE, by=STAFF)
    after = fake.post_as_user(PRIVATE, STAFF, "written once private again")

    seen = [item.source for item in fake.visible_publicly()]
    assert any(m is before for m in seen) and any(m is during for m in seen)
    assert not any(m is after for m in seen)
    assert any(item.source is during for item in fake.visible_to(CUSTOMER))
    assert not any(item.source is after for item in fake.visible_to(CUSTOMER))


async def test_invalid_blocks_are_rejected(client: AsyncWebClient) -> None:
    bad = [{"type": "header", "text": {"type": "mrkdwn", "text": "no"}}]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=PRIVATE, text="x", blocks=bad)
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["response_metadata"]["messages"]


async def test_ephemeral_reactions(client: AsyncWebClient, fake: FakeSlack) -> None:
    eph = await client.chat_postEphemeral(channel=PRIVATE, user=STAFF, text="only you")
    assert eph["message_ts"]
    assert [e.text for e in fake.ephemerals(STAFF)] == ["only you"]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postEphemeral(channel=PRIVATE, user=CUSTOMER, text="nope")
    assert err.value.response["error"] == "user_not_in_channel"

    ts = (await client.chat_postMessage(channel=PRIVATE, text="react"))["ts"]
    await client.reactions_add(channel=PRIVATE, timestamp=ts, name="eyes")
    with pytest.raises(SlackApiError) as err:
        await client.reactions_add(channel=PRIVATE, timestamp=ts, name="eyes")
    assert err.value.response["error"] == "already_reacted"
    await client.reactions_add(channel=PRIVATE, timestamp=ts, name="white_check_mark")
    assert fake.reactions(PRIVATE, ts) == ["eyes", "white_check_mark"]
    await client.reactions_remove(channel=PRIVATE, timestamp=ts, name="eyes")
    assert fake.reactions(PRIVATE, ts) == ["white_check_mark"]


async def test_views_open_push_update_publish(client: AsyncWebClient, fake: FakeSlack) -> None:
    trigger = fake.issue_trigger(CUSTOMER)
    opened = await client.views_open(trigger_id=trigger, view=MODAL)
    view = opened["view"]
    assert view["id"].startswith("V") and view["callback_id"] == "new_ticket"
    assert [v.user for v in fake.views_opened()] == [CUSTOMER]
    assert fake.views_opened(STAFF) == []

    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "expired_trigger_id"

    pushed = await client.views_push(trigger_id=fake.issue_trigger(CUSTOMER), view=MODAL)
    assert pushed["view"]["previous_view_id"] == view["id"]
    assert pushed["view"]["root_view_id"] == view["id"]

    changed = {**MODAL, "title": {"type": "plain_text", "text": "Done"}}
    with pytest.raises(SlackApiError) as err:
        await client.views_update(view_id=view["id"], view=changed, hash="stale")
    assert err.value.response["error"] == "hash_conflict"
    updated = await client.views_update(view_id=view["id"], view=changed, hash=view["hash"])
    assert updated["view"]["title"]["text"] == "Done"

    home = {
        "type": "home",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Hi"}}],
    }
    await client.views_publish(user_id=CUSTOMER, view=home)
    await client.views_publish(user_id=CUSTOMER, view=home)
    assert len(fake.home_views(CUSTOMER)) == 2 and fake.home_views(STAFF) == []


async def test_expired_and_unregistered_triggers(client: AsyncWebClient, fake: FakeSlack) -> None:
    trigger = fake.issue_trigger(CUSTOMER)
    fake.expire_trigger(trigger)
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id=trigger, view=MODAL)
    assert err.value.response["error"] == "expired_trigger_id"

    await client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert fake.views_opened()[-1].user is None
    with pytest.raises(SlackApiError) as err:
        await client.views_open(trigger_id="123.456.abc", view=MODAL)
    assert err.value.response["error"] == "expired_trigger_id"

    now = [1000.0]
    aged = FakeSlack(bot_token=TOKEN, trigger_ttl=3.0, clock=lambda: now[0])
    stale = aged.issue_trigger(CUSTOMER)
    now[0] += 3.5
    await aged.start()
    try:
        late = AsyncWebClient(token=TOKEN, base_url=aged.api_url)
        with pytest.raises(SlackApiError) as err:
            await late.views_open(trigger_id=stale, view=MODAL)
        assert err.value.response["error"] == "expired_trigger_id"
    finally:
        await aged.stop()


async def test_rate_limit_carries_retry_after_and_is_retried(
    client: AsyncWebClient, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    status, headers, body = await _raw_post(
        fake.api_url + "chat.postMessage",
        json={"channel": PRIVATE, "text": "x"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert status == 429 and headers["Retry-After"] == "7"
    assert body["error"] == "ratelimited"

    # The SDK handler sleeps Retry-After + random(); make the jitter zero to keep this fast.
    monkeypatch.setattr(builtin_async_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=2))
    fake.fail_next("chat.postMessage", count=2, status=429, retry_after=0)
    result = await client.chat_postMessage(channel=PRIVATE, text="eventually")
    assert result["ok"] is True
    attempts = fake.calls_to("chat.postMessage")[1:]
    assert [c.injected for c in attempts] == [True, True, False]
    assert [c.status for c in attempts] == [429, 429, 200]
    assert len(fake.messages(PRIVATE)) == 1


async def test_error_and_server_faults(client: AsyncWebClient, fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel=PRIVATE, text="x")
    assert err.value.response.status_code == 200
    assert err.value.response["error"] == "channel_not_found"

    rule = fake.fail_for(lambda method, params: params.get("text") == "boom", until=2, status=503)
    for _ in range(2):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel=PRIVATE, text="boom")
        assert err.value.response.status_code == 503
    await client.chat_postMessage(channel=PRIVATE, text="boom")
    assert rule.hits == 2 and not rule.active

    stop = [False]
    fake.fail_for("users.info", until=lambda: stop[0])
    with pytest.raises(SlackApiError):
        await client.users_info(user=CUSTOMER)
    stop[0] = True
    assert (await client.users_info(user=CUSTOMER))["ok"] is True
    assert len(fake.calls_to("users.info", include_injected=False)) == 1


async def test_timeout_fault(fake: FakeSlack) -> None:
    impatient = AsyncWebClient(token=TOKEN, base_url=fake.api_url, timeout=0.1)  # type: ignore[arg-type]
    fake.fail_next("chat.postMessage", status="timeout", delay=30)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel=PRIVATE, text="lost")
    assert time.monotonic() - started < 5
    assert fake.messages() == []

    fake.fail_next("chat.postMessage", status="timeout", delay=0.2, then_process=True)
    with pytest.raises(asyncio.TimeoutError):
        await impatient.chat_postMessage(channel=PRIVATE, text="processed anyway")
    call = fake.calls_to("chat.postMessage")[-1]
    await asyncio.wait_for(call.answered.wait(), timeout=10)
    assert call.injected and call.ok
    assert [m.text for m in fake.messages(PRIVATE)] == ["processed anyway"]


async def test_unknown_method_is_recorded(client: AsyncWebClient, fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        await client.api_call("files.teleport")
    assert err.value.response.status_code == 404
    assert err.value.response["error"] == "unknown_method"
    assert fake.calls_to("files.teleport")


async def test_visibility(client: AsyncWebClient, fake: FakeSlack) -> None:
    note = "INTERNAL: customer is on a watch list"
    await client.chat_postMessage(
        channel=PRIVATE,
        text="note",
        blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": note}]}],
    )
    dm = (await client.conversations_open(users=CUSTOMER))["channel"]["id"]
    await client.chat_postMessage(channel=dm, text="We got your ticket")
    await client.chat_postEphemeral(channel=PRIVATE, user=STAFF, text="psst staff")
    await client.views_open(
        trigger_id=fake.issue_trigger(CUSTOMER),
        view={**MODAL, "blocks": [*MODAL["blocks"], _section("Modal for carla")]},
    )

    def texts(user: str) -> str:
        return "\n".join(item.text_content for item in fake.visible_to(user))

    assert note in texts(STAFF)
    assert note not in texts(CUSTOMER) and note not in texts(OTHER)
    assert "We got your ticket" in texts(CUSTOMER)
    assert "We got your ticket" not in texts(STAFF)
    assert "psst staff" in texts(STAFF) and "psst staff" not in texts(CUSTOMER)
    assert "Modal for carla" in texts(CUSTOMER) and "Subject" in texts(CUSTOMER)
    assert "Modal for carla" not in texts(STAFF)
    assert "secret-meta" not in texts(CUSTOMER)
    assert fake.find_visible(CUSTOMER, "secret-meta", raw=True)
    assert not any(note in item.text_content for item in fake.visible_publicly())

    # An edit does not erase what was already seen.
    ts = fake.messages(dm)[-1].ts
    await client.chat_update(channel=dm, ts=ts, text="edited")
    assert "We got your ticket" in texts(CUSTOMER)


async def test_response_url_is_served(fake: FakeSlack) -> None:
    url = fake.issue_response_url(CUSTOMER, PRIVATE)
    assert (await _raw_post(url, json={"text": "just for you"}))[::2] == (200, "ok")
    in_channel = {"response_type": "in_channel", "text": "all"}
    assert (await _raw_post(url, json=in_channel))[0] == 200
    assert [e.text for e in fake.ephemerals(CUSTOMER)] == ["just for you"]
    assert [m.text for m in fake.messages(PRIVATE)] == ["all"]
    assert len(fake.calls_to("response_url")) == 2


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_render_blocks_as_text() -> None:
    rendered = render_blocks_as_text(CARD, names={CUSTOMER: "carla"})
    assert rendered.splitlines() == [
        "Ticket #42",
        "==========",
        "*Printer on fire* from @carla",
        "  *Status:* Open",
        "  *Priority:* High",
        "-" * 48,
        "  SLA due in 2h",
        "[Claim] [Close]",
    ]
    modal = render_view_as_text(MODAL)
    assert modal.splitlines() == [
        "[ New ticket ]",
        "Subject: ____",
        "Priority: [choose v]",
        "[Create]",
    ]


def test_signer_is_accepted_by_slack_sdk_verifier() -> None:
    signer = SlackRequestSigner(SECRET)
    body = slash_command_body(text="help", user_id=CUSTOMER, channel_id=PRIVATE).body
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid_request(body, signer.headers(body))
    assert not verifier.is_valid_request(body + "x", signer.headers(body))
    stale = signer.headers(body, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)
    assert not SignatureVerifier("other").is_valid_request(body, signer.headers(body))


def test_payload_builders_match_slack_shapes() -> None:
    command = slash_command_body(
        text="new printer", user_id=CUSTOMER, channel_id="D1", trigger_id="t"
    )
    fields = {k: v[0] for k, v in parse_qs(command.body).items()}
    assert fields["command"] == "/ticket" and fields["text"] == "new printer"
    assert fields["user_id"] == CUSTOMER and fields["trigger_id"] == "t"
    assert command.content_type == "application/x-www-form-urlencoded"

    message = {"type": "message", "ts": "1700000000.000100", "text": "card", "blocks": CARD}
    clicked = block_actions_body(
        user_id=STAFF, actions=[button_action("claim")], message=message, channel=PRIVATE
    )
    payload = json.loads(parse_qs(clicked.body)["payload"][0])
    action = payload["actions"][0]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == STAFF
    assert action["block_id"] == "ticket_actions" and action["value"] == "42"
    assert action["text"]["text"] == "Claim"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1700000000.000100",
        "channel_id": PRIVATE,
        "is_ephemeral": False,
    }

    values = build_state_values(
        {
            "subject": {"value": "Printer"},
            "priority": {"value": "high"},
            "owner": {"pick": users_select_value(STAFF)},
            "other": {"sel": static_select_value("x")},
        },
        blocks=MODAL["blocks"],
    )
    assert values["subject"]["value"] == {"type": "plain_text_input", "value": "Printer"}
    assert values["priority"]["value"]["selected_option"]["value"] == "high"
    assert values["priority"]["value"]["selected_option"]["text"]["text"] == "High"
    assert values["owner"]["pick"] == {"type": "users_select", "selected_user": STAFF}
    assert values["other"]["sel"]["type"] == "static_select"

    submitted = view_submission_body(
        user_id=CUSTOMER, view=MODAL, values={"subject": {"value": "x"}}
    )
    view = submitted.payload["view"]
    assert submitted.payload["type"] == "view_submission"
    assert view["callback_id"] == "new_ticket" and view["private_metadata"] == "secret-meta"
    assert view["state"]["values"]["subject"]["value"]["value"] == "x"

    event = event_callback_body({"type": "app_home_opened", "user": CUSTOMER}, event_id="Ev1")
    assert json.loads(event.body)["event_id"] == "Ev1" and event.content_type == "application/json"
    assert json.loads(url_verification_body("abc").body)["challenge"] == "abc"


async def test_bot_client_posts_signed_requests() -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.read()))
        return web.json_response({"echo": True})

    app = web.Application()
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with BotClient(f"http://127.0.0.1:{port}", SlackRequestSigner(SECRET)) as bot:
            request = event_callback_body({"type": "app_home_opened", "user": CUSTOMER})
            status, headers, body = await bot.send(request, retry_num=1, retry_reason="timeout")
    finally:
        await runner.cleanup()
    assert status == 200 and body == {"echo": True} and "Content-Type" in headers
    sent_headers, raw = seen[0]
    assert sent_headers["Content-Type"] == "application/json"
    assert sent_headers["X-Slack-Retry-Num"] == "1"
    assert sent_headers["X-Slack-Retry-Reason"] == "timeout"
    assert SignatureVerifier(SECRET).is_valid_request(raw, sent_headers)


async def test_bolt_app_round_trip(fake: FakeSlack) -> None:
    """A real Bolt AsyncApp, fed by BotClient, talks to FakeSlack through its web client."""
    bolt = AsyncApp(
        token=TOKEN,
        signing_secret=SECRET,
        client=AsyncWebClient(token=TOKEN, base_url=fake.api_url),
        process_before_response=True,
    )

    @bolt.command("/ticket")
    async def open_modal(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    @bolt.view("new_ticket")
    async def submitted(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        values = body["view"]["state"]["values"]
        dm = (await client.conversations_open(users=body["user"]["id"]))["channel"]["id"]
        subject = values["subject"]["value"]["value"]
        priority = values["priority"]["value"]["selected_option"]["value"]
        await client.chat_postMessage(channel=dm, text=f"Ticket: {subject} ({priority})")

    @bolt.action("claim")
    async def claim(ack: Any, respond: Any) -> None:
        await ack()
        await respond(text="Claimed")

    runner = web.AppRunner(bolt.web_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    carla = SlackUser(CUSTOMER, fake=fake)
    sam = SlackUser(STAFF, fake=fake)
    try:
        async with BotClient(base, SlackRequestSigner(SECRET)) as bot:
            stale = await bot.send(
                carla.slash_command("new", channel_id=PRIVATE), timestamp=int(time.time()) - 900
            )
            assert stale.status == 401
            assert (await bot.send(carla.slash_command("new", channel_id=PRIVATE))).status == 200
            modal = fake.views_opened(CUSTOMER)[-1]
            form = {"subject": {"value": "Printer"}, "priority": {"value": "low"}}
            assert (await bot.send(carla.submit(modal, form))).status == 200
            card = (await fake_post(fake, CARD)).to_api()
            clicked = await bot.send(sam.click("claim", message=card, channel_id=PRIVATE))
            assert clicked.status == 200
            challenge = await bot.send(url_verification_body("xyz"))
            assert challenge.json == {"challenge": "xyz"}
    finally:
        await runner.cleanup()
        if bolt.client.session is not None:
            await bolt.client.session.close()
    dm = fake.dm_channel_id(CUSTOMER)
    assert dm is not None
    assert [m.text for m in fake.messages(dm)] == ["Ticket: Printer (low)"]
    assert [e.text for e in fake.ephemerals(STAFF)] == ["Claimed"]


async def fake_post(fake: FakeSlack, blocks: list[dict[str, Any]]) -> Any:
    """Post a card into the private channel through the fake's own API."""
    api = AsyncWebClient(token=TOKEN, base_url=fake.api_url)
    posted = await api.chat_postMessage(channel=PRIVATE, text="card", blocks=blocks)
    return fake.message(PRIVATE, posted["ts"])


async def test_render_for_shows_each_persons_screen(
    client: AsyncWebClient, fake: FakeSlack
) -> None:
    await client.chat_postMessage(channel=PRIVATE, text="card", blocks=CARD)
    dm = (await client.conversations_open(users=CUSTOMER))["channel"]["id"]
    await client.chat_postMessage(channel=dm, text="Thanks, <@UCUST>!")
    bookmark = fake.mark()
    await client.chat_postEphemeral(channel=PRIVATE, user=STAFF, text="claimed by you")

    staff_screen = fake.render_for(STAFF)
    assert "-- #support-triage | ticketbot" in staff_screen and "[Claim] [Close]" in staff_screen
    assert "only visible to you" in staff_screen and "Thanks" not in staff_screen
    assert fake.render_for(CUSTOMER).splitlines() == [
        "-- DM with ticketbot | ticketbot",
        "   Thanks, @carla!",
    ]
    assert fake.render_for(STAFF, since=bookmark).splitlines() == [
        "-- #support-triage | only visible to you",
        "   claimed by you",
    ]


async def test_response_url_replace_and_delete_original(fake: FakeSlack) -> None:
    posted = await fake_post(fake, CARD)
    url = fake.issue_response_url(STAFF, PRIVATE, message_ts=posted.ts)
    await _raw_post(url, json={"replace_original": True, "text": "Claimed by sam"})
    assert posted.text == "Claimed by sam" and posted.blocks == [] and posted.edited
    await _raw_post(url, json={"delete_original": True})
    assert posted.deleted
    for _ in range(3):
        await _raw_post(url, json={"text": "again"})
    status, _, text = await _raw_post(url, json={"text": "too many"})
    assert (status, text) == (404, "expired_url")
