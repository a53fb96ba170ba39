"""The audit log, as read by `/ticket audit N` (Block Kit) and `python -m bot audit` (plain
lines). Pure: plain data in, text and blocks out."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks.kit import Json, context, section
from bot.blocks.text import as_utc, escape, plain, single_line, truncate
from core.audit_log import AuditPerson, AuditRecord
from core.results import Page

# Details shown through the resolved people and ticket instead of as raw ids.
_SHOWN_ELSEWHERE = frozenset({"user_id"})
DETAIL_LIMIT = 300


def _person(person: AuditPerson | None, fallback: str) -> str:
    if person is None:
        return fallback
    name = single_line(plain(person.name))
    return name if name == person.chat_user_id else f"{name} ({person.chat_user_id})"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return single_line(plain(value))
    return json.dumps(value, ensure_ascii=False, default=str)


def describe(record: AuditRecord) -> str:
    """One entry on one line: when, what, which ticket, by whom, about whom, the details."""
    at = as_utc(record.at).strftime("%Y-%m-%d %H:%M:%S UTC")
    via = record.details.get("via")
    by = _person(record.actor, f"the operator ({via})" if via else "the system")
    parts = [at, record.action]
    if record.ticket_number is not None:
        parts.append(f"#{record.ticket_number}")
    parts.append(f"by {by}")
    if record.subject is not None:
        parts.append(f"about {_person(record.subject, '?')}")
    details = " ".join(
        f"{key}={_value(value)}"
        for key, value in sorted(record.details.items())
        if key not in _SHOWN_ELSEWHERE and not (key == "via" and record.actor is None)
    )
    if details:
        parts.append(truncate(details, DETAIL_LIMIT))
    return "  ".join(parts)


def plain_lines(page: Page[AuditRecord]) -> list[str]:
    """The CLI's output: one line per entry, then where the page stands."""
    if not page.items:
        return ["no audit entries match"]
    lines = [describe(record) for record in page.items]
    lines.append(_position(page))
    return lines


def _position(page: Page[AuditRecord]) -> str:
    shown = f"page {page.page} of {page.pages}, {page.total} entries in all, newest first"
    if page.page < page.pages:
        shown += f"; next: page {page.page + 1}"
    return shown


def audit_message(page: Page[AuditRecord], *, ticket_number: int) -> tuple[str, list[Json]]:
    """`/ticket audit N`: the ticket's audit entries, newest first, one section each."""
    title = f"Audit log of ticket #{ticket_number}"
    blocks: list[Json] = [section(f"*{title}*")]
    if not page.items:
        blocks.append(section("No audit entries."))
        return title, blocks
    for record in page.items:
        blocks.append(section(f"`{escape(describe(record))}`"))
    position = _position(page)
    if page.page < page.pages:
        position += f" (`/ticket audit {ticket_number} page {page.page + 1}`)"
    blocks.append(context(escape(position)))
    return title, blocks
