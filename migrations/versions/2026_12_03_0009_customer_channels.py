"""customer channels: channel links, the messages that raised or joined tickets, Slack Connect

A channel linked to a company takes requests (`channel_links`: the company, the intake mode
and the reaction that raises a ticket). `channel_requests` records every top-level message
that opened or joined a ticket, keyed by its (channel, ts): one ticket per message however
often Slack delivers it or people react to it. A ticket raised in a linked channel is shared
with its company (`tickets.shared_with_company`): the company's customers see it. People of
another organisation keep their team id (`users.chat_team_id`): they are only ever customers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channel_links",
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("intake", sa.String(length=16), server_default="message", nullable=False),
        sa.Column("reaction", sa.String(length=100), server_default="ticket", nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "intake IN ('message', 'reaction', 'off')", name=op.f("ck_channel_links_intake")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_channel_links_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_channel_links_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("channel_id", name=op.f("pk_channel_links")),
    )
    op.create_index(
        op.f("ix_channel_links_company_id"), "channel_links", ["company_id"], unique=False
    )
    op.create_table(
        "channel_requests",
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_channel_requests_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_channel_requests_author_id_users")
        ),
        sa.PrimaryKeyConstraint("channel_id", "ts", name=op.f("pk_channel_requests")),
    )
    op.create_index(
        "ix_channel_requests_channel_created",
        "channel_requests",
        ["channel_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_channel_requests_ticket_id"), "channel_requests", ["ticket_id"], unique=False
    )
    op.add_column(
        "tickets",
        sa.Column(
            "shared_with_company", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column("users", sa.Column("chat_team_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("users", "chat_team_id")
    op.drop_column("tickets", "shared_with_company")
    op.drop_index(op.f("ix_channel_requests_ticket_id"), table_name="channel_requests")
    op.drop_index("ix_channel_requests_channel_created", table_name="channel_requests")
    op.drop_table("channel_requests")
    op.drop_index(op.f("ix_channel_links_company_id"), table_name="channel_links")
    op.drop_table("channel_links")
