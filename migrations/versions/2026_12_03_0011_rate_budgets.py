"""rate_budgets: Slack's rate limits, paced by every replica together

Slack's limits hold per workspace and, for posting, per channel, for every process that uses
the bot token: each replica pacing itself would let several replicas together spend several
times the budget. One row per budget key (a Slack method, or a method and a channel) holds the
virtual time the next call is due at the steady rate and the pause a 429 imposed; replicas
reserve their calls with one UPDATE each. The downgrade drops the table (pacing then starts
from a full burst allowance).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),
        sa.Column("paused_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_rate_budgets")),
    )


def downgrade() -> None:
    op.drop_table("rate_budgets")
