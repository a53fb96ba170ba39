"""`/ticket`: parse the text, call one core service, answer ephemerally."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import command_parser as cp
from bot import markup
from bot.blocks import audit as audit_blocks
from bot.blocks import messages, modals
from bot.blocks.text import escape, single_line
from bot.ids import COMMAND
from bot.incoming import read_typed
from bot.listeners import desk
from bot.listeners.common import resolve_user
from bot.listeners.registry import Registry
from bot.payloads import CreateTicketPayload
from bot.runtime import Runtime
from core import admin, audit_log, chat, replies, search, sla, tickets
from core.enums import Role
from core.errors import ValidationFailed
from core.results import UserView

log = logging.getLogger("bot.commands")

# Audit entries per `/ticket audit` answer (one section each, within a message's 50 blocks).
AUDIT_ITEMS = 20


def register(app: AsyncApp, runtime: Runtime, registry: Registry) -> None:
    registry.commands.add(COMMAND)

    @app.command(COMMAND)
    @runtime.supervise
    async def ticket_command(
        ack: AsyncAck,
        command: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        actor_lookup: Awaitable[UserView],
    ) -> None:
        await ack()
        # Who is asking, read fresh while the ack went out (a refusal is reported like any
        # other error).
        actor = await actor_lookup
        trigger = command.get("trigger_id")
        if not isinstance(trigger, str) or not trigger or not _is_url(command.get("response_url")):
            # Slack always sends both; without them there is no reply path and no retry key.
            raise ValidationFailed("This command arrived incomplete; please run it again.")
        if not await chat.claim_delivery(runtime.core, key=f"command:{trigger}"):
            log.info("duplicate command delivery dropped")
            return
        parsed = cp.parse(command.get("text", ""))
        handler = HANDLERS[type(parsed)]
        await handler(runtime, parsed, actor=actor, command=command, respond=respond, client=client)


def _name(user: UserView) -> str:
    """A display name (from the person's Slack profile: any text) for mrkdwn."""
    return escape(single_line(user.display_name))


def _is_url(value: object) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is not None and parts.scheme in ("https", "http") and bool(parts.netloc)


async def _say(
    respond: AsyncRespond, text: str, blocks: list[dict[str, Any]] | None = None
) -> None:
    await respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)


