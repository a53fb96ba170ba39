"""The schema as SQLAlchemy models. Alembic migrations are the source of truth for the database;
tests check that the two agree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# BIGINT primary keys autoincrement on PostgreSQL; SQLite only autoincrements INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("customer", "corporate", "agent", "manager", "admin")
STATUSES = ("open", "in_progress", "waiting_on_customer", "resolved", "closed")
PRIORITIES = ("low", "medium", "high", "urgent")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))


class CompanyDomain(Base):
    """An email domain that maps users to a company (lower-case, unique)."""

    __tablename__ = "company_domains"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    role: Mapped[str] = mapped_column(String(16), server_default="customer", index=True)
    company_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL"), index=True
    )
    # The desk's own flag, changed only by an admin; a chat profile refresh never touches it.
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # The chat platform's verdict (the account was deleted or deactivated there), kept apart
    # from `is_active` and refreshed from the profile. Either one stops the user.
    chat_account_deleted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # Slack Connect: the other organisation's team id of a person from another workspace
    # (None for members of the app's own); such a person is only ever a customer.
    chat_team_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))

    @property
    def can_act(self) -> bool:
        """Active in the desk and not deleted in chat: may act, be assigned and be told."""
        return self.is_active and not self.chat_account_deleted


class CorporateMembership(Base):
    """A corporate staff member's access to a company besides their own."""

    __tablename__ = "corporate_memberships"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str | None] = mapped_column(String(300))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        Index("ix_tickets_status_created", "status", "created_at"),
        # Staff queues: live tickets by status and priority, newest first, counted from the index.
        Index(
            "ix_tickets_live_status_priority_created",
            "status",
            "priority",
            "created_at",
            "number",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
        Index("ix_tickets_priority_created", "priority", "created_at"),
        Index("ix_tickets_assignee_created", "assignee_id", "created_at"),
        Index("ix_tickets_customer_created", "customer_id", "created_at"),
        Index("ix_tickets_company_created", "company_id", "created_at"),
        Index("ix_tickets_category_created", "category_id", "created_at"),
        Index("ix_tickets_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    title: Mapped[str] = mapped_column(String(150))
    description: Mapped[str] = mapped_column(Text, server_default="")
    status: Mapped[str] = mapped_column(String(24), server_default="open")
    priority: Mapped[str] = mapped_column(String(12), server_default="medium")
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL")
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id", ondelete="SET NULL"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    sla_started_at: Mapped[datetime | None]
    sla_warning_at: Mapped[datetime | None]
    sla_breach_at: Mapped[datetime | None]
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    # Raised in a customer channel: every customer of its company may see it, not only its
    # requester (core.access).
    shared_with_company: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))

    __mapper_args__ = {"version_id_col": version}


class TicketCounter(Base):
    """Ticket numbers on SQLite (PostgreSQL uses the ticket_number_seq sequence)."""

    __tablename__ = "ticket_counter"

    id: Mapped[int] = mapped_column(primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, server_default="0")


class Reply(Base):
    __tablename__ = "replies"
    __table_args__ = (
        Index("ix_replies_ticket_created", "ticket_id", "created_at"),
        Index("ix_replies_ticket_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(Text)
    is_internal: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    edited_at: Mapped[datetime | None]
    edited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deleted_at: Mapped[datetime | None]
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class ReplyEdit(Base):
    """The text a reply had before each edit."""

    __tablename__ = "reply_edits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id", ondelete="CASCADE"), index=True)
    previous_body: Mapped[str] = mapped_column(Text)
    edited_at: Mapped[datetime]
    edited_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))


class ReplyAttachment(Base):
    """A file shared with a reply, as the chat platform described it; the bytes stay there.

    `source_id` is the platform's id of the file the person shared (opaque to the desk)."""

    __tablename__ = "reply_attachments"
    __table_args__ = (UniqueConstraint("reply_id", "position", name="uq_reply_attachments_reply"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(255))
    mimetype: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class AttachmentCopy(Base):
    """Where a reply's file was copied for an audience: the chat platform's id of the copy, so
    that deleting the reply takes the copy back too."""

    __tablename__ = "attachment_copies"

    attachment_id: Mapped[int] = mapped_column(
        ForeignKey("reply_attachments.id", ondelete="CASCADE"), primary_key=True
    )
    audience: Mapped[str] = mapped_column(String(16), primary_key=True)
    copy_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class StatusChange(Base):
    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_ticket_created", "ticket_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL")
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]


