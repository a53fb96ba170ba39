"""The Slack-to-app direction: signed request bodies exactly as Slack posts them to a request URL.

Builders return a `SlackRequest` (body + content type + decoded payload); `BotClient` signs and
posts them to the bot's /slack/events; `SlackUser` bundles them per person, optionally drawing
trigger_ids and response_urls from a FakeSlack so modals and responses land in its record."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode

import aiohttp

from bot.ids import Action, Block, Callback, Visibility

if TYPE_CHECKING:
    from devslack.server import FakeSlack

JSONDict = dict[str, Any]

DEFAULT_TEAM_ID = "T1"
DEFAULT_TEAM_DOMAIN = "fake-workspace"
DEFAULT_APP_ID = "A1"
DEFAULT_BOT_USER_ID = "UBOT"
VERIFICATION_TOKEN = "fake-verification-token"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class SlackRequestSigner:
    """Signs request bodies with Slack's v0 scheme (HMAC-SHA256 over 'v0:{ts}:{body}')."""

    def __init__(self, signing_secret: str, *, clock: Callable[[], float] = time.time) -> None:
        self._secret = signing_secret.encode()
        self._clock = clock

    def signature(self, body: str | bytes, timestamp: int | str) -> str:
        """The X-Slack-Signature value for `body` sent at `timestamp`."""
        raw = body.encode() if isinstance(body, str) else body
        base = f"v0:{timestamp}:".encode() + raw
        return "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()

    def headers(self, body: str | bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """X-Slack-Request-Timestamp and X-Slack-Signature for `body` (now unless overridden)."""
        ts = int(self._clock()) if timestamp is None else int(timestamp)
        return {
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": self.signature(body, ts),
        }


@dataclass(frozen=True)
class SlackRequest:
    """A request body as Slack would post it, plus the structure it encodes (for inspection)."""

    body: str
    content_type: str
    payload: JSONDict
    kind: str


class BotResponse(NamedTuple):
    """What the bot answered: status, headers, and the JSON body (or text if not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any

    @property
    def json(self) -> JSONDict:
        """The body as a dict ({} if it was empty or not JSON)."""
        return self.body if isinstance(self.body, dict) else {}


def make_trigger_id() -> str:
    """A random trigger_id in Slack's format (not registered with any FakeSlack)."""
    return f"{secrets.randbelow(10**10)}.{int(time.time())}.{secrets.token_hex(16)}"


def _action_ts() -> str:
    """A current Slack-style timestamp string."""
    return f"{time.time():.6f}"


def _fake_response_url(team_id: str) -> str:
    """An unreachable hooks.slack.com-shaped response_url, for when no FakeSlack serves one."""
    return f"https://hooks.slack.com/actions/{team_id}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}"


def _as_dict(obj: Any) -> JSONDict:
    """Accept a dict or a devslack record with to_api() (StoredMessage, FakeView)."""
    if obj is None:
        return {}
    to_api = getattr(obj, "to_api", None)
    if callable(to_api):
        return dict(to_api())
    return dict(obj)


def _user_obj(user_id: str, user_name: str | None, team_id: str) -> JSONDict:
    """The `user` object of an interactive payload."""
    name = user_name or user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _channel_obj(channel: str | Mapping[str, Any] | None) -> JSONDict | None:
    """The `channel` object of an interactive payload."""
    if channel is None:
        return None
    if isinstance(channel, str):
        return {"id": channel, "name": channel.lower()}
    return dict(channel)


def _interactive(payload: JSONDict, kind: str) -> SlackRequest:
    """Encode an interactive payload as the form field payload=<json>."""
    return SlackRequest(
        body=urlencode({"payload": json.dumps(payload)}),
        content_type=FORM,
        payload=payload,
        kind=kind,
    )


# --------------------------------------------------------------------------- slash commands


def slash_command_body(
    *,
    command: str = "/ticket",
    text: str = "",
    user_id: str,
    channel_id: str,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    response_url: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
) -> SlackRequest:
    """A slash command invocation (form-encoded fields)."""
    fields = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name
        or ("directmessage" if channel_id.startswith("D") else channel_id.lower()),
        "user_id": user_id,
        "user_name": user_name or user_id.lower(),
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url or _fake_response_url(team_id),
        "trigger_id": trigger_id or make_trigger_id(),
    }
    return SlackRequest(body=urlencode(fields), content_type=FORM, payload=fields, kind="command")


