"""Every action, callback and block id the bot uses, in one place."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/ticket"
# A staff message in a ticket's staff thread is an internal note unless it starts with this
# marker (case-insensitive, followed by white space): then it is a reply to the customer.
REPLY_MARKER = "!reply"
NOTE_REACTION = "lock"
REPLY_REACTION = "outbox_tray"
EVENT_METADATA_TYPE = "ticketbot_outbox"


class Action(StrEnum):
    """action_id of buttons and inputs."""

    ASSIGN_TO_ME = "ticket_assign_to_me"
    ASSIGN_OPEN = "ticket_assign_open"
    STATUS_OPEN = "ticket_status_open"
    REPLY_OPEN = "ticket_reply_open"
    NOTE_OPEN = "ticket_note_open"
    SHOW_TICKET = "ticket_show"
    EDIT_REPLY_OPEN = "reply_edit_open"
    EDIT_TICKET_OPEN = "ticket_edit_open"
    HOME_NEW_TICKET = "home_new_ticket"
    PAGE = "ticket_list_page"
    # inputs inside modals
    TITLE = "title"
    DESCRIPTION = "description"
    PRIORITY = "priority"
    CATEGORY = "category"
    CUSTOMER = "customer"
    BODY = "body"
    VISIBILITY = "visibility"
    STATUS = "status"
    REASON = "reason"
    ASSIGNEE = "assignee"
    CUSTOMER_MAY_SEE = "customer_may_see"


class Block(StrEnum):
    """block_id of modal inputs: view_submission errors are keyed by these."""

    TITLE = "title_block"
    DESCRIPTION = "description_block"
    PRIORITY = "priority_block"
    CATEGORY = "category_block"
    CUSTOMER = "customer_block"
    BODY = "body_block"
    VISIBILITY = "visibility_block"
    STATUS = "status_block"
    REASON = "reason_block"
    ASSIGNEE = "assignee_block"
    CUSTOMER_MAY_SEE = "customer_may_see_block"


class Callback(StrEnum):
    """callback_id of modals and shortcuts."""

    CREATE_TICKET = "create_ticket"
    REPLY = "ticket_reply"
    STATUS = "ticket_status"
    ASSIGN = "ticket_assign"
    EDIT_REPLY = "reply_edit"
    EDIT_TICKET = "ticket_edit"
    MESSAGE_TO_TICKET = "message_to_ticket"


class Visibility(StrEnum):
    """The choice in the reply modal; internal is preselected for staff."""

    INTERNAL = "internal"
    PUBLIC = "public"


# Which modal input shows a core validation error of a given field.
FIELD_BLOCKS: dict[str, Block] = {
    "title": Block.TITLE,
    "description": Block.DESCRIPTION,
    "priority": Block.PRIORITY,
    "category": Block.CATEGORY,
    "customer": Block.CUSTOMER,
    "message": Block.BODY,
    "status": Block.STATUS,
    "reason": Block.REASON,
    "assignee": Block.ASSIGNEE,
    "customer_may_see": Block.CUSTOMER_MAY_SEE,
}
