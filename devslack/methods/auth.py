"""api.test and auth.test."""

from __future__ import annotations

from devslack.base import FakeSlackBase
from devslack.model import JSONDict


class AuthMethods(FakeSlackBase):
    """api.* and auth.* handlers."""

    async def _api_test(self, params: JSONDict) -> JSONDict:
        """api.test: echo the args."""
        return {"args": params}

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
