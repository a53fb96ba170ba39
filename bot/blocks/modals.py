"""Modals: create a ticket, reply or note, change status, assign, edit a reply, read long text."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from bot.blocks import labels
from bot.blocks.kit import (
    PRIVATE_METADATA,
    SECTION_TEXT,
    SELECT_OPTIONS,
    VIEW_BLOCKS,
    VIEW_TITLE,
    Json,
    clip_blocks,
    context,
    input_block,
    option,
    plain_text,
    section,
)
from bot.blocks.text import escape, is_slack_user_id, plain, single_line, split_text, truncate
from bot.ids import Action, Block, Callback, Visibility
from bot.payloads import (
    CreateTicketPayload,
    EditReplyPayload,
    EditTicketPayload,
    ReplyModalPayload,
    TicketRefPayload,
)
from core.enums import Priority, Status
from core.results import CategoryView, ReplyView, TicketView
from core.validation import BODY_MAX, REASON_MAX, TITLE_MAX

# The value of the create modal's "the customer may see this" confirmation.
CUSTOMER_MAY_SEE_CONFIRMED = "confirmed"

# Long text split over sections leaves room for Slack counting some characters twice.
CHUNK = SECTION_TEXT - 100


def _modal(
    *,
    title: str,
    blocks: list[Json],
    callback_id: str | None = None,
    submit: str | None = None,
    close: str = "Cancel",
    private_metadata: str | None = None,
) -> Json:
    view: Json = {
        "type": "modal",
        "title": plain_text(title, limit=VIEW_TITLE),
        "close": plain_text(close, limit=VIEW_TITLE),
        "blocks": clip_blocks(blocks, VIEW_BLOCKS, note="…more not shown."),
    }
    if callback_id is not None:
        view["callback_id"] = callback_id
    if submit is not None:
        view["submit"] = plain_text(submit, limit=VIEW_TITLE)
    if private_metadata is not None:
        if len(private_metadata) > PRIVATE_METADATA:
            raise ValueError("private_metadata too long")
        view["private_metadata"] = private_metadata
    return view


def _text_input(
    action_id: str, *, max_length: int, multiline: bool = False, initial: str = ""
) -> Json:
    element: Json = {"type": "plain_text_input", "action_id": action_id, "max_length": max_length}
    if multiline:
        element["multiline"] = True
    initial = plain(initial).strip() if multiline else single_line(initial)
    if initial:
        # An initial value longer than max_length would be refused by Slack.
        element["initial_value"] = truncate(initial, max_length)
    return element


PRIORITY_OPTIONS: dict[Priority, Json] = {
    level: option(labels.priority_text(level), level.value) for level in Priority
}


def _priority_input(initial: Priority) -> Json:
    return input_block(
        block_id=Block.PRIORITY,
        label="Priority",
        element={
            "type": "static_select",
            "action_id": Action.PRIORITY,
            "options": list(PRIORITY_OPTIONS.values()),
            "initial_option": PRIORITY_OPTIONS[initial],
        },
    )


def _category_input(categories: Sequence[CategoryView], initial: int | None) -> Json | None:
    """The optional category select of active categories (None when there are none)."""
    active = [c for c in categories if c.is_active][:SELECT_OPTIONS]
    if not active:
        return None
    options = {c.id: option(c.name or f"Category {c.id}", str(c.id)) for c in active}
    element: Json = {
        "type": "static_select",
        "action_id": Action.CATEGORY,
        "placeholder": plain_text("Choose a category"),
        "options": list(options.values()),
    }
    if initial in options:
        element["initial_option"] = options[initial]
    return input_block(block_id=Block.CATEGORY, label="Category", element=element, optional=True)


def create_ticket_modal(
    *,
    categories: Sequence[CategoryView],
    title: str = "",
    description: str = "",
    staff: bool,
    metadata: CreateTicketPayload,
    customer_slack_id: str | None = None,
) -> Json:
    """The 'New ticket' modal; staff also pick the customer, who will see the title and
    description. Text copied from a staff surface (`metadata.copied_from_staff`) comes with a
    warning and a confirmation the person must tick: it is internal until they do."""
    copied = bool(metadata.copied_from_staff)
    blocks: list[Json] = []
    if copied:
        blocks.append(
            section(
                ":warning: *This text was copied from a staff conversation.* The customer "
                "will see the title and the description: remove anything internal first."
            )
        )
    blocks += [
        input_block(
            block_id=Block.TITLE,
            label="Title",
            element=_text_input(Action.TITLE, max_length=TITLE_MAX, initial=title),
        ),
        input_block(
            block_id=Block.DESCRIPTION,
            label="Description",
            element=_text_input(
                Action.DESCRIPTION, max_length=BODY_MAX, multiline=True, initial=description
            ),
            optional=True,
            hint=(
                "The customer sees the title and this description."
                if staff or copied
                else "What happened, what you expected, and anything you already tried."
            ),
        ),
        _priority_input(Priority.MEDIUM),
    ]
    category = _category_input(categories, None)
    if category is not None:
        blocks.append(category)
    if staff:
        element: Json = {
            "type": "users_select",
            "action_id": Action.CUSTOMER,
            "placeholder": plain_text("Pick the customer"),
        }
        if customer_slack_id and is_slack_user_id(customer_slack_id):
            element["initial_user"] = customer_slack_id
        blocks.append(
            input_block(
                block_id=Block.CUSTOMER,
                label="Customer",
                element=element,
                optional=False,
                hint="Staff open tickets on behalf of a customer.",
            )
        )
    if copied:
        blocks.append(
            input_block(
                block_id=Block.CUSTOMER_MAY_SEE,
                label="Before you open it",
                element={
                    "type": "checkboxes",
                    "action_id": Action.CUSTOMER_MAY_SEE,
                    "options": [
                        option(
                            "The customer may see this title and description",
                            CUSTOMER_MAY_SEE_CONFIRMED,
                        )
                    ],
                },
            )
        )
    return _modal(
        title="New ticket",
        submit="Open ticket",
        callback_id=Callback.CREATE_TICKET,
        private_metadata=metadata.dump(),
        blocks=blocks,
    )


VISIBILITY_OPTIONS: dict[Visibility, Json] = {
    Visibility.INTERNAL: option(
        "Internal note — staff only",
        Visibility.INTERNAL.value,
        description="Never shown to the customer.",
    ),
    Visibility.PUBLIC: option(
        "Reply to customer",
        Visibility.PUBLIC.value,
        description="Sent to the customer's conversation with the bot.",
    ),
}


def customer_may_see_confirmed(values: dict[str, dict[str, Json]]) -> bool:
    """Whether the create modal's confirmation (text copied from staff) was ticked."""
    block = values.get(Block.CUSTOMER_MAY_SEE.value)
    element = block.get(Action.CUSTOMER_MAY_SEE.value) if isinstance(block, dict) else None
    chosen = element.get("selected_options") if isinstance(element, dict) else None
    return isinstance(chosen, list) and any(
        isinstance(o, dict) and o.get("value") == CUSTOMER_MAY_SEE_CONFIRMED for o in chosen
    )


