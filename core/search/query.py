"""What a user types, as the search reads it: trimmed and checked (3 to 200 characters), cut
into word tokens, and written as each engine's query of quoted literals (never syntax)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import ValidationFailed
from core.validation import SEARCH_MAX, SEARCH_MIN, single_line

# Letters and digits only: '_' is a word character for the regex module but a separator for both
# full-text parsers, so it must separate here too or 'broken_disk' would never match.
_TOKEN = re.compile(r"[^\W_]+")
PREFIX_MIN = 3


@dataclass(frozen=True)
class Terms:
    text: str  # the trimmed query, as typed
    tokens: tuple[str, ...]  # lower-cased word tokens, first occurrence order, no duplicates

    @property
    def has_compound_words(self) -> bool:
        """Whether a run of non-blank characters holds several tokens ('a@b.com', 'x-y')."""
        return any(len(_TOKEN.findall(chunk)) > 1 for chunk in self.text.split())

    def pg_tsquery(self, joiner: str) -> str:
        """to_tsquery input: each token a quoted literal, the last one a prefix if long."""
        parts = [f"'{token}'" for token in self.tokens]
        if len(self.tokens[-1]) >= PREFIX_MIN:
            parts[-1] += ":*"
        return f" {joiner} ".join(parts)

    def pg_token(self, index: int, weights: str = "") -> str:
        """to_tsquery input for one token: a quoted literal, a prefix if it is the last and
        long, restricted to the given weights ('A': title) if any."""
        token = self.tokens[index]
        last = index == len(self.tokens) - 1 and len(token) >= PREFIX_MIN
        marks = ("*" if last else "") + weights
        return f"'{token}'" + (f":{marks}" if marks else "")

    def fts5_token(self, index: int, column_name: str | None = None) -> str:
        """FTS5 MATCH input for one token: an FTS5 string, a prefix if it is the last and long."""
        token = self.tokens[index]
        text = '"' + token.replace('"', '""') + '"'
        if index == len(self.tokens) - 1 and len(token) >= PREFIX_MIN:
            text += "*"
        return f"{column_name} : {text}" if column_name else text

    def fts5_query(self, joiner: str, column_name: str | None = None) -> str:
        """FTS5 MATCH input: each token an FTS5 string, the last one a prefix if long."""
        parts = ['"' + token.replace('"', '""') + '"' for token in self.tokens]
        if len(self.tokens[-1]) >= PREFIX_MIN:
            parts[-1] += "*"
        expression = f" {joiner} ".join(parts)
        return f"{column_name} : ({expression})" if column_name else expression


def parse_query(query: object) -> Terms:
    """Trim and check the query (3 to 200 characters) and extract its word tokens."""
    text = single_line(query, field="query", max_length=SEARCH_MAX)
    if len(text) < SEARCH_MIN:
        raise ValidationFailed(f"Search for at least {SEARCH_MIN} characters.", field="query")
    tokens = tuple(dict.fromkeys(token.lower() for token in _TOKEN.findall(text)))
    return Terms(text=text, tokens=tokens)
