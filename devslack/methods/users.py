"""users.info and users.lookupByEmail."""

from __future__ import annotations

from devslack.base import FakeSlackBase
from devslack.model import JSONDict, SlackApiFailure


class UsersMethods(FakeSlackBase):
    """users.* handlers."""

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
