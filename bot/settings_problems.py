"""Settings problems in an operator's words: every invalid value and every missing setting at once,
by environment variable name, without pydantic's prefixes, never echoing a secret."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from core.settings import CoreSettings

if TYPE_CHECKING:
    from bot.settings import BotSettings

# Slack's signing secrets are 32 hexadecimal characters; anything much shorter was mistyped or
# is a placeholder, and would let anyone who guesses it sign requests.
MIN_SIGNING_SECRET_LENGTH = 16
SLACK_SIGNING_SECRET_LENGTH = 32

_LOOKS_LIKE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")


def channel_id_problem(value: str) -> str:
    """Why `value` is not a Slack channel id, in words that fit what was given."""
    if value.startswith("#"):
        return (
            f"{value!r} is a channel name; use the channel's id (C…): open the channel's "
            "details, it is at the bottom of the About tab"
        )
    if value.startswith("<#"):
        return f"{value!r} is a channel link; use only the id inside it (C…)"
    if _LOOKS_LIKE_ID.match(value) and value[0] in "CG" and len(value) < 3:
        return f"{value!r} is too short for a Slack channel id (they look like C0123ABCD)"
    if _CHANNEL_ID.match(value.upper()):
        return f"{value!r} is not a Slack channel id: ids are in capitals, such as C0123ABCD"
    return (
        f"{value!r} is not a Slack channel id: ids start with C (or G for old private "
        "channels) followed by capital letters and digits, such as C0123ABCD"
    )


def signing_secret_problem(value: str) -> str | None:
    """Why `value` cannot be a Slack signing secret, or None."""
    if value != value.strip() or any(character.isspace() for character in value):
        return "contains spaces: copy it again from Basic Information > App Credentials"
    if len(value) < MIN_SIGNING_SECRET_LENGTH:
        length = f"{len(value)} character{'s' if len(value) != 1 else ''}"
        return (
            f"too short to be a Slack signing secret ({length}; Slack's have "
            f"{SLACK_SIGNING_SECRET_LENGTH}): copy it from Basic Information > App Credentials "
            "> Signing Secret"
        )
    return None


def _message(problem: Any) -> str:
    if problem.get("type") == "value_error" and "error" in problem.get("ctx", {}):
        return str(problem["ctx"]["error"])
    message = str(problem.get("msg", "invalid value"))
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _is_secret(settings_class: type[BotSettings], name: str) -> bool:
    field = settings_class.model_fields.get(name)
    return field is not None and "SecretStr" in str(field.annotation)


def describe_validation_error(
    settings_class: type[BotSettings], error: ValidationError, overrides: dict[str, Any]
) -> tuple[list[str], BotSettings | None]:
    """One line per invalid value (`NAME: what is wrong`), then one line naming the settings
    still missing to serve Slack; and the settings read with the invalid values left at their
    defaults (None when even that fails), so the rest can still be checked."""
    lines: list[str] = []
    failed: set[str] = set()
    for problem in error.errors():
        location = problem["loc"]
        name = str(location[0]) if location else ""
        message = _message(problem)
        given = problem.get("input")
        if (
            name
            and problem.get("type") != "value_error"
            and isinstance(given, str)
            and not _is_secret(settings_class, name)
            and len(given) <= 80
        ):
            message += f" (got {given!r})"
        if name:
            failed.add(name)
            lines.append(f"{name.upper()}: {message}")
        else:
            lines.append(message[:1].upper() + message[1:])
    missing = _missing_besides(failed, overrides)
    if missing:
        lines.append(f"missing settings: {', '.join(missing)}")
    return lines, _with_defaults(settings_class, failed, overrides)


def _with_defaults(
    settings_class: type[BotSettings], failed: set[str], overrides: dict[str, Any]
) -> BotSettings | None:
    values = dict(overrides)
    for name in failed:
        field = settings_class.model_fields.get(name)
        if field is not None:
            values[name] = field.get_default(call_default_factory=True)
    try:
        return settings_class(**values)
    except ValidationError:
        return None


class _Presence(BaseSettings):
    """Which of the settings needed to serve are set, read from the same sources as the real
    settings but without their checks, so the missing ones can be named beside the invalid."""

    model_config = CoreSettings.model_config

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    staff_channel_id: str | None = None
    manager_channel_id: str | None = None


def missing_to_serve(
    *,
    bot_token: object,
    signing_secret: object,
    app_token: object,
    staff_channel: object,
    manager_channel: object,
) -> list[str]:
    """The variables that must be set to serve Slack and are not, by environment name."""
    missing = []
    if bot_token is None:
        missing.append("SLACK_BOT_TOKEN")
    if signing_secret is None and app_token is None:
        missing.append("SLACK_SIGNING_SECRET")
    if staff_channel is None:
        missing.append("STAFF_CHANNEL_ID")
    if manager_channel is None:
        missing.append("MANAGER_CHANNEL_ID")
    return missing


def _missing_besides(failed: set[str], overrides: dict[str, Any]) -> list[str]:
    present = _Presence(
        **{
            key: value
            for key, value in overrides.items()
            if key.startswith("_") or key in _Presence.model_fields
        }
    )
    missing = missing_to_serve(
        bot_token=present.slack_bot_token,
        signing_secret=present.slack_signing_secret,
        app_token=present.slack_app_token,
        staff_channel=present.staff_channel_id,
        manager_channel=present.manager_channel_id,
    )
    return [name for name in missing if name.lower() not in failed]
