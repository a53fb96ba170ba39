"""Slack user id -> core user: provisioned from users.info on first contact, refreshed from it
at most every IDENTITY_CACHE_SECONDS.

Only the Slack profile lookup is cached. The user's row (role, the desk's active flag) is read
from the database on every request, so a role change or a deactivation made by any process,
replica or CLI counts from the person's next request; and the core reloads the actor in every
transaction besides."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.directory import display_name_of
from bot.notify import slack_error_code
from bot.pacing import Deferred, Priority, delivering
from core import users
from core.context import Core
from core.errors import Forbidden, Unavailable
from core.results import UserView

log = logging.getLogger("bot.identity")

# Commands, clicks and submissions are acked only after the actor is known, and Slack wants the
# ack within 3 seconds: a users.info that hangs must give up well before that.
LOOKUP_TIMEOUT_SECONDS = 1.5
# Someone provisioned from their request's payload (users.info could not answer) is asked
# about again after this many seconds, not on each request meanwhile.
PROFILE_RETRY_SECONDS = 60.0
# How long a request may wait for a users.info slot before it goes on without the profile.
USERS_INFO_MAX_WAIT_SECONDS = 0.25
# At most this many people's profiles are remembered as fresh (expired ones go first; a cache
# that is full is emptied: it only spares users.info calls, it grants nothing).
CACHE_LIMIT = 10_000
# Expired profiles are also dropped whenever the cache has doubled since the last time (and
# holds at least this many): it then levels off at about twice the people seen within the
# TTL, instead of growing with every new person up to CACHE_LIMIT (bench.burst brings 300
# new people per burst; tracemalloc showed the cache among what grew from one to the next).
PRUNE_FLOOR = 1_000
# User ids (U…, or W… on Enterprise Grid) are short upper-case alphanumerics; USLACKBOT too.
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")


class OtherWorkspace(Forbidden):
    """The person belongs to another organisation (Slack Connect): refused here, served only
    in customer channels (bot.connect), with the profile users.info gave."""

    def __init__(self, profile: dict[str, Any]) -> None:
        super().__init__(
            "The support desk only serves members of this workspace here: ask in your "
            "company's shared support channel."
        )
        self.profile = profile


@dataclass(frozen=True)
class RequestProfile:
    """What a signed interaction payload says of its sender (`user.name`, `user.team_id`):
    enough to serve someone new when users.info cannot answer (see resolve)."""

    name: str
    team_id: str

    @classmethod
    def of_payload(cls, body: Mapping[str, Any]) -> RequestProfile | None:
        user = body.get("user")
        if not isinstance(user, Mapping):
            return None
        name, team = user.get("name") or user.get("username"), user.get("team_id")
        if not isinstance(name, str) or not isinstance(team, str) or not team:
            return None
        return cls(name=name, team_id=team)


@dataclass
class _Entry:
    """users.info answered for this person recently: their profile needs no refresh yet."""

    expires: float


class IdentityResolver:
    """Resolves and provisions users; refuses bots, deleted users and other workspaces."""

    def __init__(
        self,
        core: Core,
        client: AsyncWebClient,
        *,
        admin_ids: list[str],
        ttl_seconds: float,
        team_id: str | None = None,
        lookup_timeout: float = LOOKUP_TIMEOUT_SECONDS,
    ) -> None:
        self.core = core
        self.lookup_timeout = lookup_timeout
        self.client = client
        self.admin_ids = frozenset(admin_ids)
        self.ttl = ttl_seconds
        self.team_id = team_id
        self._cache: dict[str, _Entry] = {}
        # Lookups in progress: concurrent requests of one person share a single users.info
        # call (a burst of clicks must not become a burst of Tier 4 rate-limited lookups).
        self._pending: dict[str, asyncio.Future[UserView]] = {}
        self._invalidated: dict[str, float] = {}
        self._prune_at = PRUNE_FLOOR  # the cache's size at which expired profiles go next

    def invalidate(self, slack_user_id: str) -> None:
        """Refresh this person's Slack profile on their next request."""
        self._cache.pop(slack_user_id, None)
        self._pending.pop(slack_user_id, None)
        self._invalidated[slack_user_id] = time.monotonic()
        if len(self._invalidated) >= CACHE_LIMIT:
            self._prune()

    def profile_is_fresh(self, slack_user_id: str) -> bool:
        """Whether resolve() would not ask users.info now (it reads only the user's row)."""
        entry = self._cache.get(slack_user_id)
        return entry is not None and entry.expires > time.monotonic()

    async def resolve(self, slack_user_id: str, *, hint: RequestProfile | None = None) -> UserView:
        """The active core user behind a Slack id, or Forbidden with a reason fit to show.

        Someone the desk does not know yet is provisioned from users.info. When Slack cannot
        answer it (rate limited: a burst of new people exceeds its Tier 4 limit; or down) and
        the request is an interaction whose payload names the sender's workspace (`hint`),
        the person is provisioned from the payload instead, if that workspace is this one: a
        customer without an email (no company), like any newcomer apart from the profile.
        Slack signs the payload and sends none for bots or deleted accounts; the profile is
        asked for again after PROFILE_RETRY_SECONDS."""
        if not isinstance(slack_user_id, str) or not _SLACK_USER_ID.fullmatch(slack_user_id):
            # Not a Slack user id (a forged or garbled request): never sent on to users.info.
            raise Forbidden("Your Slack account could not be found.")
        entry = self._cache.get(slack_user_id)
        known = None
        if entry is not None and entry.expires > time.monotonic():
            known = await users.find_by_slack_id(self.core, slack_user_id=slack_user_id)
        if known is not None:
            user = known
        else:
            pending = self._pending.get(slack_user_id)
            if pending is None:
                pending = asyncio.ensure_future(self._load(slack_user_id, hint))
                self._pending[slack_user_id] = pending
                pending.add_done_callback(lambda done: self._forget(slack_user_id, done))
            user = await asyncio.shield(pending)
        if not user.is_active:
            raise Forbidden("Your account is not active in the support desk.")
        return user

    def _forget(self, slack_user_id: str, done: asyncio.Future[UserView]) -> None:
        if self._pending.get(slack_user_id) is done:
            del self._pending[slack_user_id]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have gone

    async def _load(self, slack_user_id: str, hint: RequestProfile | None = None) -> UserView:
        started = time.monotonic()
        try:
            # Paced when the request can go on without users.info (it carries a profile).
            user = await self._provision(slack_user_id, paced=hint is not None)
        except Unavailable:
            # Slack is slow, down or rate limited: someone the desk already knows goes on as
            # they are recorded (their profile is asked for again after a short while).
            known = await users.find_by_slack_id(self.core, slack_user_id=slack_user_id)
            if known is not None:
                # asked again after a while, not on each of their requests meanwhile
                self._remember(slack_user_id, started, min(self.ttl, PROFILE_RETRY_SECONDS))
                return known
            if hint is None or not self.team_id or hint.team_id != self.team_id:
                raise  # nothing tells that this person belongs to this workspace
            user = await users.provision_user(
                self.core,
                slack_user_id=slack_user_id,
                display_name=hint.name,
                email=None,
                bootstrap_admin_ids=self.admin_ids,
            )
            log.info("provisioned from the request (users.info unavailable)")
            self._remember(slack_user_id, started, min(self.ttl, PROFILE_RETRY_SECONDS))
            return user
        self._remember(slack_user_id, started, self.ttl)
        return user

    def _remember(self, slack_user_id: str, started: float, seconds: float) -> None:
        if self._invalidated.get(slack_user_id, float("-inf")) < started:
            # (a lookup that began before an invalidation must not count as fresh)
            if len(self._cache) >= min(self._prune_at, CACHE_LIMIT):
                self._prune()
            self._cache[slack_user_id] = _Entry(time.monotonic() + seconds)

    def _prune(self) -> None:
        """Keep the caches bounded: drop expired profiles, and invalidations older than any
        lookup still running can be (a lookup gives up after lookup_timeout)."""
        now = time.monotonic()
        self._cache = {key: e for key, e in self._cache.items() if e.expires > now}
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()
        self._prune_at = max(PRUNE_FLOOR, 2 * len(self._cache))
        horizon = now - 2 * self.lookup_timeout - 1.0
        self._invalidated = {k: t for k, t in self._invalidated.items() if t >= horizon}

    async def _provision(self, slack_user_id: str, *, paced: bool = False) -> UserView:
        try:
            if paced:
                # Paced like any other call (users.info is Tier 4, per workspace), waiting for
                # its slot only briefly: beyond that the request goes on with its payload.
                with delivering(Priority.PEOPLE, max_wait=USERS_INFO_MAX_WAIT_SECONDS):
                    response = await asyncio.wait_for(
                        self.client.users_info(user=slack_user_id), timeout=self.lookup_timeout
                    )
            else:  # no other way to know the person: asked at once, as before
                response = await asyncio.wait_for(
                    self.client.users_info(user=slack_user_id), timeout=self.lookup_timeout
                )
        except Deferred:
            log.info("users.info skipped: no slot in time")
            raise Unavailable(
                "Slack could not tell who you are just now; please try again."
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            log.warning("users.info did not answer", extra={"error": type(error).__name__})
            raise Unavailable(
                "Slack could not tell who you are just now; please try again."
            ) from None
        except SlackApiError as error:
            code = slack_error_code(error)
            if code in ("user_not_found", "user_not_visible"):
                raise Forbidden("Your Slack account could not be found.") from None
            log.warning("users.info failed", extra={"error": code})
            raise Unavailable(
                "Slack could not tell who you are just now; please try again."
            ) from None
        profile = response["user"]
        if profile.get("is_bot") or slack_user_id == "USLACKBOT":
            raise Forbidden("Bots cannot use the support desk.")
        team = profile.get("team_id")
        if self.team_id and team and team != self.team_id:
            # Slack Connect: people from other workspaces are served in customer channels only.
            raise OtherWorkspace(dict(profile))
        info = profile.get("profile") or {}
        name = display_name_of(profile) or slack_user_id
        return await users.provision_user(
            self.core,
            slack_user_id=slack_user_id,
            display_name=name,
            email=info.get("email"),
            chat_account_deleted=bool(profile.get("deleted", False)),
            bootstrap_admin_ids=self.admin_ids,
        )
