"""Roles, ticket statuses and priorities: the closed vocabularies of the desk."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    CORPORATE = "corporate"
    AGENT = "agent"
    MANAGER = "manager"
    ADMIN = "admin"

    @property
    def is_staff(self) -> bool:
        """Corporate staff count as staff, scoped to their companies."""
        return self is not Role.CUSTOMER

    @property
    def is_global_staff(self) -> bool:
        """Staff who see every ticket of every company."""
        return self in (Role.AGENT, Role.MANAGER, Role.ADMIN)


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_ON_CUSTOMER = "waiting_on_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"

    @property
    def is_done(self) -> bool:
        return self in (Status.RESOLVED, Status.CLOSED)


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class SlaThreshold(StrEnum):
    WARNING = "warning"
    BREACH = "breach"


class Audience(StrEnum):
    """Whose chat thread: the staff thread may carry internal notes, the customer's never."""

    STAFF = "staff"
    CUSTOMER = "customer"
