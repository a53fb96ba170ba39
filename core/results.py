"""Plain, immutable results of service calls: safe to use after the transaction has ended."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from core.enums import Priority, Role, Status

T = TypeVar("T")


@dataclass(frozen=True)
class UserView:
    id: int
    slack_user_id: str
    display_name: str
    email: str | None
    role: Role
    company_id: int | None
    is_active: bool


@dataclass(frozen=True)
class TicketView:
    id: uuid.UUID
    number: int
    title: str
    description: str
    status: Status
    priority: Priority
    category_id: int | None
    category_name: str | None
    customer: UserView
    company_id: int | None
    assignee: UserView | None
    created_by_id: int
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    status_reason: str | None
    sla_warning_at: datetime | None
    sla_breach_at: datetime | None
    deleted_at: datetime | None = None


@dataclass(frozen=True)
class AttachmentView:
    """A file shared with a reply, as described when it was shared (the bytes stay in chat)."""

    id: int
    reply_id: int
    position: int
    source_id: str
    name: str
    title: str | None
    mimetype: str | None
    size: int | None


@dataclass(frozen=True)
class ReplyView:
    id: int
    ticket_id: uuid.UUID
    author: UserView
    body: str
    is_internal: bool
    created_at: datetime
    edited_at: datetime | None
    attachments: tuple[AttachmentView, ...] = ()


@dataclass(frozen=True)
class ReplyDraft:
    """A reply its author is about to edit, with its earlier texts (oldest first)."""

    reply: ReplyView
    history: tuple[str, ...]


@dataclass(frozen=True)
class StatusChangeView:
    from_status: Status | None
    to_status: Status
    reason: str | None
    changed_by_id: int
    changed_at: datetime


@dataclass(frozen=True)
class TicketDetail:
    ticket: TicketView
    replies: tuple[ReplyView, ...]
    history: tuple[StatusChangeView, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results. `total` counts the results there are to page through; `capped`
    says that more matched than were counted (a search counts up to its limit and no further):
    the true number is then larger than `total`."""

    items: tuple[T, ...]
    total: int
    page: int
    page_size: int
    capped: bool = False

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))

    @classmethod
    def of(
        cls, items: Sequence[T], *, total: int, page: int, page_size: int, capped: bool = False
    ) -> Page[T]:
        return cls(items=tuple(items), total=total, page=page, page_size=page_size, capped=capped)


@dataclass(frozen=True)
class CategoryView:
    id: int
    name: str
    description: str | None
    is_active: bool


@dataclass(frozen=True)
class CompanyView:
    id: int
    name: str
    domains: tuple[str, ...]
