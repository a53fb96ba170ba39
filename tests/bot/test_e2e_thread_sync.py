"""Thread sync beyond new messages, end to end: edits and deletions of staff notes and customer
messages, the edit window, a note that can never become public, closed threads, stray DMs."""

from __future__ import annotations

from core import replies
from devslack.stage import AGENT, CUSTOMER, MANAGER, STAFF_CHANNEL
from tests.bot.e2e_support import deleted, detail, edited, last_ephemeral, open_ticket, user


def own_message(stage, channel, thread_ts, person, text):
    """The person's own message (not the bot's copy) in a thread."""
    return next(
        m
        for m in stage.fake.messages(channel, thread_ts)
        if m.user == person.user_id and not m.bot_id and m.text == text
    )


def copies(stage, channel, thread_ts, needle, *, include_deleted=False):
    return [
        m
        for m in stage.fake.messages(channel, thread_ts, include_deleted=include_deleted)
        if m.bot_id and needle in m.text_content
    ]


async def test_edited_staff_note_updates_the_reply_and_keeps_history(stage):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    await stage.act(agent.says(STAFF_CHANNEL, "Checking the VPN logs", thread_ts=opened.card.ts))
    message = own_message(stage, STAFF_CHANNEL, opened.card.ts, AGENT, "Checking the VPN logs")
    await stage.act(edited(stage, message, "Checking the VPN and proxy logs"))
    notes = [r for r in (await detail(stage, opened.number)).replies if r.is_internal]
    assert [n.body for n in notes] == ["Checking the VPN and proxy logs"]
    assert notes[0].edited_at is not None
    agent_user = await user(stage, AGENT)
    history = await replies.reply_history(
        stage.runtime.core, actor_id=agent_user.id, reply_id=notes[0].id
    )
    assert history == ["Checking the VPN logs"]


async def test_edited_customer_message_updates_the_relayed_copy_in_the_staff_thread(stage):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    await stage.act(customer.says(opened.dm, "It fails at 10:00", thread_ts=opened.confirmation.ts))
    message = own_message(stage, opened.dm, opened.confirmation.ts, CUSTOMER, "It fails at 10:00")
    [copy] = copies(stage, STAFF_CHANNEL, opened.card.ts, "It fails at 10:00")
    await stage.act(edited(stage, message, "It fails at 11:00"))
    updates = [c for c in stage.fake.calls_to("chat.update") if c.ok and c.params["ts"] == copy.ts]
    assert len(updates) == 1
    copy_now = stage.fake.message(STAFF_CHANNEL, copy.ts)
    assert "It fails at 11:00" in copy_now.text_content and "edited" in copy_now.text_content
    bodies = [r.body for r in (await detail(stage, opened.number)).replies]
    assert "It fails at 11:00" in bodies and "It fails at 10:00" not in bodies


async def test_deleted_customer_message_deletes_the_relayed_copy(stage):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    await stage.act(
        customer.says(opened.dm, "Wrong ticket, sorry", thread_ts=opened.confirmation.ts)
    )
    message = own_message(stage, opened.dm, opened.confirmation.ts, CUSTOMER, "Wrong ticket, sorry")
    [copy] = copies(stage, STAFF_CHANNEL, opened.card.ts, "Wrong ticket")
    await stage.act(deleted(stage, message))
    assert stage.fake.message(STAFF_CHANNEL, copy.ts).deleted
    assert [c for c in stage.fake.calls_to("chat.delete") if c.ok and c.params["ts"] == copy.ts]
    assert not any("Wrong ticket" in r.body for r in (await detail(stage, opened.number)).replies)


async def test_deleted_public_staff_reply_deletes_the_customer_copy(stage):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    await stage.act(agent.says(STAFF_CHANNEL, "!reply Reboot it", thread_ts=opened.card.ts))
    message = own_message(stage, STAFF_CHANNEL, opened.card.ts, AGENT, "!reply Reboot it")
    [copy] = copies(stage, opened.dm, opened.confirmation.ts, "Reboot it")
    await stage.act(deleted(stage, message))
    assert stage.fake.message(opened.dm, copy.ts).deleted


async def test_edit_after_the_edit_window_is_refused_and_changes_nothing(stage, clock):
    opened = await open_ticket(stage)
    customer = stage.user(CUSTOMER)
    await stage.act(customer.says(opened.dm, "Printer is HP", thread_ts=opened.confirmation.ts))
    message = own_message(stage, opened.dm, opened.confirmation.ts, CUSTOMER, "Printer is HP")
    [copy] = copies(stage, STAFF_CHANNEL, opened.card.ts, "Printer is HP")
    updates_before = len(stage.fake.calls_to("chat.update"))
    clock.advance(hours=25)
    await stage.act(edited(stage, message, "Printer is Canon"))
    # Told in the ticket's thread of their DM, not in a new message of the DM.
    [answer] = [
        m
        for m in stage.fake.replies(opened.dm, opened.confirmation.ts)
        if m.bot_id and "EDIT_WINDOW_EXPIRED" in m.text_content
    ]
    assert "not applied" in answer.text_content
    assert not stage.fake.ephemerals(CUSTOMER.user_id)
    bodies = [r.body for r in (await detail(stage, opened.number)).replies]
    assert "Printer is HP" in bodies and "Printer is Canon" not in bodies
    assert len(stage.fake.calls_to("chat.update")) == updates_before
    assert "Printer is HP" in stage.fake.message(STAFF_CHANNEL, copy.ts).text_content


