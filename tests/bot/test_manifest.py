"""The manifest declares exactly what the code listens to, with the scopes that needs."""

from __future__ import annotations

from pathlib import Path

import yaml
from slack_bolt.async_app import AsyncApp

from bot.listeners import register_listeners
from bot.runtime import Runtime

MANIFEST = Path(__file__).resolve().parents[2] / "app_manifest.yml"

# Each event subscription needs its scopes: the history scope of its messages, or the read
# scope of its channels (channel_* public, group_* private, member_* and channel_shared both).
EVENT_SCOPES = {
    "message.im": {"im:history"},
    "message.groups": {"groups:history"},
    "message.channels": {"channels:history"},
    "channel_archive": {"channels:read"},
    "channel_unarchive": {"channels:read"},
    "channel_rename": {"channels:read"},
    "channel_left": {"channels:read"},
    "channel_shared": {"channels:read", "groups:read"},
    "channel_unshared": {"channels:read", "groups:read"},
    "group_archive": {"groups:read"},
    "group_unarchive": {"groups:read"},
    "group_rename": {"groups:read"},
    "group_left": {"groups:read"},
    "member_joined_channel": {"channels:read", "groups:read"},
    "member_left_channel": {"channels:read", "groups:read"},
    # Customer channels: the reacted message is read back (history) from public and private
    # channels, and a channel to be linked is looked up (conversations.info).
    "reaction_added": {"reactions:read", "channels:history", "channels:read"},
}


def registered(runtime_stub) -> object:
    app = AsyncApp(token="xoxb-test", signing_secret="secret")
    return register_listeners(app, runtime_stub)


class _RuntimeStub:
    def supervise(self, listener):
        return listener


def test_manifest_matches_registered_listeners():
    manifest = yaml.safe_load(MANIFEST.read_text())
    registry = registered(_RuntimeStub())
    features = manifest["features"]
    assert {c["command"] for c in features["slash_commands"]} == registry.commands
    assert {s["callback_id"] for s in features["shortcuts"] if s["type"] == "message"} == (
        registry.message_shortcuts
    )
    assert {s["callback_id"] for s in features["shortcuts"] if s["type"] == "global"} == (
        registry.global_shortcuts
    )
    assert set(manifest["settings"]["event_subscriptions"]["bot_events"]) == registry.events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert features["app_home"]["home_tab_enabled"] is True


def test_manifest_has_the_scopes_the_code_needs():
    manifest = yaml.safe_load(MANIFEST.read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    required = {
        "commands",
        "chat:write",
        "im:write",
        "users:read",
        "users:read.email",
        "reactions:write",
        "groups:read",
        "files:read",
        "files:write",
    }
    for event in manifest["settings"]["event_subscriptions"]["bot_events"]:
        required |= EVENT_SCOPES.get(event, set())
    assert required <= scopes


def test_all_request_urls_point_at_the_one_endpoint():
    manifest = yaml.safe_load(MANIFEST.read_text())
    urls = {c["url"] for c in manifest["features"]["slash_commands"]}
    urls.add(manifest["settings"]["event_subscriptions"]["request_url"])
    urls.add(manifest["settings"]["interactivity"]["request_url"])
    assert len(urls) == 1 and urls.pop().endswith("/slack/events")


_ = Runtime
