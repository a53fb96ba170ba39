"""The Slack calls that tell one person something outside the outbox, and Slack's error code.

Why here and not the outbox: what must reach a ticket's threads is written to the outbox in the
change's transaction (bot.delivery). What is left is said to one person now, about what they
just did (a refusal, a confirmation, the DM guidance, a thread notice): it belongs to no core
transaction (most follow a refusal that wrote nothing) and is worthless minutes later. One
module owns these calls so that they share one retry policy: a call Slack certainly did not run
(429, when Retry-After is short) is made once more; one whose outcome is unknown (a time-out, a
5xx) is not, since these messages carry no outbox id to look for before posting again.
Duplicates are stopped before the call: events are claimed by their event_id, a rate-limit
notice once per window (bot.errors). None of these functions raises: a message that cannot be
delivered is logged, never turned into a second failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from slack_sdk.errors import SlackApiError

from bot.blocks.text import is_slack_user_id

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger("bot.notify")

T = TypeVar("T")

# A 429 whose Retry-After is longer than this is not waited for inside a listener.
MAX_RETRY_WAIT_SECONDS = 3.0
# Retry-After when Slack's 429 names none (or an unreadable one).
DEFAULT_RETRY_AFTER_SECONDS = 30.0


def slack_error_code(error: SlackApiError) -> str | None:
    """Slack's error code ("channel_not_found"); None when the answer was not Slack's JSON
    (a proxy's error page) or named no error."""
    data = getattr(error.response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    return str(code) if code is not None else None


def is_rate_limited(error: SlackApiError) -> bool:
    """Slack refused the call for its rate limit: it was not run."""
    status = getattr(error.response, "status_code", 200)
    return status == 429 or slack_error_code(error) == "ratelimited"


def retry_after_seconds(headers: Mapping[str, Any] | None) -> float:
    """Slack's Retry-After header in seconds (at least 1)."""
    value = None
    for key in ("Retry-After", "retry-after"):
        if headers and key in headers:
            value = headers[key]
            break
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return max(1.0, float(value)) if value is not None else DEFAULT_RETRY_AFTER_SECONDS
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS


async def _with_retry(call: Callable[[], Awaitable[T]]) -> T:
    """Make a call; once more after a short 429 (the module's one retry policy)."""
    try:
        return await call()
    except SlackApiError as error:
        if not is_rate_limited(error):
            raise
        wait = retry_after_seconds(getattr(error.response, "headers", None))
        if wait > MAX_RETRY_WAIT_SECONDS:
            raise
        log.info("slack rate limited; retrying once", extra={"retry_after": wait})
        await asyncio.sleep(wait)
        return await call()


def _describe(error: Exception) -> str | None:
    return slack_error_code(error) if isinstance(error, SlackApiError) else type(error).__name__


async def tell_user(
    runtime: Runtime,
    *,
    user_id: str,
    text: str,
    channel_id: str | None = None,
    thread_ts: str | None = None,
) -> None:
    """Show a user a private message: ephemeral where possible, else in their DM with the bot.

    Never raises: it is how errors are reported, and a garbled request (no such user, no such
    channel) must not turn a clear refusal into a failure."""
    if not is_slack_user_id(user_id):
        log.info("not telling a malformed user id")
        return
    client = runtime.client
    if channel_id:
        try:
            await _with_retry(
                lambda: client.chat_postEphemeral(
                    channel=channel_id, user=user_id, text=text, thread_ts=thread_ts
                )
            )
            return
        except Exception as error:
            log.info("ephemeral failed, using DM", extra={"error": _describe(error)})
    try:
        dm = await _with_retry(lambda: client.conversations_open(users=user_id))
        channel = str(dm["channel"]["id"])
        await _with_retry(lambda: client.chat_postMessage(channel=channel, text=text))
    except Exception as error:
        log.warning("could not tell the user", extra={"error": _describe(error)})


async def tell_in_thread(
    runtime: Runtime,
    *,
    user_id: str,
    channel_id: str,
    thread_ts: str,
    text: str,
    dm: bool,
) -> None:
    """Tell a person something about their message in a thread, in that thread: a reply in
    the thread of their DM with the bot (`dm`), else an ephemeral message in the thread. Never
    a new top-level DM: out of its thread, a refusal would not say which message it is about.
    Never raises."""
    if not is_slack_user_id(user_id):
        log.info("not telling a malformed user id")
        return
    if dm:
        await post(runtime, channel=channel_id, thread_ts=thread_ts, text=text, blocks=[])
        return
    client = runtime.client
    try:
        await _with_retry(
            lambda: client.chat_postEphemeral(
                channel=channel_id, user=user_id, text=text, thread_ts=thread_ts
            )
        )
    except Exception as error:
        log.warning("thread notice not shown", extra={"error": _describe(error)})


async def post(
    runtime: Runtime,
    *,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]],
    thread_ts: str | None = None,
) -> None:
    """Post a message for the person in a conversation with the bot (their DM or a ticket
    thread in it): the DM guidance, a closed-thread or rate-limit notice. Never raises."""
    client = runtime.client
    fields: dict[str, Any] = {"blocks": blocks} if blocks else {}
    try:
        await _with_retry(
            lambda: client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts, **fields
            )
        )
    except Exception as error:
        log.warning("notice not posted", extra={"error": _describe(error)})


async def react(runtime: Runtime, *, channel: str, ts: str, name: str) -> None:
    """Mark a message with a reaction (how a thread message was taken). Never raises."""
    client = runtime.client
    try:
        await _with_retry(lambda: client.reactions_add(channel=channel, timestamp=ts, name=name))
    except SlackApiError as error:
        if slack_error_code(error) != "already_reacted":
            log.warning("reaction failed", extra={"error": slack_error_code(error)})
