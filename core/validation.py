"""Input checks shared by the services: trimmed text within Slack's limits, known enum values."""

from __future__ import annotations

import hashlib
import re
import uuid
from enum import StrEnum
from typing import TypeVar

from core.errors import ValidationFailed

TITLE_MAX = 150
BODY_MAX = 3000
REASON_MAX = 500
NAME_MAX = 80
SEARCH_MIN = 3
SEARCH_MAX = 200
PAGE_SIZE_MAX = 100

# C0/C1 control characters other than tab and newline, and Unicode bidi overrides that can make
# text read differently from what it says.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

E = TypeVar("E", bound=StrEnum)


def opaque_key(key: str, *, max_length: int) -> str:
    """A key from outside (a chat platform's event, trigger or view id) as it can be stored and
    compared: itself when it is printable text that fits, otherwise a digest of it. Distinct
    keys stay distinct (no truncation), and no byte the database refuses (NUL) reaches it."""
    if len(key) <= max_length and key.isprintable():
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256:{digest}"


def clean_text(value: object, *, field: str, max_length: int, required: bool) -> str:
    """Trim, drop control characters, and enforce presence and length."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field.capitalize()} must be text.", field=field)
    text = _CONTROL.sub("", value).replace("\r\n", "\n").strip()
    if required and not text:
        raise ValidationFailed(f"{field.capitalize()} must not be empty.", field=field)
    if len(text) > max_length:
        raise ValidationFailed(
            f"{field.capitalize()} is {len(text)} characters long; the limit is {max_length}.",
            field=field,
        )
    return text


def single_line(value: object, *, field: str, max_length: int, required: bool = True) -> str:
    """Like clean_text, with inner runs of white space (newlines included) folded to one space."""
    try:
        # Generous first cut: inner white space may still fold away below.
        text = clean_text(value, field=field, max_length=max_length * 4, required=required)
    except ValidationFailed as error:
        if error.message.endswith("must not be empty.") or error.message.endswith("be text."):
            raise
        raise ValidationFailed(
            f"{field.capitalize()} is too long; the limit is {max_length}.", field=field
        ) from None
    text = " ".join(text.split())
    if len(text) > max_length:
        raise ValidationFailed(
            f"{field.capitalize()} is {len(text)} characters long; the limit is {max_length}.",
            field=field,
        )
    return text


def optional_text(value: object, *, field: str, max_length: int) -> str | None:
    text = clean_text(value, field=field, max_length=max_length, required=False)
    return text or None


def parse_enum(enum: type[E], value: object, *, field: str) -> E:
    """Accept a member or its value (case-insensitive, '-' or ' ' for '_')."""
    if isinstance(value, enum):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        for member in enum:
            if member.value == key:
                return member
    allowed = ", ".join(m.value for m in enum)
    raise ValidationFailed(f"{field.capitalize()} must be one of: {allowed}.", field=field)


def positive_int(value: object, *, field: str, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("#").isdigit():
            value = int(value.strip().lstrip("#"))
        else:
            raise ValidationFailed(f"{field.capitalize()} must be a whole number.", field=field)
    assert isinstance(value, int)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" between 1 and {maximum}" if maximum is not None else " of 1 or more"
        raise ValidationFailed(f"{field.capitalize()} must be a number{bound}.", field=field)
    return value


def parse_uuid(value: object, *, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed(f"{field.capitalize()} is not a valid id.", field=field) from None
