"""What autogenerate and the schema-drift test ignore: search objects that exist in one
dialect's migrations only, not in the models."""

from __future__ import annotations

# Objects that exist only in one dialect's migrations (full-text search) and not in the models:
# besides these names, the search-document tables (ticket_search on PostgreSQL,
# ticket_search_fts and its shadow tables on SQLite) and their indexes.
SEARCH_ONLY_NAMES = {
    "tickets_fts",
    "replies_fts",
    "search_vector",
    "ix_tickets_search_vector",
    "ix_replies_search_vector",
}


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    label = name or ""
    return not (
        label in SEARCH_ONLY_NAMES
        or label.startswith("tickets_fts")
        or label.startswith("replies_fts")
        or label.startswith("ticket_search")
        or label.startswith("ix_ticket_search")
    )
