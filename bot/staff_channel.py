"""The staff channel guard: internal notes are posted in the staff channel, so the bot posts
there only while that channel is private, not shared with another organisation, not archived,
and has the bot as a member.

Each process checks the channel with conversations.info at start, every
STAFF_CHANNEL_RECHECK_SECONDS, and at once on the Slack events that can change it (see
`CHANGE_EVENTS`). What it sees is recorded in the shared database (core.surfaces): every
replica's delivery worker reads that record before posting to the staff channel, so one
replica's finding holds staff messages on all of them, and any replica's later check that finds
the channel safe again releases them. The replica whose check records the change queues the
managers' notice in the same transaction, so managers are told once per exposure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.blocks import staff_channel as wording
from bot.notify import slack_error_code
from bot.runtime import Runtime
from core import surfaces
from core.enums import Audience
from core.surfaces import SurfaceChange, SurfaceProblem, SurfaceState

log = logging.getLogger("bot.staff_channel")

# Events Slack sends when a channel is archived or unarchived, renamed, shared with or unshared
# from another organisation (Slack Connect), or when the bot leaves or is removed or invited
# (channel_* for public channels, group_* for private ones, member_* for both).
CHANGE_EVENTS = (
    "channel_archive",
    "channel_unarchive",
    "channel_rename",
    "channel_shared",
    "channel_unshared",
    "channel_left",
    "group_archive",
    "group_unarchive",
    "group_rename",
    "group_left",
    "member_joined_channel",
    "member_left_channel",
)
# A private channel made public, or a public one made private, is announced only by a message
# of one of these subtypes in the channel: `message.channels` delivers the first (the channel
# is public by then), `message.groups` the second.
CONVERSION_SUBTYPES = ("channel_convert_to_public", "channel_convert_to_private")

# Slack answers that say nothing about the channel: the last verdict stands.
_NO_ANSWER = frozenset(
    {
        "ratelimited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        # The token itself is refused: /readyz reports that (auth.test), and nothing can be
        # posted anywhere meanwhile.
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
    }
)
_MEMBER_PAGES = 50


@dataclass(frozen=True)
class Verdict:
    """What one check saw: None when the channel is safe, else the problem."""

    problem: SurfaceProblem | None
    channel_name: str | None = None
    detail: str | None = None


class StaffChannelGuard:
    """Checks the staff channel and records what it sees; `run_forever` repeats the check."""

    def __init__(self, runtime: Runtime, *, bot_user_id: str | None) -> None:
        channel = runtime.settings.staff_channel_id
        assert channel is not None  # missing_for_serving() was checked first
        self.runtime = runtime
        self.channel_id = channel
        self.bot_user_id = bot_user_id
        # This process's last verdict (None before the first check that got an answer).
        self.verdict: Verdict | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def concerns(self, event: dict[str, Any]) -> bool:
        """Whether a Slack event is about the staff channel (and, for member_* events, about
        the bot's own membership)."""
        channel = event.get("channel")
        if isinstance(channel, dict):  # channel_rename / group_rename carry the channel object
            channel = channel.get("id")
        if channel != self.channel_id:
            return False
        if str(event.get("type", "")).startswith("member_"):
            return self.bot_user_id is not None and event.get("user") == self.bot_user_id
        return True

    async def inspect(self) -> Verdict:
        """Ask Slack what the channel is now; a refusal raises SlackApiError."""
        info = (await self.runtime.client.conversations_info(channel=self.channel_id))["channel"]
        name = info.get("name")
        if not info.get("is_private"):
            return Verdict(SurfaceProblem.PUBLIC, name)
        if info.get("is_ext_shared"):
            return Verdict(SurfaceProblem.SHARED, name)
        if info.get("is_archived"):
            return Verdict(SurfaceProblem.ARCHIVED, name)
        member = info.get("is_member")
        if member is None:
            member = await self._listed_as_member()
        if not member:
            return Verdict(SurfaceProblem.NOT_A_MEMBER, name)
        return Verdict(None, name)

    async def recheck(self, *, cause: str) -> Verdict | None:
        """Check the channel now and record what was seen; None when Slack gave no answer (an
        outage, a rate limit, a refused token): the recorded state then stands."""
        async with self._lock:
            observed_at = self.runtime.clock.now()
            verdict: Verdict | None
            try:
                verdict = await self.inspect()
            except SlackApiError as error:
                verdict = _verdict_of_refusal(error)
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                log.warning(
                    "staff channel check: Slack unreachable",
                    extra={"cause": cause, "error": type(error).__name__},
                )
                return None
            if verdict is None:
                return None
            await self.record(verdict, observed_at=observed_at, cause=cause)
            return verdict

    async def record(self, verdict: Verdict, *, observed_at: datetime, cause: str) -> SurfaceChange:
        """Record a verdict for every replica; log and wake the worker when it changes things."""
        self.verdict = verdict
        change = await surfaces.record_check(
            self.runtime.core,
            audience=Audience.STAFF,
            channel_id=self.channel_id,
            channel_name=verdict.channel_name,
            problem=verdict.problem,
            detail=verdict.detail,
            observed_at=observed_at,
        )
        extra = {
            "channel": self.channel_id,
            "cause": cause,
            "problem": verdict.problem.value if verdict.problem else None,
        }
        if change is SurfaceChange.BECAME_UNSAFE:
            log.error("staff channel is not safe: staff messages are held", extra=extra)
        elif change is SurfaceChange.BECAME_SAFE:
            log.warning("staff channel is safe again: held messages go out", extra=extra)
        if change in (SurfaceChange.BECAME_UNSAFE, SurfaceChange.BECAME_SAFE):
            self.runtime.wake_outbox()  # the managers' notice, or the held messages
        return change

    async def state(self) -> SurfaceState | None:
        """The channel as last recorded by any replica."""
        return await surfaces.state_of(self.runtime.core, audience=Audience.STAFF)

    def describe(self, state: SurfaceState | None) -> str | None:
        """Why the channel is not safe (for /readyz), or None when it is: the shared record,
        or this process's own verdict when nothing is recorded."""
        if state is not None:
            if state.problem is None:
                return None
            return wording.readiness_reason(
                state.problem,
                channel_id=state.channel_id,
                channel_name=state.channel_name,
                detail=state.detail,
            )
        if self.verdict is None or self.verdict.problem is None:
            return None
        return wording.readiness_reason(
            self.verdict.problem,
            channel_id=self.channel_id,
            channel_name=self.verdict.channel_name,
            detail=self.verdict.detail,
        )

    async def run_forever(self) -> None:
        """Recheck every STAFF_CHANNEL_RECHECK_SECONDS until stopped."""
        interval = self.runtime.settings.staff_channel_recheck_seconds
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)
            if self._stopping.is_set():
                return
            try:
                await self.recheck(cause="periodic")
            except Exception:  # a database outage must not end the rechecks for good
                log.exception("staff channel check failed")

    def stop(self) -> None:
        self._stopping.set()

    async def _listed_as_member(self) -> bool:
        """Whether the bot is in the channel's member list (when conversations.info does not
        say): pages through conversations.members."""
        if self.bot_user_id is None:
            return False
        cursor = None
        for _ in range(_MEMBER_PAGES):
            page = await self.runtime.client.conversations_members(
                channel=self.channel_id, limit=1000, cursor=cursor
            )
            if self.bot_user_id in (page.get("members") or []):
                return True
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return False
        return False


def _verdict_of_refusal(error: SlackApiError) -> Verdict | None:
    """What a refused conversations.info means for the channel; None when it says nothing."""
    response = error.response
    status = getattr(response, "status_code", 200)
    code = slack_error_code(error) or ""
    if status == 429 or status >= 500 or code in _NO_ANSWER:
        log.warning("staff channel check: no answer from Slack", extra={"error": code})
        return None
    detail = f"conversations.info: {code}"
    if code == "missing_scope" and response is not None and response.get("needed"):
        detail += f" (needs {response.get('needed')})"
    if code == "channel_not_found":
        # A private channel is invisible to a bot that is not in it (or it was deleted).
        return Verdict(SurfaceProblem.NOT_A_MEMBER, detail=detail)
    return Verdict(SurfaceProblem.UNVERIFIED, detail=detail)
