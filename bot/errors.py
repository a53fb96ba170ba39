"""Errors in one place: what a person is shown when something they did is refused or fails,
where they are shown it, and which errors must go on (`show_error`), with the texts.

Every listener, the actor middleware and bolt's @app.error handler hand their errors to
`show_error` with the `Place` the error happened at; none of them words or routes a refusal."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from bot import notify
from bot.blocks import messages
from bot.blocks.text import escape
from bot.ids import FIELD_BLOCKS
from core import chat
from core.errors import DomainError, ErrorCode, RateLimited, TicketClosed, Unavailable

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncBoltContext
    from slack_bolt.context.respond.async_respond import AsyncRespond

    from bot.runtime import Runtime

log = logging.getLogger("bot.errors")

INTERNAL_ERROR = (
    "Something went wrong on our side and nothing was changed. "
    "Please try again; if it keeps happening, tell your support admins."
)

_PREFIX = {
    ErrorCode.NOT_FOUND: ":mag:",
    ErrorCode.FORBIDDEN: ":no_entry:",
    ErrorCode.RATE_LIMITED: ":hourglass:",
    ErrorCode.UNAVAILABLE: ":hourglass:",
}


def user_message(error: BaseException) -> str:
    """The text to show the user: the domain message with its stable code, or a generic one."""
    if isinstance(error, DomainError):
        prefix = _PREFIX.get(error.code, ":warning:")
        # Messages may quote what the user typed (an unknown command, a category name): it is
        # escaped like any user text, so it can never ping, link or break the formatting.
        return f"{prefix} {escape(error.message)} (`{error.code.value}`)"
    return f":warning: {INTERNAL_ERROR} (`INTERNAL`)"


def field_errors(error: DomainError, view: dict[str, Any]) -> dict[str, str]:
    """Map a domain error onto the modal's input blocks for `response_action: errors`.

    Errors without a field (or whose field is not in this view) are shown under the first
    input, so that the user keeps what they typed and sees why it was refused."""
    present = [b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"]
    block = FIELD_BLOCKS.get(error.field or "")
    target = block.value if block is not None and block.value in present else None
    if target is None and present:
        target = present[0]
    text = f"{error.message} ({error.code.value})"
    return {target: text[:150]} if target else {}


def internal_field_errors(view: dict[str, Any]) -> dict[str, str]:
    """The generic failure under the modal's first input (nothing is said about the cause)."""
    present = [b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"]
    return (
        {present[0]: "Something went wrong on our side; nothing was saved. Try again."}
        if present
        else {}
    )


class Surface(StrEnum):
    """Where an error happened, which decides where the person can be shown it."""

    # A slash command, a button, a shortcut: ephemeral through `respond`, else a DM.
    INTERACTION = "interaction"
    # Any other event listener (App Home, ...): a DM.
    EVENT = "event"
    # A modal submission, before its ack: under the field concerned (the modal stays open with
    # what was typed), else the modal closes and the person gets a DM.
    SUBMISSION = "submission"
    # Messages in a thread are answered in that thread, never by a new top-level DM: an
    # ephemeral message in the thread in a channel, a thread reply in the person's DM with
    # the bot (Place.dm).
    # A message in a ticket's staff thread.
    STAFF_THREAD = "staff_thread"
    # A message in a customer's ticket thread (their DM): a closed ticket, a rate limit or a
    # refused message (empty, too long, …) is answered by a notice in the thread.
    CUSTOMER_THREAD = "customer_thread"
    # An edit of a message relayed to a ticket.
    EDIT = "edit"
    # A deleted message whose deletion the ticket refused (it keeps the message).
    DELETION = "deletion"


# Inside an event these go on: Unavailable (nothing was written) makes the listener release its
# claim on the event, so that Slack's retry can do the work; the top-level handler reports it.
_IN_EVENT = frozenset(
    {Surface.STAFF_THREAD, Surface.CUSTOMER_THREAD, Surface.EDIT, Surface.DELETION}
)

Ack = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Place:
    """Where an error happened and how to reach the person there."""

    surface: Surface
    user_id: str | None = None  # the Slack user to tell
    actor_id: int | None = None  # their core id: rate-limit notices are once per window each
    channel_id: str | None = None
    thread_ts: str | None = None
    ticket_number: int | None = None  # thread notices name the ticket
    dm: bool = False  # channel_id is the person's DM with the bot: answer with a thread reply
    respond: AsyncRespond | None = None  # INTERACTION: answers through the response_url
    ack: Ack | None = None  # SUBMISSION: the modal's answer
    view: dict[str, Any] | None = None  # SUBMISSION: the submitted view

    @classmethod
    def of_request(
        cls,
        context: AsyncBoltContext,
        *,
        ack: Ack | None = None,
        view: dict[str, Any] | None = None,
    ) -> Place:
        """The place of a request as bolt describes it: a modal submission when its `ack`
        and `view` are given, an interaction when it has a response_url, else an event."""
        if ack is not None and view is not None:
            return cls(Surface.SUBMISSION, user_id=context.user_id, ack=ack, view=view)
        if context.respond is not None and context.response_url:
            return cls(Surface.INTERACTION, user_id=context.user_id, respond=context.respond)
        thread = context.get(_MESSAGE_THREAD)
        if isinstance(thread, Place):  # a message in a thread: answered in that thread
            return thread
        return cls(Surface.EVENT, user_id=context.user_id)


_MESSAGE_THREAD = "message_thread"


def remember_message_thread(context: AsyncBoltContext, body: dict[str, Any]) -> None:
    """For a message event in a thread (a new message, an edit, a deletion), note in the
    request's context where its author is answered, so that a failure nobody foresaw is also
    told in the thread rather than in a new DM (Place.of_request)."""
    event = body.get("event")
    if not isinstance(event, dict) or event.get("type") != "message":
        return
    message = event.get("message") or event.get("previous_message") or event
    if not isinstance(message, dict):
        return
    user, channel = message.get("user"), event.get("channel")
    thread_ts = message.get("thread_ts")
    if not all(isinstance(v, str) and v for v in (user, channel, thread_ts)):
        return
    context[_MESSAGE_THREAD] = Place(
        Surface.EVENT,
        user_id=user,
        channel_id=channel,
        thread_ts=thread_ts,
        dm=event.get("channel_type") == "im",
    )


async def report_error(
    runtime: Runtime, error: Exception, context: AsyncBoltContext | None
) -> None:
    """What escaped a listener (Runtime.supervise) or bolt itself (@app.error): logged, and
    shown where the request came from. Never raises."""
    if context is None:
        _log(error, Place(Surface.EVENT))
        return
    await show_error(runtime, error, Place.of_request(context))


async def show_error(runtime: Runtime, error: Exception, place: Place) -> None:
    """Show the person what went wrong, where they are (see Surface); raises the error again
    when it must go on rather than be answered here."""
    surface = place.surface
    if surface in _IN_EVENT and (
        not isinstance(error, DomainError) or isinstance(error, Unavailable)
    ):
        raise error
    _log(error, place)
    if (  # told once per rate-limit window
        isinstance(error, RateLimited)
        and surface in _IN_EVENT
        and not await _first_refusal_in_window(runtime, place, error)
    ):
        return
    if (  # the closed-ticket notice: once per person and ticket in a while, not per message
        isinstance(error, TicketClosed)
        and surface is Surface.CUSTOMER_THREAD
        and not await _first_closed_notice(runtime, place)
    ):
        return
    if surface is Surface.SUBMISSION:
        await _refuse_submission(runtime, error, place)
    elif surface is Surface.CUSTOMER_THREAD:
        await _customer_thread_notice(runtime, error, place)
    elif surface is Surface.STAFF_THREAD:
        text = user_message(error)
        if isinstance(error, RateLimited) and place.ticket_number is not None:
            text, _ = messages.rate_limited_thread_notice(place.ticket_number, text)
        await _tell(runtime, place, text)
    elif surface is Surface.EDIT:
        await _tell(
            runtime, place, user_message(error) + " Your edit was not applied to the ticket."
        )
    elif surface is Surface.DELETION:
        await _tell(runtime, place, user_message(error) + " The message stays on the ticket.")
    else:
        await _tell(runtime, place, user_message(error))


def _log(error: Exception, place: Place) -> None:
    if isinstance(error, DomainError):
        log.info(
            "request refused",
            extra={
                "code": error.code.value,
                "surface": place.surface.value,
                "user": place.user_id,
                "field": error.field,
            },
        )
    else:
        log.error("listener failed", exc_info=error, extra={"surface": place.surface.value})


async def _tell(runtime: Runtime, place: Place, text: str) -> None:
    """In the thread of a message (see Surface); else ephemeral through the interaction's
    response_url, else where the place says."""
    if place.thread_ts and place.channel_id and place.user_id:
        await notify.tell_in_thread(
            runtime,
            user_id=place.user_id,
            channel_id=place.channel_id,
            thread_ts=place.thread_ts,
            text=text,
            dm=place.dm,
        )
        return
    if place.respond is not None:
        try:
            await place.respond(text=text, response_type="ephemeral", replace_original=False)
            return
        except Exception:
            log.warning("respond failed; falling back to a direct message")
    if place.user_id:
        await notify.tell_user(
            runtime,
            user_id=place.user_id,
            text=text,
            channel_id=place.channel_id,
            thread_ts=place.thread_ts,
        )


async def _refuse_submission(runtime: Runtime, error: Exception, place: Place) -> None:
    """Errors under the modal's fields; a view without inputs (not one of ours: forged or
    garbled) is closed and the person told in a message instead."""
    assert place.ack is not None and place.view is not None
    view = place.view
    errors = field_errors(error, view) if isinstance(error, DomainError) else None
    if errors is None:
        errors = internal_field_errors(view)
    if errors:
        await place.ack(response_action="errors", errors=errors)
        return
    await place.ack()
    await _tell(runtime, place, user_message(error))


async def _customer_thread_notice(runtime: Runtime, error: Exception, place: Place) -> None:
    """A notice in the customer's own ticket thread (their DM with the bot)."""
    assert place.channel_id is not None and place.ticket_number is not None
    if isinstance(error, TicketClosed):
        text, blocks = messages.closed_thread_notice(place.ticket_number)
    elif isinstance(error, RateLimited):
        text, blocks = messages.rate_limited_thread_notice(place.ticket_number, user_message(error))
    else:
        text, blocks = messages.refused_thread_notice(place.ticket_number, user_message(error))
    await notify.post(
        runtime, channel=place.channel_id, thread_ts=place.thread_ts, text=text, blocks=blocks
    )


# A customer who keeps writing in a closed ticket's thread is reminded at most this often.
CLOSED_NOTICE_INTERVAL_SECONDS = 600


async def _first_closed_notice(runtime: Runtime, place: Place) -> bool:
    """Whether to post the closed-ticket notice: the first refused message of a person in a
    ticket's thread within each CLOSED_NOTICE_INTERVAL_SECONDS (claimed in the database)."""
    if place.actor_id is None or place.ticket_number is None:
        return True
    window = int(runtime.clock.now().timestamp()) // CLOSED_NOTICE_INTERVAL_SECONDS
    key = f"notice:closed:{place.actor_id}:{place.ticket_number}:{window}"
    return await chat.claim_delivery(runtime.core, key=key)


async def _first_refusal_in_window(runtime: Runtime, place: Place, error: RateLimited) -> bool:
    """Whether to answer this refusal: someone flooding a thread is told once per rate-limit
    window, not once per refused message (a flood of bot messages would spend the bot's own
    Slack rate limit). The claim is in the shared database, so every replica agrees."""
    if error.resets_at is None or place.actor_id is None:
        return True
    key = f"notice:rate_limited:{place.actor_id}:{error.resets_at.isoformat()}"
    return await chat.claim_delivery(runtime.core, key=key)
