"""Customer channels: chat channels linked to a company, where the company's people ask for
help, and the requests they raise there (by a message, or by a reaction anywhere).

The core knows a channel only as an opaque id and a message as an opaque (channel, ts): it
never asks what kind of channel it is. The bot tells it which channel ids are reserved for
staff (the staff and manager channels): those are never linked.

A ticket raised in a linked channel belongs to the channel's company and is shared with it
(`Ticket.shared_with_company`, core.access): the company's customers see it. Its customer
conversation is the thread of the message that raised it."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core import audit, chat, repository
from core.access import Actor, actor_of, load_actor, require_role
from core.chat import ChatRef
from core.companies import company_named
from core.context import Core
from core.enums import Audience, Priority, Role, Status
from core.errors import Conflict, Forbidden, ValidationFailed
from core.models import ChannelLink, ChannelRequest, ChatThread, Company, Reply, Ticket, User
from core.replies import ChatOrigin, add_in_session
from core.results import TicketView, UserView
from core.sla_policy import SlaPolicy
from core.tickets.lifecycle import apply_status
from core.tickets.new_rows import (
    parameters,
    ticket_values,
    write_in_one_statement,
    write_step_by_step,
)
from core.tickets.shared import refresh_card
from core.validation import BODY_MAX, TITLE_MAX, single_line

log = logging.getLogger("core.channels")

DEFAULT_REACTION = "ticket"
# Consecutive top-level messages by one person within this time join the ticket they opened.
DEFAULT_GROUP_WINDOW = timedelta(minutes=2)
UNTITLED = "Message without text"


class Intake:
    MESSAGE = "message"
    REACTION = "reaction"
    OFF = "off"
    ALL = ("message", "reaction", "off")


@dataclass(frozen=True)
class LinkView:
    channel_id: str
    company_id: int
    company_name: str
    intake: str
    reaction: str


@dataclass(frozen=True)
class Intaken:
    """What a channel message or reaction did: opened a ticket, joined the one its author had
    just opened, or found the ticket it had already raised (a retry, a second reaction)."""

    ticket: TicketView
    opened: bool
    joined: bool = False


# ------------------------------------------------------------------------------ links


def _reaction_name(value: str | None) -> str:
    name = (value or DEFAULT_REACTION).strip().strip(":").lower()
    if not name or len(name) > 100 or any(c.isspace() or c == ":" for c in name):
        raise ValidationFailed(
            f"{value!r} is not an emoji name: write it like `ticket` or `:ticket:`.",
            field="reaction",
        )
    return name


RESERVED_REFUSAL = (
    "That is the staff (or manager) channel: internal notes and alerts are posted there, so it "
    "can never be a customer channel."
)


def _refuse_reserved(channel_id: str, reserved: Collection[str]) -> None:
    if channel_id in reserved:
        raise ValidationFailed(RESERVED_REFUSAL, field="channel")


async def _admin(session: AsyncSession, actor_id: int, action: str) -> Actor:
    actor = await load_actor(session, actor_id)
    require_role(actor, action, Role.ADMIN)
    return actor


def _link_view(link: ChannelLink, company: Company) -> LinkView:
    return LinkView(
        channel_id=link.channel_id,
        company_id=company.id,
        company_name=company.name,
        intake=link.intake,
        reaction=link.reaction,
    )


async def link_channel(
    core: Core,
    *,
    actor_id: int,
    channel_id: str,
    company: str,
    reserved: Collection[str],
    intake: str = Intake.MESSAGE,
    reaction: str | None = None,
) -> LinkView:
    """An admin links a channel to a company (or moves it to another company)."""
    mode = _intake(intake)
    emoji = _reaction_name(reaction)
    _refuse_reserved(channel_id, reserved)
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "channel.link")
        row = await company_named(session, company)
        link = await session.get(ChannelLink, channel_id, with_for_update=True)
        now = core.clock.now()
        previous = link.company_id if link is not None else None
        if link is None:
            link = ChannelLink(
                channel_id=channel_id,
                company_id=row.id,
                intake=mode,
                reaction=emoji,
                created_by_id=actor.id,
                created_at=now,
            )
            session.add(link)
        else:
            link.company_id, link.intake, link.reaction = row.id, mode, emoji
        audit.record(
            session,
            actor_id=actor.id,
            action="channel.linked",
            now=now,
            channel_id=channel_id,
            company_id=row.id,
            previous_company_id=previous,
            intake=mode,
            reaction=emoji,
        )
        await session.flush()
        return _link_view(link, row)


def _intake(value: str) -> str:
    mode = (value or "").strip().lower()
    if mode not in Intake.ALL:
        raise ValidationFailed(
            f"Intake is one of {', '.join(Intake.ALL)}, not {value!r}.", field="intake"
        )
    return mode


async def set_intake(
    core: Core, *, actor_id: int, channel_id: str, intake: str, reaction: str | None = None
) -> LinkView:
    """An admin changes how a linked channel takes requests (and the reaction that raises one)."""
    mode = _intake(intake)
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "channel.intake")
        link = await session.get(ChannelLink, channel_id, with_for_update=True)
        if link is None:
            raise ValidationFailed(
                "That channel is not linked to a company: `/ticket channel link <company>` first.",
                field="channel",
            )
        link.intake = mode
        if reaction is not None:
            link.reaction = _reaction_name(reaction)
        audit.record(
            session,
            actor_id=actor.id,
            action="channel.intake_changed",
            now=core.clock.now(),
            channel_id=channel_id,
            intake=mode,
            reaction=link.reaction,
        )
        company = await session.get(Company, link.company_id)
        assert company is not None
        return _link_view(link, company)


async def unlink_channel(core: Core, *, actor_id: int, channel_id: str) -> LinkView:
    """An admin unlinks a channel: it stops taking requests; its tickets stay as they are."""
    async with core.db.transaction() as session:
        actor = await _admin(session, actor_id, "channel.unlink")
        link = await session.get(ChannelLink, channel_id, with_for_update=True)
        if link is None:
            raise ValidationFailed("That channel is not linked to a company.", field="channel")
        company = await session.get(Company, link.company_id)
        assert company is not None
        view = _link_view(link, company)
        await session.delete(link)
        audit.record(
            session,
            actor_id=actor.id,
            action="channel.unlinked",
            now=core.clock.now(),
            channel_id=channel_id,
            company_id=company.id,
        )
        return view


async def list_links(core: Core, *, actor_id: int) -> list[LinkView]:
    """Every linked channel with its company (admins, who manage the links)."""
    async with core.db.transaction() as session:
        actor = await load_actor(session, actor_id)
        require_role(actor, "channel.list", Role.ADMIN)
        rows = await session.execute(
            select(ChannelLink, Company)
            .join(Company, Company.id == ChannelLink.company_id)
            .order_by(Company.name, ChannelLink.channel_id)
        )
        return [_link_view(link, company) for link, company in rows]


async def link_of(core: Core, *, channel_id: str) -> LinkView | None:
    """System read for routing: the channel's link, if it is linked."""
    async with core.db.transaction() as session:
        found = (
            await session.execute(
                select(ChannelLink, Company)
                .join(Company, Company.id == ChannelLink.company_id)
                .where(ChannelLink.channel_id == channel_id)
            )
        ).first()
        return _link_view(found[0], found[1]) if found else None


