"""What the reliability and security scenarios share: row counts of everything a request can
write, the texts the bot showed people after a point, and the checks on those texts."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select

from core.models import (
    AuditEntry,
    Category,
    ChatMessage,
    ChatThread,
    OutboxMessage,
    Reply,
    ReplyEdit,
    StatusChange,
    Ticket,
    User,
)
from devslack.requests import BotResponse
from devslack.stage import Stage

# Everything a refused request must leave as it was. (inbound_events is not here: claiming a
# delivery id is how a retry is recognised, refused or not.)
COUNTED = {
    "tickets": Ticket,
    "replies": Reply,
    "reply_edits": ReplyEdit,
    "status_history": StatusChange,
    "audit_log": AuditEntry,
    "outbox": OutboxMessage,
    "chat_threads": ChatThread,
    "chat_messages": ChatMessage,
    "categories": Category,
    "users": User,
}

# What a user must never be shown: Python internals, driver and library names.
INTERNALS = re.compile(
    r"Traceback|File \"|line \d+, in |sqlalchemy|asyncpg|aiosqlite|psycopg|pydantic"
    r"|validation errors? for|\b[A-Z]\w*(?:Error|Exception)\b|Error:|object has no attribute"
    r"|NoneType|KeyError|IndexError|TypeError|ValueError|`INTERNAL`|\bINTERNAL\b"
)
# The stable code every refusal carries, in backticks (messages) or in brackets (modal fields).
CODE = re.compile(
    r"(?:`|\()(NOT_FOUND|FORBIDDEN|VALIDATION|INVALID_TRANSITION|TICKET_CLOSED"
    r"|EDIT_WINDOW_EXPIRED|RATE_LIMITED|CONFLICT|UNAVAILABLE)(?:`|\))"
)

USER_FACING = (
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "response_url",
    "views.open",
    "views.update",
    "views.push",
    "views.publish",
)


async def counts(stage: Stage) -> dict[str, int]:
    """Row counts of every table a request could change."""
    async with stage.runtime.core.db.transaction() as session:
        return {
            name: int(await session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in COUNTED.items()
        }


def calls_since(stage: Stage, mark: int, *methods: str) -> list[Any]:
    """Successful calls to Slack (default: everything users see) recorded after `mark`."""
    wanted = methods or USER_FACING
    return [c for c in stage.fake.calls[mark:] if c.method in wanted and c.ok]


def shown_texts(stage: Stage, mark: int, response: BotResponse | None = None) -> list[str]:
    """Every text the bot put in front of someone since `mark` (as raw JSON, so that blocks,
    modals and fields are all covered), plus its HTTP answer (modal field errors)."""
    texts = [json.dumps(c.params, ensure_ascii=False) for c in calls_since(stage, mark)]
    if response is not None:
        body = response.body
        texts.append(body if isinstance(body, str) else json.dumps(body, ensure_ascii=False))
    return texts


def assert_no_internals(texts: list[str]) -> None:
    leaked = [INTERNALS.search(t) for t in texts]
    found = [(m.group(0), t[:300]) for m in leaked if m is not None for t in texts if m.string is t]
    assert not found, f"internals shown to a user: {found}"


def refusal_codes(texts: list[str]) -> list[str]:
    return [m.group(1) for t in texts for m in CODE.finditer(t)]


# A refusal as the bot words it (bot/errors.py): an emoji prefix, the message, the code.
_REFUSAL_TEXT = re.compile(r'"text": "(?::mag:|:no_entry:|:hourglass:|:warning:)((?:[^"\\]|\\.)*)"')


def uncoded_refusals(texts: list[str]) -> list[str]:
    """Refusals shown without their stable code."""
    return [
        m.group(0) for t in texts for m in _REFUSAL_TEXT.finditer(t) if not CODE.search(m.group(1))
    ]
