"""Full-text ticket search: title, description and public replies, ranked, within visibility.

What a user types is data, never syntax. The query is cut into word tokens ([^\\W_]+: letters
and digits; underscores, quotes, ``%``, parentheses and every other character separate words)
and each token is passed to the full-text engine as a quoted literal, in a bound parameter. So
``AND``, ``OR``, ``NOT``, ``NEAR``, ``*``, ``^``, ``:`` or ``-`` are plain words or separators,
and ``%`` or ``_`` are never wildcards. Every token must occur somewhere in the ticket's
searchable text: its title, its description and its public, undeleted replies, taken together
as one document; the last token also matches as a prefix when it has 3 or more characters, so
a word still being typed finds its completions.

Which hits, in which order: the newest ``RANKED_LIMIT`` (500) matching tickets the actor may
see are ranked, best first (newest first among equals), and paged through. A ticket's rank
adds up, for each word of the query, the weight of the best part that holds it: title 4,
description 2, a public reply 1 (``core.search.ranking``). A query that matches more tickets
than that says so (``Page.capped``; ``total`` is then ``RANKED_LIMIT``) rather than counting
them all: a desk's recent conversations are what a search is for, 25 pages of 20 is more than
anyone reads, and counting or ranking a fifth of a million tickets took more than a second.
One more word narrows it.

A conversation of thousands of replies costs no more per reply than a short one (migration
0010): adding, editing or deleting a reply writes a bounded part of the index, never the whole
conversation's.

PostgreSQL matches ``ticket_search.document`` through its GIN index. It holds, kept in step by
triggers, part 0 of each live ticket: the title (weight A), the description (B) and its first 20
replies that are public and undeleted (D; by id, so a reply's place never moves), and one row of
its own for each later public, undeleted reply (D). One of the first 20 replies rewrites part 0 (at
most 20 replies long); a later one writes only its own row and marks every part of its ticket
``overflow``. So a ticket without later replies matches when its part 0 holds every token, which
one GIN ``AND`` answers as for a whole-ticket document; the parts of the few tickets with
``overflow`` that hold any token (a partial GIN index) are grouped per ticket and kept when every
token was found somewhere. To find the newest matches without visiting every older one, a staff
search reads a range of the newest ticket numbers: as wide as the planner's estimate of the matches
(``ticket_search_estimate``) says holds ``RANKED_LIMIT`` of them, with a margin.
Should it hold fewer, the next range is sized from the density of matches actually seen, and a
query too rare to measure takes everything older at once (one the estimate calls common, but
absent from the newest tickets, takes ranges growing eightfold instead). A query the estimate
finds in a large share of all parts (``STREAM_SHARE``) is read newest first instead, part by
part along the primary key, until enough tickets match: its GIN posting list would be longer
than that walk. Customers and corporate staff see a narrow share of the desk and read it whole.
It also accepts the text as ``plainto_tsquery`` sees it, so that e-mail addresses and host
names, which its parser keeps whole, are found. Every statement of a search runs under a
``SEARCH_TIMEOUT_MS`` statement timeout: a query that still takes longer is refused as too
broad (VALIDATION), and the attempt still counts against the rate limit.

SQLite matches the FTS5 tables ``tickets_fts`` (title, description) and ``replies_fts``
(public, undeleted replies) and puts them together per ticket the same way. It is there for
correctness (tests, a one-machine desk), not for a million tickets.

Modules: `service` (search_tickets: rate limit, timeout, paging), `query` (parsing and
validation), `ranking` (the engine interface, ranking rules, snippets), one engine per
database: `postgres` (tsvector) and `sqlite` (FTS5).
"""

from core.search.postgres import SEARCH_TIMEOUT_MS
from core.search.query import PREFIX_MIN, parse_query
from core.search.ranking import SNIPPET_MAX_CHARS, SNIPPET_WORDS
from core.search.service import QUERY_CANCELED, RANKED_LIMIT, TOO_BROAD, SearchHit, search_tickets

__all__ = [
    "PREFIX_MIN",
    "QUERY_CANCELED",
    "RANKED_LIMIT",
    "SEARCH_TIMEOUT_MS",
    "SNIPPET_MAX_CHARS",
    "SNIPPET_WORDS",
    "TOO_BROAD",
    "SearchHit",
    "parse_query",
    "search_tickets",
]