async def _help(
    runtime: Runtime, cmd: cp.Help, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    text = messages.help_text(
        staff=actor.role.is_staff,
        admin=actor.role is Role.ADMIN,
        manager=actor.role is Role.MANAGER,
    )
    await _say(respond, text)


async def _new(
    runtime: Runtime,
    cmd: cp.New,
    *,
    actor: UserView,
    command: dict[str, Any],
    client: AsyncWebClient,
    **_: Any,
) -> None:
    # The trigger expires 3 s after the command: open the modal before anything slow.
    categories = await admin.list_categories(runtime.core)
    view = modals.create_ticket_modal(
        categories=categories,
        title=markup.translate(cmd.title)[:150],  # no lookups: the trigger is short-lived
        staff=actor.role.is_staff,
        metadata=CreateTicketPayload(channel_id=command.get("channel_id")),
    )
    await client.views_open(trigger_id=command["trigger_id"], view=view)


async def _list(
    runtime: Runtime, cmd: cp.ListTickets, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    page = await tickets.list_tickets(
        runtime.core, actor_id=actor.id, filters=cmd.filters, page=cmd.page
    )
    label = messages.filters_label(cmd.filters)
    title = "Tickets" + (f" ({label})" if label else "")
    await _say(
        respond,
        f"{page.total} tickets",
        messages.ticket_list(page, title=title, filters=cmd.filters),
    )


async def _mine(
    runtime: Runtime, cmd: cp.Mine, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    page = await tickets.my_tickets(runtime.core, actor_id=actor.id, page=cmd.page)
    title = "Your queue" if actor.role.is_staff else "Your tickets"
    await _say(
        respond, f"{page.total} tickets", messages.ticket_list(page, title=title, query="mine")
    )


async def _show(
    runtime: Runtime, cmd: cp.Show, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    detail = await tickets.get_ticket(runtime.core, actor_id=actor.id, ticket=cmd.number)
    blocks = messages.ticket_detail(detail, staff=actor.role.is_staff, viewer_id=actor.id)
    await _say(respond, f"Ticket #{detail.ticket.number}", blocks)


async def _search(
    runtime: Runtime, cmd: cp.Search, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    query = markup.translate(cmd.text)
    page = await search.search_tickets(runtime.core, actor_id=actor.id, query=query, page=cmd.page)
    await _say(
        respond,
        f"{page.total}{'+' if page.capped else ''} results",
        messages.search_results(page, text=query, query=f"search {cmd.text}"),
    )


async def _assign(
    runtime: Runtime, cmd: cp.Assign, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    target = await resolve_user(runtime, cmd.user_id)
    ticket = await tickets.assign_ticket(
        runtime.core, actor_id=actor.id, ticket=cmd.number, assignee_id=target.id
    )
    runtime.wake_outbox()
    await _say(
        respond, f":white_check_mark: Ticket #{ticket.number} is assigned to {_name(target)}."
    )


async def _status(
    runtime: Runtime, cmd: cp.SetStatus, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    try:
        ticket = await tickets.change_status(
            runtime.core,
            actor_id=actor.id,
            ticket=cmd.number,
            status=cmd.status,
            reason=None if cmd.reason is None else await read_typed(runtime, cmd.reason),
        )
    except ValidationFailed as error:
        if error.field != "reason" or cmd.reason is not None:
            raise
        # The core's rule (closing needs a reason), with how to write the command that meets it.
        usage = f"/ticket close {cmd.number} <reason>"
        raise cp.UsageError(f"{error.message} Usage: `{usage}`", field="reason") from None
    runtime.wake_outbox()
    label = ticket.status.value.replace("_", " ")
    await _say(respond, f":white_check_mark: Ticket #{ticket.number} is now {label}.")


async def _reply(
    runtime: Runtime,
    cmd: cp.Reply,
    *,
    actor: UserView,
    command: dict[str, Any],
    respond: AsyncRespond,
    **_: Any,
) -> None:
    key = f"command:{command.get('trigger_id')}:reply" if command.get("trigger_id") else None
    await replies.add_reply(
        runtime.core,
        actor_id=actor.id,
        ticket=cmd.number,
        body=await read_typed(runtime, cmd.text),
        internal=cmd.internal,
        idempotency_key=key,
    )
    runtime.wake_outbox()
    what = "Internal note added to" if cmd.internal else "Reply sent on"
    await _say(respond, f":white_check_mark: {what} ticket #{cmd.number}.")


async def _delete(
    runtime: Runtime, cmd: cp.Delete, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    await tickets.delete_ticket(runtime.core, actor_id=actor.id, ticket=cmd.number)
    runtime.wake_outbox()
    await _say(respond, f":wastebasket: Ticket #{cmd.number} was deleted.")


async def _role(
    runtime: Runtime, cmd: cp.SetRole, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    target = await resolve_user(runtime, cmd.user_id)
    changed = await admin.change_role(
        runtime.core, actor_id=actor.id, user_id=target.id, role=cmd.role
    )
    text = f":white_check_mark: {_name(changed)} is now {changed.role.value}."
    if not changed.role.is_staff:
        staff = runtime.settings.staff_channel_id
        text += (
            f" Tickets they can no longer hold were unassigned. If they are in <#{staff}>, remove "
            "them from it: internal notes are posted there."
        )
    await _say(respond, text)


async def _category_add(
    runtime: Runtime, cmd: cp.CategoryAdd, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    category = await admin.create_category(runtime.core, actor_id=actor.id, name=cmd.name)
    await _say(respond, f":white_check_mark: Category {escape(category.name)} added.")


async def _category_list(
    runtime: Runtime, cmd: cp.CategoryList, *, respond: AsyncRespond, **_: Any
) -> None:
    categories = await admin.list_categories(runtime.core)
    names = (
        ", ".join(escape(c.name) for c in categories)
        or "none yet (an admin adds them with `/ticket category add <name>`)"
    )
    await _say(respond, f"Categories: {names}")


async def _category_deactivate(
    runtime: Runtime,
    cmd: cp.CategoryDeactivate,
    *,
    actor: UserView,
    respond: AsyncRespond,
    **_: Any,
) -> None:
    category = await admin.deactivate_category(runtime.core, actor_id=actor.id, name=cmd.name)
    await _say(
        respond,
        f":white_check_mark: Category {escape(category.name)} is deactivated: tickets keep it, "
        "new tickets cannot choose it.",
    )


async def _priority(
    runtime: Runtime, cmd: cp.SetPriority, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    ticket = await tickets.change_priority(
        runtime.core, actor_id=actor.id, ticket=cmd.number, priority=cmd.priority
    )
    runtime.wake_outbox()
    await _say(
        respond, f":white_check_mark: Ticket #{ticket.number} is now {ticket.priority.value}."
    )


async def _active(
    runtime: Runtime, cmd: cp.SetActive, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    target = await resolve_user(runtime, cmd.user_id)
    changed = await admin.set_active(
        runtime.core, actor_id=actor.id, user_id=target.id, active=cmd.active
    )
    runtime.wake_outbox()
    if changed.is_active:
        text = f":white_check_mark: {_name(changed)} is active again."
    else:
        text = (
            f":white_check_mark: {_name(changed)} is deactivated: they can no longer use the "
            "desk, and the tickets assigned to them were unassigned."
        )
    await _say(respond, text)


async def _sla(
    runtime: Runtime, cmd: cp.Sla, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    rows = await sla.at_risk(runtime.core, actor_id=actor.id)
    await _say(respond, "SLA overview", messages.sla_overview(rows, now=runtime.clock.now()))


async def _audit(
    runtime: Runtime, cmd: cp.AuditLog, *, actor: UserView, respond: AsyncRespond, **_: Any
) -> None:
    entries = await audit_log.read_audit_log(
        runtime.core,
        actor_id=actor.id,
        filters=audit_log.AuditFilters(ticket_number=cmd.number),
        page=cmd.page,
        page_size=AUDIT_ITEMS,
    )
    await _say(respond, *audit_blocks.audit_message(entries, ticket_number=cmd.number))


HANDLERS: dict[type, Any] = {
    cp.Help: _help,
    cp.New: _new,
    cp.ListTickets: _list,
    cp.Mine: _mine,
    cp.Show: _show,
    cp.Search: _search,
    cp.Assign: _assign,
    cp.SetStatus: _status,
    cp.Reply: _reply,
    cp.Delete: _delete,
    cp.SetRole: _role,
    cp.CategoryAdd: _category_add,
    cp.CategoryList: _category_list,
    cp.CategoryDeactivate: _category_deactivate,
    cp.SetPriority: _priority,
    cp.SetActive: _active,
    cp.Sla: _sla,
    cp.AuditLog: _audit,
}
HANDLERS.update(desk.HANDLERS)
