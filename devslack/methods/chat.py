"""chat.postMessage, .update, .delete, .postEphemeral and .getPermalink."""

from __future__ import annotations

import copy

from devslack.base import FakeSlackBase
from devslack.model import EphemeralMessage, JSONDict, SlackApiFailure


class ChatMethods(FakeSlackBase):
    """chat.* handlers."""

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
