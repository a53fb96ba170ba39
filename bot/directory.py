"""Names of the people and channels that messages mention, looked up once and cached.

A message that mentions `<@U123>` is stored with the person's display name (bot.markup): the
name is asked of Slack (users.info, conversations.info) the first time and kept for
NAME_CACHE_SECONDS, so a busy thread costs no lookups. Who the desk serves and with which
rights is bot.identity's business: nothing here provisions anyone or decides a right.

A lookup that fails or is slow leaves the name unknown (the text then says `@user` or
`#channel`, never the raw id markup); "no such user/channel" is remembered like a name, a
time-out is not."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.markup import Names, References
from bot.notify import slack_error_code

log = logging.getLogger("bot.directory")

NAME_CACHE_SECONDS = 3600.0
LOOKUP_TIMEOUT_SECONDS = 1.5
# At most this many names are cached (expired ones are dropped first, then all).
CACHE_LIMIT = 10_000
# A message naming more people or channels than this gets the rest as `@user` / `#channel`.
MAX_LOOKUPS_PER_MESSAGE = 20
_GONE = frozenset({"user_not_found", "user_not_visible", "channel_not_found"})


def display_name_of(user: Mapping[str, Any]) -> str | None:
    """The name Slack shows for a users.info `user`: display name, else real name, else handle."""
    profile = user.get("profile") or {}
    for value in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


class SlackDirectory:
    """users.info / conversations.info answers, cached per id (shared by every listener)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl_seconds: float = NAME_CACHE_SECONDS,
        lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS,
    ) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.lookup_timeout = lookup_timeout
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._pending: dict[str, asyncio.Future[str | None]] = {}

    async def names(self, references: References) -> Names:
        """The names of the people and channels in `references` that can be known now."""
        users = sorted(references.users)[:MAX_LOOKUPS_PER_MESSAGE]
        channels = sorted(references.channels)[: max(0, MAX_LOOKUPS_PER_MESSAGE - len(users))]
        found = await asyncio.gather(
            *(self._name(f"user:{u}", partial(self._user_name, u)) for u in users),
            *(self._name(f"channel:{c}", partial(self._channel_name, c)) for c in channels),
        )
        user_names = dict(zip(users, found[: len(users)], strict=True))
        channel_names = dict(zip(channels, found[len(users) :], strict=True))
        return Names(users=_known(user_names), channels=_known(channel_names))

    async def _name(self, key: str, lookup: Callable[[], Awaitable[str | None]]) -> str | None:
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, lookup))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(pending)

    async def _load(self, key: str, lookup: Callable[[], Awaitable[str | None]]) -> str | None:
        try:
            name = await asyncio.wait_for(lookup(), timeout=self.lookup_timeout)
        except SlackApiError as error:
            code = slack_error_code(error)
            if code in _GONE:
                self._remember(key, None)
            else:
                log.info("name lookup refused", extra={"error": code})
            return None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.info("name lookup did not answer", extra={"error": type(error).__name__})
            return None
        self._remember(key, name)
        return name

    def _remember(self, key: str, name: str | None) -> None:
        """Cache a name, keeping at most CACHE_LIMIT (expired ones go first, then all)."""
        now = time.monotonic()
        if len(self._cache) >= CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
        self._cache[key] = (now + self.ttl, name)

    async def _user_name(self, user_id: str) -> str | None:
        response = await self.client.users_info(user=user_id)
        user = response.get("user")
        return display_name_of(user) if isinstance(user, Mapping) else None

    async def _channel_name(self, channel_id: str) -> str | None:
        response = await self.client.conversations_info(channel=channel_id)
        channel = response.get("channel")
        if not isinstance(channel, Mapping) or channel.get("is_im") or channel.get("is_mpim"):
            return None
        name = channel.get("name")
        return str(name) if isinstance(name, str) and name.strip() else None


def _known(found: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in found.items() if value}