# --------------------------------------------------------------------------- block actions


def button_action(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
    text: str | None = None,
) -> JSONDict:
    """A button click entry for `actions`; block_id/text are filled from blocks if omitted."""
    action: JSONDict = {"type": "button", "action_id": action_id}
    if value is not None:
        action["value"] = value
    if block_id is not None:
        action["block_id"] = block_id
    if text is not None:
        action["text"] = {"type": "plain_text", "text": text, "emoji": True}
    return action


def select_action(
    action_id: str,
    value: str,
    *,
    block_id: str | None = None,
    text: str | None = None,
    type: str = "static_select",
) -> JSONDict:
    """A select/radio choice entry for `actions`."""
    action: JSONDict = {
        "type": type,
        "action_id": action_id,
        "selected_option": _option(value, text),
    }
    if block_id is not None:
        action["block_id"] = block_id
    return action


def _find_element(blocks: Sequence[Any], action_id: str) -> tuple[str | None, JSONDict | None]:
    """(block_id, element) of the element with `action_id` in `blocks`."""
    for block in blocks:
        if not isinstance(block, Mapping):
            continue
        candidates: list[Any] = []
        candidates.extend(block.get("elements", []) or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), Mapping):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, Mapping) and element.get("action_id") == action_id:
                return block.get("block_id"), dict(element)
    return None, None


def _complete_action(action: Mapping[str, Any], blocks: Sequence[Any]) -> JSONDict:
    """Fill block_id, type, text and value of an action from the element it came from."""
    done = dict(action)
    block_id, element = _find_element(blocks, str(done.get("action_id", "")))
    if element is not None:
        done.setdefault("type", element.get("type", "button"))
        if element.get("type") == "button":
            if "text" in element:
                done.setdefault("text", element["text"])
            if "value" in element:
                done.setdefault("value", element["value"])
            if "style" in element:
                done.setdefault("style", element["style"])
    done.setdefault("type", "button")
    done.setdefault("block_id", block_id or secrets.token_hex(3))
    done.setdefault("action_ts", _action_ts())
    return done


def block_actions_body(
    *,
    user_id: str,
    actions: Sequence[Mapping[str, Any]],
    view: Mapping[str, Any] | Any | None = None,
    message: Mapping[str, Any] | Any | None = None,
    channel: str | Mapping[str, Any] | None = None,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    response_url: str | None = None,
    is_ephemeral: bool = False,
    state_values: Mapping[str, Any] | None = None,
    user_name: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
) -> SlackRequest:
    """A block_actions interaction from a message (channel+message) or a view (view)."""
    view_dict = _as_dict(view) if view is not None else None
    message_dict = _as_dict(message) if message is not None else None
    blocks = (view_dict or message_dict or {}).get("blocks", [])
    payload: JSONDict = {
        "type": "block_actions",
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or make_trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [_complete_action(a, blocks) for a in actions],
    }
    if view_dict is not None:
        view_dict.setdefault("state", {"values": {}})
        if state_values is not None:
            view_dict["state"] = {"values": dict(state_values)}
        payload["container"] = {"type": "view", "view_id": view_dict.get("id", "")}
        payload["view"] = view_dict
        payload["state"] = view_dict["state"]
    else:
        channel_obj = _channel_obj(channel)
        message_ts = (message_dict or {}).get("ts", "")
        payload["container"] = {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": (channel_obj or {}).get("id", ""),
            "is_ephemeral": is_ephemeral,
        }
        if channel_obj is not None:
            payload["channel"] = channel_obj
        if message_dict is not None:
            payload["message"] = message_dict
        payload["state"] = {"values": dict(state_values or {})}
        payload["response_url"] = response_url or _fake_response_url(team_id)
    return _interactive(payload, "block_actions")


# --------------------------------------------------------------------------- state values


def _option(value: str, text: str | None = None) -> JSONDict:
    """A Block Kit option object."""
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


def plain_text_value(value: str | None) -> JSONDict:
    """State of a plain_text_input."""
    return {"type": "plain_text_input", "value": value}


def static_select_value(value: str | None, text: str | None = None) -> JSONDict:
    """State of a static_select (None: nothing chosen)."""
    return {
        "type": "static_select",
        "selected_option": None if value is None else _option(value, text),
    }


