"""Slack's message markup read as the people in the conversation saw it (pure, no Slack calls).

A message event carries what a person wrote in Slack's markup: `<@U123>` for a mention,
`<#C123|general>` for a channel, `<https://x|docs>` for a link, `&amp;` for `&`, or only in
`blocks` (rich text) or in `attachments` (a forwarded message). The ticket stores it as the
reader saw it, in plain words, so that search finds the names and the link's words and every
surface can render it again safely (bot.blocks.text.escape):

- a mention becomes `@Display Name` (`@user` when the name is not known), a channel `#name`
  (`#channel`), a user group its handle (`@team`), a broadcast the word (`@here`);
- a link is kept with its target: `docs (https://x)`, or just the URL when the label is the
  URL (with or without its scheme); a mail link keeps its address the same way;
- `&amp; &lt; &gt;` are decoded.

Which part of a message is read (`message_text`): its `text` when it has any (for rich-text
messages that is Slack's own rendering of the blocks, and the only place a user group's handle
appears); else its rich_text blocks; then forwarded messages in `attachments` are appended
(shared messages, and any attachment of a message that has nothing else). Link previews
(unfurls) are not part of what the person wrote and are left out.

Names come from the caller (`Names`): `references` lists the ids a message mentions, the caller
looks them up (bot.directory) and passes the answers in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

UNKNOWN_USER = "@user"
UNKNOWN_CHANNEL = "#channel"
UNKNOWN_GROUP = "@group"
BROADCASTS = frozenset({"here", "channel", "everyone"})

_TOKEN = re.compile(r"<([^<>]*)>")
_USER_ID = re.compile(r"[UWB][A-Z0-9]{1,31}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{1,31}")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:(?://)?", re.IGNORECASE)


def decode(text: str) -> str:
    """Slack's three entities decoded (`&amp;lt;` stays `&lt;`: one level, as Slack encodes)."""
    return re.sub(r"&(lt|gt|amp);", lambda m: {"lt": "<", "gt": ">", "amp": "&"}[m[1]], text)


@dataclass(frozen=True)
class Names:
    """Display names of people (by user id) and names of channels (by channel id)."""

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)

    def user(self, user_id: str, label: str | None = None) -> str:
        name = self.users.get(user_id) or (label or "").lstrip("@").strip()
        return f"@{_one_line(name)}" if name else UNKNOWN_USER

    def channel(self, channel_id: str, label: str | None = None) -> str:
        name = (label or "").lstrip("#").strip() or self.channels.get(channel_id)
        return f"#{_one_line(name)}" if name else UNKNOWN_CHANNEL


@dataclass(frozen=True)
class References:
    """The people and channels a message mentions, to be named before it is read."""

    users: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()

    def __or__(self, other: References) -> References:
        return References(self.users | other.users, self.channels | other.channels)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def link(url: str, label: str | None = None) -> str:
    """A link as stored: `label (url)`, or the URL alone when the label adds nothing."""
    url = url.strip()
    label = _one_line(label or "")
    if not label or _same_target(label, url):
        if url.lower().startswith("mailto:") and label:
            return label  # <mailto:a@b.c|a@b.c>: the address as written
        return url
    if not url:
        return label
    return f"{label} ({url})"


def _same_target(label: str, url: str) -> bool:
    def bare(value: str) -> str:
        return _SCHEME.sub("", value.strip()).rstrip("/").lower()

    return bare(label) == bare(url)


# ------------------------------------------------------------------------------ mrkdwn text


def text_references(text: str) -> References:
    """The user and channel ids that `<@…>` and `<#…>` tokens in `text` name."""
    users: set[str] = set()
    channels: set[str] = set()
    for match in _TOKEN.finditer(text or ""):
        target = match[1].partition("|")[0]
        if target.startswith("@") and _USER_ID.fullmatch(target[1:]):
            users.add(target[1:])
        elif target.startswith("#") and _CHANNEL_ID.fullmatch(target[1:]):
            channels.add(target[1:])
    return References(frozenset(users), frozenset(channels))


def translate(text: str, names: Names | None = None) -> str:
    """Slack mrkdwn `text` as the reader saw it (see the module docstring)."""
    names = names or Names()
    out: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text or ""):
        out.append(decode(text[last : match.start()]))
        out.append(_token(match[1], names))
        last = match.end()
    out.append(decode((text or "")[last:]))
    return "".join(out)


