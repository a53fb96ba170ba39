"""The audit log: every state change writes one entry in the change's own transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.models import AuditEntry


def record(
    session: AsyncSession,
    *,
    actor_id: int | None,
    action: str,
    now: datetime,
    ticket_id: uuid.UUID | None = None,
    **details: Any,
) -> AuditEntry:
    """Add an audit entry to the session (flushed and committed with the change it records)."""
    entry = AuditEntry(
        actor_id=actor_id, action=action, ticket_id=ticket_id, details=details, created_at=now
    )
    session.add(entry)
    return entry
