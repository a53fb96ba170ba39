"""recent search index: a GIN index over the search parts of the newest tickets only

A common word is in a large share of all tickets, and ``ix_ticket_search_document`` answers it
with every part that holds it, however old; a search only ranks the newest 500 matches. On
PostgreSQL ``ix_ticket_search_recent_<start>`` indexes part 0 of the tickets numbered above
<start> (the newest RECENT_WINDOW, 131,072, when it is built), and the planner reads it for the
ranges of numbers that lie within them. Its bound is a constant: the scheduler's housekeeping
builds the next one and drops the old one (core.search.recent), concurrently. This revision
builds the first one, for a desk that already has more than RECENT_WINDOW + RECENT_SLACK
tickets (a smaller desk needs none yet). The downgrade drops every such index. SQLite: nothing
to do.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As core.search.recent had them when this revision was written.
RECENT_WINDOW = 131_072
RECENT_SLACK = RECENT_WINDOW // 4
INDEX_PREFIX = "ix_ticket_search_recent_"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    newest = bind.execute(sa.text("SELECT max(number) FROM tickets")).scalar()
    if newest is None or newest <= RECENT_WINDOW + RECENT_SLACK:
        return
    start = int(newest) - RECENT_WINDOW
    op.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX_PREFIX}{start} ON ticket_search USING gin (document) "
        f"WITH (fastupdate = off) WHERE NOT overflow AND number > {start}"
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    names = bind.execute(
        sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'ticket_search'::regclass AND c.relname LIKE :prefix"
        ),
        {"prefix": INDEX_PREFIX + "%"},
    ).scalars()
    for name in list(names):
        op.execute(f'DROP INDEX "{name}"')
