"""Plain-text views of Block Kit: what a person would read, and every string a payload carries.

`render_*` turn blocks, messages and views into readable text for the demo; `visible_text` and
`raw_text` pull strings out of any payload so a leak scanner can search them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

RULE_WIDTH = 48

# Keys whose string values Slack shows to the reader (attachments included).
_VISIBLE_KEYS = frozenset(
    {"text", "initial_value", "alt_text", "fallback", "pretext", "title", "footer", "author_name"}
)
# Input element types whose submitted "value" is what the user typed and sees.
_VALUE_INPUTS = frozenset(
    {"plain_text_input", "email_text_input", "url_text_input", "number_input"}
)
_SELECTS = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)

_MRKDWN_TOKEN = re.compile(r"<([^<>]+)>")


def visible_text(obj: Any) -> str:
    """Join every string a Slack client would display from a payload (text, blocks, views)."""
    return "\n".join(_visible_strings(obj, parent_key=None))


def raw_text(obj: Any) -> str:
    """Join every string leaf of a payload, hidden ones too (button values, private_metadata)."""
    return "\n".join(_all_strings(obj))


def _visible_strings(obj: Any, parent_key: str | None) -> Iterator[str]:
    """Yield the displayed strings of `obj`, recursing through dicts and lists."""
    if isinstance(obj, str):
        if parent_key is None or parent_key in _VISIBLE_KEYS:
            yield obj
        return
    if isinstance(obj, Mapping):
        is_value_input = obj.get("type") in _VALUE_INPUTS
        # A legacy attachment field is {"title": ..., "value": ...}; both are shown.
        is_attachment_field = isinstance(obj.get("title"), str) and "short" in obj
        for key, value in obj.items():
            if (
                key == "value"
                and isinstance(value, str)
                and (is_value_input or is_attachment_field)
            ):
                yield value
            else:
                yield from _visible_strings(value, key)
        return
    if isinstance(obj, Sequence):
        for item in obj:
            yield from _visible_strings(item, parent_key)


def _all_strings(obj: Any) -> Iterator[str]:
    """Yield every string leaf of `obj`."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _all_strings(value)
    elif isinstance(obj, Sequence):
        for item in obj:
            yield from _all_strings(item)


def mrkdwn_to_text(text: str, names: Mapping[str, str] | None = None) -> str:
    """Turn Slack mrkdwn escapes (<@U1>, <#C1|x>, <url|label>, &amp;) into readable text."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user = target[1:]
            return "@" + (label or (names or {}).get(user, user))
        if target.startswith("#"):
            channel = target[1:]
            return "#" + (label or (names or {}).get(channel, channel))
        if target.startswith("!"):
            special = target[1:].split("^", 1)[0]
            if special.startswith("subteam"):
                return "@" + (label or special)
            if special.startswith("date"):
                return label or special
            return "@" + special
        return f"{label} ({target})" if label and label != target else target

    return html.unescape(_MRKDWN_TOKEN.sub(replace, text))


def _text_of(obj: Any, names: Mapping[str, str] | None = None) -> str:
    """Render a text object ({"type": "plain_text"|"mrkdwn", "text": ...}) or a bare string."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return mrkdwn_to_text(obj, names)
    if isinstance(obj, Mapping):
        text = obj.get("text", "")
        if not isinstance(text, str):
            return ""
        return mrkdwn_to_text(text, names) if obj.get("type") == "mrkdwn" else text
    return str(obj)


def _element_as_text(element: Mapping[str, Any], names: Mapping[str, str] | None) -> str:
    """Render an interactive element or accessory compactly, e.g. a button as [Label]."""
    kind = element.get("type", "")
    if kind == "button":
        return f"[{_text_of(element.get('text'), names)}]"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind == "overflow":
        return "[...]"
    if kind in _SELECTS or kind in {"radio_buttons", "checkboxes"}:
        chosen = _initial_choice(element, names)
        shown = chosen or _text_of(element.get("placeholder"), names) or "choose"
        return f"[{shown} v]"
    if kind in {"datepicker", "timepicker", "datetimepicker"}:
        initial = element.get("initial_date") or element.get("initial_time")
        initial = initial or element.get("initial_date_time")
        return f"[{initial or _text_of(element.get('placeholder'), names) or kind}]"
    if kind in _VALUE_INPUTS:
        return str(element.get("initial_value") or "____")
    if kind == "workflow_button":
        return f"[{_text_of(element.get('text'), names)}]"
    return f"[{kind}]"


def _initial_choice(element: Mapping[str, Any], names: Mapping[str, str] | None) -> str:
    """The preselected option(s)/user(s)/conversation(s) of a select, as text."""
    option = element.get("initial_option")
    if isinstance(option, Mapping):
        return _text_of(option.get("text"), names)
    options = element.get("initial_options")
    if isinstance(options, list) and options:
        return ", ".join(_text_of(o.get("text"), names) for o in options if isinstance(o, Mapping))
    for key in ("initial_user", "initial_conversation", "initial_channel"):
        value = element.get(key)
        if isinstance(value, str):
            return (names or {}).get(value, value)
    for key in ("initial_users", "initial_conversations", "initial_channels"):
        values = element.get(key)
        if isinstance(values, list) and values:
            return ", ".join((names or {}).get(v, v) for v in values)
    return ""


