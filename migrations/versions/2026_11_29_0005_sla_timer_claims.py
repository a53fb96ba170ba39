"""SLA timers become their own claims: a fired timer stays, marked, instead of a separate claim

A scan used to delete each due timer and insert its claim into ``sla_alerts`` (unique on
ticket and threshold, with a foreign key checked row by row), then queue every alert's
messages: at a thousand due alerts, three writes per alert in the scan's transaction.

A timer row is already unique per (ticket, threshold), so it is the claim: the scan now sets
``fired_at`` on the due timers it takes (``FOR UPDATE SKIP LOCKED``, then a conditional update:
two scans can never both fire one timer), and the services never arm a fired timer again.
The due index covers only the timers still armed (``fired_at IS NULL``), so fired ones cost
the scan nothing. ``fired_by`` names the scan that fired a timer: the scan queues one outbox
message naming itself, and delivering it writes the messages of that scan's alerts.

Data: every claim of ``sla_alerts`` becomes a fired timer (replacing an armed timer of the
same threshold, which would otherwise fire a second alert); ``sla_alerts`` is dropped. The
downgrade recreates it from the fired timers and removes them from ``sla_timers``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARMED = sa.text("fired_at IS NULL")
FIRED = sa.text("fired_by IS NOT NULL")


def upgrade() -> None:
    op.add_column("sla_timers", sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sla_timers", sa.Column("fired_by", sa.Uuid(), nullable=True))
    op.execute(
        """
        DELETE FROM sla_timers WHERE EXISTS (
            SELECT 1 FROM sla_alerts AS a
            WHERE a.ticket_id = sla_timers.ticket_id AND a.threshold = sla_timers.threshold)
        """
    )
    op.execute(
        """
        INSERT INTO sla_timers (ticket_id, threshold, due_at, fired_at)
        SELECT ticket_id, threshold, due_at, created_at FROM sla_alerts
        """
    )
    op.drop_table("sla_alerts")
    op.drop_index("ix_sla_timers_due_at", table_name="sla_timers")
    op.create_index(
        "ix_sla_timers_armed_due",
        "sla_timers",
        ["due_at"],
        unique=False,
        postgresql_where=ARMED,
        sqlite_where=ARMED,
    )
    op.create_index(
        "ix_sla_timers_fired_by",
        "sla_timers",
        ["fired_by"],
        unique=False,
        postgresql_where=FIRED,
        sqlite_where=FIRED,
    )


def downgrade() -> None:
    op.create_table(
        "sla_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("threshold", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_sla_alerts_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_alerts")),
        sa.UniqueConstraint("ticket_id", "threshold", name="uq_sla_alerts_ticket_threshold"),
    )
    op.execute(
        """
        INSERT INTO sla_alerts (ticket_id, threshold, due_at, created_at)
        SELECT ticket_id, threshold, due_at, fired_at FROM sla_timers
        WHERE fired_at IS NOT NULL ORDER BY fired_at, ticket_id, threshold
        """
    )
    op.execute("DELETE FROM sla_timers WHERE fired_at IS NOT NULL")
    op.drop_index(
        "ix_sla_timers_fired_by",
        table_name="sla_timers",
        postgresql_where=FIRED,
        sqlite_where=FIRED,
    )
    op.drop_index(
        "ix_sla_timers_armed_due",
        table_name="sla_timers",
        postgresql_where=ARMED,
        sqlite_where=ARMED,
    )
    op.create_index("ix_sla_timers_due_at", "sla_timers", ["due_at"], unique=False)
    # SQLite (3.35+) drops a column in place; no index or trigger mentions them any more.
    op.drop_column("sla_timers", "fired_by")
    op.drop_column("sla_timers", "fired_at")
