"""conversations.info, .open, .members, .history and .replies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devslack.base import FakeSlackBase, _as_bool
from devslack.model import FakeChannel, JSONDict, SlackApiFailure, StoredMessage


class ConversationsMethods(FakeSlackBase):
    """conversations.* handlers."""

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
