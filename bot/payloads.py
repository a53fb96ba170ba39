"""Typed button values and private_metadata: parsed and validated in one place, never trusted.

Whatever a client sends back is only a hint of which ticket or reply is meant: the core checks
the real actor's permissions on the real rows for every action."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.enums import Priority, Status
from core.errors import ValidationFailed
from core.tickets import TicketFilters, UserRef


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Fields older versions wrote and nobody reads any more: a form still open from before is
    # accepted and the field dropped; any other unknown field is refused ("out of date").
    _RETIRED: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _drop_retired(cls, data: Any) -> Any:
        if isinstance(data, dict) and cls._RETIRED:
            return {k: v for k, v in data.items() if k not in cls._RETIRED}
        return data

    def dump(self) -> str:
        text = self.model_dump_json(exclude_none=True)
        if len(text) > 2000:  # Slack limits: button value 2000, private_metadata 3000
            raise ValueError("payload too large")
        return text

    @classmethod
    def parse(cls, raw: object) -> Self:
        try:
            data = json.loads(raw) if isinstance(raw, str) else raw
            return cls.model_validate(data)
        except (ValidationError, ValueError, TypeError):
            raise ValidationFailed(
                "This form or button is out of date; please try again."
            ) from None


class TicketRefPayload(_Payload):
    """A button or modal about one ticket."""

    ticket_id: uuid.UUID


class ReplyModalPayload(_Payload):
    """The reply form: its ticket, and which form the person was shown (the staff form offers
    "internal note" or "reply to customer"; the customer form only replies). None: a form
    from before this field existed, recognised by whether it had the visibility choice."""

    ticket_id: uuid.UUID
    _RETIRED: ClassVar[frozenset[str]] = frozenset({"internal_default"})

    staff_form: bool | None = None


class CreateTicketPayload(_Payload):
    """The create modal: where it was opened, and an optional message it was made from."""

    _RETIRED: ClassVar[frozenset[str]] = frozenset({"source_text"})

    channel_id: str | None = Field(default=None, max_length=32)
    # The prefilled text was copied from a staff surface: internal until confirmed.
    copied_from_staff: bool | None = None


class EditTicketPayload(_Payload):
    """The ticket edit form: its ticket, and whether it was the staff form (with priority)."""

    ticket_id: uuid.UUID
    staff_form: bool = False


class EditReplyPayload(_Payload):
    reply_id: int = Field(ge=1)


class UserRefPayload(_Payload):
    """core.tickets.UserRef in a button: exactly one of the three."""

    me: bool | None = None
    user_id: int | None = Field(default=None, ge=1)
    chat_user_id: str | None = Field(default=None, max_length=32, pattern=r"^[UW][A-Z0-9]+$")

    @model_validator(mode="after")
    def _one_person(self) -> Self:
        if sum((bool(self.me), self.user_id is not None, self.chat_user_id is not None)) != 1:
            raise ValueError("a user reference names exactly one person")
        return self

    @classmethod
    def of(cls, ref: UserRef) -> Self:
        return cls(me=ref.me or None, user_id=ref.user_id, chat_user_id=ref.chat_user_id)

    def ref(self) -> UserRef:
        return UserRef(me=bool(self.me), user_id=self.user_id, chat_user_id=self.chat_user_id)


class ListFiltersPayload(_Payload):
    """core.tickets.TicketFilters in a page button, field for field."""

    status: Status | None = None
    priority: Priority | None = None
    assignee: UserRefPayload | None = None
    unassigned: bool | None = None
    customer: UserRefPayload | None = None
    company_id: int | None = Field(default=None, ge=1)
    category_id: int | None = Field(default=None, ge=1)
    category_name: str | None = Field(default=None, max_length=100)

    @classmethod
    def of(cls, filters: TicketFilters) -> Self:
        return cls(
            status=filters.status,
            priority=filters.priority,
            assignee=UserRefPayload.of(filters.assignee) if filters.assignee else None,
            unassigned=filters.unassigned or None,
            customer=UserRefPayload.of(filters.customer) if filters.customer else None,
            company_id=filters.company_id,
            category_id=filters.category_id,
            category_name=filters.category_name,
        )

    def filters(self) -> TicketFilters:
        return TicketFilters(
            status=self.status,
            priority=self.priority,
            assignee=self.assignee.ref() if self.assignee else None,
            unassigned=bool(self.unassigned),
            customer=self.customer.ref() if self.customer else None,
            company_id=self.company_id,
            category_id=self.category_id,
            category_name=self.category_name,
        )


class ListPagePayload(_Payload):
    """A page button of a list. A `/ticket list` page carries its typed filters (`filters`);
    `mine` and search pages carry the command text (`query`), as older list buttons did."""

    page: int = Field(ge=1, le=100_000)
    query: str = Field(default="", max_length=300)
    filters: ListFiltersPayload | None = None
