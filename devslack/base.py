"""What every part of FakeSlack shares: its state, its clock and ids, helpers for handlers."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devslack.blockkit import MAX_MESSAGE_BLOCKS, MAX_TEXT_LENGTH, validate_blocks
from devslack.model import (
    ClockLike,
    EphemeralMessage,
    FakeChannel,
    FakeUser,
    FakeView,
    Handler,
    Intent,
    JSONDict,
    MessageVersion,
    RecordedCall,
    SlackApiFailure,
    StoredMessage,
    _ResponseUrl,
    _Trigger,
)

if TYPE_CHECKING:
    from devslack.faults import Fault, FaultRule


def _as_bool(value: Any, default: bool = False) -> bool:
    """Read a Slack boolean param, which may arrive as bool, 1/0 or 'true'/'false'."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes"}


class FakeSlackBase:
    """The state FakeSlack.__init__ sets up, declared here so that each mixin type-checks on its
    own, plus the clock, the ids and the helpers every method handler uses."""

    bot_token: str
    bot_user_id: str
    bot_id: str
    team_id: str
    team_domain: str
    host: str
    port: int
    trigger_ttl: float | None
    latency: float
    _clock: Callable[[], float] | ClockLike | None

    calls: list[RecordedCall]
    users: dict[str, FakeUser]
    channels: dict[str, FakeChannel]
    _messages: dict[str, list[StoredMessage]]
    _ephemerals: list[EphemeralMessage]
    _views: dict[str, FakeView]
    intents: list[Intent]
    confirmed_public: list[Intent]
    _home_views: dict[str, str]
    _dm_by_user: dict[str, str]
    _mpims: dict[frozenset[str], str]
    _triggers: dict[str, _Trigger]
    _response_urls: dict[str, _ResponseUrl]
    _faults: list[FaultRule]
    _ids: itertools.count[int]
    _seq: int
    _last_ts_us: int

    _runner: web.AppRunner | None
    _stopping: asyncio.Event | None
    _handlers: dict[str, Handler]
    app_token: str
    socket_acks: list[JSONDict]
    _sockets: list[web.WebSocketResponse]
    _socket_ready: asyncio.Event

    if TYPE_CHECKING:
        # Defined by other parts of FakeSlack (server, workspace, faults).

        @property
        def root_url(self) -> str: ...

        def open_dm(self, user_id: str) -> str: ...

        def _take_fault(self, method: str, params: Mapping[str, Any]) -> Fault | None: ...

        async def _answer_fault(
            self,
            call: RecordedCall,
            fault: Fault,
            process: Callable[[], Awaitable[web.Response]],
        ) -> web.Response: ...

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
