"""The files a Slack message carries (`files` of a file_share message), as the core records
them. Slack may send a withheld file with little more than its id (Slack Connect policy,
plan limits, a deleted file): it is still recorded, and its copy becomes a note."""

from __future__ import annotations

from typing import Any

from core.attachments import AttachmentInput


def shared_files(event: dict[str, Any]) -> list[AttachmentInput]:
    """The message's files, in the order shared; entries without an id are not files."""
    found: list[AttachmentInput] = []
    for item in event.get("files") or []:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        size = item.get("size")
        found.append(
            AttachmentInput(
                source_id=str(item["id"]),
                name=_text(item.get("name")),
                title=_text(item.get("title")),
                mimetype=_text(item.get("mimetype")),
                size=size if isinstance(size, int) and not isinstance(size, bool) else None,
            )
        )
    return found


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