async def linked_among(core: Core, *, channel_ids: Collection[str]) -> set[str]:
    """Which of these channel ids are linked (the start-up check of the reserved channels)."""
    wanted = sorted({c for c in channel_ids if c})
    if not wanted:
        return set()
    async with core.db.transaction() as session:
        rows = await session.scalars(
            select(ChannelLink.channel_id).where(ChannelLink.channel_id.in_(wanted))
        )
        return set(rows)


async def linked_channel_ids(core: Core) -> set[str]:
    """Every linked channel (the delivery guard and the leak scan)."""
    async with core.db.transaction() as session:
        return set(await session.scalars(select(ChannelLink.channel_id)))


# ------------------------------------------------------------------------------ requests


def _title(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            line = " ".join(line.split())
            return line if len(line) <= TITLE_MAX else line[: TITLE_MAX - 1] + "…"
    return UNTITLED


def _description(text: str) -> str:
    text = text.strip()
    return text if len(text) <= BODY_MAX else text[: BODY_MAX - 1] + "…"


async def _existing(session: AsyncSession, channel_id: str, ts: str) -> ChannelRequest | None:
    return await session.get(ChannelRequest, (channel_id, ts))


async def _replay(core: Core, channel_id: str, ts: str) -> Intaken | None:
    async with core.db.transaction() as session:
        request = await _existing(session, channel_id, ts)
        if request is None:
            return None
        ticket = await session.get(Ticket, request.ticket_id)
        if ticket is None:
            return None
        return Intaken(ticket=await repository.ticket_view(session, ticket), opened=False)


async def message_request(
    core: Core,
    *,
    author_id: int,
    channel_id: str,
    ts: str,
    text: str,
    window: timedelta = DEFAULT_GROUP_WINDOW,
) -> Intaken | None:
    """A new top-level message in a channel: opens a ticket for the channel's company when
    the channel takes requests by message and the author is one of its customers (None
    otherwise: staff talking, a channel that is not linked or takes no messages). A message
    by the same person within `window` of their previous request joins that ticket. Once per
    message: a repeated delivery answers with the ticket the first one raised."""
    try:
        return await _message_request(core, author_id, channel_id, ts, text, window)
    except IntegrityError:
        replay = await _replay(core, channel_id, ts)
        if replay is None:
            raise
        return replay


async def _message_request(
    core: Core, author_id: int, channel_id: str, ts: str, text: str, window: timedelta
) -> Intaken | None:
    async with core.db.transaction() as session:
        link = await session.get(ChannelLink, channel_id)
        if link is None or link.intake != Intake.MESSAGE:
            return None
        actor = await actor_of(session, author_id, await session.get(User, author_id))
        if actor.is_staff:
            return None  # staff talking in the channel is not a request
        existing = await _existing(session, channel_id, ts)
        if existing is not None:
            earlier = await session.get(Ticket, existing.ticket_id)
            assert earlier is not None
            return Intaken(ticket=await repository.ticket_view(session, earlier), opened=False)
        now = core.clock.now()
        joined = await _join_previous(core, session, actor, channel_id, ts, text, window, now)
        if joined is not None:
            return joined
        ticket = await _open(
            core,
            session,
            creator=actor,
            customer=actor.user,
            company_id=link.company_id,
            shared=True,
            title=_title(text),
            description=_description(text),
            thread=ChatRef(channel_id, ts),
            now=now,
            details={"channel_id": channel_id, "via": "channel_message"},
        )
        return await _opened(session, ticket, channel_id, ts, author_id=actor.id, now=now)


async def _join_previous(
    core: Core,
    session: AsyncSession,
    actor: Actor,
    channel_id: str,
    ts: str,
    text: str,
    window: timedelta,
    now: datetime,
) -> Intaken | None:
    """The message joins its author's ticket when their request was the channel's latest
    and came less than `window` ago, and that ticket is still open to messages."""
    latest = await session.scalar(
        select(ChannelRequest)
        .where(ChannelRequest.channel_id == channel_id)
        .order_by(ChannelRequest.created_at.desc(), ChannelRequest.ts.desc())
        .limit(1)
    )
    if latest is None or latest.author_id != actor.id or now - latest.created_at > window:
        return None
    row = await session.scalar(
        select(Ticket).where(Ticket.id == latest.ticket_id).with_for_update(of=Ticket)
    )
    if row is None or row.deleted_at is not None or row.status == Status.CLOSED.value:
        return None
    if not text.strip():
        return None
    session.add(
        ChannelRequest(
            channel_id=channel_id,
            ts=ts,
            ticket_id=row.id,
            author_id=actor.id,
            opened=False,
            created_at=now,
        )
    )
    await add_in_session(
        core,
        session,
        actor,
        row,
        _description(text),
        False,
        ChatOrigin(Audience.CUSTOMER, channel_id, ts),
        f"message:{channel_id}:{ts}",
    )
    return Intaken(ticket=await repository.ticket_view(session, row), opened=False, joined=True)


async def reaction_request(
    core: Core,
    *,
    reactor_id: int,
    author_id: int,
    channel_id: str,
    ts: str,
    top_level: bool,
    reaction: str,
    text: str,
    link_back: str | None,
    reserved: Collection[str],
    default_reaction: str = DEFAULT_REACTION,
) -> Intaken | None:
    """Someone reacted to a message with an emoji: with the emoji that raises tickets (the
    channel's, or `default_reaction` where the channel is not linked), a ticket opens for the
    message's author, with the message as description and `link_back` to it. One ticket per
    message however many react; None when the reaction raises nothing (another emoji, intake
    off, a staff channel, a message by staff)."""
    if channel_id in reserved:
        return None
    try:
        return await _reaction_request(
            core,
            reactor_id,
            author_id,
            channel_id,
            ts,
            top_level,
            reaction,
            text,
            link_back,
            default_reaction,
        )
    except IntegrityError:
        replay = await _replay(core, channel_id, ts)
        if replay is None:
            raise
        return replay


async def _reaction_request(
    core: Core,
    reactor_id: int,
    author_id: int,
    channel_id: str,
    ts: str,
    top_level: bool,
    reaction: str,
    text: str,
    link_back: str | None,
    default_reaction: str,
) -> Intaken | None:
    async with core.db.transaction() as session:
        link = await session.get(ChannelLink, channel_id)
        wanted = link.reaction if link is not None else default_reaction
        if reaction.strip(":").lower() != wanted or (link and link.intake == Intake.OFF):
            return None
        reactor = await actor_of(session, reactor_id, await session.get(User, reactor_id))
        author_row = await session.get(User, author_id)
        if author_row is None or not author_row.can_act or author_row.role != Role.CUSTOMER.value:
            log.info("reaction on a message by someone who is not a customer")
            return None
        may_raise = (
            reactor.is_staff
            or reactor.id == author_row.id
            or (
                link is not None
                and reactor.user.company_id is not None
                and reactor.user.company_id == link.company_id
            )
        )
        if not may_raise:
            log.info("reaction by someone who may not raise a ticket for the author")
            return None
        existing = await _existing(session, channel_id, ts)
        if existing is not None:
            earlier = await session.get(Ticket, existing.ticket_id)
            assert earlier is not None
            return Intaken(ticket=await repository.ticket_view(session, earlier), opened=False)
        now = core.clock.now()
        description = _description(text)
        if link_back:
            description = _description(f"{text.strip()}\n\nFrom the conversation: {link_back}")
        ticket = await _open(
            core,
            session,
            creator=reactor,
            customer=author_row,
            company_id=link.company_id if link is not None else author_row.company_id,
            shared=link is not None,
            title=_title(text),
            description=description,
            thread=ChatRef(channel_id, ts) if top_level else None,
            now=now,
            details={"channel_id": channel_id, "via": "reaction", "reaction": reaction},
        )
        return await _opened(session, ticket, channel_id, ts, author_id=author_row.id, now=now)


async def _opened(
    session: AsyncSession,
    ticket: TicketView,
    channel_id: str,
    ts: str,
    *,
    author_id: int,
    now: datetime,
) -> Intaken:
    """Record that the message (channel_id, ts) opened `ticket`: one ticket per message."""
    session.add(
        ChannelRequest(
            channel_id=channel_id,
            ts=ts,
            ticket_id=ticket.id,
            author_id=author_id,
            opened=True,
            created_at=now,
        )
    )
    await session.flush()
    return Intaken(ticket=ticket, opened=True)


async def _open(
    core: Core,
    session: AsyncSession,
    *,
    creator: Actor,
    customer: User,
    company_id: int | None,
    shared: bool,
    title: str,
    description: str,
    thread: ChatRef | None,
    now: datetime,
    details: dict[str, Any],
) -> TicketView:
    """Write a new ticket's rows as core.tickets.create does (the same rows, counted against
    the creator's limit), shared with its company when raised in a linked channel, with its
    customer conversation in the thread of the message that raised it."""
    level = Priority.MEDIUM
    warning_at, breach_at = SlaPolicy(core.settings).deadlines(level, now)
    ticket_id = uuid.uuid4()
    params = parameters(
        ticket_id=ticket_id,
        actor_id=creator.id,
        title=single_line(title, field="title", max_length=TITLE_MAX),
        description=description,
        priority=level.value,
        category_id=None,
        customer_id=customer.id,
        company_id=company_id,
        now=now,
        warning_at=warning_at,
        breach_at=breach_at,
        idempotency_key=None,
        details={"customer_id": customer.id, "priority": level.value, **details},
    )
    if core.db.dialect == "postgresql":
        number = await write_in_one_statement(core, session, params)
    else:
        number = await write_step_by_step(core, session, params)
    if shared:
        await session.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(shared_with_company=True)
        )
    if thread is not None:
        taken = await session.scalar(
            select(ChatThread.ticket_id).where(
                ChatThread.channel_id == thread.channel_id, ChatThread.ts == thread.ts
            )
        )
        if taken is not None:
            raise Conflict("That message already carries a ticket's conversation.")
        chat.link_thread(session, ticket_id=ticket_id, audience=Audience.CUSTOMER, ref=thread)
    log.info(
        "ticket raised in a channel",
        extra={"actor_id": creator.id, "ticket": number, "customer_id": customer.id},
    )
    ticket = Ticket(number=number, **ticket_values(params))
    ticket.shared_with_company = shared
    return repository.view_of(ticket, customer=customer, assignee=None, category_name=None)


