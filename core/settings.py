"""Core configuration from the environment (pydantic-settings); invalid values fail at start."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.enums import Priority

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./ticketbot.db"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def parse_duration(text: str) -> timedelta:
    """'30m', '2h', '45s', '1.5d' or bare seconds -> timedelta."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 30m, 2h, 1d)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNIT_SECONDS[unit or "s"])


def _parse_targets(value: object) -> object:
    if not isinstance(value, str):
        return value
    targets: dict[str, timedelta] = {}
    for part in filter(None, (p.strip() for p in value.split(","))):
        name, sep, duration = part.partition("=")
        if not sep:
            raise ValueError(f"expected priority=duration, got {part!r}")
        targets[name.strip().lower()] = parse_duration(duration)
    return targets


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class CoreSettings(BaseSettings):
    """Settings the core needs; the bot extends this with the Slack settings."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    database_url: str = Field(DEFAULT_DATABASE_URL, description="SQLAlchemy async URL")
    database_pool_size: int = Field(10, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)

    ticket_create_limit: int = Field(10, ge=1, description="tickets an actor may open per window")
    ticket_create_window_seconds: int = Field(3600, ge=1)
    search_limit: int = Field(30, ge=1, description="searches an actor may run per window")
    search_window_seconds: int = Field(60, ge=1)
    # Replies, notes and edits together. A person typing in a thread, even one who splits a
    # thought into many short lines, stays well under 30 a minute; a script posts dozens a
    # second. A minute's window also means someone who does hit it waits a minute at most.
    message_limit: int = Field(
        30, ge=1, description="replies, notes and edits an actor may write per window"
    )
    message_window_seconds: int = Field(60, ge=1)
    reply_edit_window_hours: float = Field(24, gt=0)

    sla_targets: Annotated[dict[Priority, timedelta], NoDecode, BeforeValidator(_parse_targets)] = (
        Field(
            default_factory=lambda: {
                Priority.URGENT: timedelta(minutes=30),
                Priority.HIGH: timedelta(hours=2),
                Priority.MEDIUM: timedelta(hours=8),
                Priority.LOW: timedelta(hours=24),
            }
        )
    )
    sla_warning_ratio: float = Field(0.75, gt=0, lt=1)
    sla_scan_interval_seconds: float = Field(60, gt=0)
    housekeeping_interval_seconds: float = Field(
        3600,
        gt=0,
        description="how often the scheduler prunes tables that only grow and moves the "
        "recent search index on",
    )
    outbox_retention_days: float = Field(
        14, gt=0, description="keep delivered or failed outbox messages this long"
    )
    business_hours_enabled: bool = False
    business_timezone: str = "UTC"
    business_days: Annotated[list[str], NoDecode, BeforeValidator(_split_csv)] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"]
    )
    business_open: time = time(9, 0)
    business_close: time = time(17, 0)
    business_holidays: Annotated[list[date], NoDecode, BeforeValidator(_split_csv)] = Field(
        default_factory=list
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db")
        return value

    @field_validator("sla_targets")
    @classmethod
    def _all_priorities(cls, value: dict[Priority, timedelta]) -> dict[Priority, timedelta]:
        missing = [p.value for p in Priority if p not in value]
        if missing:
            raise ValueError(f"missing SLA target for: {', '.join(missing)}")
        if any(d.total_seconds() <= 0 for d in value.values()):
            raise ValueError("SLA targets must be positive")
        return value

    @field_validator("business_days")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        days = [d.lower()[:3] for d in value]
        bad = [d for d in days if d not in _WEEKDAYS]
        if bad or not days:
            raise ValueError(f"business days must be among {', '.join(_WEEKDAYS)}")
        return days

    @field_validator("business_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use e.g. Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _business_hours(self) -> CoreSettings:
        if self.business_open >= self.business_close:
            raise ValueError("business_close must be later than business_open on the same day")
        return self

    @property
    def business_weekdays(self) -> frozenset[int]:
        return frozenset(_WEEKDAYS.index(d) for d in self.business_days)

    @property
    def reply_edit_window(self) -> timedelta:
        return timedelta(hours=self.reply_edit_window_hours)

    @property
    def outbox_retention(self) -> timedelta:
        return timedelta(days=self.outbox_retention_days)

    @property
    def longest_rate_limit_window(self) -> timedelta:
        """The longest of the rate-limit windows (a counter older than this no longer counts)."""
        return timedelta(
            seconds=max(
                self.ticket_create_window_seconds,
                self.search_window_seconds,
                self.message_window_seconds,
            )
        )
