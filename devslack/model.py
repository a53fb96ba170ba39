"""The fake workspace's data: users, channels, messages, ephemerals, views, recorded calls."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from devslack.render import visible_text

JSONDict = dict[str, Any]


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
    # Files shared with the message, as Slack described them when it was posted.
    files: list[JSONDict] = field(default_factory=list)

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
        if self.files:
            msg["files"] = copy.deepcopy(self.files)
            msg["upload"] = True
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
