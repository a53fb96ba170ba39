"""Slack's Block Kit limits and small constructors for the blocks the builders use.

The constructors are the last line of defence: they clip every text to its limit, so a builder
that forgot a budget still produces a valid payload (the builders budget explicitly anyway)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.text import plain, single_line, truncate

MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
SECTION_FIELDS = 10
CONTEXT_ELEMENTS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
OPTION_TEXT = 75
OPTION_DESCRIPTION = 75
SELECT_OPTIONS = 100
LABEL_TEXT = 2000
HINT_TEXT = 2000
PLACEHOLDER_TEXT = 150
VIEW_TITLE = 24
PRIVATE_METADATA = 3000
INPUT_MAX_LENGTH = 3000
# The top-level `text` of a message (the notification fallback) is kept well below Slack's 40k.
FALLBACK_TEXT = 3000

Json = dict[str, Any]


def plain_text(text: str, *, limit: int | None = None) -> Json:
    """A plain_text object (never empty: Slack rejects empty text)."""
    value = plain(text) or " "
    if limit is not None:
        value = truncate(value, limit)
    return {"type": "plain_text", "text": value}


def mrkdwn(text: str, *, limit: int = SECTION_TEXT) -> Json:
    """A mrkdwn text object; `text` must already be escaped where it holds user text."""
    return {"type": "mrkdwn", "text": truncate(text or " ", limit)}


def header(text: str) -> Json:
    """A header block (plain text, one line, at most 150 characters)."""
    return {"type": "header", "text": plain_text(single_line(text), limit=HEADER_TEXT)}


def section(
    text: str | None = None,
    *,
    fields: Sequence[str] = (),
    accessory: Json | None = None,
    block_id: str | None = None,
) -> Json:
    """A section block of escaped mrkdwn text and/or up to 10 mrkdwn fields."""
    block: Json = {"type": "section"}
    if block_id:
        block["block_id"] = block_id
    if text is not None or not fields:
        block["text"] = mrkdwn(text or " ")
    if fields:
        block["fields"] = [mrkdwn(f, limit=FIELD_TEXT) for f in fields[:SECTION_FIELDS]]
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(*texts: str) -> Json:
    """A context block of escaped mrkdwn texts (small grey print)."""
    return {
        "type": "context",
        "elements": [mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS]],
    }


def divider() -> Json:
    """A divider block."""
    return {"type": "divider"}


def button(
    text: str, *, action_id: str, value: str | None = None, style: str | None = None
) -> Json:
    """A button; its value must fit Slack's 2000 characters (payloads check that themselves)."""
    element: Json = {
        "type": "button",
        "text": plain_text(text, limit=BUTTON_TEXT),
        "action_id": action_id,
    }
    if value is not None:
        if len(value) > BUTTON_VALUE:
            raise ValueError("button value too long")
        element["value"] = value
    if style is not None:
        element["style"] = style
    return element


def actions(*elements: Json, block_id: str | None = None) -> Json:
    """An actions block."""
    block: Json = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def option(text: str, value: str, *, description: str | None = None) -> Json:
    """An option of a select or radio group (text at most 75 characters)."""
    result: Json = {"text": plain_text(single_line(text), limit=OPTION_TEXT), "value": value}
    if description:
        result["description"] = plain_text(description, limit=OPTION_DESCRIPTION)
    return result


def input_block(
    *,
    block_id: str,
    label: str,
    element: Json,
    optional: bool = False,
    hint: str | None = None,
) -> Json:
    """An input block of a modal."""
    block: Json = {
        "type": "input",
        "block_id": block_id,
        "label": plain_text(label, limit=LABEL_TEXT),
        "element": element,
    }
    if optional:
        block["optional"] = True
    if hint:
        block["hint"] = plain_text(hint, limit=HINT_TEXT)
    return block


def clip_blocks(blocks: list[Json], limit: int, *, note: str) -> list[Json]:
    """At most `limit` blocks: when over, the tail is replaced by a context block saying `note`."""
    if len(blocks) <= limit:
        return blocks
    return [*blocks[: limit - 1], context(note)]
