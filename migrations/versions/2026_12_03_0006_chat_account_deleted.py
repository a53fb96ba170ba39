"""users.chat_account_deleted: the chat platform's verdict kept apart from the desk's own flag

A profile refresh used to copy Slack's "deleted" flag over `users.is_active`, so a person an
admin had deactivated in the desk became active again on their next request. The two facts
now live in two columns: `is_active` changes only by an admin's decision, and
`chat_account_deleted` follows the chat profile. Either one stops the user.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column(
            "chat_account_deleted", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )


def downgrade() -> None:
    # The old schema had one flag: someone deleted in chat must stay refused there too.
    op.execute("UPDATE users SET is_active = false WHERE chat_account_deleted")
    op.drop_column("users", "chat_account_deleted")