def users_select_value(user_id: str | None) -> JSONDict:
    """State of a users_select."""
    return {"type": "users_select", "selected_user": user_id}


def radio_value(value: str | None, text: str | None = None) -> JSONDict:
    """State of a radio_buttons group."""
    return {
        "type": "radio_buttons",
        "selected_option": None if value is None else _option(value, text),
    }


def checkboxes_value(values: Sequence[str]) -> JSONDict:
    """State of a checkboxes group."""
    return {"type": "checkboxes", "selected_options": [_option(v) for v in values]}


def multi_static_select_value(values: Sequence[str]) -> JSONDict:
    """State of a multi_static_select."""
    return {"type": "multi_static_select", "selected_options": [_option(v) for v in values]}


def datepicker_value(date: str | None) -> JSONDict:
    """State of a datepicker (YYYY-MM-DD)."""
    return {"type": "datepicker", "selected_date": date}


def _option_text(element: Mapping[str, Any] | None, value: str) -> str | None:
    """The label of the option with `value` in a select/radio/checkbox element."""
    if not element:
        return None
    options: list[Any] = list(element.get("options", []) or [])
    for group in element.get("option_groups", []) or []:
        options.extend(group.get("options", []))
    for option in options:
        if isinstance(option, Mapping) and option.get("value") == value:
            text = option.get("text", {})
            return str(text.get("text")) if isinstance(text, Mapping) else None
    return None


def _shape_value(value: Any, element: Mapping[str, Any] | None) -> JSONDict:
    """Shape a bare value as the state Slack reports for the given element type."""
    if isinstance(value, Mapping) and "type" in value:
        return dict(value)
    kind = str((element or {}).get("type", ""))
    if not kind:
        kind = "multi_static_select" if isinstance(value, list | tuple) else "plain_text_input"
    many = list(value) if isinstance(value, list | tuple) else ([] if value is None else [value])
    if kind in {"plain_text_input", "email_text_input", "url_text_input", "number_input"}:
        return {"type": kind, "value": None if value is None else str(value)}
    if kind in {"static_select", "external_select", "radio_buttons"}:
        chosen = None if value is None else _option(str(value), _option_text(element, str(value)))
        return {"type": kind, "selected_option": chosen}
    if kind in {"multi_static_select", "multi_external_select", "checkboxes"}:
        options = [_option(str(v), _option_text(element, str(v))) for v in many]
        return {"type": kind, "selected_options": options}
    singles = {
        "users_select": "selected_user",
        "conversations_select": "selected_conversation",
        "channels_select": "selected_channel",
        "datepicker": "selected_date",
        "timepicker": "selected_time",
        "datetimepicker": "selected_date_time",
    }
    if kind in singles:
        return {"type": kind, singles[kind]: value}
    multis = {
        "multi_users_select": "selected_users",
        "multi_conversations_select": "selected_conversations",
        "multi_channels_select": "selected_channels",
    }
    if kind in multis:
        return {"type": kind, multis[kind]: [str(v) for v in many]}
    if kind == "rich_text_input":
        section = {"type": "rich_text_section", "elements": [{"type": "text", "text": str(value)}]}
        return {"type": kind, "rich_value": {"type": "rich_text", "elements": [section]}}
    return {"type": kind, "value": value}


def build_state_values(
    values: Mapping[str, Mapping[str, Any]],
    blocks: Sequence[Any] | None = None,
) -> JSONDict:
    """Build view.state.values from {block_id: {action_id: value}}.

    A value may already be shaped (a dict with "type", e.g. from static_select_value); a bare
    value is shaped by the element type found in `blocks` (plain_text_input if unknown)."""
    elements: dict[tuple[str, str], JSONDict] = {}
    for block in blocks or []:
        if not isinstance(block, Mapping):
            continue
        block_id = str(block.get("block_id", ""))
        candidates = [block.get("element"), block.get("accessory"), *(block.get("elements") or [])]
        for element in candidates:
            if isinstance(element, Mapping) and element.get("action_id"):
                elements[(block_id, str(element["action_id"]))] = dict(element)
    return {
        block_id: {
            action_id: _shape_value(value, elements.get((block_id, action_id)))
            for action_id, value in actions.items()
        }
        for block_id, actions in values.items()
    }


# --------------------------------------------------------------------------- views


