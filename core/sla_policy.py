"""First-response targets: when a ticket's warning and breach fall due.

Semantics (shared by the ticket services, the scan in core.sla and the staff card):

- The clock measures the time to the first *public* staff reply (core.replies sets
  ``first_response_at``). Internal notes and customer messages do not stop it.
- The clock starts when the ticket is created (``sla_started_at``). Reopening a resolved or
  closed ticket that was never answered restarts it at the moment of reopening.
- A priority change recomputes both deadlines from the current clock start (not from the
  change), so raising the priority can make a warning or breach due at once.
- Closed, resolved and deleted tickets never alert: their armed timers (``sla_timers``, see
  core.sla) are removed, and the ticket is checked again before its alert is written. A
  priority change on a resolved ticket records the new deadlines without arming timers. Each
  (ticket, threshold) alerts at most once in the ticket's life (a fired timer is its unique
  claim and is never armed again), so a restarted or recomputed clock does not repeat an
  alert that was already sent.
- Without business hours the clock runs 24/7. With business hours it runs only inside the
  opening hours of business days in the business timezone, skipping holidays (dates in that
  timezone). Opening and closing times are local wall-clock times, converted to UTC per day
  with zoneinfo, so a business day that contains a DST change is as long as the real time
  between its opening and closing (one hour shorter or longer when the change falls inside
  the opening hours). A wall time that does not exist (skipped by a spring-forward change) is
  read with the offset in force before the change, as zoneinfo does with ``fold=0``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.enums import Priority
from core.settings import CoreSettings

# A guard against configurations that leave no business time at all (cannot happen with at
# least one business day and finitely many holidays, but a loop must never spin forever).
_MAX_DAYS = 3 * 366
_ZERO = timedelta(0)


class SlaPolicy:
    """Targets per priority, a warning ratio, and the business calendar the clock runs in."""

    def __init__(self, settings: CoreSettings) -> None:
        self.targets = dict(settings.sla_targets)
        self.warning_ratio = settings.sla_warning_ratio
        self.business_hours = settings.business_hours_enabled
        self.timezone = ZoneInfo(settings.business_timezone)
        self.weekdays = settings.business_weekdays
        self.opens: time = settings.business_open
        self.closes: time = settings.business_close
        self.holidays = frozenset(settings.business_holidays)
        if self.business_hours and self.opens >= self.closes:
            raise ValueError("business hours must close after they open on the same day")

    # ----------------------------------------------------------------------------------------
    # deadlines

    def deadlines(self, priority: Priority, start: datetime) -> tuple[datetime, datetime]:
        """(warning_at, breach_at) for a ticket of `priority` whose clock starts at `start`."""
        target = self.targets[priority]
        warning = self.add_working_time(start, target * self.warning_ratio)
        breach = self.add_working_time(start, target)
        return warning, breach

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment at which `duration` of SLA time has run after `start` (UTC, aware).

        24/7: plain addition. Business hours: the clock waits for the next opening when
        `start` is outside business time, and pauses at every closing.
        """
        _require_aware(start)
        if duration <= _ZERO:
            return start
        if not self.business_hours:
            return start + duration
        remaining = duration
        for opens, closes in self._windows_from(start):
            begin = max(opens, start)
            if begin >= closes:
                continue
            available = closes - begin
            if remaining <= available:
                return (begin + remaining).astimezone(UTC)
            remaining -= available
        raise ValueError("no business time found within three years")  # pragma: no cover

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """How much SLA time runs from `start` to `end` (zero when `end` is not later)."""
        _require_aware(start)
        _require_aware(end)
        if end <= start:
            return _ZERO
        if not self.business_hours:
            return end - start
        total = _ZERO
        for opens, closes in self._windows_from(start, until=end):
            begin, finish = max(opens, start), min(closes, end)
            if finish > begin:
                total += finish - begin
        return total

    # ----------------------------------------------------------------------------------------
    # business calendar

    def is_business_day(self, day: date) -> bool:
        """A weekday the desk works that is not a holiday (a date in the business timezone)."""
        return day.weekday() in self.weekdays and day not in self.holidays

    def business_window(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC opening and closing moments of a local business day; None on days off."""
        if not self.is_business_day(day):
            return None
        opens = datetime.combine(day, self.opens, tzinfo=self.timezone)
        closes = datetime.combine(day, self.closes, tzinfo=self.timezone)
        return opens.astimezone(UTC), closes.astimezone(UTC)

    def is_business_time(self, moment: datetime) -> bool:
        """Whether the clock runs at `moment` (always, without business hours)."""
        _require_aware(moment)
        if not self.business_hours:
            return True
        window = self.business_window(moment.astimezone(self.timezone).date())
        return window is not None and window[0] <= moment < window[1]

    def _windows_from(
        self, start: datetime, *, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Business windows (UTC) of the local days from `start`'s day on, in order: up to
        `until`'s day when given, otherwise for at most three years."""
        day = start.astimezone(self.timezone).date()
        last = (
            until.astimezone(self.timezone).date()
            if until is not None
            else day + timedelta(days=_MAX_DAYS)
        )
        while day <= last:
            window = self.business_window(day)
            if window is not None:
                yield window
            day += timedelta(days=1)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None:
        raise ValueError("SLA times must be timezone-aware")
