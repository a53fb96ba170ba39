"""Safe text for Block Kit: escaping user text, truncation, quotes, durations, dates, mentions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ZERO_WIDTH_SPACE = "\u200b"

# C0/C1 control characters other than tab and newline, and Unicode bidi overrides/isolates that
# can make text read differently from what it says (same set as core.validation).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# '@' that could start a mention if the text were ever posted with link_names: a broadcast word
# anywhere, or any word right after an '@' that does not sit inside a word (e-mail addresses
# keep their '@' untouched so they stay copyable).
_AT = re.compile(r"@(?=(?:channel|here|everyone|group)\b)|(?<![\w.+-])@(?=\w)", re.IGNORECASE)
_ENTITIES = ("&amp;", "&lt;", "&gt;")
_SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]+")
# A web or mail address in user text. It ends before white space, Slack's token characters,
# quotes, and before trailing punctuation that belongs to the sentence (see _url_end).
_URL = re.compile(r"\b(?:https?://|mailto:)[^\s<>|\"'`\u2026]+", re.IGNORECASE)
_TRAILING = ".,;:!?*_~"


def plain(text: str) -> str:
    """Text for plain_text fields: control and bidi-override characters removed."""
    return _CONTROL.sub("", text or "")


def escape(text: str) -> str:
    """User text for mrkdwn: &, <, > escaped and @-mentions/broadcasts defused, never a ping;
    web and mail addresses become links that show their own target (`<https://x>`), so a link
    is clickable and no label can pass one address off as another."""
    text = plain(text)
    out: list[str] = []
    last = 0
    for match in _URL.finditer(text):
        end = _url_end(text, match.start(), match.end())
        if end <= match.start() + len("mailto:") or text.startswith("\u2026", end):
            continue  # a bare scheme, or an address cut short ("https://exa…"): left as text
        out.append(_escape_words(text[last : match.start()]))
        out.append(f"<{_escape_words(text[match.start() : end], mentions=False)}>")
        last = end
    out.append(_escape_words(text[last:]))
    return "".join(out)


def _escape_words(text: str, *, mentions: bool = True) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AT.sub("@" + ZERO_WIDTH_SPACE, text) if mentions else text


def _url_end(text: str, start: int, end: int) -> int:
    """Where an address found at text[start:end] really ends: without the sentence's closing
    punctuation, and without a closing bracket it did not open ("(see https://x)")."""
    while end > start:
        last = text[end - 1]
        url = text[start:end]
        unopened = last in ")]" and _unbalanced(url, last)
        if last in _TRAILING or unopened:
            end -= 1
        else:
            break
    return end


def _unbalanced(url: str, closing: str) -> bool:
    opening = "(" if closing == ")" else "["
    return url.count(opening) < url.count(closing)


def _open_token(text: str) -> int:
    """The index of a `<` in `text` whose `>` is not in `text` (a link cut in two), or -1."""
    start = text.rfind("<")
    return start if start != -1 and text.find(">", start) == -1 else -1


def truncate(text: str, limit: int, *, more: str = "…") -> str:
    """Shorten text to at most `limit` characters, ending with `more`; never splits an entity."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if len(more) >= limit:
        return more[:limit]
    cut = limit - len(more)
    head = text[:cut]
    amp = head.rfind("&", max(0, cut - 4))
    if amp != -1 and ";" not in head[amp:] and text.startswith(_ENTITIES, amp):
        head = head[:amp]
    token = _open_token(head)
    if token != -1:  # never half a link: "<https://exa…" would show as raw markup
        head = head[:token]
    return head.rstrip() + more


def split_text(text: str, size: int) -> list[str]:
    """Split (escaped) text into pieces of at most `size`, at a line break or space if possible."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", size // 2, size)
        if cut == -1:
            cut = text.rfind(" ", size // 2, size)
        if cut == -1:
            cut = size
            amp = text.rfind("&", max(0, cut - 4), cut)
            if amp != -1 and ";" not in text[amp:cut] and text.startswith(_ENTITIES, amp):
                cut = amp
        token = _open_token(text[:cut])
        if token > 0:  # never half a link: the piece ends before it
            cut = token
        if cut <= 0:
            cut = size
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip("\n ")
    if text:
        pieces.append(text)
    return [piece for piece in pieces if piece]


def single_line(text: str) -> str:
    """Plain text with every run of white space (newlines included) folded to one space."""
    return " ".join(plain(text).split())


def quote(text: str, *, limit: int | None = None) -> str:
    """A multi-line user message as an escaped mrkdwn block quote, at most `limit` characters."""
    lines = escape(text).strip("\n").split("\n")
    quoted = "\n".join(f"> {line}" if line.strip() else ">" for line in lines)
    return truncate(quoted, limit) if limit is not None else quoted


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive values are taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_duration(duration: timedelta) -> str:
    """A short human duration: '45s', '12m', '1h 20m', '2d 3h' (sign ignored)."""
    seconds = int(abs(duration).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def format_time(moment: datetime) -> str:
    """A Slack date token shown in the reader's time zone, with a UTC fallback (mrkdwn only)."""
    moment = as_utc(moment)
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short}} {{time}}|{fallback}>"


def is_slack_user_id(value: str | None) -> bool:
    """Whether `value` looks like a Slack user id (U… or W…), safe to put in a mention."""
    return value is not None and _SLACK_USER_ID.fullmatch(value) is not None


def user_mention(slack_user_id: str | None, *, name: str | None = None) -> str:
    """'<@U…>' for a well-formed Slack user id, else the escaped name (or 'someone')."""
    if slack_user_id and is_slack_user_id(slack_user_id):
        return f"<@{slack_user_id}>"
    return escape(single_line(name or "")) or "someone"
