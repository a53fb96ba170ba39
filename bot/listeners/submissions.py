"""Modal submissions: validated by the core before the ack, so errors show under the field."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import notify
from bot.blocks import modals
from bot.blocks.text import escape, single_line
from bot.errors import Place, Surface, show_error
from bot.ids import Action, Block, Callback, Visibility
from bot.listeners.common import input_value, resolve_user, view_values
from bot.listeners.registry import Registry
from bot.payloads import (
    CreateTicketPayload,
    EditReplyPayload,
    EditTicketPayload,
    ReplyModalPayload,
    TicketRefPayload,
)
from bot.runtime import Runtime
from core import replies, tickets
from core.errors import DomainError, ValidationFailed
from core.results import UserView

Submission = Callable[[dict[str, Any], UserView], Awaitable[str | None]]


def _submission(runtime: Runtime, handler: Submission) -> Callable[..., Awaitable[None]]:
    """Run a submission handler before acking: what goes wrong is answered in the modal (see
    bot.errors.Surface.SUBMISSION), so the person keeps what they typed."""

    @runtime.supervise
    async def listener(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], actor: UserView
    ) -> None:
        try:
            notice = await handler(view, actor)
        except Exception as error:
            place = Place(Surface.SUBMISSION, user_id=actor.slack_user_id, ack=ack, view=view)
            await show_error(runtime, error, place)
            return
        await ack()
        runtime.wake_outbox()
        if notice:
            await notify.tell_user(runtime, user_id=actor.slack_user_id, text=notice)

    listener.__name__ = handler.__name__
    return listener


def _meant_internal(payload: ReplyModalPayload, values: dict[str, dict[str, Any]]) -> bool:
    """What the person meant, from the form they were shown, never from their role: on the
    staff form only an explicit "reply to customer" is public (mistakes fail towards
    internal); the customer form only replies. The core then decides whether they may."""
    staff_form = payload.staff_form
    if staff_form is None:
        staff_form = Block.VISIBILITY.value in values
    if not staff_form:
        return False
    choice = input_value(values, Block.VISIBILITY, Action.VISIBILITY)
    return bool(choice != Visibility.PUBLIC.value)


def _category_id(picked: object) -> int | None:
    """The category chosen in a form (None: none chosen)."""
    try:
        return int(str(picked)) if picked else None
    except ValueError:
        raise ValidationFailed("That category does not exist.", field="category") from None


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.views.update(
        {
            Callback.CREATE_TICKET,
            Callback.REPLY,
            Callback.STATUS,
            Callback.ASSIGN,
            Callback.EDIT_REPLY,
            Callback.EDIT_TICKET,
        }
    )

    async def create(view: dict[str, Any], actor: UserView) -> str | None:
        metadata = CreateTicketPayload.parse(view.get("private_metadata") or "{}")
        values = view_values(view)
        customer_id = None
        picked = input_value(values, Block.CUSTOMER, Action.CUSTOMER)
        if actor.role.is_staff:
            if not picked:
                raise ValidationFailed("Choose the customer this ticket is for.", field="customer")
            try:
                customer_id = (await resolve_user(runtime, str(picked))).id
            except DomainError as error:
                # A bot, an unknown or foreign user: say so under the customer picker.
                raise ValidationFailed(error.message, field="customer") from None
        category_id = _category_id(input_value(values, Block.CATEGORY, Action.CATEGORY))
        ticket = await tickets.create_ticket(
            runtime.core,
            actor_id=actor.id,
            title=input_value(values, Block.TITLE, Action.TITLE) or "",
            description=input_value(values, Block.DESCRIPTION, Action.DESCRIPTION) or "",
            priority=input_value(values, Block.PRIORITY, Action.PRIORITY) or "medium",
            category_id=category_id,
            customer_id=customer_id,
            idempotency_key=f"view:{view.get('id')}" if view.get("id") else None,
            copied_from_staff=bool(metadata.copied_from_staff),
            customer_may_see_confirmed=modals.customer_may_see_confirmed(values),
        )
        if actor.role.is_staff:
            who = escape(single_line(ticket.customer.display_name))
            return f":white_check_mark: Ticket #{ticket.number} opened for {who}."
        return None

    async def reply(view: dict[str, Any], actor: UserView) -> str | None:
        payload = ReplyModalPayload.parse(view.get("private_metadata"))
        values = view_values(view)
        internal = _meant_internal(payload, values)
        await replies.add_reply(
            runtime.core,
            actor_id=actor.id,
            ticket=payload.ticket_id,
            body=input_value(values, Block.BODY, Action.BODY) or "",
            internal=internal,
            idempotency_key=f"view:{view.get('id')}" if view.get("id") else None,
        )
        return None

    async def status(view: dict[str, Any], actor: UserView) -> str | None:
        payload = TicketRefPayload.parse(view.get("private_metadata"))
        values = view_values(view)
        raw = input_value(values, Block.STATUS, Action.STATUS)
        reason = input_value(values, Block.REASON, Action.REASON)
        await tickets.change_status(
            runtime.core,
            actor_id=actor.id,
            ticket=payload.ticket_id,
            status=raw or "",
            reason=reason,
        )
        return None

    async def assign(view: dict[str, Any], actor: UserView) -> str | None:
        payload = TicketRefPayload.parse(view.get("private_metadata"))
        picked = input_value(view_values(view), Block.ASSIGNEE, Action.ASSIGNEE)
        if not picked:
            raise ValidationFailed("Choose someone to assign.", field="assignee")
        try:
            target = await resolve_user(runtime, str(picked))
        except DomainError as error:
            raise ValidationFailed(error.message, field="assignee") from None
        await tickets.assign_ticket(
            runtime.core,
            actor_id=actor.id,
            ticket=payload.ticket_id,
            assignee_id=target.id,
        )
        return None

    async def edit(view: dict[str, Any], actor: UserView) -> str | None:
        payload = EditReplyPayload.parse(view.get("private_metadata"))
        await replies.edit_reply(
            runtime.core,
            actor_id=actor.id,
            reply_id=payload.reply_id,
            body=input_value(view_values(view), Block.BODY, Action.BODY) or "",
        )
        return None

    async def edit_ticket(view: dict[str, Any], actor: UserView) -> str | None:
        payload = EditTicketPayload.parse(view.get("private_metadata"))
        values = view_values(view)
        # The priority only from the staff form; the core refuses it from anyone not staff.
        priority = (
            input_value(values, Block.PRIORITY, Action.PRIORITY) if payload.staff_form else None
        )
        await tickets.update_ticket(
            runtime.core,
            actor_id=actor.id,
            ticket=payload.ticket_id,
            title=input_value(values, Block.TITLE, Action.TITLE) or "",
            description=input_value(values, Block.DESCRIPTION, Action.DESCRIPTION) or "",
            category_id=_category_id(input_value(values, Block.CATEGORY, Action.CATEGORY)),
            priority=priority or None,
        )
        return None

    app.view(Callback.CREATE_TICKET.value)(_submission(runtime, create))
    app.view(Callback.REPLY.value)(_submission(runtime, reply))
    app.view(Callback.STATUS.value)(_submission(runtime, status))
    app.view(Callback.ASSIGN.value)(_submission(runtime, assign))
    app.view(Callback.EDIT_REPLY.value)(_submission(runtime, edit))
    app.view(Callback.EDIT_TICKET.value)(_submission(runtime, edit_ticket))
