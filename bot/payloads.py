"""Typed button values and private_metadata: parsed and validated in one place, never trusted.

Whatever a client sends back is only a hint of which ticket or reply is meant: the core checks
the real actor's permissions on the real rows for every action."""

from __future__ import annotations

import json
import uuid
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import ValidationFailed


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


class EditReplyPayload(_Payload):
    reply_id: int = Field(ge=1)


class ListPagePayload(_Payload):
    """A page button of a ticket list: the filters travel with it."""

    page: int = Field(ge=1, le=100_000)
    query: str = Field(default="", max_length=300)
