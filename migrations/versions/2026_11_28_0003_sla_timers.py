"""SLA timers: the scan's bookkeeping moves out of the tickets table

The SLA scan used to move ``tickets.sla_next_alert_at`` forward for every alert it sent: a
non-HOT update of a wide row with a dozen indexes (the full-text one among them), which made a
scan of a thousand due alerts cost about a hundred milliseconds. The alerts still ahead of a
ticket now live in ``sla_timers``, one narrow row per (ticket, threshold), indexed by when it
falls due. The ticket services arm and disarm the timers; the scan deletes the ones it fires.

Backfill: a ticket that still awaited an alert (``sla_next_alert_at`` set, not deleted, not
resolved or closed, not answered) gets a timer for each of its thresholds at or after that
moment: the warning when it was still ahead, the breach when it was. The downgrade puts the
earliest timer of each ticket back into ``sla_next_alert_at``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEXT_ALERT = sa.text("sla_next_alert_at IS NOT NULL")

_BACKFILL = """
INSERT INTO sla_timers (ticket_id, threshold, due_at)
SELECT id, '{threshold}', {column} FROM tickets
WHERE sla_next_alert_at IS NOT NULL AND {column} IS NOT NULL
  AND {column} >= sla_next_alert_at
  AND deleted_at IS NULL AND first_response_at IS NULL
  AND status NOT IN ('resolved', 'closed')
"""


def upgrade() -> None:
    op.create_table(
        "sla_timers",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "threshold IN ('warning', 'breach')", name=op.f("ck_sla_timers_threshold")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_timers_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "threshold", name=op.f("pk_sla_timers")),
    )
    for threshold, column in (("warning", "sla_warning_at"), ("breach", "sla_breach_at")):
        op.execute(_BACKFILL.format(threshold=threshold, column=column))
    # Built after the backfill: one sort instead of one insertion per row.
    op.create_index("ix_sla_timers_due_at", "sla_timers", ["due_at"], unique=False)
    op.drop_index(
        "ix_tickets_sla_next_alert",
        table_name="tickets",
        postgresql_where=NEXT_ALERT,
        sqlite_where=NEXT_ALERT,
    )
    # PostgreSQL only marks the column dropped; SQLite (3.35+) rewrites the table in place,
    # keeping the full-text triggers (none of them mentions this column).
    op.drop_column("tickets", "sla_next_alert_at")


def downgrade() -> None:
    op.add_column(
        "tickets", sa.Column("sla_next_alert_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        """
        UPDATE tickets SET sla_next_alert_at = (
            SELECT min(due_at) FROM sla_timers WHERE sla_timers.ticket_id = tickets.id
        )
        WHERE id IN (SELECT ticket_id FROM sla_timers)
        """
    )
    op.create_index(
        "ix_tickets_sla_next_alert",
        "tickets",
        ["sla_next_alert_at"],
        unique=False,
        postgresql_where=NEXT_ALERT,
        sqlite_where=NEXT_ALERT,
    )
    op.drop_index("ix_sla_timers_due_at", table_name="sla_timers")
    op.drop_table("sla_timers")
