"""reply_attachments, attachment_copies: the files shared with a reply, described, not stored

A file shared in a ticket's thread used to be dropped: only the message's text became a
reply. Each file is now recorded with its reply (name, title, type, size and the chat
platform's id of the file), so that `/ticket show` lists it, the audit log names it and the
delivery worker can copy it to the other side's thread. The bytes stay in the chat platform.
Each copy made for the other side is recorded in attachment_copies (the platform's id of the
copy), so that deleting the reply takes its copied files back as it takes back its text.
The downgrade drops both tables; the replies themselves are untouched.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reply_attachments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reply_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=True),
        sa.Column("mimetype", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["reply_id"],
            ["replies.id"],
            name=op.f("fk_reply_attachments_reply_id_replies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reply_attachments")),
        sa.UniqueConstraint("reply_id", "position", name="uq_reply_attachments_reply"),
    )
    op.create_table(
        "attachment_copies",
        sa.Column(
            "attachment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("copy_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["attachment_id"],
            ["reply_attachments.id"],
            name=op.f("fk_attachment_copies_attachment_id_reply_attachments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("attachment_id", "audience", name=op.f("pk_attachment_copies")),
    )


def downgrade() -> None:
    op.drop_table("attachment_copies")
    op.drop_table("reply_attachments")
