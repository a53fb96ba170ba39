"""search parts: a reply's words are kept on their own, so a long conversation stays cheap

Revision 0004 kept one search document per ticket: its title and description followed by all
its public replies. Every reply rewrote that document whole (and re-indexed every word of it),
and an edit or a deletion rebuilt it from every reply: the 5,000th reply of a conversation cost
hundreds of times the first. Each part of a ticket now has its own search row, written by
triggers in the same transaction as the change, and a search puts a ticket's parts together:

- PostgreSQL: ``ticket_search`` holds one row per part of a live ticket: ``part`` 0 is the
  ticket itself (title weighted A, description B, the generated ``tickets.search_vector``), any
  other ``part`` is the id of one of its public, undeleted replies (``replies.search_vector``,
  weight D). Each row carries the ticket's number, customer and company (visibility stays in
  the query). Adding, editing, hiding or deleting a reply writes that reply's row only; a
  ticket's edit writes its part 0; deleting a ticket removes all its rows. The GIN index on
  ``document`` finds the parts that hold a word, the primary key (number, part) reads a range
  of the newest tickets' parts in order. ``ticket_search_estimate(tsquery)`` and
  ``ticket_search_rebuild()`` keep their meaning; ``ticket_search_document()`` is gone.
- SQLite: ``ticket_search_fts`` (one FTS5 row per ticket with all its replies in one column,
  rewritten on every reply) is dropped. Search reads the per-row FTS5 tables that revision
  0001 keeps already: ``tickets_fts`` (title, description; rowid = number) and ``replies_fts``
  (public, undeleted replies; rowid = reply id).

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0009"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTGRES_DROP_0004 = [
    "DROP TRIGGER ticket_search_reply ON replies",
    "DROP FUNCTION ticket_search_reply_changed()",
    "DROP TRIGGER ticket_search_ticket ON tickets",
    "DROP FUNCTION ticket_search_ticket_changed()",
    "DROP FUNCTION ticket_search_rebuild()",
    "DROP FUNCTION ticket_search_estimate(tsquery)",
    "DROP FUNCTION ticket_search_document(bigint)",
    "DROP TABLE ticket_search",
]

_POSTGRES_UP = [
    """
    CREATE TABLE ticket_search (
        number bigint NOT NULL,
        part bigint NOT NULL,
        customer_id integer NOT NULL,
        company_id integer,
        document tsvector NOT NULL,
        CONSTRAINT pk_ticket_search PRIMARY KEY (number, part),
        CONSTRAINT fk_ticket_search_number_tickets FOREIGN KEY (number)
            REFERENCES tickets (number) ON DELETE CASCADE
    )
    """,
    # The planner's estimate of the live parts matching a query, as EXPLAIN shows it.
    """
    CREATE FUNCTION ticket_search_estimate(query tsquery) RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
        plan json;
    BEGIN
        EXECUTE format(
            'EXPLAIN (FORMAT JSON) SELECT 1 FROM ticket_search WHERE document @@ %L::tsquery',
            query
        ) INTO plan;
        RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::bigint;
    END
    $$
    """,
    """
    CREATE FUNCTION ticket_search_rebuild() RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
        written bigint;
        replies bigint;
    BEGIN
        DELETE FROM ticket_search;
        INSERT INTO ticket_search (number, part, customer_id, company_id, document)
        SELECT number, 0, customer_id, company_id, search_vector
        FROM tickets WHERE deleted_at IS NULL
        ORDER BY number;
        GET DIAGNOSTICS written = ROW_COUNT;
        INSERT INTO ticket_search (number, part, customer_id, company_id, document)
        SELECT t.number, r.id, t.customer_id, t.company_id, r.search_vector
        FROM replies r JOIN tickets t ON t.id = r.ticket_id
        WHERE t.deleted_at IS NULL AND NOT r.is_internal AND r.deleted_at IS NULL
        ORDER BY t.number, r.id;
        GET DIAGNOSTICS replies = ROW_COUNT;
        RETURN written + replies;
    END
    $$
    """,
    # Tickets: a new live ticket gets its part 0; a deleted one loses all its parts; a restored
    # one (should that ever exist) gets them back; an edit rewrites part 0; a new customer or
    # company is copied to every part (visibility is read from them).
    """
    CREATE FUNCTION ticket_search_ticket_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.deleted_at IS NOT NULL THEN
            IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
                DELETE FROM ticket_search WHERE number = NEW.number;
            END IF;
            RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' OR OLD.deleted_at IS NOT NULL THEN
            INSERT INTO ticket_search (number, part, customer_id, company_id, document)
            VALUES (NEW.number, 0, NEW.customer_id, NEW.company_id, NEW.search_vector);
            IF TG_OP = 'UPDATE' THEN
                INSERT INTO ticket_search (number, part, customer_id, company_id, document)
                SELECT NEW.number, r.id, NEW.customer_id, NEW.company_id, r.search_vector
                FROM replies r
                WHERE r.ticket_id = NEW.id AND NOT r.is_internal AND r.deleted_at IS NULL;
            END IF;
            RETURN NULL;
        END IF;
        IF NEW.customer_id IS DISTINCT FROM OLD.customer_id
           OR NEW.company_id IS DISTINCT FROM OLD.company_id THEN
            UPDATE ticket_search
            SET customer_id = NEW.customer_id, company_id = NEW.company_id
            WHERE number = NEW.number;
        END IF;
        IF NEW.title IS DISTINCT FROM OLD.title
           OR NEW.description IS DISTINCT FROM OLD.description THEN
            UPDATE ticket_search SET document = NEW.search_vector
            WHERE number = NEW.number AND part = 0;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER ticket_search_ticket
    AFTER INSERT OR UPDATE OF title, description, customer_id, company_id, deleted_at
    ON tickets FOR EACH ROW EXECUTE FUNCTION ticket_search_ticket_changed()
    """,
    # Replies: only the reply's own row is written, whatever the length of the conversation.
    # A reply becomes searchable when it is public and undeleted on a live ticket (the ticket's
    # part 0 exists), and stops being so otherwise. Internal notes never get a row.
    """
    CREATE FUNCTION ticket_search_reply_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        was_public boolean := TG_OP <> 'INSERT'
            AND NOT OLD.is_internal AND OLD.deleted_at IS NULL;
        is_public boolean := TG_OP <> 'DELETE'
            AND NOT NEW.is_internal AND NEW.deleted_at IS NULL;
    BEGIN
        IF was_public AND NOT is_public THEN
            DELETE FROM ticket_search s USING tickets t
            WHERE t.id = OLD.ticket_id AND s.number = t.number AND s.part = OLD.id;
        ELSIF is_public AND NOT was_public THEN
            INSERT INTO ticket_search (number, part, customer_id, company_id, document)
            SELECT s.number, NEW.id, s.customer_id, s.company_id, NEW.search_vector
            FROM tickets t JOIN ticket_search s ON s.number = t.number AND s.part = 0
            WHERE t.id = NEW.ticket_id;
        ELSIF is_public AND NEW.body IS DISTINCT FROM OLD.body THEN
            UPDATE ticket_search s SET document = NEW.search_vector
            FROM tickets t
            WHERE t.id = NEW.ticket_id AND s.number = t.number AND s.part = NEW.id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER ticket_search_reply
    AFTER INSERT OR DELETE OR UPDATE OF body, is_internal, deleted_at
    ON replies FOR EACH ROW EXECUTE FUNCTION ticket_search_reply_changed()
    """,
    "SELECT ticket_search_rebuild()",
    # Built after the backfill: one sort each instead of one insertion per row.
    "CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document) "
    "WITH (fastupdate = off)",
    "CREATE INDEX ix_ticket_search_customer ON ticket_search (customer_id)",
    "CREATE INDEX ix_ticket_search_company ON ticket_search (company_id)",
    "ALTER TABLE ticket_search ALTER COLUMN document SET STATISTICS 1000",
    "ANALYZE ticket_search",
]

_POSTGRES_DOWN = [
    "DROP TRIGGER ticket_search_reply ON replies",
    "DROP FUNCTION ticket_search_reply_changed()",
    "DROP TRIGGER ticket_search_ticket ON tickets",
    "DROP FUNCTION ticket_search_ticket_changed()",
    "DROP FUNCTION ticket_search_rebuild()",
    "DROP FUNCTION ticket_search_estimate(tsquery)",
    "DROP TABLE ticket_search",
]

_SQLITE_DROP_0004 = [
    "DROP TRIGGER ticket_search_fts_reply_ad",
    "DROP TRIGGER ticket_search_fts_reply_au",
    "DROP TRIGGER ticket_search_fts_reply_ai",
    "DROP TRIGGER ticket_search_fts_ticket_ad",
    "DROP TRIGGER ticket_search_fts_ticket_au",
    "DROP TRIGGER ticket_search_fts_ticket_ai",
    "DROP TABLE ticket_search_fts",
]


def _revision_0004() -> ModuleType:
    """Revision 0004's module: the downgrade puts its search objects back as it wrote them."""
    path = Path(__file__).with_name("2026_11_28_0004_search_documents.py")
    spec = importlib.util.spec_from_file_location("ticketbot_migration_0004", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DROP_0004 + _POSTGRES_UP if postgres else _SQLITE_DROP_0004:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    previous = _revision_0004()
    if postgres:
        # 0004's objects, without its last step (dropping the indexes it replaced).
        dropped = len(previous.OLD_SEARCH_INDEXES)
        statements = _POSTGRES_DOWN + previous._POSTGRES_UP[:-dropped]
    else:
        statements = previous._SQLITE_UP
    for statement in statements:
        op.execute(statement)