async def test_editing_a_note_to_start_with_the_marker_keeps_it_internal(stage):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    secret = stage.unique("Customer owes us money")
    await stage.act(agent.says(STAFF_CHANNEL, secret, thread_ts=opened.card.ts))
    message = own_message(stage, STAFF_CHANNEL, opened.card.ts, AGENT, secret)
    await stage.act(edited(stage, message, f"!reply {secret} (now public?)"))
    notes = [r for r in (await detail(stage, opened.number)).replies if secret in r.body]
    assert len(notes) == 1 and notes[0].is_internal
    assert not stage.fake.find_visible(CUSTOMER.user_id, secret)
    customer_thread = stage.fake.replies(opened.dm, opened.confirmation.ts)
    assert not any("now public" in m.text_content for m in customer_thread)
    customer_view = await detail(stage, opened.number, as_person=CUSTOMER)
    assert not any(secret in r.body for r in customer_view.replies)


async def test_someone_elses_edit_event_cannot_change_a_note(stage):
    opened = await open_ticket(stage)
    await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "Agent's own note", thread_ts=opened.card.ts)
    )
    message = own_message(stage, STAFF_CHANNEL, opened.card.ts, AGENT, "Agent's own note")
    message.user = MANAGER.user_id  # a forged event claiming the manager wrote it
    await stage.act(edited(stage, message, "Rewritten by someone else"))
    bodies = [r.body for r in (await detail(stage, opened.number)).replies]
    assert "Agent's own note" in bodies and "Rewritten by someone else" not in bodies


async def test_message_in_a_closed_tickets_staff_thread_is_not_recorded(stage):
    opened = await open_ticket(stage)
    agent = stage.user(AGENT)
    await stage.act(agent.slash_command(f"close {opened.number} Done", channel_id=STAFF_CHANNEL))
    await stage.act(agent.says(STAFF_CHANNEL, "late note", thread_ts=opened.card.ts))
    assert not any(r.body == "late note" for r in (await detail(stage, opened.number)).replies)
    answer = last_ephemeral(stage, AGENT)
    assert "TICKET_CLOSED" in answer


async def test_dm_outside_any_thread_gets_guidance(stage):
    await open_ticket(stage)
    dm = stage.dm(CUSTOMER)
    before = len(stage.fake.messages(dm))
    await stage.act(stage.user(CUSTOMER).says(dm, "hello? my VPN is broken"))
    answers = [m for m in stage.fake.messages(dm)[before:] if m.bot_id]
    assert len(answers) == 1
    assert "/ticket new" in answers[0].text_content
    assert not answers[0].is_reply
    # nothing was recorded on the ticket
    assert not any("hello?" in r.body for r in (await detail(stage, 1)).replies)


async def test_dm_in_an_unrelated_thread_is_ignored(stage):
    opened = await open_ticket(stage)
    dm = opened.dm
    stray = stage.fake.post_as_user(dm, CUSTOMER.user_id, "a note to self")
    before = len(stage.fake.calls_to("chat.postMessage"))
    await stage.act(stage.user(CUSTOMER).says(dm, "reply to myself", thread_ts=stray.ts))
    assert len(stage.fake.calls_to("chat.postMessage")) == before
    assert not any("myself" in r.body for r in (await detail(stage, opened.number)).replies)


async def test_a_flood_into_a_closed_tickets_thread_gets_one_notice_per_interval(stage, clock):
    opened = await open_ticket(stage)
    staff = stage.user(AGENT)
    await stage.act(staff.slash_command(f"close {opened.number} Done", channel_id=STAFF_CHANNEL))
    customer = stage.user(CUSTOMER)

    def notices() -> int:
        return sum(
            1
            for m in stage.fake.messages(opened.dm)
            if m.bot_id and m.is_reply and "was not added" in m.text_content
        )

    for n in range(6):
        await stage.act(
            customer.says(opened.dm, f"still broken {n}", thread_ts=opened.confirmation.ts)
        )
    assert notices() == 1
    clock.advance(minutes=11)
    await stage.act(customer.says(opened.dm, "hello again", thread_ts=opened.confirmation.ts))
    assert notices() == 2
    bodies = [r.body for r in (await detail(stage, opened.number)).replies]
    assert not [b for b in bodies if b.startswith("still broken") or b == "hello again"]
