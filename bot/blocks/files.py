"""Files in messages: the list under a reply, and the notes that stand in for a file the bot
could not copy (too large, withheld by Slack). File names and titles are user text: escaped
like any other, never a mention or a link."""

from __future__ import annotations

from bot.blocks.kit import SECTION_TEXT, Json, context, section
from bot.blocks.text import escape, single_line, truncate
from core.results import AttachmentView, ReplyView

Message = tuple[str, list[Json]]

NAME_LIMIT = 120
# The file list under a reply stays well inside a section or context text.
LIST_LIMIT = SECTION_TEXT - 600


def human_size(size: int | None) -> str:
    """'512 B', '14.2 KB', '20 MB' (powers of 1,024, as Slack shows sizes)."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            if unit == "B":
                return f"{int(value)} B"
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def file_name(attachment: AttachmentView) -> str:
    """The file's name for mrkdwn: one line, escaped, shortened."""
    return escape(truncate(single_line(attachment.name), NAME_LIMIT)) or "unnamed file"


def file_label(attachment: AttachmentView) -> str:
    """'*report.pdf* (1.2 MB)'."""
    return f"*{file_name(attachment)}* ({human_size(attachment.size)})"


def files_line(reply: ReplyView) -> str | None:
    """':paperclip: *a.png* (14 KB), *b.pdf* (1.2 MB)' for a reply with files, else None."""
    if not reply.attachments:
        return None
    line = ":paperclip: " + ", ".join(file_label(a) for a in reply.attachments)
    return truncate(line, LIST_LIMIT)


def file_names(reply: ReplyView) -> str:
    """The plain names of a reply's files, for notification text (escaped by the caller)."""
    return ", ".join(single_line(a.name) for a in reply.attachments)


def with_files(body: str, reply: ReplyView) -> str:
    """A relayed body with its files listed after it; a file-only reply is just the list."""
    line = files_line(reply)
    if line is None:
        return body
    if not reply.body.strip():
        return line
    return f"{body}\n{line}"


def file_blocks(reply: ReplyView) -> list[Json]:
    """The file list as a context block under a reply in /ticket show (none without files)."""
    line = files_line(reply)
    return [context(line)] if line else []


def too_large_notice(attachment: AttachmentView, *, author: str, limit: int) -> Message:
    """A file over the size limit: the other side learns its name and size, not a broken file."""
    who = escape(truncate(single_line(author), NAME_LIMIT)) or "Someone"
    text = (
        f":paperclip: {who} shared {file_label(attachment)}, which is too large to copy here "
        f"(the limit is {human_size(limit)}). Ask for it another way if you need it."
    )
    return _fallback(text), [section(text)]


def withheld_notice(attachment: AttachmentView, *, author: str) -> Message:
    """A file Slack does not let the bot have (deleted, restricted, or the sharer's
    organisation disallows file sharing): said plainly, not an error."""
    who = escape(truncate(single_line(author), NAME_LIMIT)) or "Someone"
    text = (
        f":paperclip: {who} shared *{file_name(attachment)}*, but it can't be shown here: "
        "Slack did not let the bot fetch it (it was deleted, is restricted, or the sender's "
        "organisation does not allow sharing files). Ask for it another way if you need it."
    )
    return _fallback(text), [section(text)]


def empty_notice(attachment: AttachmentView, *, author: str) -> Message:
    """An empty file (Slack takes no zero-byte upload): its name is all there is to pass on."""
    who = escape(truncate(single_line(author), NAME_LIMIT)) or "Someone"
    text = f":paperclip: {who} shared *{file_name(attachment)}*, an empty file."
    return _fallback(text), [section(text)]


def _fallback(text: str) -> str:
    return truncate(text.replace("*", ""), 300)
