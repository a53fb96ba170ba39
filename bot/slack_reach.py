"""Reaching Slack at start-up (`serve`) and in `check`: a network failure or an answer that is
not Slack's JSON (a proxy's HTML 502, a 405 text page) becomes one line that says what failed,
where (SLACK_API_URL) and what to try. `serve` retries such failures a few times with back-off,
since Slack or the network may be briefly away while a container starts; Slack's own refusals
(invalid_auth, channel_not_found, ...) are never retried and reach the caller unchanged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.notify import slack_error_code

log = logging.getLogger("bot.slack_reach")

T = TypeVar("T")

# The longest wait between two attempts to reach Slack at start.
MAX_START_RETRY_DELAY = 30.0


def start_retry_delays(attempts: int) -> tuple[float, ...]:
    """The waits between `attempts` tries: 1, 2, 4, ... seconds, at most 30 each (the
    default 5 tries span about 15 s)."""
    return tuple(min(2.0**n, MAX_START_RETRY_DELAY) for n in range(max(0, attempts - 1)))


START_RETRY_DELAYS = start_retry_delays(5)

Sleep = Callable[[float], Awaitable[Any]]


class SlackUnreachable(Exception):
    """Slack could not be asked or did not answer as Slack does; the message is one line for an
    operator."""


def _where(api_url: str) -> str:
    return f"{api_url} (SLACK_API_URL)"


def _try(api_url: str) -> str:
    advice = "check this host's network, DNS and proxy settings"
    if "slack.com" not in api_url:
        advice += ", and SLACK_API_URL (leave it unset to use Slack's own)"
    return advice + ", then try again"


def _network_reason(error: BaseException, timeout: float | None) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s" if timeout else "the request timed out"
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return "the host name could not be resolved (DNS)"
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error.strerror or str(error.os_error) if error.os_error else ""
        return f"the connection failed ({cause.lower()})" if cause else "the connection failed"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(error, aiohttp.ClientError | OSError):
        detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
        return f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return type(error).__name__


def _not_json(method: str, api_url: str, response: Any) -> str:
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    answer = f"HTTP {status}" if status else "an answer"
    if kind:
        answer += f" ({str(kind).split(';')[0]})"
    return (
        f"Slack at {_where(api_url)} answered {method} with {answer} that is not Slack's "
        f"JSON, as a proxy or gateway error page would: {_try(api_url)}"
    )


async def ask_slack(
    call: Callable[[], Awaitable[T]],
    *,
    method: str,
    api_url: str,
    timeout_seconds: float | None = None,
) -> T:
    """Run one Slack call; a network failure or an answer that is not Slack's JSON raises
    SlackUnreachable with the line to show, a refusal of Slack's own stays a SlackApiError.
    A 5xx or 429 from Slack counts as unreachable too: it says nothing about the settings."""
    try:
        return await call()
    except SlackApiError as error:
        code = slack_error_code(error)
        status = getattr(error.response, "status_code", 200)
        if code is None:
            raise SlackUnreachable(_not_json(method, api_url, error.response)) from None
        if status >= 500 or status == 429 or code == "ratelimited":
            raise SlackUnreachable(
                f"Slack at {_where(api_url)} answered {method} with HTTP {status} ({code}): "
                "Slack is busy or down; try again in a minute (status.slack.com)"
            ) from None
        raise
    except AttributeError:
        # slack_sdk reading a 200 answer that is text, not JSON ('str' has no attribute 'get').
        raise SlackUnreachable(_not_json(method, api_url, None)) from None
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise SlackUnreachable(
            f"cannot reach Slack at {_where(api_url)}: {method} failed, "
            f"{_network_reason(error, timeout_seconds)}: {_try(api_url)}"
        ) from None


async def ask_slack_patiently(
    call: Callable[[], Awaitable[T]],
    *,
    method: str,
    api_url: str,
    timeout_seconds: float | None = None,
    delays: Sequence[float] = START_RETRY_DELAYS,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """ask_slack, retried after each of `delays` while Slack cannot be reached; the last
    failure is raised (its line says how many attempts were made)."""
    attempts = len(delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            return await ask_slack(
                call, method=method, api_url=api_url, timeout_seconds=timeout_seconds
            )
        except SlackUnreachable as failure:
            if attempt == attempts:
                raise SlackUnreachable(f"{failure} (gave up after {attempts} attempts)") from None
            delay = delays[attempt - 1]
            log.warning(
                "Slack cannot be reached; trying again",
                extra={
                    "problem": str(failure),
                    "attempt": attempt,
                    "attempts": attempts,
                    "retry_in_seconds": delay,
                },
            )
            await sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