# ------------------------------------------------------------------------------ edits


def _unanswered(row: Ticket, replies: int) -> bool:
    return (
        row.deleted_at is None
        and row.first_response_at is None
        and row.status == Status.OPEN.value
        and replies == 0
    )


async def request_edited(
    core: Core, *, author_id: int, channel_id: str, ts: str, text: str
) -> TicketView | None:
    """The author edited the message that opened a ticket: before anyone answered, the
    ticket's title and description follow (None: not a request, or already answered)."""
    async with core.db.transaction() as session:
        request = await _existing(session, channel_id, ts)
        if request is None or not request.opened or request.author_id != author_id:
            return None
        actor = await load_actor(session, author_id)
        row = await session.scalar(
            select(Ticket).where(Ticket.id == request.ticket_id).with_for_update(of=Ticket)
        )
        if row is None or not _unanswered(row, await _staff_replies(session, row)):
            return None
        now = core.clock.now()
        row.title = single_line(_title(text), field="title", max_length=TITLE_MAX)
        row.description = _description(text)
        row.updated_at = now
        audit.record(
            session,
            actor_id=actor.id,
            action="ticket.updated",
            ticket_id=row.id,
            now=now,
            fields=["title", "description"],
            via="channel_message_edited",
        )
        refresh_card(session, row, now)
        return await repository.ticket_view(session, row)


