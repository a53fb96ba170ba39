"""Slack's rate limits in the stand-in: per method and workspace (tiers), and per channel for
`chat.postMessage`; a call over its limit is answered 429 with Retry-After, and is not run.

Off unless enabled (the suite's other tests are not slowed). `speed` runs Slack's clock faster
than the wall clock so that tests and benchmarks can reach the limits in less time: at speed 10,
a channel takes ten messages a second. Each limit is a steady rate with a burst allowance (the
generic cell rate algorithm); a call refused for its limit still counts against it, as Slack
warns ("keep calling and the pause grows")."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Calls per minute per workspace and the burst each tier allows (Slack's published tiers).
TIER_PER_MINUTE = {1: 1.0, 2: 20.0, 3: 50.0, 4: 100.0}
TIER_BURST = {1: 1, 2: 2, 3: 5, 4: 10}
METHOD_TIERS: dict[str, int] = {
    "chat.update": 3,
    "chat.delete": 3,
    "chat.postEphemeral": 4,
    "chat.getPermalink": 4,
    "reactions.add": 3,
    "reactions.remove": 2,
    "views.publish": 4,
    "views.open": 4,
    "views.update": 4,
    "views.push": 4,
    "conversations.open": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.info": 3,
    "conversations.members": 4,
    "users.info": 4,
    "users.lookupByEmail": 3,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
    "files.info": 4,
    "files.delete": 3,
}
# chat.postMessage: one message per second per channel, short bursts.
POST_PER_SECOND = 1.0
POST_BURST = 3


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int


def limit_of(key: str) -> Limit:
    """The limit of a counted key (a method, or `chat.postMessage:<channel>`), at speed 1."""
    if key.startswith("chat.postMessage:"):
        return Limit(POST_PER_SECOND, POST_BURST)
    tier = METHOD_TIERS[key]
    return Limit(TIER_PER_MINUTE[tier] / 60.0, TIER_BURST[tier])


def key_of(method: str, params: Mapping[str, Any]) -> str | None:
    """Which limit a call counts against (None: not limited here)."""
    if method == "chat.postMessage":
        return f"chat.postMessage:{params.get('channel')}"
    return method if method in METHOD_TIERS else None


@dataclass
class RateLimits:
    """The stand-in's rate limiter; `enable` turns it on."""

    enabled: bool = False
    speed: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _due: dict[str, float] = field(default_factory=dict)
    allowed: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def enable(self, *, speed: float = 1.0) -> None:
        """Enforce Slack's limits from now on, `speed` times faster than the wall clock."""
        self.enabled, self.speed = True, speed
        self.reset()

    def disable(self) -> None:
        self.enabled = False

    def reset(self) -> None:
        self._due.clear()
        self.allowed.clear()
        self.refused.clear()

    def _now(self) -> float:
        """Slack's clock: wall seconds times `speed`."""
        return self.clock() * self.speed

    def check(self, method: str, params: Mapping[str, Any]) -> float | None:
        """Count the call; None if it may run, else the Retry-After (wall seconds, whole, at
        least 1 as Slack sends it) of the 429 it gets."""
        if not self.enabled:
            return None
        key = key_of(method, params)
        if key is None:
            return None
        limit = limit_of(key)
        interval = 1.0 / limit.per_second
        tolerance = (limit.burst - 1) * interval
        now = self._now()
        due = max(self._due.get(key, now), now)
        self._due[key] = due + interval
        if due - tolerance <= now:
            self.allowed[key] += 1
            return None
        self.refused[key] += 1
        wait = (due - tolerance - now) / self.speed
        return float(max(1, math.ceil(wait)))

    def theoretical_minimum(self, calls: Mapping[str, int]) -> float:
        """The least wall time in which `calls` (per counted key) fit within the limits, all
        available from the start: the slowest key's (calls - burst) / rate."""
        longest = 0.0
        for key, count in calls.items():
            limit = limit_of(key)
            longest = max(longest, (count - limit.burst) / limit.per_second / self.speed)
        return max(0.0, longest)
