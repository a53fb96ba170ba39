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


def plain(text: str) -> str:
    """Text for plain_text fields: control and bidi-override characters removed."""
    return _CONTROL.sub("", text or "")


def escape(text: str) -> str:
    """User text for mrkdwn: &, <, > escaped and @-mentions/broadcasts defused, never a ping."""
    text = plain(text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AT.sub("@" + ZERO_WIDTH_SPACE, text)


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
