"""The leak scan for files: no file that staff shared as internal may reach a customer-visible
place (a customer's DM or thread, a non-private channel).

Judged like the text scan, by intent and by what customers actually received: a file staff
shared in a ticket's staff thread without the reply marker, or attached to a stored note, is
internal; any file a customer could see whose bytes are the same is a leak, whatever the bot
copied it as (the copy is a new file with a new id). Bytes a customer shared themselves are
theirs to see again."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from core.context import Core
from core.enums import Audience
from core.models import ChatThread, Reply, ReplyAttachment
from devslack.methods.files import FakeFile
from devslack.server import FakeSlack, StoredMessage

# Shorter contents say nothing and would match by chance.
MIN_FILE_BYTES = 8


def _digest(file: FakeFile) -> str | None:
    if len(file.content) < MIN_FILE_BYTES:
        return None
    return hashlib.sha256(file.content).hexdigest()


async def internal_files(
    core: Core, fake: FakeSlack, public_marker: re.Pattern[str]
) -> dict[str, str]:
    """Digest -> file name of every file staff meant as internal."""
    async with core.db.transaction() as session:
        rows = await session.execute(
            select(ChatThread.channel_id, ChatThread.ts).where(
                ChatThread.audience == Audience.STAFF.value
            )
        )
        roots = {(channel, ts) for channel, ts in rows}
        stored = list(
            await session.scalars(
                select(ReplyAttachment.source_id)
                .join(Reply, Reply.id == ReplyAttachment.reply_id)
                .where(Reply.is_internal.is_(True))
            )
        )
    found: list[FakeFile] = []
    for channel, ts in roots:
        for message in fake.messages(channel, include_deleted=True):
            if message.bot_id or not message.user or message.thread_ts != ts or message.ts == ts:
                continue
            if not public_marker.match(message.text or ""):
                found.extend(fake.files_ever_in(message))
    found.extend(file for source in stored if (file := fake.known_file(source)) is not None)
    internal: dict[str, str] = {}
    for file in found:
        digest = _digest(file)
        if digest is not None:
            internal[digest] = file.name
    return internal


async def internal_file_leaks(
    core: Core, fake: FakeSlack, *, customers: set[str], public_marker: re.Pattern[str]
) -> list[tuple[str, str]]:
    """(file name, where) for every internal file a customer or a non-private channel got."""
    internal = await internal_files(core, fake, public_marker)
    if not internal:
        return []
    own = {  # what customers shared themselves
        digest
        for message in fake.messages(include_deleted=True)
        if message.user in customers and not message.bot_id
        for file in fake.files_ever_in(message)
        if (digest := _digest(file)) is not None
    }
    audiences = {f"customer {u}": fake.visible_to(u) for u in customers}
    audiences["a non-private channel"] = fake.visible_publicly()
    leaks: list[tuple[str, str]] = []
    for where, items in audiences.items():
        seen: set[tuple[str, str | None]] = set()
        for item in items:
            message = item.source
            if not isinstance(message, StoredMessage) or (message.channel, message.ts) in seen:
                continue
            seen.add((message.channel, message.ts))
            for file in fake.files_ever_in(message):
                digest = _digest(file)
                if digest in internal and digest not in own:
                    leaks.append((internal[digest], f"{where}: file in {message.channel}"))
    return leaks
