"""The stand-in Slack checks scopes as Slack does: per method and, for conversations.*, per
kind of conversation, against the scopes the app is installed with (app_manifest.yml's), so a
scope missing from the manifest fails here instead of in a production install."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.cli import check_command
from bot.settings import BotSettings
from devslack.scopes import (
    IM,
    METHOD_SCOPES,
    MPIM,
    PRIVATE,
    PUBLIC,
    manifest_scopes,
    needed_scopes,
)
from devslack.server import FakeSlack
from devslack.stage import SIGNING_SECRET

MANIFEST = Path(__file__).resolve().parents[2] / "app_manifest.yml"


def test_the_stand_in_is_installed_with_exactly_the_manifests_scopes():
    declared = yaml.safe_load(MANIFEST.read_text())["oauth_config"]["scopes"]["bot"]
    assert manifest_scopes(MANIFEST) == frozenset(declared)
    assert FakeSlack().scopes == frozenset(declared)


@pytest.mark.parametrize(
    ("method", "kind", "scope"),
    [
        ("conversations.info", PUBLIC, "channels:read"),
        ("conversations.info", PRIVATE, "groups:read"),
        ("conversations.info", IM, "im:read"),
        ("conversations.info", MPIM, "mpim:read"),
        ("conversations.members", PUBLIC, "channels:read"),
        ("conversations.history", PUBLIC, "channels:history"),
        ("conversations.history", PRIVATE, "groups:history"),
        ("conversations.replies", IM, "im:history"),
        ("conversations.replies", MPIM, "mpim:history"),
    ],
)
def test_conversation_methods_need_the_scope_of_the_conversations_kind(method, kind, scope):
    assert needed_scopes(method, {"channel": "C1"}, lambda channel: kind) == [scope]
    assert needed_scopes(method, {"channel": "C1"}, lambda channel: None) == []


def test_the_table_knows_the_methods_other_features_use():
    assert needed_scopes("files.info", {"file": "F1"}, lambda c: None) == ["files:read"]
    assert needed_scopes("files.completeUploadExternal", {}, lambda c: None) == ["files:write"]
    assert needed_scopes("files.getUploadURLExternal", {}, lambda c: None) == ["files:write"]
    assert needed_scopes("reactions.get", {}, lambda c: None) == ["reactions:read"]
    assert needed_scopes("chat.postMessage", {"channel": "C1"}, lambda c: PUBLIC) == ["chat:write"]
    assert needed_scopes("conversations.open", {"users": "U1"}, lambda c: None) == ["im:write"]
    assert needed_scopes("conversations.open", {"users": "U1,U2"}, lambda c: None) == ["mpim:write"]
    assert needed_scopes("auth.test", {}, lambda c: None) == []
    assert all(
        rule.always or rule.by_conversation or m == "conversations.open"
        for m, rule in METHOD_SCOPES.items()
    )


async def test_a_call_without_its_scope_is_answered_missing_scope_and_changes_nothing():
    async with FakeSlack(scopes={"chat:write", "groups:read"}) as slack:
        slack.add_channel("CPUBLIC01", "general", is_private=False, members=[])
        slack.add_channel("CPRIVATE1", "triage", is_private=True, members=[])
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        info = await client.conversations_info(channel="CPRIVATE1")
        assert info["channel"]["id"] == "CPRIVATE1"
        with pytest.raises(SlackApiError) as refused:
            await client.conversations_info(channel="CPUBLIC01")
        assert refused.value.response["error"] == "missing_scope"
        assert refused.value.response["needed"] == "channels:read"
        assert refused.value.response["provided"] == "chat:write,groups:read"
        with pytest.raises(SlackApiError) as refused:
            await client.reactions_add(channel="CPRIVATE1", timestamp="1.0", name="lock")
        assert refused.value.response["needed"] == "reactions:write"
        await client.chat_postMessage(channel="CPUBLIC01", text="hello")
        assert [m.text for m in slack.messages("CPUBLIC01")] == ["hello"]


async def test_check_fails_when_the_manifest_lacks_the_scope_of_a_public_alert_channel(
    tmp_path, capsys
):
    without = manifest_scopes() - {"channels:read"}
    async with FakeSlack(scopes=without) as slack:
        slack.add_channel("CSTAFF0001", "support-triage", is_private=True, members=[])
        slack.add_channel("CALERTS001", "support-alerts", is_private=False, members=[])
        settings = BotSettings(  # type: ignore[call-arg]
            _env_file=None,
            slack_bot_token=slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack.api_url,
            staff_channel_id="CSTAFF0001",
            manager_channel_id="CALERTS001",
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        )
        assert await check_command(settings) == 1
    failures = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL")]
    assert failures == [
        "FAIL MANAGER_CHANNEL_ID CALERTS001: Slack answered missing_scope: the app lacks a "
        "permission scope: update the app from app_manifest.yml and reinstall it "
        "(needed: channels:read)"
    ]