class RateLimitCounter(Base):
    """Fixed-window counters shared by every process through the database."""

    __tablename__ = "rate_limit_counters"

    actor_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class SlaTimer(Base):
    """An SLA alert of a ticket (ticket, threshold): armed until it fires, then its claim.

    The ticket services arm, move and disarm armed timers (core.sla.schedule / core.sla.stop);
    the scan fires the due ones by setting `fired_at` (and `fired_by`, its id), which is the
    claim: the primary key makes it one per ticket and threshold, and a fired timer is never
    armed again, so two schedulers send an alert once. Only armed timers are in the due index.
    A narrow table of its own, so that the scan never writes to the wide, heavily indexed
    tickets table."""

    __tablename__ = "sla_timers"
    __table_args__ = (
        CheckConstraint("threshold IN ('warning', 'breach')", name="threshold"),
        Index(
            "ix_sla_timers_armed_due",
            "due_at",
            postgresql_where=text("fired_at IS NULL"),
            sqlite_where=text("fired_at IS NULL"),
        ),
        Index(
            "ix_sla_timers_fired_by",
            "fired_by",
            postgresql_where=text("fired_by IS NOT NULL"),
            sqlite_where=text("fired_by IS NOT NULL"),
        ),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    threshold: Mapped[str] = mapped_column(String(16), primary_key=True)
    due_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    # The scan that fired it: its `sla_alerts` message fans out the alerts of that scan.
    fired_by: Mapped[uuid.UUID | None]


class OutboxMessage(Base):
    """Something that must reach chat after a change, written in the change's transaction."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text("delivered_at IS NULL AND failed_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL AND failed_at IS NULL"),
        ),
        Index("ix_outbox_thread", "thread_key", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(48))
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    thread_key: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    locked_until: Mapped[datetime | None]
    locked_by: Mapped[str | None] = mapped_column(String(64))
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class ChatThread(Base):
    """Where a ticket's conversation lives in chat, per audience (staff card, customer DM)."""

    __tablename__ = "chat_threads"
    __table_args__ = (UniqueConstraint("channel_id", "ts", name="uq_chat_threads_channel_ts"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True
    )
    audience: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))


class ChatMessage(Base):
    """A chat message that carries a reply: the author's original or a relayed copy."""

    __tablename__ = "chat_messages"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    reply_id: Mapped[int] = mapped_column(ForeignKey("replies.id", ondelete="CASCADE"), index=True)
    is_copy: Mapped[bool] = mapped_column(Boolean)


class InboundEvent(Base):
    """Deliveries already handled (Slack event_id, trigger ids): retries are dropped."""

    __tablename__ = "inbound_events"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class ChatSurface(Base):
    """Where an audience's messages are posted in chat (the staff channel) and whether posting
    there is safe now, as the bot last saw it. Every replica records its checks here, and the
    delivery worker holds that audience's messages while `problem` is set."""

    __tablename__ = "chat_surfaces"

    audience: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    channel_name: Mapped[str | None] = mapped_column(String(200))
    # None while safe; else why not (core.surfaces.SurfaceProblem) and what the platform said.
    problem: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(300))
    unsafe_since: Mapped[datetime | None]
    # When the check recorded here was made: an older observation never overwrites a newer one.
    checked_at: Mapped[datetime]


INTAKE_MODES = ("message", "reaction", "off")


class ChannelLink(Base):
    """A chat channel where a company's people ask for help (core.channels)."""

    __tablename__ = "channel_links"
    __table_args__ = (CheckConstraint(_in("intake", INTAKE_MODES), name="intake"),)

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    intake: Mapped[str] = mapped_column(String(16), server_default="message")
    reaction: Mapped[str] = mapped_column(String(100), server_default="ticket")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]


class ChannelRequest(Base):
    """A top-level channel message that opened a ticket (`opened`) or joined the one its
    author had just opened: one ticket per message, whoever delivers or reacts to it again."""

    __tablename__ = "channel_requests"
    __table_args__ = (Index("ix_channel_requests_channel_created", "channel_id", "created_at"),)

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    opened: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]


class RateBudget(Base):
    """A rate shared by every process of the desk (core.budget): the time the next use would
    be due at the steady rate (a virtual clock, epoch seconds) and a pause until which no use
    may start. Keys are opaque to the core."""

    __tablename__ = "rate_budgets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    due_at: Mapped[float] = mapped_column(Float)
    paused_until: Mapped[float] = mapped_column(Float)
