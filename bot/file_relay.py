"""Copying a reply's file into the other side's thread: one outbox message per file.

The file is read fresh from Slack (`files.info`, then `url_private` with the bot token), so a
file deleted or restricted since it was shared is noticed, and uploaded with the flow that
replaced `files.upload` (files.getUploadURLExternal, the bytes POSTed to the URL it returns,
files.completeUploadExternal into the thread). A file over FILE_MAX_BYTES, or one Slack
withholds, becomes a note with its name (and size) instead.

Never twice: the id of the file an attempt uploads is stored on the outbox row before the
upload is completed. A later attempt (after a crash or a time-out that hid whether Slack
completed it) asks `files.info` whether that file is already shared in the thread and, if so,
records it instead of uploading again. The copy is remembered with the delivered mark, so
that deleting the reply deletes the copied file too. Notes are posted with the outbox id in
their metadata, so the worker's usual check finds them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.blocks import files as file_blocks
from bot.delivery import NOT_FOR_RECIPIENT, Delivered, OutboxWorker, PermanentFailure
from bot.notify import slack_error_code
from core import attachments, chat
from core.attachments import AttachmentDelivery
from core.chat import ChatRef
from core.enums import Audience
from core.outbox import ClaimedMessage
from core.results import AttachmentView

log = logging.getLogger("bot.file_relay")

# files.info errors that mean "this file is not the app's to have", not "try again".
WITHHELD_ERRORS = frozenset(
    {"file_not_found", "file_deleted", "access_denied", "not_allowed", "file_hidden"}
)
# Download answers that mean the same (a redirect is Slack's login page: no access).
WITHHELD_STATUSES = frozenset({301, 302, 303, 307, 308, 401, 403, 404, 410})
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class Withheld:
    reason: str


@dataclass(frozen=True)
class TooLarge:
    size: int | None


async def copy_file(worker: OutboxWorker, message: ClaimedMessage) -> Delivered:
    """Deliver a THREAD_FILE_COPY message: the file, or a note in its place."""
    audience = Audience(message.payload["audience"])
    if audience is Audience.CUSTOMER:
        ticket = await worker._customer_may_see(message)
        if ticket is None:
            return NOT_FOR_RECIPIENT
    else:
        ticket = await worker._ticket(message)
    found = await attachments.attachment_for_delivery(
        worker.core, attachment_id=int(message.payload["attachment_id"]), audience=audience
    )
    if found is None:
        return Delivered({"skipped": "reply deleted or not for this audience"})
    if found.is_internal and audience is Audience.CUSTOMER:  # defence in depth
        raise PermanentFailure("refused to copy an internal note's file to a customer")
    thread = await chat.thread_of(worker.core, ticket_id=ticket.id, audience=audience)
    if thread is None:
        raise PermanentFailure(f"no {audience.value} thread for ticket #{ticket.number}")

    started = await attachments.uploads_started(worker.core, message_id=message.id)
    for upload_id in started:
        shared = await _shared_in(worker, upload_id, thread)
        if shared is not None:
            log.info("file was already copied", extra={"outbox_id": message.id})
            result = {"file": upload_id, "ts": shared.ts, "uploads_started": started}
            return await _record_copy(worker, message, found, audience, upload_id, result)

    limit = worker.settings.file_max_bytes
    fetched = await _fetch(worker, found, limit)
    if isinstance(fetched, bytes):
        return await _upload(worker, message, found, audience, fetched, thread, started)
    if isinstance(fetched, TooLarge):
        text, blocks = file_blocks.too_large_notice(
            _with_size(found, fetched.size), author=found.author_name, limit=limit
        )
        outcome = "too large"
    else:
        text, blocks = file_blocks.withheld_notice(found.attachment, author=found.author_name)
        outcome = f"withheld: {fetched.reason}"
    ref = await worker._post(
        message, channel=thread.channel_id, text=text, blocks=blocks, thread_ts=thread.ts
    )
    return Delivered({"ts": ref.ts, "note": outcome})


def _with_size(found: AttachmentDelivery, size: int | None) -> AttachmentView:
    """The attachment with the size Slack reports now (the event may not have said)."""
    attachment = found.attachment
    if size is None or attachment.size == size:
        return attachment
    return replace(attachment, size=size)


async def _shared_in(worker: OutboxWorker, upload_id: str, thread: ChatRef) -> ChatRef | None:
    """The message that shows file `upload_id` in `thread`, if an earlier attempt completed
    its upload; None if Slack never shared it there (or never finished it)."""
    try:
        info = await worker.client.files_info(file=upload_id)
    except SlackApiError as error:
        if slack_error_code(error) in WITHHELD_ERRORS:
            return None
        raise
    shares = (info.get("file") or {}).get("shares") or {}
    for places in shares.values():
        for share in (places or {}).get(thread.channel_id, []):
            if str(share.get("thread_ts") or share.get("ts")) == thread.ts:
                return ChatRef(channel_id=thread.channel_id, ts=str(share.get("ts")))
    return None


async def _fetch(
    worker: OutboxWorker, found: AttachmentDelivery, limit: int
) -> bytes | TooLarge | Withheld:
    """The file's bytes, or why the other side gets a note instead."""
    attachment = found.attachment
    try:
        info = await worker.client.files_info(file=attachment.source_id)
    except SlackApiError as error:
        code = slack_error_code(error) or ""
        if code in WITHHELD_ERRORS:
            return Withheld(code)
        raise
    file: dict[str, Any] = info.get("file") or {}
    if file.get("file_access") == "access_denied" or file.get("mode") in (
        "hidden_by_limit",
        "tombstone",
    ):
        return Withheld(str(file.get("file_access") or file.get("mode")))
    if file.get("is_external") or file.get("mode") == "external":
        return Withheld("external file")  # lives in another service: nothing to download
    size = file.get("size")
    size = int(size) if isinstance(size, int) and not isinstance(size, bool) else attachment.size
    if size is not None and size > limit:
        return TooLarge(size)
    url = file.get("url_private_download") or file.get("url_private")
    if not url:
        return Withheld("no download url")
    if not _slack_hosted(worker, str(url)):
        # The bot token goes to Slack's own hosts only.
        log.warning("file url outside Slack", extra={"source_id": attachment.source_id})
        return Withheld("url outside slack")
    return await _download(worker, str(url), limit)


