"""Ticket services: create, read, list, update, status, priority, assignment, deletion.

Each public function is one transaction: it loads the actor and the rows it needs, checks the
permission matrix on them, changes state, writes the audit entry and the outbox messages, and
commits all of it or nothing.

- `create`: opening a ticket (the permission read, the creation rules); `new_rows`: the rows
  a new ticket writes, described once, and the PostgreSQL and SQLite writes built from them.
- `queries`: get, list and "my" tickets, filters, and the delivery worker's system reads.
- `lifecycle`: status and its transitions, assignment, edits, priority, deletion.
- `shared`: the pieces these share.
"""

from core.tickets.create import IDEMPOTENCY_KEY_MAX, clean_idempotency_key, create_ticket
from core.tickets.lifecycle import (
    TRANSITIONS,
    StatusChoices,
    allowed_transitions,
    apply_status,
    assign_ticket,
    change_priority,
    change_status,
    delete_ticket,
    release_assignments,
    update_ticket,
)
from core.tickets.queries import (
    TicketFilters,
    UserRef,
    count_by_status,
    get_ticket,
    list_tickets,
    my_tickets,
    ticket_for_recipient,
    ticket_snapshot,
)

__all__ = [
    "IDEMPOTENCY_KEY_MAX",
    "TRANSITIONS",
    "StatusChoices",
    "TicketFilters",
    "UserRef",
    "allowed_transitions",
    "apply_status",
    "assign_ticket",
    "change_priority",
    "change_status",
    "clean_idempotency_key",
    "count_by_status",
    "create_ticket",
    "delete_ticket",
    "get_ticket",
    "list_tickets",
    "my_tickets",
    "release_assignments",
    "ticket_for_recipient",
    "ticket_snapshot",
    "update_ticket",
]
