"""Buttons: on ticket cards, lists and the App Home."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import command_parser as cp
from bot.blocks import messages, modals
from bot.ids import Action
from bot.listeners.commands import HANDLERS
from bot.listeners.registry import Registry
from bot.payloads import (
    CreateTicketPayload,
    EditReplyPayload,
    ListPagePayload,
    TicketRefPayload,
)
from bot.runtime import Runtime
from core import admin, chat, replies, tickets
from core.access import TicketRef
from core.results import UserView

log = logging.getLogger("bot.actions")


def _value(body: dict[str, Any]) -> Any:
    actions = body.get("actions") or [{}]
    return actions[0].get("value") if isinstance(actions[0], dict) else None


def _action_id(body: dict[str, Any]) -> str | None:
    actions = body.get("actions") or [{}]
    return actions[0].get("action_id") if isinstance(actions[0], dict) else None


async def _ticket_for(runtime: Runtime, actor: UserView, body: dict[str, Any]) -> Any:
    """The ticket a button names, loaded with the real actor's permissions."""
    ref: TicketRef = TicketRefPayload.parse(_value(body)).ticket_id
    return (await tickets.get_ticket(runtime.core, actor_id=actor.id, ticket=ref)).ticket


async def _first_delivery(runtime: Runtime, body: dict[str, Any]) -> bool:
    """Claim a click by its trigger_id; False for the same click delivered again (a retry,
    maybe to another replica), which must not open a second modal or answer twice."""
    trigger = body.get("trigger_id")
    if not isinstance(trigger, str) or not trigger:
        return True
    if await chat.claim_delivery(runtime.core, key=f"action:{trigger}"):
        return True
    log.info("duplicate action delivery dropped")
    return False


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.actions.update(
        {
            Action.ASSIGN_TO_ME,
            Action.ASSIGN_OPEN,
            Action.STATUS_OPEN,
            Action.REPLY_OPEN,
            Action.NOTE_OPEN,
            Action.SHOW_TICKET,
            Action.EDIT_REPLY_OPEN,
            Action.EDIT_TICKET_OPEN,
            Action.HOME_NEW_TICKET,
            Action.PAGE,
        }
    )

    @app.action(Action.ASSIGN_TO_ME.value)
    @runtime.supervise
    async def assign_to_me(ack: AsyncAck, body: dict[str, Any], actor: UserView) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ref = TicketRefPayload.parse(_value(body)).ticket_id
        await tickets.assign_ticket(
            runtime.core, actor_id=actor.id, ticket=ref, assignee_id=actor.id
        )
        runtime.wake_outbox()

    @app.action(Action.ASSIGN_OPEN.value)
    @runtime.supervise
    async def open_assign(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ticket = await _ticket_for(runtime, actor, body)
        await client.views_open(trigger_id=body["trigger_id"], view=modals.assign_modal(ticket))

    @app.action(Action.STATUS_OPEN.value)
    @runtime.supervise
    async def open_status(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ref: TicketRef = TicketRefPayload.parse(_value(body)).ticket_id
        # The core offers what it would accept: the same rules change_status enforces.
        choices = await tickets.allowed_transitions(runtime.core, actor_id=actor.id, ticket=ref)
        view = modals.status_modal(
            choices.ticket, allowed=choices.targets, reason_required=choices.reason_required
        )
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(Action.REPLY_OPEN.value)
    @app.action(Action.NOTE_OPEN.value)
    @runtime.supervise
    async def open_reply(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        """Both card buttons open the same form, with "internal note" preselected: reaching the
        customer always takes an explicit choice."""
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ref: TicketRef = TicketRefPayload.parse(_value(body)).ticket_id
        # The button says what the person means; the core says, on fresh rows, what they may.
        composer = await replies.open_composer(
            runtime.core, actor_id=actor.id, ticket=ref, note=_action_id(body) == Action.NOTE_OPEN
        )
        view = modals.reply_modal(composer.ticket, staff=composer.staff_form, internal_default=True)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(Action.SHOW_TICKET.value)
    @runtime.supervise
    async def show_ticket(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        actor: UserView,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ref = TicketRefPayload.parse(_value(body)).ticket_id
        detail = await tickets.get_ticket(runtime.core, actor_id=actor.id, ticket=ref)
        blocks = messages.ticket_detail(detail, staff=actor.role.is_staff, viewer_id=actor.id)
        if body.get("response_url") or body.get("container", {}).get("type") == "message":
            await respond(
                text=f"Ticket #{detail.ticket.number}",
                blocks=blocks,
                response_type="ephemeral",
                replace_original=False,
            )
        else:
            await client.views_open(
                trigger_id=body["trigger_id"],
                view=modals.message_view(f"Ticket #{detail.ticket.number}", blocks[:100]),
            )

    @app.action(Action.EDIT_REPLY_OPEN.value)
    @runtime.supervise
    async def open_edit(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        payload = EditReplyPayload.parse(_value(body))
        draft = await replies.reply_to_edit(
            runtime.core,
            actor_id=actor.id,
            reply_id=payload.reply_id,
        )
        view = modals.edit_reply_modal(draft.reply, history=draft.history)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(Action.EDIT_TICKET_OPEN.value)
    @runtime.supervise
    async def open_edit_ticket(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        """The edit form, with the priority for staff; the core decides on submit what this
        person may change."""
        await ack()
        if not await _first_delivery(runtime, body):
            return
        ticket = await _ticket_for(runtime, actor, body)
        categories = await admin.list_categories(runtime.core)
        view = modals.edit_ticket_modal(ticket, categories=categories, staff=actor.role.is_staff)
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(Action.HOME_NEW_TICKET.value)
    @runtime.supervise
    async def home_new_ticket(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, actor: UserView
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        categories = await admin.list_categories(runtime.core)
        view = modals.create_ticket_modal(
            categories=categories, staff=actor.role.is_staff, metadata=CreateTicketPayload()
        )
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(Action.PAGE.value)
    @runtime.supervise
    async def page(
        ack: AsyncAck,
        body: dict[str, Any],
        respond: AsyncRespond,
        actor: UserView,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        if not await _first_delivery(runtime, body):
            return
        payload = ListPagePayload.parse(_value(body))
        parsed: cp.Command
        if payload.filters is not None:  # a `/ticket list` page: its filters, typed
            parsed = cp.ListTickets(filters=payload.filters.filters(), page=payload.page)
        else:  # `mine`, a search (or a list button sent before filters were typed)
            parsed = cp.parse(f"{payload.query} page {payload.page}")
        handler = HANDLERS[type(parsed)]
        await handler(runtime, parsed, actor=actor, command={}, respond=respond, client=client)