def _token(inner: str, names: Names) -> str:
    target, bar, label = inner.partition("|")
    label = decode(label) if bar else ""
    if target.startswith("@"):
        user_id = target[1:]
        return names.user(user_id, label) if _USER_ID.fullmatch(user_id) else UNKNOWN_USER
    if target.startswith("#"):
        channel_id = target[1:]
        if _CHANNEL_ID.fullmatch(channel_id):
            return names.channel(channel_id, label)
        return UNKNOWN_CHANNEL
    if target.startswith("!"):
        return _special(target[1:], label)
    return link(decode(target), label)


def _special(command: str, label: str) -> str:
    """`<!here>`, `<!subteam^S1|@team>`, `<!date^…|fallback>` and the like, as plain words."""
    name = command.split("^", 1)[0].lower()
    if name in BROADCASTS:
        return f"@{name}"
    if name == "subteam":
        handle = _one_line(label).lstrip("@")
        return f"@{handle}" if handle else UNKNOWN_GROUP
    return _one_line(label) if label else ""


# ------------------------------------------------------------------------------ rich text


def blocks_references(blocks: Any) -> References:
    """The user and channel ids the rich_text elements of `blocks` name."""
    users: set[str] = set()
    channels: set[str] = set()
    for element in _inline_elements(blocks):
        if element.get("type") == "user" and _USER_ID.fullmatch(str(element.get("user_id"))):
            users.add(str(element["user_id"]))
        elif element.get("type") == "channel" and _CHANNEL_ID.fullmatch(
            str(element.get("channel_id"))
        ):
            channels.add(str(element["channel_id"]))
    return References(frozenset(users), frozenset(channels))


def _inline_elements(node: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        if node.get("type") in ("user", "channel"):
            yield node
        for value in node.values():
            if isinstance(value, list | Mapping):
                yield from _inline_elements(value)
    elif isinstance(node, list):
        for item in node:
            yield from _inline_elements(item)


def rich_text(blocks: Any, names: Names | None = None) -> str:
    """The rich_text blocks of a message as the reader saw them: sections, lists (bullets or
    numbers, indented), quotes (`> `), preformatted text (fenced), links, mentions, emoji."""
    names = names or Names()
    parts: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping) and block.get("type") == "rich_text":
            text = _rich_block(block.get("elements"), names)
            if text.strip():
                parts.append(text.strip("\n"))
    return "\n".join(parts)


def _rich_block(elements: Any, names: Names) -> str:
    lines: list[str] = []
    for element in elements if isinstance(elements, list) else []:
        if not isinstance(element, Mapping):
            continue
        kind = element.get("type")
        inline = _inline(element.get("elements"), names)
        if kind == "rich_text_section":
            lines.append(inline.rstrip("\n"))
        elif kind == "rich_text_quote":
            lines.extend(f"> {line}" if line else ">" for line in inline.split("\n"))
        elif kind == "rich_text_preformatted":
            lines.append(f"```\n{inline.strip(chr(10))}\n```")
        elif kind == "rich_text_list":
            lines.extend(_list_items(element, names))
    return "\n".join(lines)


def _list_items(element: Mapping[str, Any], names: Names) -> list[str]:
    indent = "    " * _int(element.get("indent"))
    ordered = element.get("style") == "ordered"
    start = _int(element.get("offset"))
    items: list[str] = []
    for number, item in enumerate(element.get("elements") or [], start=start + 1):
        if not isinstance(item, Mapping):
            continue
        bullet = f"{number}." if ordered else "•"
        text = _inline(item.get("elements"), names).strip("\n").replace("\n", "\n  " + indent)
        items.append(f"{indent}{bullet} {text}")
    return items