def reply_modal(ticket: TicketView, *, staff: bool, internal_default: bool = True) -> Json:
    """Reply modal; staff choose internal note or reply to customer, internal preselected."""
    blocks: list[Json] = [section(labels.ref(ticket))]
    blocks.append(
        input_block(
            block_id=Block.BODY,
            label="Message",
            element=_text_input(Action.BODY, max_length=BODY_MAX, multiline=True),
        )
    )
    if staff:
        initial = Visibility.INTERNAL if internal_default else Visibility.PUBLIC
        blocks.append(
            input_block(
                block_id=Block.VISIBILITY,
                label="Who sees it",
                element={
                    "type": "radio_buttons",
                    "action_id": Action.VISIBILITY,
                    "options": list(VISIBILITY_OPTIONS.values()),
                    "initial_option": VISIBILITY_OPTIONS[initial],
                },
            )
        )
    metadata = ReplyModalPayload(ticket_id=ticket.id, staff_form=staff)
    return _modal(
        title=truncate(f"Ticket #{ticket.number}" if staff else f"Reply to #{ticket.number}", 24),
        submit="Send",
        callback_id=Callback.REPLY,
        private_metadata=metadata.dump(),
        blocks=blocks,
    )


def status_modal(
    ticket: TicketView, *, allowed: Sequence[Status], reason_required: Collection[Status] = ()
) -> Json:
    """Change-status modal offering the `allowed` statuses and a public reason, which the core
    requires for the statuses in `reason_required` (the hint says which)."""
    metadata = TicketRefPayload(ticket_id=ticket.id).dump()
    current = f"Now: *{labels.status_label(ticket.status)}*"
    blocks: list[Json] = [section(f"{labels.ref(ticket)}\n{current}")]
    choices = [s for s in dict.fromkeys(allowed) if s is not ticket.status]
    if not choices:
        blocks.append(context("No status change is possible from here."))
        return _modal(title=f"Status #{ticket.number}", close="Close", blocks=blocks)
    blocks.append(
        input_block(
            block_id=Block.STATUS,
            label="New status",
            element={
                "type": "static_select",
                "action_id": Action.STATUS,
                "placeholder": plain_text("Choose a status"),
                "options": [option(labels.status_label(s), s.value) for s in choices],
            },
        )
    )
    blocks.append(
        input_block(
            block_id=Block.REASON,
            label="Reason (the customer sees it)",
            element=_text_input(Action.REASON, max_length=REASON_MAX, multiline=True),
            optional=True,
            hint=_reason_hint([s for s in choices if s in reason_required]),
        )
    )
    return _modal(
        title=truncate(f"Status of #{ticket.number}", VIEW_TITLE),
        submit="Change status",
        callback_id=Callback.STATUS,
        private_metadata=metadata,
        blocks=blocks,
    )


