"""search documents: one full-text document per ticket, kept in step by triggers

Search used to match the tickets' and the replies' own GIN indexes, then rank and count every
match by reading its vector from the wide tickets heap: at a million tickets a common word cost
a tenth of a second, a very common one more than a second.

Each database now keeps one search document per ticket, written by triggers in the same
transaction as the change that alters it, so that no code path can forget it:

- PostgreSQL: ``ticket_search`` holds, for every live (undeleted) ticket, its number, the
  customer and company that decide who may see it, and ``document``: the ticket's weighted
  vector (title A, description B) followed by the vectors of its public, undeleted replies
  (weight D), oldest first, as far as PostgreSQL's 1 MB tsvector limit allows. One GIN index
  matches the whole conversation; the primary key on the number lets a search read a range of
  the newest tickets, and ``ticket_search_estimate(tsquery)`` (the planner's estimate of the
  matches, with statistics on 10,000 lexemes) tells it how wide that range should be; the
  customer and company indexes serve customers' and corporate staff's searches. Deleting a
  ticket removes its row, so deleted tickets can never match. ``ticket_search_rebuild()``
  refills the table from scratch (used here for the backfill, by the benchmark after a bulk
  load that bypasses triggers, and as a repair tool).
  The GIN indexes on ``tickets.search_vector`` and ``replies.search_vector`` have no reader
  left and are dropped: they only made every write slower. The generated columns stay (the
  triggers and the snippets use them).
- SQLite: the FTS5 table ``ticket_search_fts`` (title, description, replies; rowid = ticket
  number) gets the same content, so that all the words of a query may be spread over the
  ticket and its public replies on both databases. ``tickets_fts`` and ``replies_fts`` stay:
  the snippets are cut from them. ``replies_fts`` is repaired on the way (see below): editing
  a public reply corrupted it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SEARCH_INDEXES = {
    "ix_tickets_search_vector": "tickets",
    "ix_replies_search_vector": "replies",
}

_POSTGRES_UP = [
    """
    CREATE TABLE ticket_search (
        number bigint NOT NULL,
        customer_id integer NOT NULL,
        company_id integer,
        document tsvector NOT NULL,
        CONSTRAINT pk_ticket_search PRIMARY KEY (number),
        CONSTRAINT fk_ticket_search_number_tickets FOREIGN KEY (number)
            REFERENCES tickets (number) ON DELETE CASCADE
    )
    """,
    # The ticket's vector, then its public replies' vectors, oldest first, until the tsvector
    # limit (1 MB) is reached: a pathological ticket loses its latest replies from search rather
    # than refusing them. The block only runs for tickets with replies and writes nothing.
    """
    CREATE FUNCTION ticket_search_document(ticket_number bigint) RETURNS tsvector
    LANGUAGE plpgsql AS $$
    DECLARE
        ticket uuid;
        document tsvector;
        part tsvector;
    BEGIN
        SELECT id, search_vector INTO ticket, document FROM tickets
        WHERE number = ticket_number;
        FOR part IN
            SELECT search_vector FROM replies
            WHERE ticket_id = ticket
              AND NOT is_internal AND deleted_at IS NULL
            ORDER BY created_at, id
        LOOP
            BEGIN
                document := document || part;
            EXCEPTION WHEN program_limit_exceeded THEN
                EXIT;
            END;
        END LOOP;
        RETURN coalesce(document, ''::tsvector);
    END
    $$
    """,
    # The planner's estimate of the live tickets matching a query, as EXPLAIN shows it.
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
    BEGIN
        DELETE FROM ticket_search;
        INSERT INTO ticket_search (number, customer_id, company_id, document)
        SELECT t.number, t.customer_id, t.company_id,
               CASE WHEN EXISTS (
                   SELECT 1 FROM replies r
                   WHERE r.ticket_id = t.id AND NOT r.is_internal AND r.deleted_at IS NULL
               ) THEN ticket_search_document(t.number) ELSE t.search_vector END
        FROM tickets t
        WHERE t.deleted_at IS NULL
        ORDER BY t.number;
        GET DIAGNOSTICS written = ROW_COUNT;
        RETURN written;
    END
    $$
    """,
    # Tickets: a new live ticket gets its row; a deleted one loses it; a restored one (should
    # that ever exist) gets it back; an edited title or description rebuilds the document.
    """
    CREATE FUNCTION ticket_search_ticket_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.deleted_at IS NOT NULL THEN
            DELETE FROM ticket_search WHERE number = NEW.number;
        ELSIF TG_OP = 'INSERT' THEN
            INSERT INTO ticket_search (number, customer_id, company_id, document)
            VALUES (NEW.number, NEW.customer_id, NEW.company_id, NEW.search_vector);
        ELSIF OLD.deleted_at IS NOT NULL THEN
            INSERT INTO ticket_search (number, customer_id, company_id, document)
            VALUES (NEW.number, NEW.customer_id, NEW.company_id,
                    ticket_search_document(NEW.number));
        ELSIF NEW.title IS DISTINCT FROM OLD.title
           OR NEW.description IS DISTINCT FROM OLD.description THEN
            UPDATE ticket_search
            SET customer_id = NEW.customer_id, company_id = NEW.company_id,
                document = ticket_search_document(NEW.number)
            WHERE number = NEW.number;
        ELSIF NEW.customer_id IS DISTINCT FROM OLD.customer_id
           OR NEW.company_id IS DISTINCT FROM OLD.company_id THEN
            UPDATE ticket_search
            SET customer_id = NEW.customer_id, company_id = NEW.company_id
            WHERE number = NEW.number;
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
    # Replies: a new public reply is appended to its ticket's document; an edit, a deletion
    # or any other change to a public reply rebuilds the document. Internal notes never touch
    # it.
    """
    CREATE FUNCTION ticket_search_reply_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        was_public boolean := TG_OP <> 'INSERT'
            AND NOT OLD.is_internal AND OLD.deleted_at IS NULL;
        is_public boolean := TG_OP <> 'DELETE'
            AND NOT NEW.is_internal AND NEW.deleted_at IS NULL;
        ticket uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.ticket_id ELSE NEW.ticket_id END;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF is_public THEN
                BEGIN
                    UPDATE ticket_search s SET document = s.document || NEW.search_vector
                    FROM tickets t
                    WHERE t.id = NEW.ticket_id AND s.number = t.number;
                EXCEPTION WHEN program_limit_exceeded THEN
                    NULL;  -- the document is full: this reply is not searchable
                END;
            END IF;
        ELSIF was_public OR is_public THEN
            IF TG_OP = 'DELETE' OR was_public <> is_public OR NEW.body IS DISTINCT FROM OLD.body
            THEN
                UPDATE ticket_search s SET document = ticket_search_document(t.number)
                FROM tickets t
                WHERE t.id = ticket AND s.number = t.number;
            END IF;
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
    # A search sizes the range of ticket numbers it reads from the planner's estimate of how
    # many tickets hold its words: keep statistics for the 10,000 most common lexemes (the
    # default keeps 1,000) so that a moderately common word is estimated, not guessed.
    "ALTER TABLE ticket_search ALTER COLUMN document SET STATISTICS 1000",
    "ANALYZE ticket_search",
    *(f"DROP INDEX {index}" for index in OLD_SEARCH_INDEXES),
]

