"""reactions.add and reactions.remove."""

from __future__ import annotations

from devslack.base import FakeSlackBase
from devslack.model import JSONDict, SlackApiFailure


class ReactionsMethods(FakeSlackBase):
    """reactions.* handlers."""

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
