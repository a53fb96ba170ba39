"""Fault injection: make chosen calls fail with 5xx, 429, ok:false errors or timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from devslack.base import FakeSlackBase

FaultStatus = int | Literal["timeout"]
CallPredicate = Callable[[str, Mapping[str, Any]], bool]


@dataclass
class Fault:
    """How an injected failure answers: an HTTP status, an ok:false error, or a hang."""

    status: FaultStatus = 500
    error: str | None = None
    retry_after: int = 1
    delay: float = 10.0
    then_process: bool = False

    def describe(self) -> str:
        """Short label for logs."""
        return (
            f"timeout({self.delay}s)"
            if self.status == "timeout"
            else str(self.error or self.status)
        )


@dataclass
class FaultRule:
    """An active fault injection: which calls it hits and for how long."""

    matcher: CallPredicate
    fault: Fault
    remaining: int | None = None
    until: Callable[[], bool] | None = None
    hits: int = 0
    cancelled: bool = False

    def cancel(self) -> None:
        """Stop injecting this fault."""
        self.cancelled = True

    @property
    def active(self) -> bool:
        """Whether the rule still applies to the next matching call."""
        if self.cancelled or (self.remaining is not None and self.remaining <= 0):
            return False
        return not (self.until is not None and self.until())


class FaultInjection(FakeSlackBase):
    """Rules that make matching calls fail, and how a call takes its fault."""

    def fail_next(
        self,
        method: str,
        count: int = 1,
        *,
        status: FaultStatus | None = None,
        error: str | None = None,
        retry_after: int = 1,
        delay: float = 10.0,
        then_process: bool = False,
    ) -> FaultRule:
        """Make the next `count` calls to `method` fail (500/429/'timeout', or ok:false error)."""
        return self.fail_for(
            method,
            until=count,
            status=status,
            error=error,
            retry_after=retry_after,
            delay=delay,
            then_process=then_process,
        )

    def fail_for(
        self,
        predicate_or_method: str | CallPredicate,
        until: int | Callable[[], bool] | None = None,
        *,
        status: FaultStatus | None = None,
        error: str | None = None,
        retry_after: int = 1,
        delay: float = 10.0,
        then_process: bool = False,
    ) -> FaultRule:
        """Fail matching calls until `until` calls have failed or `until()` is true (None: forever).

        A predicate gets (method, params). `error` alone answers 200 ok:false; `status` 429
        carries Retry-After; 'timeout' parks the request for `delay` seconds, then answers
        (processing it first if `then_process`, as when Slack acted but the client gave up)."""
        matcher: CallPredicate
        if isinstance(predicate_or_method, str):
            wanted = predicate_or_method

            def matcher(method: str, params: Mapping[str, Any]) -> bool:
                return method == wanted

        else:
            matcher = predicate_or_method
        resolved_status: FaultStatus = status if status is not None else (200 if error else 500)
        fault = Fault(
            status=resolved_status,
            error=error,
            retry_after=retry_after,
            delay=delay,
            then_process=then_process,
        )
        rule = FaultRule(
            matcher=matcher,
            fault=fault,
            remaining=until if isinstance(until, int) else None,
            until=until if callable(until) else None,
        )
        self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        """Remove every pending fault injection."""
        self._faults.clear()

    def _take_fault(self, method: str, params: Mapping[str, Any]) -> Fault | None:
        """The fault for this call, if a rule matches (consuming one of its uses)."""
        for rule in self._faults:
            if rule.active and rule.matcher(method, params):
                rule.hits += 1
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule.fault
        return None

    async def _park(self, delay: float) -> None:
        """Sleep up to `delay` seconds, returning early if the server is stopping."""
        stopping = self._stopping
        if stopping is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=delay)