async def request_deleted(
    core: Core, *, author_id: int, channel_id: str, ts: str
) -> TicketView | None:
    """The author deleted the message that opened a ticket: before anyone answered, the
    ticket is withdrawn (closed by them, with the reason). None: not a request, or answered."""
    async with core.db.transaction() as session:
        request = await _existing(session, channel_id, ts)
        if request is None or not request.opened or request.author_id != author_id:
            return None
        actor = await load_actor(session, author_id)
        row = await session.scalar(
            select(Ticket).where(Ticket.id == request.ticket_id).with_for_update(of=Ticket)
        )
        if row is None or not _unanswered(row, await _staff_replies(session, row)):
            return None
        await apply_status(
            core,
            session,
            row,
            Status.CLOSED,
            reason="Withdrawn: the request was deleted before anyone answered",
            actor=actor,
            now=core.clock.now(),
        )
        return await repository.ticket_view(session, row)


async def _staff_replies(session: AsyncSession, row: Ticket) -> int:
    """Messages on the ticket by anyone but its customer (answers, notes)."""
    found = await session.scalars(
        select(Reply.id).where(Reply.ticket_id == row.id, Reply.author_id != row.customer_id)
    )
    return len(list(found))


__all__ = [
    "DEFAULT_GROUP_WINDOW",
    "DEFAULT_REACTION",
    "Intake",
    "Intaken",
    "LinkView",
    "link_channel",
    "link_of",
    "linked_among",
    "linked_channel_ids",
    "list_links",
    "message_request",
    "reaction_request",
    "request_deleted",
    "request_edited",
    "set_intake",
    "unlink_channel",
]


