"""The shape of a Slack request body, checked before bolt reads it.

Bolt indexes some fields without checking their types (`actions[0]["action_id"]`,
`view["callback_id"]`, `event["type"]`) and answers 500 when they are missing or of another
type. Slack never sends such bodies; a garbled or forged one is refused with 400 instead, before
any middleware or listener runs. The values themselves are still validated where they are used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Top-level fields that are objects whenever Slack sends them.
_OBJECTS = ("user", "team", "channel", "view", "message", "container", "event", "state")

# Events the bot listens to, whose fields the listeners read as strings.
_ROUTED_EVENTS = frozenset({"message", "app_home_opened", "app_mention"})


def well_formed(body: object) -> bool:
    """Whether bolt can route `body` without tripping over a field of the wrong type."""
    if not isinstance(body, Mapping):
        return False
    if "command" in body:  # a slash command: a form, so every value is a string
        return all(isinstance(v, str) for v in body.values())
    if any(body.get(key) is not None and not isinstance(body[key], Mapping) for key in _OBJECTS):
        return False
    kind = body.get("type")
    if kind is not None and not isinstance(kind, str):
        return False
    if not _strings(body, "callback_id", "trigger_id", "response_url", "api_app_id"):
        return False
    if (user := body.get("user")) is not None and not _strings(user, "id", "team_id"):
        return False
    if (team := body.get("team")) is not None and not _strings(team, "id"):
        return False
    if "actions" in body or kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            return False
        if not all(_action(a) for a in actions):
            return False
    if kind in ("view_submission", "view_closed"):
        view = body.get("view")
        if not isinstance(view, Mapping) or not isinstance(view.get("callback_id", ""), str):
            return False
    if kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, Mapping) or not isinstance(event.get("type"), str):
            return False
        routed = event["type"] in _ROUTED_EVENTS
        if routed and not _strings(event, "subtype", "channel", "user", "ts", "thread_ts", "text"):
            return False
    authorizations = body.get("authorizations")
    return authorizations is None or (
        isinstance(authorizations, list) and all(isinstance(a, Mapping) for a in authorizations)
    )


def _strings(obj: Mapping[str, Any], *keys: str) -> bool:
    """Each of `keys` is absent, null or a string."""
    return all(obj.get(key) is None or isinstance(obj[key], str) for key in keys)


def _action(action: object) -> bool:
    return (
        isinstance(action, Mapping)
        and isinstance(action.get("action_id"), str)
        and _strings(action, "block_id", "type")
    )