def _int(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 100 else 0


def _inline(elements: Any, names: Names) -> str:
    out: list[str] = []
    for element in elements if isinstance(elements, list) else []:
        if isinstance(element, Mapping):
            out.append(_inline_element(element, names))
    return "".join(out)


def _inline_element(element: Mapping[str, Any], names: Names) -> str:
    kind = element.get("type")
    if kind == "text":
        return _styled(str(element.get("text") or ""), element.get("style"))
    if kind == "link":
        text = element.get("text")
        return link(str(element.get("url") or ""), str(text) if text else None)
    if kind == "user":
        return names.user(str(element.get("user_id") or ""))
    if kind == "channel":
        return names.channel(str(element.get("channel_id") or ""))
    if kind == "usergroup":
        return UNKNOWN_GROUP  # blocks carry only the group's id; its handle is in `text`
    if kind == "broadcast":
        scope = str(element.get("range") or "")
        return f"@{scope}" if scope in BROADCASTS else "@here"
    if kind == "emoji":
        name = str(element.get("name") or "")
        return f":{name}:" if name else ""
    if kind == "date":
        return _one_line(str(element.get("fallback") or ""))
    if kind == "color":
        return str(element.get("value") or "")
    return ""


def _styled(text: str, style: Any) -> str:
    """Inline styles written back as the mrkdwn marks Slack's own `text` would carry."""
    if not isinstance(style, Mapping) or not text.strip():
        return text
    if style.get("code"):
        return f"`{text}`"
    core = text.strip()
    lead, tail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    for key, mark in (("strike", "~"), ("italic", "_"), ("bold", "*")):
        if style.get(key):
            core = f"{mark}{core}{mark}"
    return f"{lead}{core}{tail}"


# ------------------------------------------------------------------------------ attachments


def _forwarded(message: Mapping[str, Any], has_own_text: bool) -> list[Mapping[str, Any]]:
    """The attachments that carry what the person shared (not previews of their links)."""
    found: list[Mapping[str, Any]] = []
    text = str(message.get("text") or "")
    for attachment in message.get("attachments") or []:
        if not isinstance(attachment, Mapping):
            continue
        if attachment.get("is_share"):
            found.append(attachment)
        elif attachment.get("is_msg_unfurl"):
            origin = str(attachment.get("from_url") or attachment.get("original_url") or "")
            if not origin or origin not in text:  # not the preview of a pasted permalink
                found.append(attachment)
        elif not has_own_text and not attachment.get("from_url"):
            found.append(attachment)  # a message of attachments only (no link previews)
    return found


def attachments_references(message: Mapping[str, Any]) -> References:
    refs = References()
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, Mapping):
            for key in ("text", "pretext", "title"):
                refs = refs | text_references(str(attachment.get(key) or ""))
    return refs


def _attachment_text(attachment: Mapping[str, Any], names: Names) -> str:
    lines: list[str] = []
    pretext = translate(str(attachment.get("pretext") or ""), names).strip()
    if pretext:
        lines.append(pretext)
    author = _one_line(str(attachment.get("author_name") or attachment.get("author_subname") or ""))
    where = _one_line(str(attachment.get("channel_name") or ""))
    heading = "Forwarded message" + (f" from {author}" if author else "")
    if where and where.lower() != "direct message":
        heading += f" in #{where.lstrip('#')}"
    if attachment.get("is_share") or attachment.get("is_msg_unfurl") or author:
        lines.append(heading + ":")
    title = translate(str(attachment.get("title") or ""), names).strip()
    if title:
        title_link = str(attachment.get("title_link") or "")
        lines.append(link(title_link, title) if title_link else title)
    body = str(attachment.get("text") or "")
    if body.strip():
        lines.append(translate(body, names).strip("\n"))
    elif attachment.get("message_blocks"):
        shared = [
            b
            for entry in attachment.get("message_blocks") or []
            if isinstance(entry, Mapping)
            for b in ((entry.get("message") or {}).get("blocks") or [])
        ]
        lines.append(rich_text(shared, names))
    elif str(attachment.get("fallback") or "").strip() and not title:
        lines.append(translate(str(attachment["fallback"]), names).strip("\n"))
    return "\n".join(line for line in lines if line)


# ------------------------------------------------------------------------------ whole message


def message_references(message: Mapping[str, Any]) -> References:
    """Every user and channel id a message's text, rich text and attachments name."""
    return (
        text_references(str(message.get("text") or ""))
        | blocks_references(message.get("blocks"))
        | attachments_references(message)
        | blocks_references(
            [a.get("message_blocks") for a in message.get("attachments") or [] if a]
        )
    )


def message_text(message: Mapping[str, Any], names: Names | None = None) -> str:
    """What the person wrote in `message` (an event or a `message` object), as they saw it:
    the text (else the rich text), then what they forwarded."""
    names = names or Names()
    raw = str(message.get("text") or "")
    own = translate(raw, names) if raw.strip() else rich_text(message.get("blocks"), names)
    parts = [own.strip("\n")] if own.strip() else []
    for attachment in _forwarded(message, bool(parts)):
        shared = _attachment_text(attachment, names)
        if shared.strip():
            parts.append(shared)
    return "\n\n".join(parts)


def first_line(text: str, limit: int) -> str:
    """The first non-empty line of `text`, at most `limit` characters (a title from a message)."""
    for line in text.splitlines():
        if line.strip():
            return _one_line(line)[:limit]
    return ""