def _slack_hosted(worker: OutboxWorker, url: str) -> bool:
    """Whether `url` is served by Slack: https on a slack.com host, or the configured API's
    own origin (the stand-in Slack in tests and the demo)."""
    parts = urlsplit(url)
    api = urlsplit(worker.settings.slack_api_url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
        return True
    return (parts.scheme, parts.netloc) == (api.scheme, api.netloc)


async def _download(worker: OutboxWorker, url: str, limit: int) -> bytes | TooLarge | Withheld:
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=worker.settings.slack_api_timeout_seconds,
        sock_read=worker.settings.slack_api_timeout_seconds,
    )
    headers = {"Authorization": f"Bearer {worker.client.token}"}
    session = worker.runtime.http
    own = session is None
    if session is None:
        session = aiohttp.ClientSession()
    try:
        async with session.get(
            url, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            if response.status in WITHHELD_STATUSES:
                return Withheld(f"download {response.status}")
            response.raise_for_status()  # 429 and 5xx: the worker retries with backoff
            received = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                received.extend(chunk)
                if len(received) > limit:  # the size Slack reported was wrong
                    return TooLarge(None)
            return bytes(received)
    finally:
        if own:
            await session.close()


async def _upload(
    worker: OutboxWorker,
    message: ClaimedMessage,
    found: AttachmentDelivery,
    audience: Audience,
    content: bytes,
    thread: ChatRef,
    started: list[str],
) -> Delivered:
    attachment = found.attachment
    if not content:
        # Slack refuses a zero-length upload: say what was shared instead.
        text, blocks = file_blocks.empty_notice(attachment, author=found.author_name)
        ref = await worker._post(
            message, channel=thread.channel_id, text=text, blocks=blocks, thread_ts=thread.ts
        )
        return Delivered({"ts": ref.ts, "note": "empty file"})
    target = await worker.client.files_getUploadURLExternal(
        filename=attachment.name, length=len(content)
    )
    upload_id = str(target["file_id"])
    if not await attachments.record_upload_started(
        worker.core, message_id=message.id, worker_id=worker.worker_id, upload_id=upload_id
    ):
        return Delivered({"lease_lost": True}, recorded=True)  # another worker has it now
    started = [*started, upload_id]
    timeout = aiohttp.ClientTimeout(
        total=None,
        sock_connect=worker.settings.slack_api_timeout_seconds,
        sock_read=worker.settings.slack_api_timeout_seconds,
    )
    session = worker.runtime.http
    own = session is None
    if session is None:
        session = aiohttp.ClientSession()
    try:
        async with session.post(
            str(target["upload_url"]),
            data=content,
            headers={"Content-Type": "application/octet-stream"},
            timeout=timeout,
        ) as response:
            response.raise_for_status()
    finally:
        if own:
            await session.close()
    await worker.client.files_completeUploadExternal(
        files=[{"id": upload_id, "title": attachment.title or attachment.name}],
        channel_id=thread.channel_id,
        thread_ts=thread.ts,
    )
    log.info("file copied", extra={"outbox_id": message.id, "file": upload_id})
    result = {"file": upload_id, "uploads_started": started}
    return await _record_copy(worker, message, found, audience, upload_id, result)


async def _record_copy(
    worker: OutboxWorker,
    message: ClaimedMessage,
    found: AttachmentDelivery,
    audience: Audience,
    copy_id: str,
    result: dict[str, Any],
) -> Delivered:
    """Delivered, with the copy remembered for the reply's deletion (one transaction)."""
    recorded = await attachments.record_copy_delivered(
        worker.core,
        message_id=message.id,
        worker_id=worker.worker_id,
        result=result,
        attachment_id=found.attachment.id,
        audience=audience,
        copy_id=copy_id,
    )
    return Delivered(result if recorded else {"lease_lost": True}, recorded=True)


async def delete_copies(worker: OutboxWorker, *, reply_id: int, audience: Audience) -> int:
    """Take back the files copied from a deleted reply for `audience`; returns how many."""
    deleted = 0
    for copy_id in await attachments.copies_of_reply(
        worker.core, reply_id=reply_id, audience=audience
    ):
        try:
            await worker.client.files_delete(file=copy_id)
        except SlackApiError as error:
            if slack_error_code(error) not in ("file_not_found", "file_deleted"):
                raise
        deleted += 1
    return deleted
