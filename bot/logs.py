"""Logging: readable lines by default, JSON lines when LOG_JSON=true; secrets are never written."""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from datetime import UTC, datetime

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Slack tokens and anything that looks like a signing secret or signature, as whole words.
_SECRET = re.compile(
    r"(?<![A-Za-z0-9_-])(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|v0=[0-9a-f]{64})"
)
# A configured secret is redacted where it stands as a value of its own: not preceded or
# followed by a character that could belong to the same token. So a secret never mangles the
# ordinary words that happen to contain it.
_TOKEN_CHAR = r"[A-Za-z0-9_\-]"


# The id of the Slack request being handled (set by BotServer._handle_slack); listeners run in
# tasks that inherit it, so their records carry the request id too.
REQUEST_ID: ContextVar[str | None] = ContextVar("ticketbot_request_id", default=None)


def _secret_pattern(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not values:
        return None
    either = "|".join(re.escape(value) for value in values)
    return re.compile(f"(?<!{_TOKEN_CHAR})(?:{either})(?!{_TOKEN_CHAR})")


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with Slack tokens, signatures and the given secrets replaced by [redacted], each
    only as a whole value, never inside a longer word."""
    text = _SECRET.sub("[redacted]", text)
    pattern = _secret_pattern(secrets)
    return pattern.sub("[redacted]", text) if pattern is not None else text


class RedactingFilter(logging.Filter):
    """Scrubs tokens and configured secrets from every record, whoever logs it."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets
        self._pattern = _secret_pattern(secrets)

    def _redact(self, text: str) -> str:
        text = _SECRET.sub("[redacted]", text)
        return self._pattern.sub("[redacted]", text) if self._pattern is not None else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self._redact(value))
        return True


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to records written while a Slack request is being handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = (
                    value if isinstance(value, (int, float, bool, type(None))) else str(value)
                )
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        }
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return base


def configure_logging(
    *, json_lines: bool, level: str = "INFO", secrets: tuple[str, ...] = ()
) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "slack_bolt",
        "slack_sdk",
        "apscheduler",
        "aiohttp.access",
        "sqlalchemy.engine",
        "alembic.runtime.plugins",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
