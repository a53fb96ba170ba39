"""Files shared with a reply: recorded with it (name, type, size, origin), listed only to whom
may see the reply, named in the audit log, and queued for copying after the reply's text to
the side the reply goes to, never to a customer for a note."""

from __future__ import annotations

import pytest

from core.attachments import (
    MAX_ATTACHMENTS,
    AttachmentInput,
    attachment_for_delivery,
    copies_of_reply,
    record_copy_delivered,
    record_upload_started,
    uploads_started,
)
from core.enums import Audience
from core.errors import ValidationFailed
from core.models import Reply, ReplyAttachment
from core.outbox import OutboxKind, claim_batch, mark_delivered
from core.replies import ChatOrigin, add_reply, delete_reply, edit_reply
from core.tickets import get_ticket
from tests.core.ticket_support import audit_entries, count_rows, make_cast
from tests.factories import make_ticket, outbox_rows

SCREENSHOT = AttachmentInput(
    source_id="F0SCREEN", name="screenshot.png", title="The error", mimetype="image/png", size=4096
)
LOG = AttachmentInput(source_id="F0LOGS", name="vpn.log", mimetype="text/plain", size=120)


async def test_a_reply_records_its_files_in_the_order_shared(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await add_reply(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        body="See attached",
        internal=False,
        files=[SCREENSHOT, LOG],
    )
    assert [(a.name, a.title, a.mimetype, a.size, a.source_id) for a in view.attachments] == [
        ("screenshot.png", "The error", "image/png", 4096, "F0SCREEN"),
        ("vpn.log", None, "text/plain", 120, "F0LOGS"),
    ]
    detail = await get_ticket(core, actor_id=cast.agent.id, ticket=ticket.number)
    assert [a.name for a in detail.replies[0].attachments] == ["screenshot.png", "vpn.log"]
    assert all(a.reply_id == view.id for a in detail.replies[0].attachments)


async def test_the_audit_log_names_the_files_of_a_reply(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="", internal=False, files=[LOG]
    )
    [entry] = [e for e in await audit_entries(core, ticket.id) if e.action == "reply.added"]
    assert entry.details["attachments"] == [
        {"name": "vpn.log", "mimetype": "text/plain", "size": 120, "source_id": "F0LOGS"}
    ]


async def test_a_file_only_message_is_a_valid_reply(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="  ", internal=False, files=[LOG]
    )
    assert view.body == "" and [a.name for a in view.attachments] == ["vpn.log"]


async def test_an_empty_message_without_files_is_still_refused(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with pytest.raises(ValidationFailed, match="must not be empty"):
        await add_reply(core, actor_id=cast.alice.id, ticket=ticket.number, body="", internal=False)
    assert await count_rows(core, Reply) == 0


async def test_too_many_files_are_refused_and_nothing_is_written(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    files = [AttachmentInput(source_id=f"F{n:04d}", name=f"{n}.txt") for n in range(21)]
    assert len(files) > MAX_ATTACHMENTS
    with pytest.raises(ValidationFailed, match="at most 20 files"):
        await add_reply(
            core,
            actor_id=cast.alice.id,
            ticket=ticket.number,
            body="x",
            internal=False,
            files=files,
        )
    assert await count_rows(core, Reply) == 0
    assert await count_rows(core, ReplyAttachment) == 0


async def test_file_descriptions_are_cleaned_like_other_user_text(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await add_reply(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        body="",
        internal=False,
        files=[
            AttachmentInput(source_id="F1", name="inv\u202eoice\n.pdf", size=10),
            AttachmentInput(source_id="F1", name="the same file again"),
            AttachmentInput(source_id="F2"),  # withheld by Slack: only an id
            AttachmentInput(source_id="F3", name="x" * 400),
        ],
    )
    assert [a.name for a in view.attachments] == ["invoice .pdf", "unnamed file", "x" * 255]
    with pytest.raises(ValidationFailed, match="number of bytes"):
        await add_reply(
            core,
            actor_id=cast.alice.id,
            ticket=ticket.number,
            body="",
            internal=False,
            files=[AttachmentInput(source_id="F9", name="a", size=-1)],
        )


async def test_a_notes_files_are_listed_to_staff_only(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await add_reply(
        core, actor_id=cast.agent.id, ticket=ticket.number, body="log", internal=True, files=[LOG]
    )
    await add_reply(
        core,
        actor_id=cast.agent.id,
        ticket=ticket.number,
        body="shot",
        internal=False,
        files=[SCREENSHOT],
    )
    staff = await get_ticket(core, actor_id=cast.agent.id, ticket=ticket.number)
    customer = await get_ticket(core, actor_id=cast.alice.id, ticket=ticket.number)
    assert [a.name for r in staff.replies for a in r.attachments] == ["vpn.log", "screenshot.png"]
    assert [a.name for r in customer.replies for a in r.attachments] == ["screenshot.png"]


async def test_a_customers_files_are_queued_for_the_staff_thread_after_the_text(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    await add_reply(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        body="Two files",
        internal=False,
        origin=ChatOrigin(Audience.CUSTOMER, "D1", "1.1"),
        files=[SCREENSHOT, LOG],
    )
    rows = (await outbox_rows(core, ticket.id))[before:]
    assert [(r.kind, r.thread_key.split(":")[0]) for r in rows] == [
        ("staff_thread_post", "staff"),
        ("thread_file_copy", "staff"),
        ("thread_file_copy", "staff"),
    ]
    assert len({r.thread_key for r in rows}) == 1  # one thread: delivered in this order


async def test_a_public_staff_reply_queues_its_files_for_the_customer_only(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    await add_reply(
        core,
        actor_id=cast.agent.id,
        ticket=ticket.number,
        body="Here is the fix",
        internal=False,
        origin=ChatOrigin(Audience.STAFF, "C1", "1.1"),
        files=[LOG],
    )
    copies = [
        r for r in (await outbox_rows(core, ticket.id))[before:] if r.kind == "thread_file_copy"
    ]
    assert [(r.payload["audience"], r.thread_key.split(":")[0]) for r in copies] == [
        ("customer", "customer")
    ]


async def test_a_notes_files_are_never_queued_for_a_customer(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    before = len(await outbox_rows(core, ticket.id))
    for origin in (ChatOrigin(Audience.STAFF, "C1", "1.1"), None):
        await add_reply(
            core,
            actor_id=cast.agent.id,
            ticket=ticket.number,
            body="internal log",
            internal=True,
            origin=origin,
            files=[LOG],
        )
    rows = (await outbox_rows(core, ticket.id))[before:]
    assert not [r for r in rows if r.thread_key.startswith("customer")]
    # Written in the staff thread, the file is already there: nothing to copy.
    copies = [r for r in rows if r.kind == OutboxKind.THREAD_FILE_COPY.value]
    assert [c.payload["audience"] for c in copies] == ["staff"]  # the note made by command


async def test_delivery_never_hands_a_notes_file_to_the_customer_audience(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    note = await add_reply(
        core, actor_id=cast.agent.id, ticket=ticket.number, body="x", internal=True, files=[LOG]
    )
    attachment_id = note.attachments[0].id
    staff = await attachment_for_delivery(
        core, attachment_id=attachment_id, audience=Audience.STAFF
    )
    assert staff is not None and staff.attachment.name == "vpn.log"
    assert staff.author_name == cast.agent.display_name
    assert (
        await attachment_for_delivery(core, attachment_id=attachment_id, audience=Audience.CUSTOMER)
        is None
    )


async def test_a_deleted_replys_files_are_not_delivered(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="oops", internal=False, files=[LOG]
    )
    await delete_reply(core, actor_id=cast.alice.id, reply_id=view.id)
    found = await attachment_for_delivery(
        core, attachment_id=view.attachments[0].id, audience=Audience.STAFF
    )
    assert found is None


async def test_the_text_of_a_message_with_files_may_be_edited_away(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    with_file = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="see", internal=False, files=[LOG]
    )
    plain = await add_reply(
        core, actor_id=cast.alice.id, ticket=ticket.number, body="text", internal=False
    )
    edited = await edit_reply(core, actor_id=cast.alice.id, reply_id=with_file.id, body="")
    assert edited.body == "" and [a.name for a in edited.attachments] == ["vpn.log"]
    with pytest.raises(ValidationFailed, match="must not be empty"):
        await edit_reply(core, actor_id=cast.alice.id, reply_id=plain.id, body="")


async def test_an_upload_in_progress_is_remembered_only_by_the_lease_holder(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    await add_reply(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        body="x",
        internal=False,
        origin=ChatOrigin(Audience.CUSTOMER, "D1", "1.1"),
        files=[LOG],
    )
    # The file waits for what was written before it in its thread: deliver that first.
    for _ in range(5):
        claimed = await claim_batch(core, worker_id="w1")
        files = [m for m in claimed if m.kind is OutboxKind.THREAD_FILE_COPY]
        if files:
            break
        for earlier in claimed:
            await mark_delivered(core, message_id=earlier.id, worker_id="w1")
    [message] = files
    assert await record_upload_started(
        core, message_id=message.id, worker_id="w1", upload_id="FUP1"
    )
    assert not await record_upload_started(
        core, message_id=message.id, worker_id="someone else", upload_id="FUP2"
    )
    assert await record_upload_started(
        core, message_id=message.id, worker_id="w1", upload_id="FUP3"
    )
    assert await uploads_started(core, message_id=message.id) == ["FUP1", "FUP3"]


async def claim_until(core, worker_id: str, message_id: int) -> None:
    """Claim for `worker_id` until `message_id` is among the claimed, delivering what comes
    before it in its thread."""
    for _ in range(10):
        claimed = {m.id for m in await claim_batch(core, worker_id=worker_id)}
        if message_id in claimed:
            return
        for other in claimed:
            await mark_delivered(core, message_id=other, worker_id=worker_id)
    raise AssertionError(f"outbox message {message_id} was never claimed")


async def test_a_delivered_copy_is_remembered_for_the_replys_deletion(core):
    cast = await make_cast(core)
    ticket = await make_ticket(core, cast.alice)
    view = await add_reply(
        core,
        actor_id=cast.alice.id,
        ticket=ticket.number,
        body="x",
        internal=False,
        origin=ChatOrigin(Audience.CUSTOMER, "D1", "1.1"),
        files=[SCREENSHOT, LOG],
    )
    first, second = [r for r in await outbox_rows(core, ticket.id) if r.kind == "thread_file_copy"]
    shot, log = view.attachments
    await claim_until(core, "w1", first.id)

    async def record(row, attachment, copy_id, worker_id="w1"):
        return await record_copy_delivered(
            core,
            message_id=row.id,
            worker_id=worker_id,
            result={"file": copy_id},
            attachment_id=attachment.id,
            audience=Audience.STAFF,
            copy_id=copy_id,
        )

    assert not await record(first, shot, "FCOPY1", worker_id="someone else")  # not theirs
    assert await copies_of_reply(core, reply_id=view.id, audience=Audience.STAFF) == []
    assert await record(first, shot, "FCOPY1")
    await claim_until(core, "w1", second.id)
    assert await record(second, log, "FCOPY2")
    rows = {r.id: r for r in await outbox_rows(core, ticket.id)}
    assert rows[first.id].delivered_at is not None and rows[first.id].result == {"file": "FCOPY1"}
    staff = await copies_of_reply(core, reply_id=view.id, audience=Audience.STAFF)
    assert staff == ["FCOPY1", "FCOPY2"]
    assert await copies_of_reply(core, reply_id=view.id, audience=Audience.CUSTOMER) == []
