"""chat_surfaces: whether the staff channel is safe to post to, shared by every replica

The staff channel's privacy used to be checked only at start-up, by each process for itself:
made public while the bot ran, internal notes kept being posted there. Every replica now
checks the channel periodically and on Slack's channel events, and records what it saw in one
row per audience (`staff`). The delivery workers of all replicas read the row before posting
to the channel and hold the audience's messages while `problem` is set; `checked_at` keeps an
older observation from overwriting a newer one. The downgrade drops the table (held messages
stay in the outbox and go out on the next delivery pass).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_surfaces",
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("channel_name", sa.String(length=200), nullable=True),
        sa.Column("problem", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("unsafe_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("audience", name=op.f("pk_chat_surfaces")),
    )


def downgrade() -> None:
    op.drop_table("chat_surfaces")
