"""FakeSlack: a loopback stand-in for the Slack Web API, for end-to-end tests and the demo.

It keeps a small workspace model (users, channels, DMs, messages, ephemerals, views), records every
call, can inject failures (5xx, 429 with Retry-After, ok:false errors, timeouts), and can say what
each person was ever able to see, so tests can prove that internal text never reached a customer."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp
from aiohttp import web

from bot.devslack.render import raw_text, render_message_as_text, render_view_as_text, visible_text

log = logging.getLogger("bot.devslack")

JSONDict = dict[str, Any]
FaultStatus = int | Literal["timeout"]
CallPredicate = Callable[[str, Mapping[str, Any]], bool]

# Params that Slack accepts as JSON-encoded strings in form bodies.
_JSON_PARAMS = frozenset({"blocks", "attachments", "metadata", "view", "unfurls"})
_KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
        "call",
        "table",
        "context_actions",
    }
)
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_LENGTH = 40_000
RESPONSE_URL_MAX_USES = 5


class ClockLike(Protocol):
    """Anything with `now()` returning an aware datetime (e.g. core.clock.FrozenClock)."""

    def now(self) -> Any: ...


class SlackApiFailure(Exception):
    """Raised inside a method handler to answer `{"ok": false, "error": code}`."""

    def __init__(self, error: str, *, status: int = 200, messages: list[str] | None = None):
        super().__init__(error)
        self.error = error
        self.status = status
        self.messages = messages or []


@dataclass
class RecordedCall:
    """One request the fake received, with what it answered (None while still in flight)."""

    method: str
    params: JSONDict
    time: float
    response: JSONDict | None = None
    status: int = 200
    injected: bool = False
    http_verb: str = "POST"
    token: str | None = None
    # Set once the answer is recorded: tests wait on it instead of polling.
    answered: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the answer was a success."""
        return bool(self.response and self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The `error` code of a failed answer, if any."""
        return None if self.response is None else self.response.get("error")


@dataclass
class FakeUser:
    """A workspace member as users.info describes it."""

    id: str
    name: str
    real_name: str
    email: str | None = None
    display_name: str = ""
    is_bot: bool = False
    deleted: bool = False
    team_id: str = "T1"
    tz: str = "UTC"

    def to_api(self) -> JSONDict:
        """The `user` object Slack returns."""
        profile: JSONDict = {
            "real_name": self.real_name,
            "display_name": self.display_name,
            "real_name_normalized": self.real_name,
            "display_name_normalized": self.display_name,
            "team": self.team_id,
        }
        if self.email is not None and not self.is_bot:
            profile["email"] = self.email
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "is_admin": False,
            "is_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "tz": self.tz,
            "tz_label": self.tz,
            "tz_offset": 0,
            "profile": profile,
            "updated": 1700000000,
        }


@dataclass
class FakeChannel:
    """A channel, private channel, DM or group DM, with its current members."""

    id: str
    name: str
    is_private: bool = True
    is_im: bool = False
    is_mpim: bool = False
    members: set[str] = field(default_factory=set)
    im_user: str | None = None
    is_archived: bool = False
    created: int = 1700000000
    # Slack Connect: the other organisations' team ids the channel is shared with.
    shared_with: set[str] = field(default_factory=set)
    # While the channel was public or shared, everything in it could be read outside its
    # members; once it stops being so, messages up to this change mark (FakeSlack.mark())
    # stay counted as seen.
    exposed_through: int | None = None

    @property
    def is_exposed(self) -> bool:
        """Readable beyond its invited members: public, or shared with another organisation."""
        if self.is_im or self.is_mpim:
            return False
        return not self.is_private or bool(self.shared_with)

    def exposes(self, message: StoredMessage) -> bool:
        """Whether `message` could ever be read beyond the channel's invited members."""
        if self.is_exposed:
            return True
        return self.exposed_through is not None and message.created_seq <= self.exposed_through

    @property
    def channel_type(self) -> str:
        """The `channel_type` Slack puts on message events: channel, group, im or mpim."""
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "group" if self.is_private else "channel"

    def to_api(self, bot_user_id: str) -> JSONDict:
        """The `channel` object conversations.info returns."""
        info: JSONDict = {
            "id": self.id,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_im": self.is_im,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private or self.is_im or self.is_mpim,
            "is_org_shared": False,
            "is_ext_shared": bool(self.shared_with),
            "is_shared": bool(self.shared_with),
            "is_pending_ext_shared": False,
        }
        if self.is_im:
            info.update({"user": self.im_user, "is_user_deleted": False, "is_open": True})
            return info
        info.update(
            {
                "name": self.name,
                "name_normalized": self.name,
                "is_channel": not self.is_mpim,
                "is_group": False,
                "is_general": False,
                "is_member": bot_user_id in self.members,
                "creator": "",
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0},
                "num_members": len(self.members),
            }
        )
        return info


@dataclass
class MessageVersion:
    """What a message looked like before an edit."""

    text: str
    blocks: list[JSONDict]
    attachments: list[JSONDict]
    replaced_at: str