# ------------------------------------------------------------------------------ Slack Connect


async def provision_guest(
    core: Core,
    *,
    channel_id: str | None,
    slack_user_id: str,
    team_id: str,
    display_name: str,
    email: str | None,
    chat_account_deleted: bool = False,
) -> UserView:
    """A person of another organisation (Slack Connect) who writes in a customer channel:
    created or refreshed from their chat profile as a customer of the channel's company,
    whatever their email says. Outside a linked channel (`channel_id` None or not linked)
    only someone already provisioned is recognised, never created; Forbidden otherwise."""
    name = single_line(display_name or slack_user_id, field="name", max_length=200)
    email = (email or "").strip()[:320] or None
    try:
        return await _provision_guest(
            core, channel_id, slack_user_id, team_id, name, email, chat_account_deleted
        )
    except IntegrityError:
        return await _provision_guest(
            core, channel_id, slack_user_id, team_id, name, email, chat_account_deleted
        )


async def _provision_guest(
    core: Core,
    channel_id: str | None,
    slack_user_id: str,
    team_id: str,
    name: str,
    email: str | None,
    chat_account_deleted: bool,
) -> UserView:
    async with core.db.transaction() as session:
        link = await session.get(ChannelLink, channel_id) if channel_id else None
        user = await session.scalar(
            select(User).where(User.slack_user_id == slack_user_id).with_for_update()
        )
        if link is None and (user is None or user.chat_team_id is None):
            raise Forbidden(GUEST_REFUSAL)
        now = core.clock.now()
        if user is None:
            assert link is not None
            user = User(
                slack_user_id=slack_user_id,
                display_name=name,
                email=email,
                role=Role.CUSTOMER.value,
                company_id=link.company_id,
                chat_team_id=team_id,
                is_active=True,
                chat_account_deleted=chat_account_deleted,
                created_at=now,
                updated_at=now,
            )
            session.add(user)
            await session.flush()
            audit.record(
                session,
                actor_id=None,
                action="user.provisioned",
                now=now,
                user_id=user.id,
                chat_team_id=team_id,
                company_id=link.company_id,
                channel_id=channel_id,
            )
            return repository.user_view(user)
        if (user.display_name, user.email, user.chat_team_id) != (name, email, team_id):
            user.display_name, user.email, user.chat_team_id = name, email, team_id
            user.updated_at = now
        if user.company_id is None and link is not None:
            user.company_id = link.company_id
            user.updated_at = now
        if chat_account_deleted != user.chat_account_deleted:
            user.chat_account_deleted = chat_account_deleted
        if user.role != Role.CUSTOMER.value:
            # Someone of another organisation is never staff, whatever was recorded.
            log.warning("guest with a staff role refused", extra={"user_id": user.id})
            raise Forbidden(GUEST_REFUSAL)
        if link is None:
            # Known, but writing outside the customer channels: refused there, as before.
            raise Forbidden(GUEST_REFUSAL)
        return repository.user_view(user)


async def guest_known(core: Core, *, slack_user_id: str) -> UserView | None:
    """A person of another organisation already served in a customer channel (their forms
    carry no channel), as a customer; None for anyone else."""
    async with core.db.transaction() as session:
        user = await session.scalar(select(User).where(User.slack_user_id == slack_user_id))
        if user is None or user.chat_team_id is None or user.role != Role.CUSTOMER.value:
            return None
        return repository.user_view(user)


GUEST_REFUSAL = (
    "The support desk only serves members of this workspace here: ask in your company's "
    "shared support channel."
)