def view_submission_body(
    *,
    user_id: str,
    view: Mapping[str, Any] | Any,
    values: Mapping[str, Mapping[str, Any]] | None = None,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    user_name: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    bot_id: str = "BBOT",
    response_urls: Sequence[Mapping[str, Any]] = (),
) -> SlackRequest:
    """A modal submission; `values` ({block_id: {action_id: value}}) become view.state.values."""
    v = _as_dict(view)
    view_id = str(v.get("id") or f"V{secrets.token_hex(5).upper()}")
    full: JSONDict = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": "",
        "callback_id": "",
        "state": {"values": {}},
        "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": "Modal", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": api_app_id,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }
    full.update(v)
    if values is not None:
        full["state"] = {"values": build_state_values(values, full.get("blocks"))}
    payload: JSONDict = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _user_obj(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or make_trigger_id(),
        "view": full,
        "response_urls": [dict(r) for r in response_urls],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload, "view_submission")


def view_closed_body(
    *, user_id: str, view: Mapping[str, Any] | Any, team_id: str = DEFAULT_TEAM_ID
) -> SlackRequest:
    """A view_closed notification (sent only for views with notify_on_close)."""
    payload: JSONDict = {
        "type": "view_closed",
        "team": {"id": team_id, "domain": DEFAULT_TEAM_DOMAIN},
        "user": _user_obj(user_id, None, team_id),
        "api_app_id": DEFAULT_APP_ID,
        "token": VERIFICATION_TOKEN,
        "view": _as_dict(view),
        "is_cleared": False,
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload, "view_closed")


# --------------------------------------------------------------------------- shortcuts