def _reason_hint(required: Sequence[Status]) -> str:
    if not required:
        return "Optional."
    names = " or ".join(labels.status_label(s).lower() for s in required)
    return f"Required when the new status is {names}."


def assign_modal(ticket: TicketView) -> Json:
    """Assign modal: a user picker preset to the current assignee."""
    element: Json = {
        "type": "users_select",
        "action_id": Action.ASSIGNEE,
        "placeholder": plain_text("Pick a staff member"),
    }
    if ticket.assignee is not None and is_slack_user_id(ticket.assignee.slack_user_id):
        element["initial_user"] = ticket.assignee.slack_user_id
    blocks = [
        section(f"{labels.ref(ticket)}\nAssigned to {labels.person(ticket.assignee)}"),
        input_block(block_id=Block.ASSIGNEE, label="Assignee", element=element),
    ]
    return _modal(
        title=truncate(f"Assign #{ticket.number}", VIEW_TITLE),
        submit="Assign",
        callback_id=Callback.ASSIGN,
        private_metadata=TicketRefPayload(ticket_id=ticket.id).dump(),
        blocks=blocks,
    )


def edit_ticket_modal(
    ticket: TicketView, *, categories: Sequence[CategoryView], staff: bool
) -> Json:
    """Edit a ticket's title, description and category, and (staff form) its priority; every
    input starts with what the ticket has now. The customer sees all of it."""
    blocks: list[Json] = [
        context(f"{labels.ref(ticket)} · the customer sees the title and the description."),
        input_block(
            block_id=Block.TITLE,
            label="Title",
            element=_text_input(Action.TITLE, max_length=TITLE_MAX, initial=ticket.title),
        ),
        input_block(
            block_id=Block.DESCRIPTION,
            label="Description",
            element=_text_input(
                Action.DESCRIPTION,
                max_length=BODY_MAX,
                multiline=True,
                initial=ticket.description,
            ),
            optional=True,
        ),
    ]
    if staff:
        blocks.append(_priority_input(ticket.priority))
    category = _category_input(categories, ticket.category_id)
    if category is not None:
        blocks.append(category)
    return _modal(
        title=truncate(f"Edit #{ticket.number}", VIEW_TITLE),
        submit="Save",
        callback_id=Callback.EDIT_TICKET,
        private_metadata=EditTicketPayload(ticket_id=ticket.id, staff_form=staff).dump(),
        blocks=blocks,
    )


EDIT_HISTORY_SHOWN = 3
EDIT_HISTORY_PREVIEW = 300


def edit_reply_modal(reply: ReplyView, *, history: Sequence[str] = ()) -> Json:
    """Edit a reply or note; says which it is, since that cannot be changed, and shows the
    latest earlier versions (who may edit it may read them)."""
    if reply.is_internal:
        kind = ":lock: *Internal note* — staff only. It stays internal."
    else:
        kind = ":speech_balloon: *Reply to the customer* — the customer sees the edit."
    blocks = [
        context(kind),
        input_block(
            block_id=Block.BODY,
            label="Message",
            element=_text_input(
                Action.BODY, max_length=BODY_MAX, multiline=True, initial=reply.body
            ),
        ),
    ]
    if history:
        shown = history[-EDIT_HISTORY_SHOWN:]
        earlier = len(history) - len(shown)
        heading = f"*Earlier versions* ({len(history)}, newest first)"
        blocks.append(context(heading + (f"; {earlier} older not shown" if earlier else "")))
        blocks.extend(
            context(escape(truncate(single_line(text), EDIT_HISTORY_PREVIEW)) or "_(empty)_")
            for text in reversed(shown)
        )
    return _modal(
        title="Edit note" if reply.is_internal else "Edit reply",
        submit="Save",
        callback_id=Callback.EDIT_REPLY,
        private_metadata=EditReplyPayload(reply_id=reply.id).dump(),
        blocks=blocks,
    )


def long_text_blocks(text: str, *, max_blocks: int = VIEW_BLOCKS) -> list[Json]:
    """User text escaped and split over as many sections as needed (at most `max_blocks`)."""
    chunks = split_text(escape(text).strip(), CHUNK) or ["_(empty)_"]
    if len(chunks) > max_blocks:
        chunks = chunks[: max_blocks - 1]
        chunks.append("_… the rest is too long to show here._")
    return [section(chunk) for chunk in chunks]


def message_view(title: str, blocks: Sequence[Json]) -> Json:
    """A read-only modal (no submit) for long text, e.g. 'read the rest' of a ticket."""
    return _modal(
        title=truncate(single_line(title), VIEW_TITLE) or "Details",
        close="Close",
        blocks=list(blocks) or [section("_Nothing to show._")],
    )
