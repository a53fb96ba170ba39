"""The outbox worker: turns committed outbox messages into Slack calls.

It claims messages (per-thread order, leases shared through the database by every replica),
renders them from the current state of the desk, and retries failures with backoff, honouring
429 Retry-After. Every post carries the outbox id in message metadata: before posting again
after an attempt whose outcome is unknown (a crash, a time-out), the worker looks for that id in
the conversation, so a message is never sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot import channel_guard, pacing
from bot.blocks import cards, messages, staff_channel
from bot.blocks import channels as channel_blocks
from bot.ids import EVENT_METADATA_TYPE
from bot.notify import is_rate_limited, retry_after_seconds, slack_error_code
from bot.runtime import Runtime
from core import chat, outbox, replies, sla, surfaces, tickets, users
from core.chat import ChatRef
from core.enums import Audience, Status
from core.errors import Unavailable
from core.outbox import ClaimedMessage, OutboxKind
from core.surfaces import SurfaceProblem

log = logging.getLogger("bot.delivery")

# Slack errors that will not go away by retrying the same call.
PERMANENT_ERRORS = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "cant_delete_message",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "user_not_found",
        "cannot_dm_bot",
        "is_archived",
        "edit_window_closed",
    }
)
# Slack errors that operators fix (scopes, membership, token): retried for hours, not forever.
CONFIGURATION_ERRORS = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "missing_scope",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
    }
)


class PermanentFailure(Exception):
    """Delivery cannot succeed; record it and move on."""


@dataclass(frozen=True)
class Delivered:
    result: dict[str, Any]
    thread: tuple[Any, Audience, ChatRef] | None = None
    copy: tuple[int, ChatRef] | None = None
    # The handler recorded the outcome itself, in its own transaction (nothing left to mark).
    recorded: bool = False


# Every message about a ticket is checked, when it is sent, against its recipient's right to
# see the ticket at that moment; one they may no longer see is dropped.
NOT_FOR_RECIPIENT = Delivered({"skipped": "recipient may not see the ticket now"})


class OutboxWorker:
    """Claims and delivers outbox messages; `run_once` is one pass, `run_forever` the loop."""

    def __init__(self, runtime: Runtime, *, worker_id: str | None = None, batch: int = 20) -> None:
        self.runtime = runtime
        self.core = runtime.core
        self.client = runtime.client
        self.settings = runtime.settings
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.batch = batch
        # Claimed messages are reserved for this long and the lease is renewed while delivery
        # runs: a worker that dies (SIGKILL, lost node) holds its messages no longer than this.
        self.lease = timedelta(seconds=self.settings.outbox_lease_seconds)
        self._stopping = asyncio.Event()
        # Liveness for /readyz: whether run_forever is looping, and when it last showed it.
        self.running = False
        self._last_pass = time.monotonic()
        self.delivered = 0
        self.retried = 0
        self.failed = 0
        # How long a message may wait for its Slack budget before it is given back, due later.
        self.max_wait = self.settings.slack_pacing_max_wait_seconds
        self._dm_channels: dict[str, str] = {}  # Slack user id -> their DM with the bot

    def stop(self) -> None:
        self._stopping.set()
        self.runtime.wake_outbox()

    async def run_forever(self) -> None:
        self.running = True
        try:
            while not self._stopping.is_set():
                self._last_pass = time.monotonic()
                try:
                    handled = await self.run_once()
                except Exception:  # a broken pass must not stop delivery for good
                    log.exception("outbox pass failed")
                    handled = 0
                if handled:
                    continue
                self.runtime.outbox_wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.runtime.outbox_wake.wait(), timeout=self.settings.outbox_poll_seconds
                    )
        finally:
            self.running = False

    def seconds_since_pass(self) -> float:
        """How long ago the loop last started a pass or renewed the leases of a long one."""
        return time.monotonic() - self._last_pass

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many messages were handled (a message
        given back because its channel turned unsafe after the claim does not count)."""
        try:
            claimed = await outbox.claim_batch(
                self.core, worker_id=self.worker_id, limit=self.batch, lease=self.lease
            )
        except Unavailable:
            log.warning("outbox claim: database unavailable")
            return 0
        if not claimed:
            return 0
        # Most of a delivery is waiting for its Slack budget: many wait at once, on different
        # budgets (bot.pacing), within a bound that leaves database connections for acks.
        semaphore = asyncio.Semaphore(min(self.batch, 16))
        pending = {m.id for m in claimed}

        async def guarded(message: ClaimedMessage) -> bool:
            try:
                async with semaphore:
                    return await self._attempt(message)
            finally:
                pending.discard(message.id)

        heartbeat = asyncio.create_task(self._renew_leases(pending))
        try:
            attempted = await asyncio.gather(*(guarded(m) for m in claimed))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return sum(attempted)

    async def _renew_leases(self, pending: set[int]) -> None:
        """Every third of the lease, extend the lease of the messages still being delivered."""
        interval = max(0.05, self.lease.total_seconds() / 3)
        while pending:
            await asyncio.sleep(interval)
            self._last_pass = time.monotonic()  # a long pass is still a live worker
            try:
                await outbox.extend_lease(
                    self.core,
                    worker_id=self.worker_id,
                    message_ids=sorted(pending),
                    lease=self.lease,
                )
            except Exception:  # the database may be down: delivery goes on, the lease may lapse
                log.warning("outbox lease renewal failed", exc_info=True)

    async def drain(self, *, max_passes: int = 200) -> None:
        """Deliver until nothing is due (tests and the demo)."""
        for _ in range(max_passes):
            if not await self.run_once():
                return

    async def _attempt(self, message: ClaimedMessage) -> bool:
        """Deliver one claimed message and record the outcome; False when it was given back
        unattempted (held: its channel is not safe)."""
        try:
            if await self._held(message):
                await outbox.release(self.core, message_id=message.id, worker_id=self.worker_id)
                return False
            with pacing.delivering(
                pacing.outbox_priority(message.kind, message.payload), max_wait=self.max_wait
            ):
                outcome = await self._deliver(message)
        except pacing.Deferred as deferred:  # its Slack budget has no slot for it soon
            await outbox.postpone(
                self.core,
                message_id=message.id,
                worker_id=self.worker_id,
                delay=timedelta(seconds=deferred.seconds),
            )
            return False
        except SlackApiError as error:
            await self._handle_slack_error(message, error)
        except PermanentFailure as error:
            await self._fail(message, str(error))
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            await self._retry(message, f"network: {type(error).__name__}", None)
        except Unavailable:
            await self._retry(message, "database unavailable", None)
        except Exception as error:
            log.exception("outbox delivery crashed", extra={"outbox_id": message.id})
            await self._retry(message, f"bug: {type(error).__name__}: {error}", None)
        else:
            if outcome.recorded:
                if not outcome.result.get("lease_lost"):
                    self.delivered += 1
                    self._count("delivered", message)
                return True
            await outbox.mark_delivered(
                self.core,
                message_id=message.id,
                worker_id=self.worker_id,
                result=outcome.result,
                thread=outcome.thread,
                copy=outcome.copy,
            )
            self.delivered += 1
            self._count("delivered", message)
        return True

    async def _held(self, message: ClaimedMessage) -> bool:
        """Whether a staff-channel message must wait after all: the claim skips them while the
        channel is recorded unsafe, and this read, right before posting, catches a finding
        (by any replica) that landed after the claim."""
        if outbox.audience_of(message.thread_key) is not Audience.STAFF:
            return False
        state = await surfaces.state_of(self.core, audience=Audience.STAFF)
        return state is not None and not state.safe

    async def _handle_slack_error(self, message: ClaimedMessage, error: SlackApiError) -> None:
        response = error.response
        status = getattr(response, "status_code", 200)
        code = slack_error_code(error) or ""
        if is_rate_limited(error):
            retry_after = retry_after_seconds(getattr(response, "headers", None))
            log.info(
                "slack rate limited",
                extra={"outbox_id": message.id, "retry_after": retry_after},
            )
            await self._retry(message, "429 rate limited", timedelta(seconds=retry_after))
        elif status >= 500 or code in ("internal_error", "fatal_error", "service_unavailable"):
            await self._retry(message, f"slack {status} {code}", None)
        elif code in PERMANENT_ERRORS:
            await self._fail(message, f"slack error {code}")
        else:
            if code in CONFIGURATION_ERRORS:
                log.error(
                    "slack refused a delivery: check the app's configuration",
                    extra={"outbox_id": message.id, "error": code},
                )
            await self._retry(message, f"slack error {code}", None)

    async def _retry(self, message: ClaimedMessage, error: str, delay: timedelta | None) -> None:
        if message.attempts >= self.settings.outbox_max_attempts:
            await self._fail(message, f"gave up after {message.attempts} attempts: {error}")
            return
        if delay is None:
            delay = timedelta(seconds=min(900, 2 ** min(message.attempts, 10)))
        self.retried += 1
        self._count("retried", message)
        await outbox.mark_retry(
            self.core, message_id=message.id, worker_id=self.worker_id, error=error, delay=delay
        )

    async def _fail(self, message: ClaimedMessage, error: str) -> None:
        self.failed += 1
        self._count("failed", message)
        log.error(
            "outbox message failed for good",
            extra={"outbox_id": message.id, "kind": message.kind.value, "error": error},
        )
        await outbox.mark_failed(
            self.core, message_id=message.id, worker_id=self.worker_id, error=error
        )

    def _count(self, result: str, message: ClaimedMessage) -> None:
        metrics = self.runtime.metrics
        if metrics is not None:
            metrics.record_delivery(result, message.kind)

    # ---------------------------------------------------------------- rendering and sending

    async def _deliver(self, message: ClaimedMessage) -> Delivered:
        handler = {
            OutboxKind.STAFF_CARD_CREATE: self._staff_card_create,
            OutboxKind.STAFF_CARD_REFRESH: self._staff_card_refresh,
            OutboxKind.STAFF_THREAD_POST: self._thread_post,
            OutboxKind.CUSTOMER_THREAD_CREATE: self._customer_thread_create,
            OutboxKind.CUSTOMER_THREAD_POST: self._thread_post,
            OutboxKind.THREAD_FILE_COPY: self._file_copy,
            OutboxKind.REPLY_COPIES_UPDATE: self._reply_copies,
            OutboxKind.REPLY_COPIES_DELETE: self._reply_copies,
            OutboxKind.MANAGER_ALERT: self._manager_alert,
            OutboxKind.ASSIGNEE_DM: self._assignee_dm,
            OutboxKind.SLA_ALERTS: self._sla_alerts,
            OutboxKind.SURFACE_NOTICE: self._surface_notice,
        }[message.kind]
        return await handler(message)

    async def _ticket(self, message: ClaimedMessage) -> Any:
        if message.ticket_id is None:
            raise PermanentFailure("message has no ticket")
        ticket = await tickets.ticket_snapshot(self.core, ticket_id=message.ticket_id)
        if ticket is None:
            raise PermanentFailure("ticket no longer exists")
        return ticket

    async def _post(
        self,
        message: ClaimedMessage,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
    ) -> ChatRef:
        """chat.postMessage, unless an earlier attempt of this outbox message already posted."""
        if await channel_guard.staff_message_to_customer_channel(self.core, message, channel):
            raise PermanentFailure("refused to post a staff message into a customer channel")
        if message.attempts > 1:
            earlier = await self._find_posted(message, channel=channel, thread_ts=thread_ts)
            if earlier is not None:
                log.info("outbox message was already posted", extra={"outbox_id": message.id})
                return earlier
        response = await self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            unfurl_links=False,
            unfurl_media=False,
            metadata={
                "event_type": EVENT_METADATA_TYPE,
                "event_payload": {"outbox_id": message.id},
            },
        )
        return ChatRef(channel_id=str(response["channel"]), ts=str(response["ts"]))

    async def _find_posted(
        self, message: ClaimedMessage, *, channel: str, thread_ts: str | None
    ) -> ChatRef | None:
        if thread_ts is not None:
            response = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, include_all_metadata=True, limit=200
            )
        else:
            response = await self.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=200
            )
        found: list[dict[str, Any]] = response.get("messages", []) or []
        for item in found:
            metadata = item.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == EVENT_METADATA_TYPE
                and payload.get("outbox_id") == message.id
            ):
                return ChatRef(channel_id=channel, ts=str(item["ts"]))
        return None

    async def _staff_card_create(self, message: ClaimedMessage) -> Delivered:
        ticket = await self._ticket(message)
        channel = self._staff_channel()
        text = cards.ticket_card_text(ticket)
        blocks = cards.ticket_card(ticket, now=self.core.clock.now())
        ref = await self._post(message, channel=channel, text=text, blocks=blocks)
        return Delivered({"ts": ref.ts}, thread=(ticket.id, Audience.STAFF, ref))

    async def _staff_card_refresh(self, message: ClaimedMessage) -> Delivered:
        ticket = await self._ticket(message)
        thread = await chat.thread_of(self.core, ticket_id=ticket.id, audience=Audience.STAFF)
        if thread is None:
            return Delivered({"skipped": "no staff card"})
        await self.client.chat_update(
            channel=thread.channel_id,
            ts=thread.ts,
            text=cards.ticket_card_text(ticket),
            blocks=cards.ticket_card(ticket, now=self.core.clock.now()),
        )
        return Delivered({"updated": thread.ts})

    async def _customer_thread_create(self, message: ClaimedMessage) -> Delivered:
        ticket = await self._customer_may_see(message)
        if ticket is None:
            return NOT_FOR_RECIPIENT
        rooted = await chat.thread_of(self.core, ticket_id=ticket.id, audience=Audience.CUSTOMER)
        if rooted is not None:
            # Raised by a message in a channel: its thread is the conversation; answer there.
            text, blocks = channel_blocks.channel_confirmation(ticket)
            ref = await self._post(
                message, channel=rooted.channel_id, text=text, blocks=blocks, thread_ts=rooted.ts
            )
            return Delivered({"ts": ref.ts})
        channel = await self._dm_channel(ticket.customer.slack_user_id)
        text, blocks = messages.customer_confirmation(ticket)
        ref = await self._post(message, channel=channel, text=text, blocks=blocks)
        return Delivered({"ts": ref.ts}, thread=(ticket.id, Audience.CUSTOMER, ref))

    async def _thread_post(self, message: ClaimedMessage) -> Delivered:
        audience = (
            Audience.CUSTOMER if message.kind is OutboxKind.CUSTOMER_THREAD_POST else Audience.STAFF
        )
        if audience is Audience.CUSTOMER:
            ticket = await self._customer_may_see(message)
            if ticket is None:
                return NOT_FOR_RECIPIENT
        else:
            ticket = await self._ticket(message)
        thread = await chat.thread_of(self.core, ticket_id=ticket.id, audience=audience)
        if thread is None:
            raise PermanentFailure(f"no {audience.value} thread for ticket #{ticket.number}")
        payload = message.payload
        if payload.get("event") == "reply":
            reply_id = int(payload["reply_id"])
            reply = await replies.reply_for_audience(
                self.core, reply_id=reply_id, audience=audience
            )
            if reply is None:
                # Deleted before delivery, or (refused and logged by the core) a note for a
                # customer: there is nothing to show.
                return Delivered({"skipped": "reply deleted or not for this audience"})
            if audience is Audience.CUSTOMER:
                if reply.is_internal:  # defence in depth: the core already refused
                    raise PermanentFailure("refused to send an internal note to a customer")
                text, blocks = messages.customer_relay(reply, ticket)
            else:
                text, blocks = messages.staff_relay(reply, ticket)
            ref = await self._post(
                message, channel=thread.channel_id, text=text, blocks=blocks, thread_ts=thread.ts
            )
            return Delivered({"ts": ref.ts}, copy=(reply_id, ref))
        if payload.get("event") == "status_changed":
            text, blocks = messages.status_notice(
                ticket,
                previous=Status(payload["previous"]),
                status=Status(payload["status"]),
                reason=payload.get("reason"),
                for_customer=audience is Audience.CUSTOMER,
            )
            ref = await self._post(
                message, channel=thread.channel_id, text=text, blocks=blocks, thread_ts=thread.ts
            )
            return Delivered({"ts": ref.ts})
        raise PermanentFailure(f"unknown thread event {payload.get('event')!r}")

    async def _file_copy(self, message: ClaimedMessage) -> Delivered:
        from bot import file_relay  # (it builds on this module)

        return await file_relay.copy_file(self, message)

    async def _reply_copies(self, message: ClaimedMessage) -> Delivered:
        audience = Audience(message.payload["audience"])
        reply_id = int(message.payload["reply_id"])
        if audience is Audience.CUSTOMER and message.kind is OutboxKind.REPLY_COPIES_UPDATE:
            # (taking a copy back is always allowed; showing a new text needs the right now)
            ticket = await self._customer_may_see(message)
            if ticket is None:
                return NOT_FOR_RECIPIENT
        else:
            ticket = await self._ticket(message)
        thread = await chat.thread_of(self.core, ticket_id=ticket.id, audience=audience)
        if thread is None:
            return Delivered({"skipped": "no thread"})
        links = [
            link
            for link in await chat.messages_of_reply(self.core, reply_id=reply_id)
            if link.is_copy and link.channel_id == thread.channel_id
        ]
        if message.kind is OutboxKind.REPLY_COPIES_DELETE:
            for link in links:
                await self._ignore_missing(
                    self.client.chat_delete(channel=link.channel_id, ts=link.ts)
                )
            from bot import file_relay  # (it builds on this module)

            files = await file_relay.delete_copies(self, reply_id=reply_id, audience=audience)
            return Delivered({"deleted": len(links), "files_deleted": files})
        reply = await replies.reply_for_audience(self.core, reply_id=reply_id, audience=audience)
        if reply is None:
            return Delivered({"skipped": "reply not visible"})
        if audience is Audience.CUSTOMER:
            text, blocks = messages.customer_relay(reply, ticket)
        else:
            text, blocks = messages.staff_relay(reply, ticket)
        for link in links:
            await self._ignore_missing(
                self.client.chat_update(
                    channel=link.channel_id, ts=link.ts, text=text, blocks=blocks
                )
            )
        return Delivered({"updated": len(links)})

    async def _sla_alerts(self, message: ClaimedMessage) -> Delivered:
        """Claimed SLA alerts: the core writes each alert's messages (delivered next)."""
        outcome = await sla.fan_out(self.core, message_id=message.id, worker_id=self.worker_id)
        if not outcome.recorded:  # another worker has it now
            return Delivered({"lease_lost": True}, recorded=True)
        if outcome.alerts:
            self.runtime.wake_outbox()
        return Delivered({"alerts": len(outcome.alerts), "dropped": outcome.dropped}, recorded=True)

    async def _manager_alert(self, message: ClaimedMessage) -> Delivered:
        ticket = await self._ticket(message)
        channel = self.settings.manager_channel_id
        if not channel:
            raise PermanentFailure("MANAGER_CHANNEL_ID is not set")
        permalink = None
        thread = await chat.thread_of(self.core, ticket_id=ticket.id, audience=Audience.STAFF)
        if thread is not None:
            try:
                link = await self.client.chat_getPermalink(
                    channel=thread.channel_id, message_ts=thread.ts
                )
                permalink = link.get("permalink")
            except SlackApiError:
                permalink = None
        started = ticket.created_at
        waited = self.core.clock.now() - started
        if "waited_seconds" in message.payload:
            waited = timedelta(seconds=float(message.payload["waited_seconds"]))
        text, blocks = messages.manager_alert(
            ticket,
            threshold=str(message.payload.get("threshold", "breach")),
            waited=waited,
            permalink=permalink,
        )
        ref = await self._post(message, channel=channel, text=text, blocks=blocks)
        return Delivered({"ts": ref.ts})

    async def _surface_notice(self, message: ClaimedMessage) -> Delivered:
        """Tell the managers that the staff channel stopped being safe for notes, or is safe
        again (core.surfaces queues it once per change, whichever replica noticed)."""
        channel = self.settings.manager_channel_id
        if not channel:
            raise PermanentFailure("MANAGER_CHANNEL_ID is not set")
        payload = message.payload
        channel_id, name = str(payload["channel_id"]), payload.get("channel_name")
        if payload.get("problem"):
            text, blocks = staff_channel.unsafe_notice(
                SurfaceProblem(payload["problem"]),
                channel_id=channel_id,
                channel_name=name,
                detail=payload.get("detail"),
            )
        else:
            previous = payload.get("previous")
            text, blocks = staff_channel.safe_again_notice(
                channel_id=channel_id,
                channel_name=name,
                previous=SurfaceProblem(previous) if previous else None,
            )
        ref = await self._post(message, channel=channel, text=text, blocks=blocks)
        return Delivered({"ts": ref.ts})

    async def _assignee_dm(self, message: ClaimedMessage) -> Delivered:
        if message.ticket_id is None:
            raise PermanentFailure("message has no ticket")
        assignee_id = int(message.payload["assignee_id"])
        ticket = await tickets.ticket_for_recipient(
            self.core, ticket_id=message.ticket_id, user_id=assignee_id
        )
        assignee = await users.get_user(self.core, user_id=assignee_id)
        if ticket is None or assignee is None:
            # Demoted, deactivated or gone from chat since: they may not see it any more.
            return NOT_FOR_RECIPIENT
        by_name = None
        if message.payload.get("assigned_by_id"):
            by = await users.get_user(self.core, user_id=int(message.payload["assigned_by_id"]))
            by_name = by.display_name if by else None
        channel = await self._dm_channel(assignee.slack_user_id)
        text, blocks = messages.assignee_notice(
            ticket, by_name=by_name, reason=str(message.payload.get("event", "assigned"))
        )
        ref = await self._post(message, channel=channel, text=text, blocks=blocks)
        return Delivered({"ts": ref.ts})

    # ---------------------------------------------------------------- helpers

    async def _customer_may_see(self, message: ClaimedMessage) -> Any | None:
        """The message's ticket, if its customer may see it now (checked at delivery, on fresh
        rows, in one read); None when they may not (deactivated, deleted in chat)."""
        if message.ticket_id is None:
            raise PermanentFailure("message has no ticket")
        return await tickets.ticket_for_recipient(self.core, ticket_id=message.ticket_id)

    def _staff_channel(self) -> str:
        channel = self.settings.staff_channel_id
        if not channel:
            raise PermanentFailure("STAFF_CHANNEL_ID is not set")
        return channel

    async def _dm_channel(self, slack_user_id: str) -> str:
        """A person's DM with the bot (it never changes: asked once per process)."""
        channel = self._dm_channels.get(slack_user_id)
        if channel is None:
            response = await self.client.conversations_open(users=slack_user_id)
            channel = str(response["channel"]["id"])
            if len(self._dm_channels) >= 50_000:
                self._dm_channels.clear()
            self._dm_channels[slack_user_id] = channel
        return channel

    async def _ignore_missing(self, call: Any) -> None:
        try:
            await call
        except SlackApiError as error:
            if slack_error_code(error) not in (
                "message_not_found",
                "cant_update_message",
                "cant_delete_message",
            ):
                raise