_POSTGRES_DOWN = [
    "DROP TRIGGER ticket_search_reply ON replies",
    "DROP FUNCTION ticket_search_reply_changed()",
    "DROP TRIGGER ticket_search_ticket ON tickets",
    "DROP FUNCTION ticket_search_ticket_changed()",
    "DROP FUNCTION ticket_search_rebuild()",
    "DROP FUNCTION ticket_search_estimate(tsquery)",
    "DROP FUNCTION ticket_search_document(bigint)",
    "DROP TABLE ticket_search",
    # As revisions 0001 and 0002 left them.
    "CREATE INDEX ix_tickets_search_vector ON tickets USING gin (search_vector) "
    "WITH (fastupdate = off)",
    "CREATE INDEX ix_replies_search_vector ON replies USING gin (search_vector) "
    "WITH (fastupdate = off) WHERE NOT is_internal AND deleted_at IS NULL",
]

# The public, undeleted replies of one ticket as one text (their order does not matter to FTS5).
_SQLITE_REPLIES = (
    "coalesce((SELECT group_concat(body, char(10)) FROM replies WHERE ticket_id = {ticket} "
    "AND NOT is_internal AND deleted_at IS NULL), '')"
)
_SQLITE_REFRESH = (
    "UPDATE ticket_search_fts SET replies = "
    + _SQLITE_REPLIES
    + " WHERE rowid = (SELECT number FROM tickets WHERE id = {ticket});"
)