def _rich_inline(elements: Sequence[Any], names: Mapping[str, str] | None) -> str:
    """Render the inline elements of a rich_text_section."""
    parts: list[str] = []
    for el in elements:
        if not isinstance(el, Mapping):
            continue
        kind = el.get("type")
        if kind == "text":
            parts.append(str(el.get("text", "")))
        elif kind == "link":
            label = el.get("text")
            parts.append(f"{label} ({el.get('url')})" if label else str(el.get("url", "")))
        elif kind == "user":
            user = str(el.get("user_id", ""))
            parts.append("@" + (names or {}).get(user, user))
        elif kind == "channel":
            channel = str(el.get("channel_id", ""))
            parts.append("#" + (names or {}).get(channel, channel))
        elif kind == "emoji":
            parts.append(f":{el.get('name', '')}:")
        elif kind == "broadcast":
            parts.append(f"@{el.get('range', 'here')}")
        elif kind == "usergroup":
            parts.append(f"@{el.get('usergroup_id', '')}")
        elif kind == "date":
            parts.append(str(el.get("fallback") or el.get("timestamp", "")))
    return "".join(parts)


def _rich_text_lines(block: Mapping[str, Any], names: Mapping[str, str] | None) -> list[str]:
    """Render a rich_text block: sections, bullet/numbered lists, quotes, code."""
    lines: list[str] = []
    for el in block.get("elements", []):
        if not isinstance(el, Mapping):
            continue
        kind = el.get("type")
        inline = _rich_inline(el.get("elements", []), names)
        if kind == "rich_text_section":
            lines.extend(inline.splitlines() or [""])
        elif kind == "rich_text_list":
            indent = "  " * int(el.get("indent", 0) or 0)
            for number, item in enumerate(el.get("elements", []), start=1):
                bullet = f"{number}." if el.get("style") == "ordered" else "-"
                text = _rich_inline(item.get("elements", []), names)
                lines.append(f"{indent}{bullet} {text}")
        elif kind == "rich_text_quote":
            lines.extend(f"> {line}" for line in inline.splitlines() or [""])
        elif kind == "rich_text_preformatted":
            lines.extend(["```", *inline.splitlines(), "```"])
    return lines


def _block_lines(block: Mapping[str, Any], names: Mapping[str, str] | None) -> list[str]:
    """Render one block as a list of lines."""
    kind = block.get("type")
    if kind == "header":
        title = _text_of(block.get("text"), names)
        return [title, "=" * max(len(title), 3)]
    if kind == "divider":
        return ["-" * RULE_WIDTH]
    if kind == "section":
        lines = _text_of(block.get("text"), names).splitlines()
        for field in block.get("fields", []) or []:
            lines.append("  " + " ".join(_text_of(field, names).split()))
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            rendered = _element_as_text(accessory, names)
            if lines:
                lines[0] = f"{lines[0]}  {rendered}"
            else:
                lines = [rendered]
        return lines
    if kind == "context":
        parts: list[str] = []
        for el in block.get("elements", []):
            if isinstance(el, Mapping) and el.get("type") == "image":
                parts.append(f"[image: {el.get('alt_text', '')}]")
            else:
                parts.append(" ".join(_text_of(el, names).split()))
        return ["  " + " | ".join(parts)]
    if kind == "actions":
        elements = [e for e in block.get("elements", []) if isinstance(e, Mapping)]
        return [" ".join(_element_as_text(e, names) for e in elements)]
    if kind == "input":
        label = _text_of(block.get("label"), names)
        element = block.get("element", {})
        if not isinstance(element, Mapping):
            element = {}
        if element.get("type") in _VALUE_INPUTS:
            value = str(element.get("initial_value") or "____")
        else:
            value = _element_as_text(element, names)
        suffix = " (optional)" if block.get("optional") else ""
        lines = [f"{label}{suffix}: {value}"]
        hint = _text_of(block.get("hint"), names)
        if hint:
            lines.append(f"  ({hint})")
        return lines
    if kind == "image":
        title = _text_of(block.get("title"), names)
        alt = block.get("alt_text", "")
        return [f"[image: {title or alt}]"]
    if kind == "rich_text":
        return _rich_text_lines(block, names)
    if kind == "markdown":
        return str(block.get("text", "")).splitlines()
    return [f"[{kind}]"]


def render_blocks_as_text(
    blocks: Sequence[Mapping[str, Any]] | None, names: Mapping[str, str] | None = None
) -> str:
    """Render Block Kit blocks as readable plain text (headers, fields, [Buttons], inputs)."""
    lines: list[str] = []
    for block in blocks or []:
        if isinstance(block, Mapping):
            lines.extend(_block_lines(block, names))
    return "\n".join(lines)


def render_message_as_text(
    text: str | None,
    blocks: Sequence[Mapping[str, Any]] | None = None,
    names: Mapping[str, str] | None = None,
) -> str:
    """Render a message as a client shows it: the blocks if any, else the fallback text."""
    if blocks:
        return render_blocks_as_text(blocks, names)
    return mrkdwn_to_text(text or "", names)


def render_view_as_text(view: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """Render a modal or App Home view: title bar, blocks, then the close/submit buttons."""
    title = _text_of(view.get("title"), names)
    lines = [f"[ {title} ]"] if title else []
    body = render_blocks_as_text(view.get("blocks", []), names)
    if body:
        lines.append(body)
    buttons = [
        f"[{_text_of(view.get(key), names)}]" for key in ("close", "submit") if view.get(key)
    ]
    if buttons:
        lines.append(" ".join(buttons))
    return "\n".join(lines)
