"""What an operator types on the command line, checked before anything is written: Slack user
ids (or a mention that holds one) and points in time for `audit --since`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from core.settings import parse_duration

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>$")

USER_ID_FORM = (
    "a Slack user id such as U0123ABCD (in Slack: the person's profile > ⋮ > Copy member ID), "
    "or a mention such as <@U0123ABCD>"
)


class OperatorInputError(ValueError):
    """The value cannot be used; the message says what form is expected."""


def slack_user_id(value: str) -> str:
    """The user id in `value` (U…/W…, or `<@U…>` / `<@U…|name>`); anything else, such as
    `@dana` or a display name, is refused with the expected form."""
    text = value.strip()
    match = _MENTION.match(text)
    if match:
        return match.group(1)
    if _USER_ID.match(text):
        return text
    if text.startswith("@") or not re.search(r"\d", text):
        raise OperatorInputError(
            f"{value!r} is a name, not a Slack user id: names can change and match nobody. "
            f"Give {USER_ID_FORM}"
        )
    raise OperatorInputError(f"{value!r} is not a Slack user id. Give {USER_ID_FORM}")


def point_in_time(value: str, *, now: datetime) -> datetime:
    """`2026-11-30`, `2026-11-30T14:00` (UTC unless it names its zone), or a time ago such as
    `90m`, `24h`, `7d` (the units of the duration settings)."""
    text = value.strip()
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        return now - ago
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(date.fromisoformat(text), time())
        except ValueError:
            raise OperatorInputError(
                f"{value!r} is not a time: use a date (2026-11-30), a date and time "
                "(2026-11-30T14:00, UTC unless a zone is given) or a time ago (90m, 24h, 7d)"
            ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
