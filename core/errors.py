"""Typed domain errors with stable codes; the Slack layer maps them to user-facing text."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable error codes: part of the public contract, never renamed."""

    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    VALIDATION = "VALIDATION"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    TICKET_CLOSED = "TICKET_CLOSED"
    EDIT_WINDOW_EXPIRED = "EDIT_WINDOW_EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    CONFLICT = "CONFLICT"
    UNAVAILABLE = "UNAVAILABLE"


class DomainError(Exception):
    """Base of every error the core raises on purpose; `message` is fit to show an end user."""

    code: ErrorCode = ErrorCode.VALIDATION

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NotFound(DomainError):
    """The row does not exist, or the actor may not know that it exists."""

    code = ErrorCode.NOT_FOUND


class Forbidden(DomainError):
    """The actor is known and sees the row but may not perform the action."""

    code = ErrorCode.FORBIDDEN


class ValidationFailed(DomainError):
    """An input is missing, too long, or not one of the allowed values; `field` names it."""

    code = ErrorCode.VALIDATION


class InvalidTransition(DomainError):
    """The requested status change is not allowed from the current status."""

    code = ErrorCode.INVALID_TRANSITION


class TicketClosed(DomainError):
    """The ticket is closed and refuses the change."""

    code = ErrorCode.TICKET_CLOSED


class EditWindowExpired(DomainError):
    """The reply is older than the edit window."""

    code = ErrorCode.EDIT_WINDOW_EXPIRED


class RateLimited(DomainError):
    """The actor did this too often in the current window."""

    code = ErrorCode.RATE_LIMITED

    def __init__(
        self, message: str, *, retry_after_seconds: int, resets_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
        # When the window ends: the same instant for every refusal in one window, so a caller
        # can answer a flood of refusals once per window.
        self.resets_at = resets_at


class Conflict(DomainError):
    """A concurrent change won; the caller may retry with fresh data."""

    code = ErrorCode.CONFLICT


class Unavailable(DomainError):
    """The database cannot be reached right now; nothing was written, try again."""

    code = ErrorCode.UNAVAILABLE
