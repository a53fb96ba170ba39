"""Block Kit checks against Slack's documented limits, as chat.* and views.* apply them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

_KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "video",
        "call",
        "table",
        "context_actions",
    }
)
MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT_LENGTH = 40_000


def _text_len(obj: Any) -> int:
    """Length of a text object's text (0 if absent)."""
    if isinstance(obj, Mapping):
        return len(str(obj.get("text", "")))
    return 0


def validate_blocks(blocks: Any, *, limit: int, pointer: str = "/blocks") -> list[str]:
    """Check Block Kit against Slack's documented limits; return error messages (empty if ok)."""
    if not isinstance(blocks, list):
        return [f"[ERROR] must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    if len(blocks) > limit:
        errors.append(f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        here = f"{pointer}/{i}"
        if not isinstance(block, Mapping) or block.get("type") not in _KNOWN_BLOCK_TYPES:
            errors.append(f"[ERROR] unsupported type [json-pointer:{here}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if len(str(block_id)) > 255 or block_id in seen_ids:
                errors.append(f"[ERROR] invalid or duplicate block_id [json-pointer:{here}]")
            seen_ids.add(str(block_id))
        errors.extend(_validate_block(block, here))
    return errors


def _validate_block(block: Mapping[str, Any], here: str) -> list[str]:
    """Per-type checks for one block."""
    errors: list[str] = []
    kind = block["type"]
    if kind == "header":
        text = block.get("text")
        if not isinstance(text, Mapping) or text.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/text]")
        elif _text_len(text) > 150:
            errors.append(f"[ERROR] must be less than 151 characters [json-pointer:{here}/text]")
    elif kind == "section":
        fields = block.get("fields") or []
        if not block.get("text") and not fields:
            errors.append(f"[ERROR] must provide text or fields [json-pointer:{here}]")
        if _text_len(block.get("text")) > 3000:
            errors.append(f"[ERROR] must be less than 3001 characters [json-pointer:{here}/text]")
        if len(fields) > 10 or any(_text_len(f) > 2000 for f in fields):
            errors.append(f"[ERROR] too many or too long fields [json-pointer:{here}/fields]")
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping):
            errors.extend(_validate_element(accessory, f"{here}/accessory"))
    elif kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 25:
            errors.append(f"[ERROR] must have 1 to 25 elements [json-pointer:{here}/elements]")
        action_ids = [e.get("action_id") for e in elements if isinstance(e, Mapping)]
        present = [a for a in action_ids if a is not None]
        if len(present) != len(set(present)):
            errors.append(f"[ERROR] duplicate action_id [json-pointer:{here}/elements]")
        for j, element in enumerate(elements):
            if isinstance(element, Mapping):
                errors.extend(_validate_element(element, f"{here}/elements/{j}"))
    elif kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= 10:
            errors.append(f"[ERROR] must have 1 to 10 elements [json-pointer:{here}/elements]")
    elif kind == "input":
        label = block.get("label")
        if not isinstance(label, Mapping) or label.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/label]")
        elif _text_len(label) > 2000:
            errors.append(f"[ERROR] must be less than 2001 characters [json-pointer:{here}/label]")
        element = block.get("element")
        if not isinstance(element, Mapping):
            errors.append(f"[ERROR] missing required field: element [json-pointer:{here}]")
        else:
            errors.extend(_validate_element(element, f"{here}/element"))
    return errors


def _validate_element(element: Mapping[str, Any], here: str) -> list[str]:
    """Checks for one interactive element."""
    errors: list[str] = []
    kind = element.get("type")
    if kind == "button":
        text = element.get("text")
        if not isinstance(text, Mapping) or text.get("type") != "plain_text":
            errors.append(f"[ERROR] must be plain_text [json-pointer:{here}/text]")
        elif _text_len(text) > 75:
            errors.append(f"[ERROR] must be less than 76 characters [json-pointer:{here}/text]")
        if len(str(element.get("value", ""))) > 2000:
            errors.append(f"[ERROR] must be less than 2001 characters [json-pointer:{here}/value]")
    if len(str(element.get("action_id", ""))) > 255:
        errors.append(f"[ERROR] must be less than 256 characters [json-pointer:{here}/action_id]")
    options = element.get("options")
    if isinstance(options, list):
        if len(options) > 100:
            errors.append(f"[ERROR] no more than 100 items allowed [json-pointer:{here}/options]")
        for j, option in enumerate(options):
            if not isinstance(option, Mapping) or "value" not in option:
                errors.append(f"[ERROR] missing value [json-pointer:{here}/options/{j}]")
            elif len(str(option["value"])) > 150:
                errors.append(f"[ERROR] value too long [json-pointer:{here}/options/{j}/value]")
    return errors


def validate_view(view: Any, *, kind: Literal["modal", "home"]) -> list[str]:
    """Check a view payload the way views.open/update/push/publish do."""
    if not isinstance(view, Mapping):
        return ["[ERROR] must be an object [json-pointer:/view]"]
    errors: list[str] = []
    if view.get("type") != kind:
        errors.append(f"[ERROR] must be '{kind}' [json-pointer:/view/type]")
    if kind == "modal":
        title = view.get("title")
        if not isinstance(title, Mapping) or title.get("type") != "plain_text":
            errors.append("[ERROR] must be plain_text [json-pointer:/view/title]")
        elif not 0 < _text_len(title) <= 24:
            errors.append("[ERROR] must be 1-24 characters [json-pointer:/view/title/text]")
        for key in ("submit", "close"):
            if view.get(key) is not None and _text_len(view.get(key)) > 24:
                errors.append(f"[ERROR] must be 1-24 characters [json-pointer:/view/{key}/text]")
        has_input = any(
            isinstance(b, Mapping) and b.get("type") == "input" for b in view.get("blocks", [])
        )
        if has_input and not view.get("submit"):
            errors.append("[ERROR] submit is required with input blocks [json-pointer:/view]")
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append(
            "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]"
        )
    if len(str(view.get("callback_id", ""))) > 255:
        errors.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
    errors.extend(
        validate_blocks(view.get("blocks", []), limit=MAX_VIEW_BLOCKS, pointer="/view/blocks")
    )
    return errors