@dataclass
class StoredMessage:
    """A message in a channel (top level or thread reply), kept even after deletion."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[JSONDict] = field(default_factory=list)
    attachments: list[JSONDict] = field(default_factory=list)
    metadata: JSONDict | None = None
    thread_ts: str | None = None
    bot_id: str | None = None
    team: str = "T1"
    reply_broadcast: bool = False
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    edited: JSONDict | None = None
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    replies: list[str] = field(default_factory=list)
    via: str = "chat.postMessage"
    seq: int = 0
    created_seq: int = 0
    # System messages (channel_convert_to_public, ...) carry their subtype.
    subtype: str | None = None

    @property
    def is_reply(self) -> bool:
        """Whether this is a reply inside someone else's thread."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def text_content(self) -> str:
        """Everything a reader can see in the current version: text, blocks and attachments."""
        return visible_text([self.text, self.blocks, self.attachments])

    def to_api(self, *, include_metadata: bool = True) -> JSONDict:
        """The `message` object Slack returns in history, replies and postMessage."""
        msg: JSONDict = {"type": "message", "ts": self.ts, "text": self.text, "team": self.team}
        if self.user:
            msg["user"] = self.user
        if self.bot_id:
            msg["bot_id"] = self.bot_id
            msg["app_id"] = "A1"
        if self.blocks:
            msg["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            msg["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts is not None:
            msg["thread_ts"] = self.thread_ts
        if self.subtype is not None:
            msg["subtype"] = self.subtype
        elif self.is_reply and self.reply_broadcast:
            msg["subtype"] = "thread_broadcast"
        if self.replies:
            msg["reply_count"] = len(self.replies)
            msg["latest_reply"] = self.replies[-1]
        if self.edited is not None:
            msg["edited"] = dict(self.edited)
        if self.metadata is not None and include_metadata:
            msg["metadata"] = copy.deepcopy(self.metadata)
        if self.reactions:
            msg["reactions"] = [
                {"name": name, "users": list(users), "count": len(users)}
                for name, users in self.reactions.items()
            ]
        return msg

    def to_event(self, channel_type: str = "channel") -> JSONDict:
        """A `message` event as the Events API would deliver this message."""
        event = {k: v for k, v in self.to_api().items() if k not in {"reactions", "reply_count"}}
        event.update({"channel": self.channel, "event_ts": self.ts, "channel_type": channel_type})
        event.pop("latest_reply", None)
        return event


@dataclass
class EphemeralMessage:
    """A message only `user` sees, from chat.postEphemeral or a response_url."""

    channel: str
    user: str
    text: str
    blocks: list[JSONDict]
    message_ts: str
    thread_ts: str | None = None
    attachments: list[JSONDict] = field(default_factory=list)
    deleted: bool = False
    history: list[MessageVersion] = field(default_factory=list)
    via: str = "chat.postEphemeral"
    seq: int = 0

    @property
    def text_content(self) -> str:
        """Everything the user can see in the current version."""
        return visible_text([self.text, self.blocks, self.attachments])

    def to_api(self) -> JSONDict:
        """The ephemeral message as a block_actions payload would carry it."""
        msg: JSONDict = {"type": "message", "ts": self.message_ts, "text": self.text}
        if self.blocks:
            msg["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            msg["thread_ts"] = self.thread_ts
        return msg


@dataclass
class FakeView:
    """A modal (opened or pushed) or an App Home tab, with every version it has had."""

    id: str
    kind: Literal["modal", "home"]
    user: str | None
    view: JSONDict
    hash: str
    team_id: str
    bot_id: str
    trigger_id: str | None = None
    root_view_id: str | None = None
    previous_view_id: str | None = None
    closed: bool = False
    history: list[JSONDict] = field(default_factory=list)
    seq: int = 0

    @property
    def callback_id(self) -> str:
        """The view's callback_id ('' if none)."""
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        """The view's private_metadata ('' if none)."""
        return str(self.view.get("private_metadata", ""))

    @property
    def text_content(self) -> str:
        """Everything the user can see in the current version."""
        return _view_visible_text(self.view)

    def to_api(self) -> JSONDict:
        """The `view` object views.* methods return and interaction payloads carry."""
        v = copy.deepcopy(self.view)
        return {
            "id": self.id,
            "team_id": self.team_id,
            "type": v.get("type", self.kind),
            "blocks": v.get("blocks", []),
            "private_metadata": v.get("private_metadata", ""),
            "callback_id": v.get("callback_id", ""),
            "state": {"values": {}},
            "hash": self.hash,
            "title": v.get("title"),
            "clear_on_close": bool(v.get("clear_on_close", False)),
            "notify_on_close": bool(v.get("notify_on_close", False)),
            "close": v.get("close"),
            "submit": v.get("submit"),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id or self.id,
            "app_id": "A1",
            "external_id": v.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }


@dataclass
class VisibleItem:
    """One thing a person could see, with all its displayed text flattened for searching."""

    kind: Literal["message", "ephemeral", "modal", "home"]
    text_content: str
    raw_content: str
    channel: str | None = None
    ts: str | None = None
    thread_ts: str | None = None
    view_id: str | None = None
    deleted: bool = False
    is_current: bool = True
    source: object = None


@dataclass
class Fault:
    """How an injected failure answers: an HTTP status, an ok:false error, or a hang."""

    status: FaultStatus = 500
    error: str | None = None
    retry_after: int = 1
    delay: float = 10.0
    then_process: bool = False

    def describe(self) -> str:
        """Short label for logs."""
        return (
            f"timeout({self.delay}s)"
            if self.status == "timeout"
            else str(self.error or self.status)
        )


@dataclass
class FaultRule:
    """An active fault injection: which calls it hits and for how long."""

    matcher: CallPredicate
    fault: Fault
    remaining: int | None = None
    until: Callable[[], bool] | None = None
    hits: int = 0
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop injecting this fault."""
        self.cancelled = True

    @property
    def active(self) -> bool:
        """Whether the rule still applies to the next matching call."""
        if self.cancelled or (self.remaining is not None and self.remaining <= 0):
            return False
        return not (self.until is not None and self.until())


@dataclass(frozen=True)
class Intent:
    """Text a person wrote, and whether they meant it as internal."""

    user: str
    text: str
    internal: bool


@dataclass
class _Trigger:
    """A trigger_id handed out via issue_trigger (or seen once for the first time)."""

    user: str | None
    issued_at: float
    used: bool = False
    expired: bool = False
    # The button (action_id) whose click handed this trigger out, if it was a click.
    action: str | None = None


@dataclass
class _ResponseUrl:
    """A response_url the fake serves, bound to the user and channel of an interaction."""

    user: str
    channel: str
    message_ts: str | None
    ephemeral: bool
    uses: int = 0


Handler = Callable[[JSONDict], Awaitable[JSONDict]]


def _view_visible_text(view: Mapping[str, Any]) -> str:
    """Displayed text of a view payload (title, blocks, submit/close, submitted state)."""
    parts = [view.get(k) for k in ("title", "blocks", "close", "submit", "state")]
    return visible_text(parts)


def _as_bool(value: Any, default: bool = False) -> bool:
    """Read a Slack boolean param, which may arrive as bool, 1/0 or 'true'/'false'."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


def _text_len(obj: Any) -> int:
    """Length of a text object's text (0 if absent)."""
    if isinstance(obj, Mapping):
        return len(str(obj.get("text", "")))
    return 0


def validate_blocks(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[str]:
    """Check Block Kit against Slack's documented limits; return error messages (empty if ok)."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, Mapping) or block.get("type") not in _KNOWN_BLOCK_TYPES:
            errors.append(f"[ERROR] unsupported type [json-pointer:{here}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > 255 or block_id in seen_ids:
                errors.append(f"[ERROR] invalid or duplicate block_id [json-pointer:{here}]")
            seen_ids.add(str(block_id))
        errors.extend(_validate_block(block, here))
    return errors


def _validate_block(block: Mapping[str, Any], here: str) -> list[str]:
    """Per-type checks for one block."""
    errors: list[str] = []
    kind = block["type"]
    if kind == "header":
        text = block.get("text")
        if not isinstance(text, Mapping) or text.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/text]")
        elif _text_len(text) > 150:
            errors.append(f"[ERROR] must be less than 151 characters [json-pointer:{here}/text]")
    elif kind == "section":
        fields = block.get("fields") or []
        if not block.get("text") and not fields:
            errors.append(f"[ERROR] must provide text or fields [json-pointer:{here}]")
        if _text_len(block.get("text")) > 3000:
            errors.append(f"[ERROR] must be less than 3001 characters [json-pointer:{here}/text]")
        if len(fields) > 10 or any(_text_len(f) > 2000 for f in fields):
            errors.append(f"[ERROR] too many or too long fields [json-pointer:{here}/fields]")
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            errors.extend(_validate_element(accessory, f"{here}/accessory"))
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 25:
            errors.append(f"[ERROR] must have 1 to 25 elements [json-pointer:{here}/elements]")
        action_ids = [e.get("action_id") for e in elements if isinstance(e, Mapping)]
        present = [a for a in action_ids if a is not None]
        if len(present) != len(set(present)):
            errors.append(f"[ERROR] duplicate action_id [json-pointer:{here}/elements]")
        for j, element in enumerate(elements):
            if isinstance(element, Mapping):
                errors.extend(_validate_element(element, f"{here}/elements/{j}"))
    elif kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 10:
            errors.append(f"[ERROR] must have 1 to 10 elements [json-pointer:{here}/elements]")
    elif kind == "input":
        label = block.get("label")
        if not isinstance(label, Mapping) or label.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/label]")
        elif _text_len(label) > 2000:
            errors.append(f"[ERROR] must be less than 2001 characters [json-pointer:{here}/label]")
        element = block.get("element")
        if not isinstance(element, Mapping):
            errors.append(f"[ERROR] missing required field: element [json-pointer:{here}]")
        else:
            errors.extend(_validate_element(element, f"{here}/element"))
    return errors


def _validate_element(element: Mapping[str, Any], here: str) -> list[str]:
    """Checks for one interactive element."""
    errors: list[str] = []
    kind = element.get("type")
    if kind == "button":
        text = element.get("text")
        if not isinstance(text, Mapping) or text.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/text]")
        elif _text_len(text) > 75:
            errors.append(f"[ERROR] must be less than 76 characters [json-pointer:{here}/text]")
        if len(str(element.get("value", ""))) > 2000:
            errors.append(f"[ERROR] must be less than 2001 characters [json-pointer:{here}/value]")
    if len(str(element.get("action_id", ""))) > 255:
        errors.append(f"[ERROR] must be less than 256 characters [json-pointer:{here}/action_id]")
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > 100:
            errors.append(f"[ERROR] no more than 100 items allowed [json-pointer:{here}/options]")
        for j, option in enumerate(options):
            if not isinstance(option, Mapping) or "value" not in option:
                errors.append(f"[ERROR] missing value [json-pointer:{here}/options/{j}]")
            elif len(str(option["value"])) > 150:
                errors.append(f"[ERROR] value too long [json-pointer:{here}/options/{j}/value]")
    return errors


def validate_view(view: Any, *, kind: Literal["modal", "home"]) -> list[str]:
    """Check a view payload the way views.open/update/push/publish do."""
    if not isinstance(view, Mapping):
        return ["[ERROR] must be an object [json-pointer:/view]"]
    errors: list[str] = []
    if view.get("type") != kind:
        errors.append(f"[ERROR] must be '{kind}' [json-pointer:/view/type]")
    if kind == "modal":
        title = view.get("title")
        if not isinstance(title, Mapping) or title.get("type") != "plain_text":
            errors.append("[ERROR] must be plain_text [json-pointer:/view/title]")
        elif not 0 < _text_len(title) <= 24:
            errors.append("[ERROR] must be 1-24 characters [json-pointer:/view/title/text]")
        for key in ("submit", "close"):
            if view.get(key) is not None and _text_len(view.get(key)) > 24:
                errors.append(f"[ERROR] must be 1-24 characters [json-pointer:/view/{key}/text]")
        has_input = any(
            isinstance(b, Mapping) and b.get("type") == "input" for b in view.get("blocks", [])
        )
        if has_input and not view.get("submit"):
            errors.append("[ERROR] submit is required with input blocks [json-pointer:/view]")
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append(
            "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
        )
    if len(str(view.get("callback_id", ""))) > 255:
        errors.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    errors.extend(
        validate_blocks(view.get("blocks", []), limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    )
    return errors


class FakeSlack:
    """A fake Slack Web API on 127.0.0.1 with a workspace model, call log and fault injection."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",  # noqa: S107 - a fake's well-known token
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "ticketbot",
        team_id: str = "T1",
        team_domain: str = "fake-workspace",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] | ClockLike | None = None,
        trigger_ttl: float | None = None,
        latency: float = 0.0,
    ) -> None:
        self.bot_token = bot_token
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.team_id = team_id
        self.team_domain = team_domain
        self.host = host
        self.port = port
        self.trigger_ttl = trigger_ttl
        self.latency = latency
        self._clock = clock

        self.calls: list[RecordedCall] = []
        self.users: dict[str, FakeUser] = {}
        self.channels: dict[str, FakeChannel] = {}
        self._messages: dict[str, list[StoredMessage]] = {}
        self._ephemerals: list[EphemeralMessage] = []
        self._views: dict[str, FakeView] = {}
        self.intents: list[Intent] = []
        self.confirmed_public: list[Intent] = []
        self._home_views: dict[str, str] = {}
        self._dm_by_user: dict[str, str] = {}
        self._mpims: dict[frozenset[str], str] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._faults: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._seq = 0
        self._last_ts_us = 0

        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: dict[str, Handler] = {
            "api.test": self._api_test,
            "auth.test": self._auth_test,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.info": self._conversations_info,
            "conversations.open": self._conversations_open,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "apps.connections.open": self._apps_connections_open,
        }
        # Socket Mode: the app-level token, and the envelopes the bot acknowledged.
        self.app_token = "xapp-1-fake-app-token"
        self.socket_acks: list[JSONDict] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._socket_ready = asyncio.Event()
        self.add_user(bot_user_id, bot_name, is_bot=True, team_id=team_id)

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Start serving; return the Web API base URL (http://127.0.0.1:PORT/api/)."""
        if self._runner is not None:
            return self.api_url
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/hooks/response/{key}", self._handle_response_url)
        app.router.add_get("/socket", self._handle_socket)
        self._stopping = asyncio.Event()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.port = int(address[1])
                break
        return self.api_url

    async def stop(self) -> None:
        """Stop serving, waking any request parked by an injected timeout."""
        if self._stopping is not None:
            self._stopping.set()
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """The base_url to give AsyncWebClient."""
        return f"{self.root_url}/api/"

    # ----------------------------------------------------------------- clock and ids

    def now(self) -> float:
        """Current time in epoch seconds, from the injected clock if any."""
        clock = self._clock
        if clock is None:
            return time.time()
        if hasattr(clock, "now"):
            return float(clock.now().timestamp())
        return float(clock())

    def next_ts(self) -> str:
        """A new message ts: unique and strictly increasing, even under a frozen clock."""
        now_us = int(self.now() * 1_000_000) // 100 * 100
        self._last_ts_us = max(now_us, self._last_ts_us + 100)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _touch(self, item: StoredMessage | EphemeralMessage | FakeView) -> None:
        """Stamp an item as changed just now (drives render_for(since=...))."""
        self._seq += 1
        item.seq = self._seq

    def mark(self) -> int:
        """A bookmark for render_for(since=...): changes after this call are 'new'."""
        return self._seq

    def _new_id(self, prefix: str) -> str:
        """A Slack-looking id such as D0000000A or V0000001F."""
        return f"{prefix}{next(self._ids):08X}"

    # ----------------------------------------------------------------- workspace model

    def add_user(
        self,
        user_id: str,
        name: str,
        email: str | None = None,
        is_bot: bool = False,
        deleted: bool = False,
        team_id: str | None = None,
        *,
        real_name: str | None = None,
        display_name: str | None = None,
    ) -> FakeUser:
        """Register (or replace) a workspace user."""
        user = FakeUser(
            id=user_id,
            name=name,
            real_name=real_name or name,
            email=email,
            display_name=display_name if display_name is not None else name,
            is_bot=is_bot,
            deleted=deleted,
            team_id=team_id or self.team_id,
        )
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        is_private: bool = True,
        members: Iterable[str] = (),
        bot_member: bool = True,
    ) -> FakeChannel:
        """Register a channel; the bot is a member unless bot_member=False."""
        member_set = set(members)
        if bot_member:
            member_set.add(self.bot_user_id)
        else:
            member_set.discard(self.bot_user_id)
        channel = FakeChannel(id=channel_id, name=name, is_private=is_private, members=member_set)
        self.channels[channel_id] = channel
        self._messages.setdefault(channel_id, [])
        return channel

    def add_member(self, channel_id: str, user_id: str) -> None:
        """Add a user to a channel."""
        self.channels[channel_id].members.add(user_id)

    def remove_member(self, channel_id: str, user_id: str) -> None:
        """Remove a user from a channel."""
        self.channels[channel_id].members.discard(user_id)

    # Changes people make to a channel in Slack's client. Each returns the events Slack sends
    # the app about it, in Slack's documented shapes (wrap each in event_callback_body).

    def archive_channel(self, channel_id: str, *, by: str = "") -> list[JSONDict]:
        """Archive a channel: posting to it then fails with is_archived."""
        channel = self.channels[channel_id]
        channel.is_archived = True
        kind = "group_archive" if channel.is_private else "channel_archive"
        return [{"type": kind, "channel": channel_id, "user": by, "event_ts": self.next_ts()}]

    def unarchive_channel(self, channel_id: str, *, by: str = "") -> list[JSONDict]:
        """Unarchive a channel."""
        channel = self.channels[channel_id]
        channel.is_archived = False
        kind = "group_unarchive" if channel.is_private else "channel_unarchive"
        return [{"type": kind, "channel": channel_id, "user": by, "event_ts": self.next_ts()}]

    def make_public(self, channel_id: str, *, by: str) -> list[JSONDict]:
        """A private channel is made public: from now on everyone in the workspace can read it,
        its history included. Slack announces it by a channel_convert_to_public message."""
        channel = self._convertible(channel_id, private=True)
        channel.is_private = False
        notice = self._store_message(
            channel_id,
            user=by,
            text="made this channel *public*. Any member in this workspace can see and join it.",
            blocks=[],
            thread_ts=None,
            bot_id=None,
            via="system",
            subtype="channel_convert_to_public",
        )
        return [self.message_event(notice)]

    def make_private(self, channel_id: str, *, by: str) -> list[JSONDict]:
        """A public channel is made private again (announced by a channel_convert_to_private
        message); what was posted while it was public stays counted as seen."""
        channel = self._convertible(channel_id, private=False)
        channel.is_private = True
        self._end_exposure(channel)
        notice = self._store_message(
            channel_id,
            user=by,
            text="made this channel *private*. Now, it can only be viewed or joined by invitation.",
            blocks=[],
            thread_ts=None,
            bot_id=None,
            via="system",
            subtype="channel_convert_to_private",
        )
        return [self.message_event(notice)]

    def share_channel(self, channel_id: str, *, team_id: str) -> list[JSONDict]:
        """The channel is shared with another organisation (Slack Connect)."""
        channel = self.channels[channel_id]
        channel.shared_with.add(team_id)
        event = {"type": "channel_shared", "connected_team_id": team_id, "channel": channel_id}
        return [{**event, "event_ts": self.next_ts()}]

    def unshare_channel(self, channel_id: str, *, team_id: str) -> list[JSONDict]:
        """The other organisation is disconnected from the channel."""
        channel = self.channels[channel_id]
        channel.shared_with.discard(team_id)
        if not channel.is_exposed:
            self._end_exposure(channel)
        return [
            {
                "type": "channel_unshared",
                "previously_connected_team_id": team_id,
                "channel": channel_id,
                "is_ext_shared": bool(channel.shared_with),
                "event_ts": self.next_ts(),
            }
        ]

    def kick(self, channel_id: str, user_id: str, *, by: str) -> list[JSONDict]:
        """`by` removes `user_id` from the channel. For the bot, Slack sends it channel_left
        (group_left for a private channel) and member_left_channel."""
        channel = self.channels[channel_id]
        channel.members.discard(user_id)
        events: list[JSONDict] = []
        if user_id == self.bot_user_id:
            kind = "group_left" if channel.is_private else "channel_left"
            events.append(
                {"type": kind, "channel": channel_id, "actor_id": by, "event_ts": self.next_ts()}
            )
        events.append(
            {
                "type": "member_left_channel",
                "user": user_id,
                "channel": channel_id,
                "channel_type": "G" if channel.is_private else "C",
                "team": self.users[user_id].team_id if user_id in self.users else self.team_id,
                "event_ts": self.next_ts(),
            }
        )
        return events

    def invite(self, channel_id: str, user_id: str, *, by: str) -> list[JSONDict]:
        """`by` invites `user_id` into the channel (member_joined_channel)."""
        channel = self.channels[channel_id]
        channel.members.add(user_id)
        return [
            {
                "type": "member_joined_channel",
                "user": user_id,
                "channel": channel_id,
                "channel_type": "G" if channel.is_private else "C",
                "team": self.users[user_id].team_id if user_id in self.users else self.team_id,
                "inviter": by,
                "event_ts": self.next_ts(),
            }
        ]

    def _convertible(self, channel_id: str, *, private: bool) -> FakeChannel:
        channel = self.channels[channel_id]
        if channel.is_im or channel.is_mpim or channel.is_private is not private:
            kind = "private" if private else "public"
            raise ValueError(f"{channel_id} is not a {kind} channel")
        return channel

    def _end_exposure(self, channel: FakeChannel) -> None:
        """The channel stops being readable beyond its members: remember what was exposed."""
        channel.exposed_through = self._seq

    def open_dm(self, user_id: str) -> str:
        """Return the bot's DM channel with `user_id`, creating it on first use."""
        existing = self._dm_by_user.get(user_id)
        if existing is not None:
            return existing
        channel_id = self._new_id("D")
        self.channels[channel_id] = FakeChannel(
            id=channel_id,
            name=user_id,
            is_private=True,
            is_im=True,
            members={self.bot_user_id, user_id},
            im_user=user_id,
            created=int(self.now()),
        )
        self._messages[channel_id] = []
        self._dm_by_user[user_id] = channel_id
        return channel_id

    def dm_channel_id(self, user_id: str) -> str | None:
        """The bot's DM channel with `user_id`, if one was opened."""
        return self._dm_by_user.get(user_id)

    def post_as_user(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        blocks: list[JSONDict] | None = None,
    ) -> StoredMessage:
        """Record a message written by a person (e.g. a customer reply in a thread)."""
        channel_id = self._resolve_channel(channel)
        return self._store_message(
            channel_id,
            user=user,
            text=text,
            blocks=blocks or [],
            thread_ts=thread_ts,
            bot_id=None,
            via="user",
        )

    def message_event(self, message: StoredMessage) -> JSONDict:
        """A `message` event for `message`, with the right channel_type."""
        return message.to_event(self.channels[message.channel].channel_type)

    def issue_trigger(self, user_id: str | None = None, *, action: str | None = None) -> str:
        """Hand out a trigger_id bound to `user_id`, as Slack does with each interaction
        (`action`: the button clicked, remembered for `opened_by`)."""
        now = self.now()
        trigger_id = f"{next(self._ids)}.{int(now)}.{secrets.token_hex(16)}"
        self._triggers[trigger_id] = _Trigger(user=user_id, issued_at=now, action=action)
        return trigger_id

    def opened_by(self, view_id: str | None) -> str | None:
        """The button whose click opened the modal `view_id` (None: not opened by a click)."""
        view = self._views.get(str(view_id))
        trigger = self._triggers.get(view.trigger_id or "") if view is not None else None
        return trigger.action if trigger is not None else None

    # ----------------------------------------------------------------- what people meant

    def record_intent(self, user_id: str, text: str, *, internal: bool) -> None:
        """What a person meant when they wrote `text`: an internal note or a public reply.
        The leak scanner compares what customers saw with what staff meant as internal,
        whatever the bot stored."""
        self.intents.append(Intent(user=user_id, text=text, internal=internal))

    def record_confirmed_public(self, user_id: str, text: str) -> None:
        """A person confirmed that a customer may read `text` (copied from a staff surface)."""
        self.confirmed_public.append(Intent(user=user_id, text=text, internal=False))

    def expire_trigger(self, trigger_id: str) -> None:
        """Mark a trigger_id expired, as if the 3-second window had passed."""
        trigger = self._triggers.setdefault(trigger_id, _Trigger(user=None, issued_at=self.now()))
        trigger.expired = True

    def issue_response_url(
        self,
        user_id: str,
        channel_id: str,
        *,
        message_ts: str | None = None,
        ephemeral: bool = False,
    ) -> str:
        """A response_url served by this fake (start() first), bound to user and channel."""
        key = secrets.token_hex(12)
        self._response_urls[key] = _ResponseUrl(
            user=user_id, channel=channel_id, message_ts=message_ts, ephemeral=ephemeral
        )
        return f"{self.root_url}/hooks/response/{key}"

    # ----------------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: FaultStatus | None = None,
        error: str | None = None,
        retry_after: int = 1,
        delay: float = 10.0,
        then_process: bool = False,
    ) -> FaultRule:
        """Make the next `count` calls to `method` fail (500/429/'timeout', or ok:false error)."""
        return self.fail_for(
            method,
            until=count,
            status=status,
            error=error,
            retry_after=retry_after,
            delay=delay,
            then_process=then_process,
        )

    def fail_for(
        self,
        predicate_or_method: str | CallPredicate,
        until: int | Callable[[], bool] | None = None,
        *,
        status: FaultStatus | None = None,
        error: str | None = None,
        retry_after: int = 1,
        delay: float = 10.0,
        then_process: bool = False,
    ) -> FaultRule:
        """Fail matching calls until `until` calls have failed or `until()` is true (None: forever).

        A predicate gets (method, params). `error` alone answers 200 ok:false; `status` 429
        carries Retry-After; 'timeout' parks the request for `delay` seconds, then answers
        (processing it first if `then_process`, as when Slack acted but the client gave up)."""
        matcher: CallPredicate
        if isinstance(predicate_or_method, str):
            wanted = predicate_or_method

            def matcher(method: str, params: Mapping[str, Any]) -> bool:
                return method == wanted

        else:
            matcher = predicate_or_method
        resolved_status: FaultStatus = status if status is not None else (200 if error else 500)
        fault = Fault(
            status=resolved_status,
            error=error,
            retry_after=retry_after,
            delay=delay,
            then_process=then_process,
        )
        rule = FaultRule(
            matcher=matcher,
            fault=fault,
            remaining=until if isinstance(until, int) else None,
            until=until if callable(until) else None,
        )
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every pending fault injection."""
        self._faults.clear()

    def _take_fault(self, method: str, params: Mapping[str, Any]) -> Fault | None:
        """The fault for this call, if a rule matches (consuming one of its uses)."""
        for rule in self._faults:
            if rule.active and rule.matcher(method, params):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule.fault
        return None

    async def _park(self, delay: float) -> None:
        """Sleep up to `delay` seconds, returning early if the server is stopping."""
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay)

    # ----------------------------------------------------------------- HTTP plumbing

    async def _read_params(self, request: web.Request) -> JSONDict:
        """Merge query string and body (form or JSON) into one params dict."""
        params: JSONDict = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise SlackApiFailure("invalid_json") from exc
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in _JSON_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value.strip():
                try:
                    params[key] = json.loads(value)
                except json.JSONDecodeError as exc:
                    code = "invalid_blocks_format" if key == "blocks" else "invalid_arguments"
                    raise SlackApiFailure(code) from exc
        return params

    def _token_of(self, request: web.Request, params: JSONDict) -> str | None:
        """The bearer token, from the Authorization header or a `token` param."""
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        token = params.pop("token", None)
        return str(token) if token is not None else None

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Entry point for /api/{method}: record, inject faults, authenticate, dispatch."""
        method = request.match_info["method"]
        call = RecordedCall(method=method, params={}, time=self.now(), http_verb=request.method)
        self.calls.append(call)
        try:
            params = await self._read_params(request)
        except SlackApiFailure as failure:
            return self._finish(call, {"ok": False, "error": failure.error}, 200)
        call.token = self._token_of(request, params)
        params.pop("token", None)
        call.params = params
        if self.latency:
            await self._park(self.latency)

        fault = self._take_fault(method, params)
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, lambda: self._dispatch(call))
        return await self._dispatch(call)

    async def _dispatch(self, call: RecordedCall) -> web.Response:
        """Authenticate and run the method handler."""
        handler = self._handlers.get(call.method)
        if handler is None:
            return self._finish(call, {"ok": False, "error": "unknown_method"}, 404)
        if call.method != "api.test":
            if not call.token:
                return self._finish(call, {"ok": False, "error": "not_authed"}, 200)
            expected = self.app_token if call.method == "apps.connections.open" else self.bot_token
            if call.token != expected:
                return self._finish(call, {"ok": False, "error": "invalid_auth"}, 200)
        try:
            body = await handler(call.params)
        except SlackApiFailure as failure:
            body = {"ok": False, "error": failure.error}
            if failure.messages:
                body["response_metadata"] = {"messages": failure.messages}
            return self._finish(call, body, failure.status)
        return self._finish(call, {"ok": True, **body}, 200)

    async def _answer_fault(
        self,
        call: RecordedCall,
        fault: Fault,
        process: Callable[[], Awaitable[web.Response]],
    ) -> web.Response:
        """Produce the injected failure for `call`."""
        log.debug("fakeslack: injecting %s into %s", fault.describe(), call.method)
        if fault.status == "timeout":
            await self._park(fault.delay)
            if fault.then_process:
                response = await process()
                call.injected = True
                return response
            return self._finish(call, {"ok": False, "error": "fake_timeout"}, 504)
        status = int(fault.status)
        headers: dict[str, str] = {}
        if status == 429:
            headers["Retry-After"] = str(fault.retry_after)
            body: JSONDict = {"ok": False, "error": fault.error or "ratelimited"}
        elif status >= 500:
            body = {"ok": False, "error": fault.error or "internal_error"}
        else:
            body = {"ok": False, "error": fault.error or "fatal_error"}
        return self._finish(call, body, status, headers)

    def _finish(
        self,
        call: RecordedCall,
        body: JSONDict,
        status: int,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """Record the answer on the call and build the HTTP response."""
        call.response = body
        call.status = status
        call.answered.set()
        return web.json_response(body, status=status, headers=dict(headers or {}))

    # ----------------------------------------------------------------- helpers for handlers

    @staticmethod
    def _require(params: Mapping[str, Any], key: str, error: str | None = None) -> str:
        """A required string param, or an error (default `invalid_arguments`)."""
        value = params.get(key)
        if value is None or value == "":
            raise SlackApiFailure(error or "invalid_arguments")
        return str(value)

    def _resolve_channel(self, channel: str) -> str:
        """Map a channel id, #name, or user id (→ the bot's DM) to a known channel id."""
        if channel in self.channels:
            return channel
        if channel.startswith("#"):
            for known in self.channels.values():
                if known.name == channel[1:]:
                    return known.id
        if channel in self.users and channel[:1] in {"U", "W"}:
            return self.open_dm(channel)
        raise SlackApiFailure("channel_not_found")

    def _find_message(self, channel_id: str, ts: str) -> StoredMessage | None:
        """The stored message at (channel, ts), deleted or not."""
        for msg in self._messages.get(channel_id, []):
            if msg.ts == ts:
                return msg
        return None

    def _live_message(self, params: Mapping[str, Any], ts_key: str = "ts") -> StoredMessage:
        """The non-deleted message named by channel + ts params, or message_not_found."""
        channel_id = self._resolve_channel(self._require(params, "channel", "channel_not_found"))
        msg = self._find_message(channel_id, self._require(params, ts_key, "message_not_found"))
        if msg is None or msg.deleted:
            raise SlackApiFailure("message_not_found")
        return msg

    def _check_content(self, params: Mapping[str, Any], *, require: bool = True) -> None:
        """Validate text/blocks the way chat.* methods do."""
        text = params.get("text")
        blocks = params.get("blocks")
        attachments = params.get("attachments")
        if require and not text and not blocks and not attachments:
            raise SlackApiFailure("no_text")
        if text is not None and len(str(text)) > MAX_TEXT_LENGTH:
            raise SlackApiFailure("msg_too_long")
        if blocks is not None:
            errors = validate_blocks(blocks, limit=MAX_MESSAGE_BLOCKS)
            if errors:
                raise SlackApiFailure("invalid_blocks", messages=errors)

    def _store_message(
        self,
        channel_id: str,
        *,
        user: str,
        text: str,
        blocks: list[JSONDict],
        thread_ts: str | None,
        bot_id: str | None,
        via: str,
        attachments: list[JSONDict] | None = None,
        metadata: JSONDict | None = None,
        reply_broadcast: bool = False,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        subtype: str | None = None,
    ) -> StoredMessage:
        """Append a message to a channel, threading it under its root if thread_ts is set."""
        parent: StoredMessage | None = None
        if thread_ts:
            parent = self._find_message(channel_id, thread_ts)
            if parent is None:
                raise SlackApiFailure("thread_not_found")
            if parent.is_reply and parent.thread_ts is not None:
                parent = self._find_message(channel_id, parent.thread_ts) or parent
            thread_ts = parent.ts
        msg = StoredMessage(
            channel=channel_id,
            ts=self.next_ts(),
            user=user,
            text=text,
            blocks=copy.deepcopy(blocks),
            attachments=copy.deepcopy(attachments or []),
            metadata=copy.deepcopy(metadata),
            thread_ts=thread_ts,
            bot_id=bot_id,
            team=self.team_id,
            reply_broadcast=reply_broadcast,
            unfurl_links=unfurl_links,
            unfurl_media=unfurl_media,
            via=via,
            subtype=subtype,
        )
        if parent is not None:
            parent.thread_ts = parent.ts
            parent.replies.append(msg.ts)
        self._messages.setdefault(channel_id, []).append(msg)
        self._touch(msg)
        msg.created_seq = msg.seq
        return msg

    def _store_bot_message(
        self, channel_id: str, params: Mapping[str, Any], via: str
    ) -> StoredMessage:
        """Store a message the bot posts, checking channel state first."""
        channel = self.channels[channel_id]
        if channel.is_archived:
            raise SlackApiFailure("is_archived")
        if not channel.is_im and self.bot_user_id not in channel.members:
            raise SlackApiFailure("not_in_channel")
        thread_ts = params.get("thread_ts") or None
        return self._store_message(
            channel_id,
            user=self.bot_user_id,
            text=str(params.get("text") or ""),
            blocks=list(params.get("blocks") or []),
            attachments=list(params.get("attachments") or []),
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
            thread_ts=str(thread_ts) if thread_ts else None,
            bot_id=self.bot_id,
            via=via,
            reply_broadcast=_as_bool(params.get("reply_broadcast")),
            unfurl_links=_as_bool(params["unfurl_links"]) if "unfurl_links" in params else None,
            unfurl_media=_as_bool(params["unfurl_media"]) if "unfurl_media" in params else None,
        )

    def _edit_message(self, msg: StoredMessage, params: Mapping[str, Any]) -> None:
        """Apply an edit, keeping the previous version in history."""
        edit_ts = self.next_ts()
        msg.history.append(
            MessageVersion(
                text=msg.text,
                blocks=copy.deepcopy(msg.blocks),
                attachments=copy.deepcopy(msg.attachments),
                replaced_at=edit_ts,
            )
        )
        if "text" in params:
            msg.text = str(params.get("text") or "")
        if "blocks" in params:
            msg.blocks = copy.deepcopy(list(params.get("blocks") or []))
        if "attachments" in params:
            msg.attachments = copy.deepcopy(list(params.get("attachments") or []))
        if isinstance(params.get("metadata"), dict):
            msg.metadata = copy.deepcopy(params["metadata"])
        msg.edited = {"user": self.bot_user_id, "ts": edit_ts}
        self._touch(msg)

    # ----------------------------------------------------------------- method handlers

    async def _api_test(self, params: JSONDict) -> JSONDict:
        """api.test: echo the args."""
        return {"args": params}

    async def _apps_connections_open(self, params: JSONDict) -> JSONDict:
        """apps.connections.open: a Socket Mode WebSocket URL (app-level token only)."""
        return {"url": f"ws://{self.host}:{self.port}/socket"}

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        """A Socket Mode connection: say hello, then record the acks the app sends back."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": len(self._sockets)})
        self._socket_ready.set()
        async for frame in socket:
            if frame.type == aiohttp.WSMsgType.TEXT:
                self.socket_acks.append(json.loads(frame.data))
        self._sockets.remove(socket)
        return socket

    async def wait_for_socket(self) -> None:
        """Wait (10 s at most) until an app has connected over Socket Mode."""
        async with asyncio.timeout(10):
            await self._socket_ready.wait()

    async def send_over_socket(self, kind: str, payload: JSONDict) -> str:
        """Deliver an envelope (kind: slash_commands, interactive, events_api); returns its id."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def _auth_test(self, params: JSONDict) -> JSONDict:
        """auth.test: who the bot token belongs to."""
        bot = self.users[self.bot_user_id]
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Fake Workspace",
            "user": bot.name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    async def _users_info(self, params: JSONDict) -> JSONDict:
        """users.info: a user from the registry."""
        user = self.users.get(self._require(params, "user", "user_not_found"))
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": user.to_api()}

    async def _users_lookup_by_email(self, params: JSONDict) -> JSONDict:
        """users.lookupByEmail: find a user by profile email."""
        email = self._require(params, "email", "users_not_found").lower()
        for user in self.users.values():
            if user.email and user.email.lower() == email:
                return {"user": user.to_api()}
        raise SlackApiFailure("users_not_found")

    def _visible_channel(self, params: Mapping[str, Any]) -> FakeChannel:
        """The channel named by the `channel` param as the bot may see it: a private channel
        the bot is not in does not exist for it (channel_not_found), as on Slack."""
        channel = self.channels.get(self._require(params, "channel", "channel_not_found"))
        if channel is None:
            raise SlackApiFailure("channel_not_found")
        if channel.is_private and self.bot_user_id not in channel.members:
            raise SlackApiFailure("channel_not_found")
        return channel

    async def _conversations_info(self, params: JSONDict) -> JSONDict:
        """conversations.info: channel metadata."""
        return {"channel": self._visible_channel(params).to_api(self.bot_user_id)}

    async def _conversations_open(self, params: JSONDict) -> JSONDict:
        """conversations.open: the bot's DM (or group DM) with the given users, stable per user."""
        if params.get("channel"):
            channel = self.channels.get(str(params["channel"]))
            if channel is None:
                raise SlackApiFailure("channel_not_found")
            return {"channel": {"id": channel.id}, "no_op": True, "already_open": True}
        raw = params.get("users")
        users = raw if isinstance(raw, list) else str(raw or "").split(",")
        users = [u.strip() for u in users if u and u.strip()]
        if not users:
            raise SlackApiFailure("users_list_not_supplied")
        for user_id in users:
            user = self.users.get(user_id)
            if user is None:
                raise SlackApiFailure("user_not_found")
            if user.deleted:
                raise SlackApiFailure("user_disabled")
        if len(users) == 1:
            already = users[0] in self._dm_by_user
            channel_id = self.open_dm(users[0])
        else:
            key = frozenset(users)
            already = key in self._mpims
            if not already:
                channel_id = self._new_id("G")
                self.channels[channel_id] = FakeChannel(
                    id=channel_id,
                    name="mpdm-" + "--".join(sorted(users)),
                    is_private=True,
                    is_mpim=True,
                    members={self.bot_user_id, *users},
                    created=int(self.now()),
                )
                self._messages[channel_id] = []
                self._mpims[key] = channel_id
            channel_id = self._mpims[key]
        if _as_bool(params.get("return_im")):
            body: JSONDict = {"channel": self.channels[channel_id].to_api(self.bot_user_id)}
        else:
            body = {"channel": {"id": channel_id}}
        if already:
            body.update({"no_op": True, "already_open": True})
        return body

    async def _conversations_members(self, params: JSONDict) -> JSONDict:
        """conversations.members: the member ids of a channel."""
        channel = self._visible_channel(params)
        return {"members": sorted(channel.members), "response_metadata": {"next_cursor": ""}}

    def _page(
        self, items: list[StoredMessage], params: Mapping[str, Any], default_limit: int
    ) -> JSONDict:
        """Apply limit/cursor pagination to a list of messages."""
        limit = int(params.get("limit") or default_limit) or default_limit
        start = int(params.get("cursor") or 0)
        chunk = items[start : start + limit]
        more = start + limit < len(items)
        include_metadata = _as_bool(params.get("include_all_metadata"))
        return {
            "messages": [m.to_api(include_metadata=include_metadata) for m in chunk],
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    @staticmethod
    def _in_range(ts: str, params: Mapping[str, Any]) -> bool:
        """Whether ts lies within the oldest/latest/inclusive window."""
        inclusive = _as_bool(params.get("inclusive"))
        value = float(ts)
        if params.get("oldest"):
            oldest = float(params["oldest"])
            if value < oldest or (value == oldest and not inclusive):
                return False
        if params.get("latest"):
            latest = float(params["latest"])
            if value > latest or (value == latest and not inclusive):
                return False
        return True

    async def _conversations_history(self, params: JSONDict) -> JSONDict:
        """conversations.history: top-level messages (and broadcasts), newest first."""
        channel_id = self._resolve_channel(self._require(params, "channel", "channel_not_found"))
        if self.bot_user_id not in self.channels[channel_id].members:
            raise SlackApiFailure("not_in_channel")
        items = [
            m
            for m in self._messages.get(channel_id, [])
            if not m.deleted
            and (not m.is_reply or m.reply_broadcast)
            and self._in_range(m.ts, params)
        ]
        items.sort(key=lambda m: float(m.ts), reverse=True)
        return self._page(items, params, 100)

    async def _conversations_replies(self, params: JSONDict) -> JSONDict:
        """conversations.replies: a thread's parent then its replies, oldest first."""
        channel_id = self._resolve_channel(self._require(params, "channel", "channel_not_found"))
        parent = self._find_message(channel_id, self._require(params, "ts", "thread_not_found"))
        if parent is None:
            raise SlackApiFailure("thread_not_found")
        root = parent.thread_ts or parent.ts
        items = [
            m
            for m in self._messages.get(channel_id, [])
            if not m.deleted
            and (m.ts == root or m.thread_ts == root)
            and self._in_range(m.ts, params)
        ]
        items.sort(key=lambda m: float(m.ts))
        return self._page(items, params, 1000)

    async def _chat_post_message(self, params: JSONDict) -> JSONDict:
        """chat.postMessage: store a bot message and return its ts."""
        channel_id = self._resolve_channel(self._require(params, "channel", "channel_not_found"))
        self._check_content(params)
        msg = self._store_bot_message(channel_id, params, "chat.postMessage")
        return {"channel": channel_id, "ts": msg.ts, "message": msg.to_api()}

    async def _chat_update(self, params: JSONDict) -> JSONDict:
        """chat.update: replace a bot message's text/blocks."""
        msg = self._live_message(params)
        if msg.bot_id != self.bot_id:
            raise SlackApiFailure("cant_update_message")
        self._check_content(params, require=False)
        self._edit_message(msg, params)
        return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.to_api()}

    async def _chat_delete(self, params: JSONDict) -> JSONDict:
        """chat.delete: flag a bot message deleted (it stays in the record)."""
        msg = self._live_message(params)
        if msg.bot_id != self.bot_id:
            raise SlackApiFailure("cant_delete_message")
        msg.deleted = True
        self._touch(msg)
        return {"channel": msg.channel, "ts": msg.ts}

    async def _chat_post_ephemeral(self, params: JSONDict) -> JSONDict:
        """chat.postEphemeral: a message only one channel member sees."""
        channel_id = self._resolve_channel(self._require(params, "channel", "channel_not_found"))
        user_id = self._require(params, "user", "user_not_found")
        if user_id not in self.users:
            raise SlackApiFailure("user_not_found")
        channel = self.channels[channel_id]
        if not channel.is_im and self.bot_user_id not in channel.members:
            raise SlackApiFailure("not_in_channel")
        if user_id not in channel.members:
            raise SlackApiFailure("user_not_in_channel")
        self._check_content(params)
        ephemeral = EphemeralMessage(
            channel=channel_id,
            user=user_id,
            text=str(params.get("text") or ""),
            blocks=copy.deepcopy(list(params.get("blocks") or [])),
            attachments=copy.deepcopy(list(params.get("attachments") or [])),
            message_ts=self.next_ts(),
            thread_ts=str(params["thread_ts"]) if params.get("thread_ts") else None,
        )
        self._ephemerals.append(ephemeral)
        self._touch(ephemeral)
        return {"message_ts": ephemeral.message_ts}

    async def _chat_get_permalink(self, params: JSONDict) -> JSONDict:
        """chat.getPermalink: a workspace URL for a message."""
        msg = self._live_message(params, ts_key="message_ts")
        ts_digits = msg.ts.replace(".", "")
        link = f"https://{self.team_domain}.slack.com/archives/{msg.channel}/p{ts_digits}"
        if msg.is_reply:
            link += f"?thread_ts={msg.thread_ts}&cid={msg.channel}"
        return {"channel": msg.channel, "permalink": link}

    async def _reactions_add(self, params: JSONDict) -> JSONDict:
        """reactions.add: the bot reacts to a message."""
        msg = self._live_message(params, ts_key="timestamp")
        name = self._require(params, "name", "invalid_name").strip(":")
        users = msg.reactions.setdefault(name, [])
        if self.bot_user_id in users:
            raise SlackApiFailure("already_reacted")
        users.append(self.bot_user_id)
        return {}

    async def _reactions_remove(self, params: JSONDict) -> JSONDict:
        """reactions.remove: the bot takes a reaction back."""
        msg = self._live_message(params, ts_key="timestamp")
        name = self._require(params, "name", "invalid_name").strip(":")
        users = msg.reactions.get(name, [])
        if self.bot_user_id not in users:
            raise SlackApiFailure("no_reaction")
        users.remove(self.bot_user_id)
        if not users:
            del msg.reactions[name]
        return {}

    def _consume_trigger(self, trigger_id: str) -> _Trigger:
        """Use a trigger_id once; reused, expired or stale ones fail with expired_trigger_id."""
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            trigger = _Trigger(user=None, issued_at=self.now())
            self._triggers[trigger_id] = trigger
        stale = self.trigger_ttl is not None and self.now() - trigger.issued_at > self.trigger_ttl
        if trigger.used or trigger.expired or stale:
            raise SlackApiFailure("expired_trigger_id")
        trigger.used = True
        return trigger

    def _view_from_params(
        self, params: Mapping[str, Any], kind: Literal["modal", "home"]
    ) -> JSONDict:
        """The validated `view` param."""
        view = params.get("view")
        if view is None:
            raise SlackApiFailure("invalid_arguments", messages=["[ERROR] missing view"])
        errors = validate_view(view, kind=kind)
        if errors:
            raise SlackApiFailure("invalid_arguments", messages=errors)
        return copy.deepcopy(dict(view))

    def _find_view(self, params: Mapping[str, Any]) -> FakeView:
        """The view named by view_id or external_id."""
        view_id = params.get("view_id")
        external_id = params.get("external_id")
        if view_id:
            found = self._views.get(str(view_id))
            if found is not None:
                return found
        elif external_id:
            for candidate in self._views.values():
                if candidate.view.get("external_id") == external_id:
                    return candidate
        else:
            raise SlackApiFailure("invalid_arguments")
        raise SlackApiFailure("not_found")

    async def _views_open(self, params: JSONDict) -> JSONDict:
        """views.open: open a modal for the user the trigger belongs to."""
        trigger_id = self._require(params, "trigger_id", "invalid_trigger_id")
        view = self._view_from_params(params, "modal")
        trigger = self._consume_trigger(trigger_id)
        fake_view = FakeView(
            id=self._new_id("V"),
            kind="modal",
            user=trigger.user,
            view=view,
            hash=f"{int(self.now())}.{secrets.token_hex(4)}",
            team_id=self.team_id,
            bot_id=self.bot_id,
            trigger_id=trigger_id,
            history=[copy.deepcopy(view)],
        )
        self._views[fake_view.id] = fake_view
        self._touch(fake_view)
        return {"view": fake_view.to_api()}

    async def _views_push(self, params: JSONDict) -> JSONDict:
        """views.push: stack a new modal on the user's open one (at most 3 deep)."""
        trigger_id = self._require(params, "trigger_id", "invalid_trigger_id")
        view = self._view_from_params(params, "modal")
        trigger = self._consume_trigger(trigger_id)
        parent = next(
            (
                v
                for v in reversed(self._views.values())
                if v.kind == "modal" and not v.closed and v.user == trigger.user
            ),
            None,
        )
        root_id = (parent.root_view_id or parent.id) if parent is not None else None
        depth = sum(
            1
            for v in self._views.values()
            if root_id and not v.closed and (v.root_view_id or v.id) == root_id
        )
        if depth >= 3:
            raise SlackApiFailure("push_limit_reached")
        fake_view = FakeView(
            id=self._new_id("V"),
            kind="modal",
            user=trigger.user,
            view=view,
            hash=f"{int(self.now())}.{secrets.token_hex(4)}",
            team_id=self.team_id,
            bot_id=self.bot_id,
            trigger_id=trigger_id,
            root_view_id=root_id,
            previous_view_id=parent.id if parent is not None else None,
            history=[copy.deepcopy(view)],
        )
        self._views[fake_view.id] = fake_view
        self._touch(fake_view)
        return {"view": fake_view.to_api()}

    async def _views_update(self, params: JSONDict) -> JSONDict:
        """views.update: replace a view's content (hash-checked if a hash is given)."""
        target = self._find_view(params)
        kind: Literal["modal", "home"] = target.kind
        view = self._view_from_params(params, kind)
        if params.get("hash") and params["hash"] != target.hash:
            raise SlackApiFailure("hash_conflict")
        target.view = view
        target.history.append(copy.deepcopy(view))
        target.hash = f"{int(self.now())}.{secrets.token_hex(4)}"
        self._touch(target)
        return {"view": target.to_api()}

    async def _views_publish(self, params: JSONDict) -> JSONDict:
        """views.publish: set a user's App Home tab."""
        user_id = self._require(params, "user_id", "user_not_found")
        if user_id not in self.users:
            raise SlackApiFailure("user_not_found")
        view = self._view_from_params(params, "home")
        existing_id = self._home_views.get(user_id)
        if existing_id is not None:
            home = self._views[existing_id]
            if params.get("hash") and params["hash"] != home.hash:
                raise SlackApiFailure("hash_conflict")
            home.view = view
            home.history.append(copy.deepcopy(view))
            home.hash = f"{int(self.now())}.{secrets.token_hex(4)}"
        else:
            home = FakeView(
                id=self._new_id("V"),
                kind="home",
                user=user_id,
                view=view,
                hash=f"{int(self.now())}.{secrets.token_hex(4)}",
                team_id=self.team_id,
                bot_id=self.bot_id,
                history=[copy.deepcopy(view)],
            )
            self._views[home.id] = home
            self._home_views[user_id] = home.id
        self._touch(home)
        return {"view": home.to_api()}

    # ----------------------------------------------------------------- response_url

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """Serve a response_url POST the way hooks.slack.com does (plain-text 'ok')."""
        key = request.match_info["key"]
        call = RecordedCall(method="response_url", params={}, time=self.now())
        self.calls.append(call)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            return self._finish_text(call, "invalid_payload", 400)
        for name in ("blocks", "attachments"):
            if isinstance(body.get(name), str):
                with contextlib.suppress(json.JSONDecodeError):
                    body[name] = json.loads(body[name])
        call.params = body
        fault = self._take_fault("response_url", body)
        if fault is not None:
            call.injected = True
            return await self._answer_fault(call, fault, lambda: self._respond(call, key))
        return await self._respond(call, key)

    async def _respond(self, call: RecordedCall, key: str) -> web.Response:
        """Apply a response_url payload: ephemeral, in_channel, replace or delete original."""
        target = self._response_urls.get(key)
        if target is None:
            return self._finish_text(call, "no_service", 404)
        if target.uses >= RESPONSE_URL_MAX_USES:
            return self._finish_text(call, "expired_url", 404)
        target.uses += 1
        body = call.params
        try:
            self._check_content(body, require=not _as_bool(body.get("delete_original")))
            self._apply_response(target, body)
        except SlackApiFailure as failure:
            return self._finish_text(call, failure.error, 400)
        return self._finish_text(call, "ok", 200)

    def _apply_response(self, target: _ResponseUrl, body: JSONDict) -> None:
        """Mutate the workspace as a response_url payload asks."""
        original_ephemeral = self._find_ephemeral(target) if target.ephemeral else None
        original_message = (
            self._find_message(target.channel, target.message_ts)
            if target.message_ts and not target.ephemeral
            else None
        )
        if _as_bool(body.get("delete_original")):
            if original_ephemeral is not None:
                original_ephemeral.deleted = True
                self._touch(original_ephemeral)
            elif original_message is not None:
                original_message.deleted = True
                self._touch(original_message)
            else:
                raise SlackApiFailure("message_not_found")
            return
        if _as_bool(body.get("replace_original")):
            if original_ephemeral is not None:
                original_ephemeral.history.append(
                    MessageVersion(
                        text=original_ephemeral.text,
                        blocks=copy.deepcopy(original_ephemeral.blocks),
                        attachments=copy.deepcopy(original_ephemeral.attachments),
                        replaced_at=self.next_ts(),
                    )
                )
                original_ephemeral.text = str(body.get("text") or "")
                original_ephemeral.blocks = copy.deepcopy(list(body.get("blocks") or []))
                self._touch(original_ephemeral)
                return
            if original_message is not None:
                self._edit_message(original_message, {"text": "", "blocks": [], **body})
                return
        if body.get("response_type") == "in_channel":
            self._store_bot_message(target.channel, body, "response_url")
            return
        ephemeral = EphemeralMessage(
            channel=target.channel,
            user=target.user,
            text=str(body.get("text") or ""),
            blocks=copy.deepcopy(list(body.get("blocks") or [])),
            attachments=copy.deepcopy(list(body.get("attachments") or [])),
            message_ts=self.next_ts(),
            thread_ts=str(body["thread_ts"]) if body.get("thread_ts") else None,
            via="response_url",
        )
        self._ephemerals.append(ephemeral)
        self._touch(ephemeral)

    def _find_ephemeral(self, target: _ResponseUrl) -> EphemeralMessage | None:
        """The ephemeral a response_url's interaction came from."""
        for eph in reversed(self._ephemerals):
            same_place = eph.user == target.user and eph.channel == target.channel
            if same_place and target.message_ts in (None, eph.message_ts):
                return eph
        return None

    def _finish_text(self, call: RecordedCall, text: str, status: int) -> web.Response:
        """Record and answer a response_url call with plain text, as Slack does."""
        call.response = {"ok": status == 200, **({} if status == 200 else {"error": text})}
        call.status = status
        call.answered.set()
        return web.Response(text=text, status=status, content_type="text/plain")

    # ----------------------------------------------------------------- inspection helpers

    def calls_to(self, method: str, *, include_injected: bool = True) -> list[RecordedCall]:
        """Every recorded call to `method` (failed-by-injection ones too unless excluded)."""
        return [
            c for c in self.calls if c.method == method and (include_injected or not c.injected)
        ]

    def reset_calls(self) -> None:
        """Forget the call log (the workspace state stays)."""
        self.calls.clear()

    def messages(
        self,
        channel: str | None = None,
        thread_ts: str | None = None,
        *,
        include_deleted: bool = False,
    ) -> list[StoredMessage]:
        """Stored messages in ts order; with thread_ts, that thread's parent and replies."""
        channels = [channel] if channel is not None else list(self._messages)
        found = [
            m
            for cid in channels
            for m in self._messages.get(cid, [])
            if (include_deleted or not m.deleted)
            and (thread_ts is None or m.ts == thread_ts or m.thread_ts == thread_ts)
        ]
        return sorted(found, key=lambda m: float(m.ts))

    def replies(self, channel: str, thread_ts: str) -> list[StoredMessage]:
        """Only the replies in a thread (not its parent), oldest first."""
        return [m for m in self.messages(channel, thread_ts) if m.ts != thread_ts]

    def message(self, channel: str, ts: str) -> StoredMessage | None:
        """One stored message (deleted or not)."""
        return self._find_message(channel, ts)

    def last_message(self, channel: str | None = None) -> StoredMessage | None:
        """The newest non-deleted message (in `channel` if given)."""
        found = self.messages(channel)
        return found[-1] if found else None

    def ephemerals(
        self, user: str | None = None, *, channel: str | None = None
    ) -> list[EphemeralMessage]:
        """Ephemeral messages, optionally only those for `user` / in `channel`."""
        return [
            e
            for e in self._ephemerals
            if (user is None or e.user == user) and (channel is None or e.channel == channel)
        ]

    def views_opened(self, user: str | None = None) -> list[FakeView]:
        """Modals opened or pushed, optionally only those for `user`."""
        return [
            v
            for v in self._views.values()
            if v.kind == "modal" and (user is None or v.user == user)
        ]

    def view(self, view_id: str) -> FakeView | None:
        """A view by id."""
        return self._views.get(view_id)

    def close_view(self, view_id: str) -> None:
        """Mark a modal closed (as when the user dismisses or the stack is cleared)."""
        self._views[view_id].closed = True
        self._touch(self._views[view_id])

    def home_views(self, user: str) -> list[JSONDict]:
        """Every App Home view published for `user`, oldest first (latest is current)."""
        view_id = self._home_views.get(user)
        return copy.deepcopy(self._views[view_id].history) if view_id else []

    def home_view(self, user: str) -> FakeView | None:
        """The user's App Home view, if one was published."""
        view_id = self._home_views.get(user)
        return self._views[view_id] if view_id else None

    def reactions(self, channel: str, ts: str) -> list[str]:
        """Names of the reactions on a message."""
        msg = self._find_message(channel, ts)
        return list(msg.reactions) if msg else []

    # ----------------------------------------------------------------- visibility

    def _message_items(self, msg: StoredMessage, include_history: bool) -> list[VisibleItem]:
        """Visible items for every version of a message."""
        items = [
            VisibleItem(
                kind="message",
                text_content=msg.text_content,
                raw_content=raw_text([msg.text, msg.blocks, msg.attachments, msg.metadata]),
                channel=msg.channel,
                ts=msg.ts,
                thread_ts=msg.thread_ts,
                deleted=msg.deleted,
                source=msg,
            )
        ]
        if include_history:
            for old in msg.history:
                items.append(
                    VisibleItem(
                        kind="message",
                        text_content=visible_text([old.text, old.blocks, old.attachments]),
                        raw_content=raw_text([old.text, old.blocks, old.attachments]),
                        channel=msg.channel,
                        ts=msg.ts,
                        thread_ts=msg.thread_ts,
                        deleted=msg.deleted,
                        is_current=False,
                        source=msg,
                    )
                )
        return items

    def _view_items(self, view: FakeView, include_history: bool) -> list[VisibleItem]:
        """Visible items for every version of a view."""
        versions = view.history if include_history else [view.view]
        return [
            VisibleItem(
                kind=view.kind,
                text_content=_view_visible_text(version),
                raw_content=raw_text(version),
                view_id=view.id,
                is_current=version is versions[-1],
                source=view,
            )
            for version in versions
        ]

    def visible_to(
        self, user_id: str, *, include_history: bool = True, include_public: bool = True
    ) -> list[VisibleItem]:
        """Everything `user_id` could ever have seen: channel/DM messages and replies (every
        version, deleted ones too), ephemerals sent to them, and views opened/published for them.
        Messages of a channel while it was public (or shared with another organisation) count
        for everyone unless include_public=False."""
        items: list[VisibleItem] = []
        for channel_id, msgs in self._messages.items():
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            member = user_id in channel.members
            for msg in msgs:
                if member or (include_public and channel.exposes(msg)):
                    items.extend(self._message_items(msg, include_history))
        for eph in self._ephemerals:
            if eph.user != user_id:
                continue
            items.append(
                VisibleItem(
                    kind="ephemeral",
                    text_content=eph.text_content,
                    raw_content=raw_text([eph.text, eph.blocks, eph.attachments]),
                    channel=eph.channel,
                    ts=eph.message_ts,
                    thread_ts=eph.thread_ts,
                    deleted=eph.deleted,
                    source=eph,
                )
            )
            if include_history:
                items.extend(
                    VisibleItem(
                        kind="ephemeral",
                        text_content=visible_text([old.text, old.blocks, old.attachments]),
                        raw_content=raw_text([old.text, old.blocks, old.attachments]),
                        channel=eph.channel,
                        ts=eph.message_ts,
                        deleted=eph.deleted,
                        is_current=False,
                        source=eph,
                    )
                    for old in eph.history
                )
        for view in self._views.values():
            if view.user == user_id:
                items.extend(self._view_items(view, include_history))
        return items

    def visible_publicly(self, *, include_history: bool = True) -> list[VisibleItem]:
        """Every message that was ever in a non-private channel: one that is public or shared
        with another organisation now, or was at some time after the message was posted."""
        items: list[VisibleItem] = []
        for channel_id, msgs in self._messages.items():
            channel = self.channels.get(channel_id)
            if channel is None:
                continue
            for msg in msgs:
                if channel.exposes(msg):
                    items.extend(self._message_items(msg, include_history))
        return items

    def find_visible(self, user_id: str, needle: str, *, raw: bool = False) -> list[VisibleItem]:
        """Items visible to `user_id` containing `needle` (in raw payload strings if raw=True)."""
        return [
            item
            for item in self.visible_to(user_id)
            if needle in (item.raw_content if raw else item.text_content)
        ]

    def display_names(self) -> dict[str, str]:
        """Id → name map for users and channels, for render_* functions."""
        names = {u.id: u.name for u in self.users.values()}
        names.update({c.id: c.name for c in self.channels.values() if not c.is_im})
        return names

    def _where(self, channel_id: str, viewer: str) -> str:
        """How a channel is labelled for `viewer`: #name, 'DM with <other party>', or group DM."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return channel_id
        if channel.is_im:
            other = self.bot_user_id if viewer != self.bot_user_id else str(channel.im_user)
            return f"DM with {self.users[other].name if other in self.users else other}"
        return "group DM" if channel.is_mpim else f"#{channel.name}"

    def render_for(self, user_id: str, *, since: int = 0) -> str:
        """What `user_id` currently sees, as text, oldest change first.

        Only items created or changed after the `since` bookmark (from `mark()`) are shown;
        deleted messages and closed modals are left out."""
        names = self.display_names()
        entries: list[tuple[int, str]] = []
        for item in self.visible_to(user_id, include_history=False):
            source = item.source
            if item.deleted or getattr(source, "seq", 0) <= since:
                continue
            if isinstance(source, StoredMessage):
                author = names.get(source.user, source.user)
                where = self._where(source.channel, user_id)
                thread = " (thread reply)" if source.is_reply else ""
                edited = " (edited)" if source.edited else ""
                head = f"-- {where}{thread} | {author}{edited}"
                body = render_message_as_text(source.text, source.blocks, names)
            elif isinstance(source, EphemeralMessage):
                head = f"-- {self._where(source.channel, user_id)} | only visible to you"
                body = render_message_as_text(source.text, source.blocks, names)
            elif isinstance(source, FakeView):
                if source.closed:
                    continue
                head = "-- App Home" if source.kind == "home" else f"-- modal {source.id}"
                body = render_view_as_text(source.view, names)
            else:
                continue
            indented = "\n".join("   " + line for line in body.splitlines())
            entries.append((getattr(source, "seq", 0), f"{head}\n{indented}"))
        return "\n".join(text for _, text in sorted(entries, key=lambda e: e[0]))
