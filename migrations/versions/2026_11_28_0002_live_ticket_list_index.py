"""live ticket list index: status, priority, newest first, with an index-only count

Staff queues filter live (undeleted) tickets by status and priority, newest first, and show the
total. With only (status, created_at) and (priority, created_at), PostgreSQL combines two bitmaps
and reads every matching heap row to count them and to filter out deleted tickets. This partial
index holds exactly the live tickets in list order: the page is read from it in order and the
total is counted from it alone (an index-only scan on a vacuumed table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tickets_live_status_priority_created",
        "tickets",
        ["status", "priority", "created_at", "number"],
        unique=False,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_tickets_live_status_priority_created",
        table_name="tickets",
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
