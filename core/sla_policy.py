"""First-response targets: when a ticket's warning and breach fall due."""

from __future__ import annotations

from datetime import datetime, timedelta

from core.enums import Priority
from core.settings import CoreSettings


class SlaPolicy:
    """Targets per priority and a warning ratio, on the wall clock (24/7)."""

    def __init__(self, settings: CoreSettings) -> None:
        self.targets = dict(settings.sla_targets)
        self.warning_ratio = settings.sla_warning_ratio

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of SLA time after `start`."""
        return start + duration

    def deadlines(self, priority: Priority, start: datetime) -> tuple[datetime, datetime]:
        """(warning_at, breach_at) for a ticket of `priority` whose clock starts at `start`."""
        target = self.targets[priority]
        warning = self.add_working_time(start, target * self.warning_ratio)
        breach = self.add_working_time(start, target)
        return warning, breach
