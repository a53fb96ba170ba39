"""The demo's customer-channel act: Acme shares a Slack Connect channel with the desk, Erin
(of Acme's own workspace) writes in it, a ticket opens, and Dana's answer from the staff
thread appears in Erin's thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.ids import REPLY_MARKER
from core import companies
from core.models import Ticket
from devslack.connect import add_external_user, add_shared_channel, writes
from devslack.stage import ADMIN, AGENT, STAFF_CHANNEL, Person

if TYPE_CHECKING:
    from devslack.demo import Story

ACME_TEAM = "T0ACMEDEMO"
ACME_CHANNEL = "CACMEDEMO1"
ERIN = Person("WACMEERIN1", "Erin Acme", "", "customer, Acme's workspace")
REQUEST = "Our invoice export fails with error 500 since this morning."
ANSWER = "Thanks Erin, we found it: a fix is rolling out, exports work again within the hour."


async def customer_channel_act(story: Story, number: int) -> None:
    """Step `number`: a company's shared channel raises a ticket and gets the answer there."""
    story.step(number, "Acme's shared channel raises a ticket; the answer lands in its thread")
    fake, stage = story.fake, story.stage
    add_external_user(fake, ERIN.user_id, ERIN.name, team_id=ACME_TEAM)
    add_shared_channel(
        fake,
        ACME_CHANNEL,
        "acme-support",
        team_id=ACME_TEAM,
        members=[ERIN.user_id, AGENT.user_id, ADMIN.user_id],
    )
    admin_id = await story.user_id(ADMIN)
    if not any(c.name == "Acme" for c in await companies.list_companies(story.core, actor_id=None)):
        await companies.add_company(story.core, actor_id=admin_id, name="Acme")
    story.later(1)
    mark = fake.mark()
    story.narrate(
        "Ada types  /ticket channel link Acme  in #acme-support, a Slack Connect channel "
        "shared with Acme's own workspace."
    )
    response = await stage.act(
        stage.user(ADMIN).slash_command("channel link Acme", channel_id=ACME_CHANNEL)
    )
    story.check_request(response, "/ticket channel link")
    story.show(mark, ADMIN)

    story.later(2)
    mark = fake.mark()
    story.narrate("Erin, from Acme's workspace, writes in the channel:")
    story.out.quote(REQUEST)
    request, event = writes(fake, ACME_CHANNEL, ERIN.user_id, REQUEST)
    story.check_request(await stage.act(event), "Erin's message")
    story.show(mark, ERIN, AGENT)
    async with story.core.db.transaction() as session:
        ticket_id = await session.scalar(
            select(Ticket.id)
            .where(Ticket.title == REQUEST, Ticket.shared_with_company.is_(True))
            .order_by(Ticket.number.desc())
            .limit(1)
        )
    story.expect(ticket_id is not None, "Erin's message did not open a ticket")
    assert ticket_id is not None
    ticket = await story.snapshot(ticket_id)
    thread = fake.replies(ACME_CHANNEL, request.ts)
    story.expect(
        any(m.bot_id and f"#{ticket.number}" in m.text_content for m in thread),
        f"the bot did not answer in Erin's thread with #{ticket.number}",
    )
    cards = [
        m for m in story.bot_messages(STAFF_CHANNEL) if m.text.startswith(f"#{ticket.number} ")
    ]
    story.expect(cards, f"no card for #{ticket.number} in the staff channel")

    story.later(3)
    mark = fake.mark()
    story.narrate(f"Dana answers from the card's thread, starting with {REPLY_MARKER}:")
    story.out.quote(f"{REPLY_MARKER} {ANSWER}")
    reply = stage.user(AGENT).says(
        STAFF_CHANNEL, f"{REPLY_MARKER} {ANSWER}", thread_ts=cards[-1].ts
    )
    story.check_request(await stage.act(reply), "Dana's answer to Erin")
    story.show(mark, ERIN)
    thread = fake.replies(ACME_CHANNEL, request.ts)
    story.expect(
        any(m.bot_id and ANSWER in m.text_content for m in thread),
        "Dana's answer did not reach Erin's thread in #acme-support",
    )
    fresh = await story.refreshed(ticket)
    story.expect(fresh.first_response_at is not None, "the first response was not recorded")
