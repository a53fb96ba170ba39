"""Bot configuration: the core's settings plus Slack's. Problems are reported by variable name."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode

from bot.settings_problems import (
    channel_id_problem,
    describe_validation_error,
    missing_to_serve,
    signing_secret_problem,
)
from core.settings import CoreSettings

_CHANNEL = re.compile(r"^[CG][A-Z0-9]{2,}$")
_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class BotSettings(CoreSettings):
    """Everything `python -m bot` reads from the environment (or a .env file)."""

    slack_bot_token: SecretStr | None = Field(None, description="xoxb-… bot token")
    slack_signing_secret: SecretStr | None = Field(None, description="request signing secret")
    slack_app_token: SecretStr | None = Field(None, description="xapp-… token: Socket Mode")
    slack_api_url: str = Field("https://slack.com/api/", description="Web API base URL")
    staff_channel_id: str | None = Field(None, description="private triage channel")
    manager_channel_id: str | None = Field(None, description="channel for SLA alerts")
    admin_user_ids: Annotated[list[str], NoDecode, BeforeValidator(_csv)] = Field(
        default_factory=list
    )
    host: str = "0.0.0.0"
    port: int = Field(3000, ge=0, le=65535)
    log_json: bool = False
    log_level: str = "INFO"
    run_scheduler: bool = Field(True, description="run the SLA scheduler inside `serve`")
    outbox_poll_seconds: float = Field(1.0, gt=0)
    outbox_max_attempts: int = Field(12, ge=1)
    outbox_lease_seconds: float = Field(
        30,
        gt=0,
        description="how long a claimed outbox message stays reserved for its worker; renewed "
        "while delivery runs, so a crashed worker's messages are taken over after this long",
    )
    slack_api_timeout_seconds: float = Field(
        10, gt=0, description="time-out of each Slack Web API call"
    )
    slack_start_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description="how often `serve` tries to reach Slack at start (waiting 1, 2, 4, ... s "
        "between tries) before it gives up",
    )
    identity_cache_seconds: float = Field(60, ge=0)
    file_max_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1,
        description="largest file copied between a customer's and the staff thread; a larger "
        "one is announced by name and size instead",
    )
    channel_group_seconds: float = Field(
        120,
        ge=0,
        description="consecutive messages by one person in a customer channel "
        "within this time join the ticket they just opened",
    )
    ticket_reaction: str = Field(
        "ticket",
        description="the emoji (name without colons) that raises a ticket from a "
        "message in a channel that is not linked (linked channels have their own)",
    )
    slack_pacing: Literal["shared", "process", "off"] = Field(
        "shared",
        description="pace Slack calls within Slack's rate limits: one budget for every replica "
        "(shared, in the database), per process, or off (bot.pacing)",
    )
    slack_pacing_speed: float = Field(1.0, gt=0, description="scale of the paced rates")
    slack_pacing_max_wait_seconds: float = Field(
        2.0, ge=0, description="longest wait for a Slack budget before a message is put back"
    )
    staff_channel_recheck_seconds: float = Field(
        60,
        gt=0,
        description="how often each process checks that the staff channel is still private, "
        "unshared and has the bot (Slack's channel events also trigger a check at once)",
    )
    readiness_slack_recheck_seconds: float = Field(
        60, ge=0, description="how often /readyz repeats auth.test (0: on every probe)"
    )
    health_timeout_seconds: float = Field(
        2.0, gt=0, description="time-out for database and Slack checks in /readyz and /metrics"
    )
    metrics_enabled: bool = Field(True, description="serve GET /metrics (Prometheus)")
    http_header_timeout_seconds: float = Field(
        10, gt=0, description="a connection that has not sent a request's headers by then closes"
    )
    http_body_timeout_seconds: float = Field(
        10, gt=0, description="a POST body not received whole by then is answered 408"
    )
    http_keepalive_seconds: float = Field(
        75, gt=0, description="an idle keep-alive connection is closed after this long"
    )
    # Read before the signature can be checked, so kept small, yet above what the bot's own
    # surfaces make Slack send (measured with devslack's encoders, which escape as Slack
    # does): commands are a few KB; a modal submitted with every field at Slack's 3,000
    # characters is at most ~135 KiB (all emoji); the largest is a button click inside a ticket
    # opened as a modal, which echoes the whole view back: 50 sections of long text, ~155 KiB in
    # English, ~335 KiB in accented Latin. Only a ticket view filled with long Cyrillic or CJK
    # replies goes past 512 KiB (a full one in CJK went past aiohttp's former 1 MiB too).
    http_max_unsigned_body_bytes: int = Field(
        512 * 1024, ge=1024, description="larger request bodies are refused with 413 unread"
    )
    http_max_connections: int = Field(
        512,
        ge=1,
        description="open connections per process; past it the longest-waiting connection "
        "without a request in progress is closed. Keep it well below `ulimit -n`",
    )

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("staff_channel_id", "manager_channel_id")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not _CHANNEL.match(value):
            raise ValueError(channel_id_problem(value))
        return value

    @field_validator("admin_user_ids")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _USER.match(v)]
        if bad:
            raise ValueError(f"not Slack user ids: {', '.join(bad)}")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must start with xoxb-")
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = signing_secret_problem(value.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must start with xapp-")
        return value

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_for_serving(self) -> list[str]:
        """Variables that must be set to serve Slack, by environment name."""
        return missing_to_serve(
            bot_token=self.slack_bot_token,
            signing_secret=self.slack_signing_secret,
            app_token=self.slack_app_token,
            staff_channel=self.staff_channel_id,
            manager_channel=self.manager_channel_id,
        )

    @property
    def bot_token(self) -> str:
        assert self.slack_bot_token is not None
        return self.slack_bot_token.get_secret_value()

    @property
    def signing_secret(self) -> str:
        assert self.slack_signing_secret is not None
        return self.slack_signing_secret.get_secret_value()


class SettingsError(Exception):
    """Configuration that cannot work, described by environment variable name."""

    def __init__(
        self,
        message: str,
        problems: list[str] | None = None,
        partial: BotSettings | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = problems or []
        # The settings with the invalid values left at their defaults: enough for `check` to
        # go on and check the database and Slack (None when even those cannot be read).
        self.partial = partial


def load_settings(**overrides: object) -> BotSettings:
    """Read settings; malformed values raise SettingsError naming every variable at fault,
    together with the settings still missing to serve Slack."""
    try:
        return BotSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        lines, partial = describe_validation_error(BotSettings, error, overrides)
        message = "Invalid configuration:\n  " + "\n  ".join(lines)
        raise SettingsError(message, lines, partial) from None