_SQLITE_UP = [
    "CREATE VIRTUAL TABLE ticket_search_fts USING fts5("
    "title, description, replies, tokenize='porter unicode61')",
    "INSERT INTO ticket_search_fts (rowid, title, description, replies) "
    "SELECT t.number, t.title, t.description, " + _SQLITE_REPLIES.format(ticket="t.id") + " "
    "FROM tickets t",
    "CREATE TRIGGER ticket_search_fts_ticket_ai AFTER INSERT ON tickets BEGIN "
    "INSERT INTO ticket_search_fts (rowid, title, description, replies) "
    "VALUES (new.number, new.title, new.description, ''); END",
    "CREATE TRIGGER ticket_search_fts_ticket_au AFTER UPDATE OF title, description ON tickets "
    "BEGIN UPDATE ticket_search_fts SET title = new.title, description = new.description "
    "WHERE rowid = new.number; END",
    "CREATE TRIGGER ticket_search_fts_ticket_ad AFTER DELETE ON tickets BEGIN "
    "DELETE FROM ticket_search_fts WHERE rowid = old.number; END",
    "CREATE TRIGGER ticket_search_fts_reply_ai AFTER INSERT ON replies "
    "WHEN NOT new.is_internal AND new.deleted_at IS NULL BEGIN "
    + _SQLITE_REFRESH.format(ticket="new.ticket_id")
    + " END",
    "CREATE TRIGGER ticket_search_fts_reply_au AFTER UPDATE OF body, is_internal, deleted_at "
    "ON replies BEGIN " + _SQLITE_REFRESH.format(ticket="new.ticket_id") + " END",
    "CREATE TRIGGER ticket_search_fts_reply_ad AFTER DELETE ON replies "
    "WHEN NOT old.is_internal AND old.deleted_at IS NULL BEGIN "
    + _SQLITE_REFRESH.format(ticket="old.ticket_id")
    + " END",
]

# A repair: an edited public reply used to corrupt replies_fts ("database disk image is
# malformed" on the next search that showed it). Its two update triggers ran newest first, so
# the edited text was indexed before the old text was deleted, and the delete then removed the
# row's entry altogether. One trigger now deletes, then inserts; the index is rebuilt from the
# public replies (a plain 'rebuild' would index the internal notes too).
_SQLITE_REPLIES_FTS_REPAIR = [
    "DROP TRIGGER replies_fts_au_old",
    "DROP TRIGGER replies_fts_au_new",
    "CREATE TRIGGER replies_fts_au AFTER UPDATE ON replies BEGIN "
    "INSERT INTO replies_fts(replies_fts, rowid, body) SELECT 'delete', old.id, old.body "
    "WHERE NOT old.is_internal AND old.deleted_at IS NULL; "
    "INSERT INTO replies_fts(rowid, body) SELECT new.id, new.body "
    "WHERE NOT new.is_internal AND new.deleted_at IS NULL; END",
    "INSERT INTO replies_fts(replies_fts) VALUES ('delete-all')",
    "INSERT INTO replies_fts(rowid, body) SELECT id, body FROM replies "
    "WHERE NOT is_internal AND deleted_at IS NULL",
]

# As revision 0001 left them.
_SQLITE_REPLIES_FTS_UNREPAIR = [
    "DROP TRIGGER replies_fts_au",
    "CREATE TRIGGER replies_fts_au_old AFTER UPDATE ON replies "
    "WHEN NOT old.is_internal AND old.deleted_at IS NULL BEGIN "
    "INSERT INTO replies_fts(replies_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
    "CREATE TRIGGER replies_fts_au_new AFTER UPDATE ON replies "
    "WHEN NOT new.is_internal AND new.deleted_at IS NULL BEGIN "
    "INSERT INTO replies_fts(rowid, body) VALUES (new.id, new.body); END",
]

_SQLITE_DOWN = [
    "DROP TRIGGER ticket_search_fts_reply_ad",
    "DROP TRIGGER ticket_search_fts_reply_au",
    "DROP TRIGGER ticket_search_fts_reply_ai",
    "DROP TRIGGER ticket_search_fts_ticket_ad",
    "DROP TRIGGER ticket_search_fts_ticket_au",
    "DROP TRIGGER ticket_search_fts_ticket_ai",
    "DROP TABLE ticket_search_fts",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_UP if postgres else _SQLITE_UP + _SQLITE_REPLIES_FTS_REPAIR:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in _POSTGRES_DOWN if postgres else _SQLITE_REPLIES_FTS_UNREPAIR + _SQLITE_DOWN:
        op.execute(statement)
