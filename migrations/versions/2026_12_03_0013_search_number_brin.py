"""search number ranges: a BRIN index on ticket_search.number

A staff search reads the newest tickets in ranges of numbers (core.search.postgres). A range
older than the recent index (migration 0012) was answered by ANDing the GIN index's matches with
every entry of the primary key in that range: for a range of 107,000 numbers that B-tree scan
took 5.8 ms of an 8.3 ms statement, while the word itself was in 2,251 parts. A BRIN index keeps,
per 32 pages of the table, the lowest and highest number stored there: it names the pages of a
range of numbers in well under a millisecond, and the planner ANDs those pages with the GIN
index's matches instead (8.3 -> 3.8 ms). Tickets are written in the order of their numbers and a
ticket's part 0 is rewritten mostly while it is young, so the pages follow the numbers closely.
Should they drift, the index names more pages and the rows are still filtered by number: the
results are the same. New pages are summarised by autovacuum (autosummarize). SQLite: nothing to
do.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX ix_ticket_search_number_brin ON ticket_search USING brin (number) "
        "WITH (pages_per_range = 32, autosummarize = on)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX ix_ticket_search_number_brin")
