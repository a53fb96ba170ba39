"""Error texts in one place: domain errors become ephemeral messages or modal field errors."""

from __future__ import annotations

import logging
from typing import Any

from bot.blocks.text import escape
from bot.ids import FIELD_BLOCKS
from core.errors import DomainError, ErrorCode

log = logging.getLogger("bot.errors")

INTERNAL_ERROR = (
    "Something went wrong on our side and nothing was changed. "
    "Please try again; if it keeps happening, tell your support admins."
)

_PREFIX = {
    ErrorCode.NOT_FOUND: ":mag:",
    ErrorCode.FORBIDDEN: ":no_entry:",
    ErrorCode.RATE_LIMITED: ":hourglass:",
    ErrorCode.UNAVAILABLE: ":hourglass:",
}


def user_message(error: BaseException) -> str:
    """The text to show the user: the domain message with its stable code, or a generic one."""
    if isinstance(error, DomainError):
        prefix = _PREFIX.get(error.code, ":warning:")
        # Messages may quote what the user typed (an unknown command, a category name): it is
        # escaped like any user text, so it can never ping, link or break the formatting.
        return f"{prefix} {escape(error.message)} (`{error.code.value}`)"
    return f":warning: {INTERNAL_ERROR} (`INTERNAL`)"


def field_errors(error: DomainError, view: dict[str, Any]) -> dict[str, str]:
    """Map a domain error onto the modal's input blocks for `response_action: errors`.

    Errors without a field (or whose field is not in this view) are shown under the first
    input, so that the user keeps what they typed and sees why it was refused."""
    present = [b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"]
    block = FIELD_BLOCKS.get(error.field or "")
    target = block.value if block is not None and block.value in present else None
    if target is None and present:
        target = present[0]
    text = f"{error.message} ({error.code.value})"
    return {target: text[:150]} if target else {}


def internal_field_errors(view: dict[str, Any]) -> dict[str, str]:
    present = [b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"]
    return (
        {present[0]: "Something went wrong on our side; nothing was saved. Try again."}
        if present
        else {}
    )