def message_shortcut_body(
    *,
    user_id: str,
    callback_id: str,
    message: Mapping[str, Any] | Any,
    channel_id: str,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    response_url: str | None = None,
    user_name: str | None = None,
    channel_name: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> SlackRequest:
    """A message shortcut (type message_action) on `message`."""
    msg = _as_dict(message)
    payload: JSONDict = {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": {"id": team_id, "domain": DEFAULT_TEAM_DOMAIN},
        "user": _user_obj(user_id, user_name, team_id),
        "channel": {"id": channel_id, "name": channel_name or channel_id.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or make_trigger_id(),
        "response_url": response_url or _fake_response_url(team_id),
        "message_ts": msg.get("ts", ""),
        "message": msg,
        "api_app_id": api_app_id,
    }
    return _interactive(payload, "message_action")


def global_shortcut_body(
    *,
    user_id: str,
    callback_id: str,
    trigger_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    user_name: str | None = None,
    api_app_id: str = DEFAULT_APP_ID,
) -> SlackRequest:
    """A global shortcut (type shortcut)."""
    payload: JSONDict = {
        "type": "shortcut",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": {"id": team_id, "domain": DEFAULT_TEAM_DOMAIN},
        "user": _user_obj(user_id, user_name, team_id),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or make_trigger_id(),
        "api_app_id": api_app_id,
    }
    return _interactive(payload, "shortcut")


# --------------------------------------------------------------------------- Events API


def event_callback_body(
    event: Mapping[str, Any],
    *,
    event_id: str | None = None,
    team_id: str = DEFAULT_TEAM_ID,
    api_app_id: str = DEFAULT_APP_ID,
    event_time: int | None = None,
    bot_user_id: str = DEFAULT_BOT_USER_ID,
    is_ext_shared_channel: bool = False,
) -> SlackRequest:
    """An Events API event_callback envelope around `event` (JSON); `is_ext_shared_channel`
    says the event happened in a channel shared with another organisation."""
    payload: JSONDict = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": event_time if event_time is not None else int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": is_ext_shared_channel,
        "event_context": secrets.token_hex(16),
    }
    return SlackRequest(body=json.dumps(payload), content_type=JSON, payload=payload, kind="event")


def url_verification_body(challenge: str) -> SlackRequest:
    """The url_verification handshake Slack sends when the request URL is configured."""
    payload: JSONDict = {
        "token": VERIFICATION_TOKEN,
        "challenge": challenge,
        "type": "url_verification",
    }
    return SlackRequest(
        body=json.dumps(payload), content_type=JSON, payload=payload, kind="url_verification"
    )


def message_event(
    *,
    user: str,
    channel: str,
    text: str,
    ts: str | None = None,
    thread_ts: str | None = None,
    channel_type: str = "channel",
    team_id: str = DEFAULT_TEAM_ID,
) -> JSONDict:
    """A `message` event from a person."""
    ts = ts or _action_ts()
    event: JSONDict = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "team": team_id,
        "channel": channel,
        "event_ts": ts,
        "channel_type": channel_type,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def app_mention_event(
    *, user: str, channel: str, text: str, ts: str | None = None, thread_ts: str | None = None
) -> JSONDict:
    """An `app_mention` event."""
    ts = ts or _action_ts()
    event: JSONDict = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


def app_home_opened_event(
    *, user: str, channel: str = "", tab: str = "home", view: Mapping[str, Any] | None = None
) -> JSONDict:
    """An `app_home_opened` event."""
    event: JSONDict = {
        "type": "app_home_opened",
        "user": user,
        "channel": channel,
        "tab": tab,
        "event_ts": _action_ts(),
    }
    if view is not None:
        event["view"] = dict(view)
    return event


# --------------------------------------------------------------------------- client


class BotClient:
    """Posts signed Slack requests to the bot's request URL and returns its answer."""

    def __init__(
        self,
        base_url: str,
        signer: SlackRequestSigner | None,
        *,
        path: str = "/slack/events",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = base_url.rstrip("/") + path
        self.signer = signer
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(
        self,
        request: SlackRequest,
        *,
        retry_num: int | None = None,
        retry_reason: str | None = None,
        headers: Mapping[str, str] | None = None,
        timestamp: int | None = None,
        sign: bool = True,
    ) -> BotResponse:
        """POST `request` with its content type and signature (and Slack retry headers if set)."""
        body = request.body.encode()
        out: dict[str, str] = {"Content-Type": request.content_type}
        if sign and self.signer is not None:
            out.update(self.signer.headers(body, timestamp=timestamp))
        if retry_num is not None:
            out["X-Slack-Retry-Num"] = str(retry_num)
            out["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
        out.update(headers or {})
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.post(self.url, data=body, headers=out) as resp:
            text = await resp.text()
            parsed: Any = text
            if text and "json" in resp.content_type:
                parsed = json.loads(text)
            return BotResponse(resp.status, dict(resp.headers), parsed)

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> BotClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass
class SlackUser:
    """A person acting in Slack: builds the requests their clicks and commands produce.

    With `fake`, trigger_ids are issued for this user and response_urls are served by the fake,
    so modals the bot opens and responses it sends are attributed to this user."""

    user_id: str
    team_id: str = DEFAULT_TEAM_ID
    name: str | None = None
    fake: FakeSlack | None = field(default=None, repr=False)

    def trigger_id(self, action: str | None = None) -> str:
        """A fresh trigger_id for one interaction (`action`: the button clicked)."""
        if self.fake is None:
            return make_trigger_id()
        return self.fake.issue_trigger(self.user_id, action=action)

    def response_url(
        self, channel_id: str, *, message_ts: str | None = None, ephemeral: bool = False
    ) -> str | None:
        """A response_url for an interaction in `channel_id` (None: builder makes a dummy)."""
        if self.fake is None:
            return None
        return self.fake.issue_response_url(
            self.user_id, channel_id, message_ts=message_ts, ephemeral=ephemeral
        )

    def slash_command(
        self, text: str = "", *, channel_id: str, command: str = "/ticket"
    ) -> SlackRequest:
        """The user types `{command} {text}` in `channel_id`."""
        words = text.split(None, 2)
        if self.fake is not None and len(words) == 3 and words[0].lower() in ("note", "reply"):
            self.fake.record_intent(self.user_id, words[2], internal=words[0].lower() == "note")
        return slash_command_body(
            command=command,
            text=text,
            user_id=self.user_id,
            channel_id=channel_id,
            trigger_id=self.trigger_id(),
            team_id=self.team_id,
            response_url=self.response_url(channel_id),
            user_name=self.name,
        )

    def click(
        self,
        action_id: str,
        *,
        message: Mapping[str, Any] | Any | None = None,
        channel_id: str | None = None,
        view: Mapping[str, Any] | Any | None = None,
        value: str | None = None,
        ephemeral: bool = False,
        state_values: Mapping[str, Any] | None = None,
    ) -> SlackRequest:
        """The user clicks a button (in a message in `channel_id`, or in `view`)."""
        msg = _as_dict(message) if message is not None else None
        if channel_id is None and message is not None:
            channel_id = getattr(message, "channel", None)
        url = None
        if view is None and channel_id is not None:
            url = self.response_url(
                channel_id, message_ts=(msg or {}).get("ts"), ephemeral=ephemeral
            )
        return block_actions_body(
            user_id=self.user_id,
            actions=[button_action(action_id, value)],
            view=view,
            message=msg,
            channel=channel_id,
            trigger_id=self.trigger_id(action_id),
            team_id=self.team_id,
            response_url=url,
            is_ephemeral=ephemeral,
            state_values=state_values,
            user_name=self.name,
        )

    def submit(
        self, view: Mapping[str, Any] | Any, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> SlackRequest:
        """The user submits a modal with the given {block_id: {action_id: value}}."""
        if self.fake is not None:
            _record_what_was_meant(self.fake, self.user_id, _as_dict(view), values or {})
        return view_submission_body(
            user_id=self.user_id,
            view=view,
            values=values,
            trigger_id=self.trigger_id(),
            team_id=self.team_id,
            user_name=self.name,
        )

    def message_shortcut(
        self, callback_id: str, message: Mapping[str, Any] | Any, *, channel_id: str | None = None
    ) -> SlackRequest:
        """The user runs a message shortcut on `message`."""
        channel = channel_id or getattr(message, "channel", None) or ""
        return message_shortcut_body(
            user_id=self.user_id,
            callback_id=callback_id,
            message=message,
            channel_id=channel,
            trigger_id=self.trigger_id(),
            team_id=self.team_id,
            response_url=self.response_url(channel),
            user_name=self.name,
        )

    def says(self, channel_id: str, text: str, *, thread_ts: str | None = None) -> SlackRequest:
        """The user posts a message; with a fake it is recorded there and its ts is used."""
        if self.fake is not None:
            stored = self.fake.post_as_user(channel_id, self.user_id, text, thread_ts=thread_ts)
            event = self.fake.message_event(stored)
        else:
            event = message_event(
                user=self.user_id,
                channel=channel_id,
                text=text,
                thread_ts=thread_ts,
                team_id=self.team_id,
            )
        return event_callback_body(event, team_id=self.team_id)

    def opens_home(self) -> SlackRequest:
        """The user opens the app's Home tab."""
        return event_callback_body(app_home_opened_event(user=self.user_id), team_id=self.team_id)


def _chosen(values: Mapping[str, Mapping[str, Any]], block: str, action: str) -> Any:
    """A submitted value as the tests give it: plain, or an element state with an option."""
    value = (values.get(block) or {}).get(action)
    if isinstance(value, Mapping):
        option = value.get("selected_option")
        if isinstance(option, Mapping):
            return option.get("value")
        chosen = value.get("selected_options")
        if isinstance(chosen, list):
            return [o.get("value") for o in chosen if isinstance(o, Mapping)]
        return value.get("value")
    return value


def _record_what_was_meant(
    fake: FakeSlack, user_id: str, view: JSONDict, values: Mapping[str, Mapping[str, Any]]
) -> None:
    """Note in the fake what the person meant by a reply or create form, independently of
    the bot: the leak scanner holds the bot to it."""
    callback = view.get("callback_id")
    if callback == Callback.REPLY:
        body = _chosen(values, Block.BODY, Action.BODY)
        if not isinstance(body, str):
            return
        choice = _chosen(values, Block.VISIBILITY, Action.VISIBILITY)
        inputs = {b.get("block_id") for b in view.get("blocks") or [] if isinstance(b, dict)}
        if choice is not None:
            internal = choice != Visibility.PUBLIC
        elif Block.VISIBILITY in inputs:
            internal = True  # (the preselected choice)
        else:
            internal = fake.opened_by(view.get("id")) == Action.NOTE_OPEN
        fake.record_intent(user_id, body, internal=internal)
    elif callback == Callback.CREATE_TICKET:
        ticked = _chosen(values, Block.CUSTOMER_MAY_SEE, Action.CUSTOMER_MAY_SEE) or []
        if ticked:
            for block, action in (
                (Block.TITLE, Action.TITLE),
                (Block.DESCRIPTION, Action.DESCRIPTION),
            ):
                text = _chosen(values, block, action)
                if isinstance(text, str):
                    fake.record_confirmed_public(user_id, text)
