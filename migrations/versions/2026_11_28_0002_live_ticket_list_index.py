"""list and search indexes: a live-ticket queue index, GIN indexes without a pending list

1. Staff queues filter live (undeleted) tickets by status and priority, newest first, and show
   the total. With only (status, created_at) and (priority, created_at), PostgreSQL combines two
   bitmaps and reads every matching heap row to count them and to drop deleted tickets. The
   partial index below holds exactly the live tickets in list order: the page is read from it
   in order and the total is counted from it alone (an index-only scan on a vacuumed table).

2. PostgreSQL's GIN indexes buffer new entries in a pending list (up to gin_pending_list_limit,
   4 MB by default) until a vacuum or an overflow merges it, and every search reads the whole
   list: on a busy desk that adds milliseconds to each search. A desk writes far fewer tickets
   and replies than it searches, so the full-text indexes are maintained on insert instead
   (fastupdate off), and whatever is pending now is merged.

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
SEARCH_INDEXES = ("ix_tickets_search_vector", "ix_replies_search_vector")


def upgrade() -> None:
    op.create_index(
        "ix_tickets_live_status_priority_created",
        "tickets",
        ["status", "priority", "created_at", "number"],
        unique=False,
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
    if op.get_bind().dialect.name == "postgresql":
        for index in SEARCH_INDEXES:
            op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
            op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in SEARCH_INDEXES:
            op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
    op.drop_index(
        "ix_tickets_live_status_priority_created",
        table_name="tickets",
        postgresql_where=LIVE,
        sqlite_where=LIVE,
    )
