"""search parts: a reply's words are kept on their own, so a long conversation stays cheap

Revision 0004 kept one search document per ticket: its title and description followed by all
its public replies. Every reply rewrote that document whole (and re-indexed every word of it),
and an edit or a deletion rebuilt it from every reply: the 5,000th reply of a conversation cost
hundreds of times the first. A reply's change now writes a bounded part of the search
index, by triggers in the same transaction as the change:

- PostgreSQL: ``ticket_search`` holds part 0 of every live ticket: the ticket's vector (title
  A, description B, the generated ``tickets.search_vector``) followed by the vectors of its
  first INLINE_REPLIES (20) replies that are public and undeleted (weight D). "First" counts
  every reply by id, notes and deleted ones included, so a reply's place never moves. Each
  later public, undeleted reply gets a row of its own (``part`` = the reply's id). One of the
  first replies rewrites part 0 (a bounded document); a later one writes its own row only, and
  marks its ticket's rows ``overflow`` (never unmarked but by ``ticket_search_rebuild()``:
  a stale mark costs a little search time, never a wrong result). Every row carries the
  ticket's number, customer and company (visibility stays in the query). A ticket without
  later replies matches when its part 0 holds every word: one GIN ``AND``, as with revision
  0004's whole-ticket documents; only the ``overflow`` tickets' parts are put together across
  rows. Each row is in one of two partial GIN indexes (``overflow`` or not), so a later reply
  writes one GIN entry set, as before. A ticket's edit rewrites part 0; deleting a ticket
  removes all its rows. ``ticket_search_estimate(tsquery)`` and ``ticket_search_rebuild()``
  keep their meaning; ``ticket_search_document()`` is gone. ``replies (ticket_id, id)`` is
  indexed on both databases (a reply's place among its ticket's first replies).
- SQLite: ``ticket_search_fts`` (one FTS5 row per ticket with all its replies in one column,
  rewritten on every reply) is dropped. Search reads the per-row FTS5 tables that revision
  0001 keeps already: ``tickets_fts`` (title, description; rowid = number) and ``replies_fts``
  (public, undeleted replies; rowid = reply id).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
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

# The first replies of a ticket (by id, notes and deleted ones included, so that a reply's
# place never moves) are searched inside its part 0; only later ones get a row of their own.
INLINE_REPLIES = 20

_FIRST_REPLIES = "SELECT id FROM replies WHERE ticket_id = {ticket} ORDER BY id LIMIT " + str(
    INLINE_REPLIES
)

_POSTGRES_UP = [
    """
    CREATE TABLE ticket_search (
        number bigint NOT NULL,
        part bigint NOT NULL,
        customer_id integer NOT NULL,
        company_id integer,
        overflow boolean NOT NULL DEFAULT false,
        document tsvector NOT NULL,
        CONSTRAINT pk_ticket_search PRIMARY KEY (number, part),
        CONSTRAINT fk_ticket_search_number_tickets FOREIGN KEY (number)
            REFERENCES tickets (number) ON DELETE CASCADE
    )
    """,
    # Part 0's document: the ticket's vector (title A, description B), then the vectors of
    # its first replies that are public and undeleted (weight D). Bounded: at most
    # INLINE_REPLIES replies are read, whatever the length of the conversation.
    f"""
    CREATE FUNCTION ticket_search_head(ticket uuid) RETURNS tsvector
    LANGUAGE plpgsql AS $$
    DECLARE
        document tsvector;
        reply tsvector;
    BEGIN
        SELECT search_vector INTO document FROM tickets WHERE id = ticket;
        FOR reply IN
            SELECT r.search_vector FROM replies r
            WHERE r.id IN ({_FIRST_REPLIES.format(ticket="ticket")})
              AND NOT r.is_internal AND r.deleted_at IS NULL
            ORDER BY r.id
        LOOP
            document := document || reply;
        END LOOP;
        RETURN coalesce(document, ''::tsvector);
    END
    $$
    """,
    # Whether a reply (by id) is one of its ticket's first replies; for a reply just deleted,
    # whether it was.
    f"""
    CREATE FUNCTION ticket_search_inline(ticket uuid, reply bigint) RETURNS boolean
    LANGUAGE sql STABLE AS $$
        SELECT count(*) < {INLINE_REPLIES} OR max(id) >= reply
        FROM ({_FIRST_REPLIES.format(ticket="ticket")}) first_replies
    $$
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
    f"""
    CREATE FUNCTION ticket_search_rebuild() RETURNS bigint
    LANGUAGE plpgsql AS $$
    DECLARE
        written bigint;
        replies bigint;
    BEGIN
        DELETE FROM ticket_search;
        INSERT INTO ticket_search (number, part, customer_id, company_id, document)
        SELECT t.number, 0, t.customer_id, t.company_id,
               CASE WHEN EXISTS (
                   SELECT 1 FROM replies r
                   WHERE r.ticket_id = t.id AND NOT r.is_internal AND r.deleted_at IS NULL
               ) THEN ticket_search_head(t.id) ELSE t.search_vector END
        FROM tickets t WHERE t.deleted_at IS NULL
        ORDER BY t.number;
        GET DIAGNOSTICS written = ROW_COUNT;
        INSERT INTO ticket_search (number, part, customer_id, company_id, overflow, document)
        SELECT t.number, r.id, t.customer_id, t.company_id, true, r.search_vector
        FROM (
            SELECT id, ticket_id, is_internal, deleted_at, search_vector,
                   row_number() OVER (PARTITION BY ticket_id ORDER BY id) AS place
            FROM replies
        ) r JOIN tickets t ON t.id = r.ticket_id
        WHERE r.place > {INLINE_REPLIES}
          AND t.deleted_at IS NULL AND NOT r.is_internal AND r.deleted_at IS NULL
        ORDER BY t.number, r.id;
        GET DIAGNOSTICS replies = ROW_COUNT;
        UPDATE ticket_search SET overflow = true
        WHERE part = 0 AND number IN (SELECT number FROM ticket_search WHERE part <> 0);
        RETURN written + replies;
    END
    $$
    """,
    # Tickets: a new live ticket gets its part 0; a deleted one loses all its parts; a restored
    # one (should that ever exist) gets them back; an edit rewrites part 0 (its bounded
    # document); a new customer or company is copied to every part (visibility is read from
    # them).
    f"""
    CREATE FUNCTION ticket_search_ticket_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.deleted_at IS NOT NULL THEN
            IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
                DELETE FROM ticket_search WHERE number = NEW.number;
            END IF;
            RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' THEN
            INSERT INTO ticket_search (number, part, customer_id, company_id, document)
            VALUES (NEW.number, 0, NEW.customer_id, NEW.company_id, NEW.search_vector);
            RETURN NULL;
        END IF;
        IF OLD.deleted_at IS NOT NULL THEN
            INSERT INTO ticket_search (number, part, customer_id, company_id, overflow, document)
            SELECT NEW.number, r.id, NEW.customer_id, NEW.company_id, true, r.search_vector
            FROM replies r
            WHERE r.ticket_id = NEW.id AND NOT r.is_internal AND r.deleted_at IS NULL
              AND r.id NOT IN ({_FIRST_REPLIES.format(ticket="NEW.id")});
            INSERT INTO ticket_search (number, part, customer_id, company_id, overflow, document)
            VALUES (NEW.number, 0, NEW.customer_id, NEW.company_id,
                    EXISTS (SELECT 1 FROM ticket_search WHERE number = NEW.number),
                    ticket_search_head(NEW.id));
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
            UPDATE ticket_search SET document = ticket_search_head(NEW.id)
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
    # Replies: one of the ticket's first replies rewrites part 0 (a bounded document); a later
    # one writes only its own row, and marks part 0 as having such rows. A reply is searchable
    # when it is public and undeleted on a live ticket (the ticket's part 0 exists). Internal
    # notes are never in any document.
    f"""
    CREATE FUNCTION ticket_search_reply_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        was_public boolean := TG_OP <> 'INSERT'
            AND NOT OLD.is_internal AND OLD.deleted_at IS NULL;
        is_public boolean := TG_OP <> 'DELETE'
            AND NOT NEW.is_internal AND NEW.deleted_at IS NULL;
        ticket uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.ticket_id ELSE NEW.ticket_id END;
        reply bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
        head ticket_search%ROWTYPE;
    BEGIN
        IF NOT (was_public OR is_public) THEN
            RETURN NULL;  -- a note, or a deleted reply, stays out of every document
        END IF;
        IF was_public AND is_public AND NEW.body IS NOT DISTINCT FROM OLD.body THEN
            RETURN NULL;
        END IF;
        -- Part 0 is locked first: the replies of one ticket are placed one after the other,
        -- each seeing the ones committed before it (its place among the first ones is read
        -- after the lock).
        SELECT s.* INTO head FROM tickets t
        JOIN ticket_search s ON s.number = t.number AND s.part = 0
        WHERE t.id = ticket
        FOR NO KEY UPDATE OF s;
        IF NOT FOUND THEN
            RETURN NULL;  -- a deleted ticket has no document
        END IF;
        IF ticket_search_inline(ticket, reply) THEN
            UPDATE ticket_search SET document = ticket_search_head(ticket)
            WHERE number = head.number AND part = 0;
            IF TG_OP = 'DELETE' THEN
                -- Removing a row moves a later reply among the first ones: it is in part 0 now.
                DELETE FROM ticket_search
                WHERE number = head.number
                  AND part IN ({_FIRST_REPLIES.format(ticket="ticket")});
            END IF;
        ELSIF was_public AND NOT is_public THEN
            DELETE FROM ticket_search WHERE number = head.number AND part = reply;
        ELSIF is_public AND NOT was_public THEN
            INSERT INTO ticket_search (number, part, customer_id, company_id, overflow, document)
            VALUES (head.number, reply, head.customer_id, head.company_id, true,
                    NEW.search_vector);
            IF NOT head.overflow THEN
                UPDATE ticket_search SET overflow = true
                WHERE number = head.number AND part = 0;
            END IF;
        ELSE
            UPDATE ticket_search SET document = NEW.search_vector
            WHERE number = head.number AND part = reply;
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
    # Two GIN indexes, each row in one of them: part 0 of the tickets without later replies
    # (a search asks it for every word at once), and the rows of the few tickets with some
    # (asked for any word: the only parts a search puts together across rows).
    "CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document) "
    "WITH (fastupdate = off) WHERE NOT overflow",
    "CREATE INDEX ix_ticket_search_overflow ON ticket_search USING gin (document) "
    "WITH (fastupdate = off) WHERE overflow",
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
    "DROP FUNCTION ticket_search_inline(uuid, bigint)",
    "DROP FUNCTION ticket_search_head(uuid)",
    "DROP TABLE ticket_search",
]

# Both databases: a reply's place among its ticket's replies is read in the order of their ids.
_REPLY_PLACE_UP = ["CREATE INDEX ix_replies_ticket_id ON replies (ticket_id, id)"]
_REPLY_PLACE_DOWN = ["DROP INDEX ix_replies_ticket_id"]

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
    search = _POSTGRES_DROP_0004 + _POSTGRES_UP if postgres else _SQLITE_DROP_0004
    for statement in _REPLY_PLACE_UP + search:
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
    for statement in statements + _REPLY_PLACE_DOWN:
        op.execute(statement)
