"""The internal-note leak scanner: no note text may be visible to a customer, in a non-private
channel, or in a customer's ephemeral messages — checked over everything the stand-in recorded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from bot.devslack.server import FakeSlack
from core.context import Core
from core.enums import Role
from core.models import Reply, ReplyEdit, User


@dataclass(frozen=True)
class Leak:
    note: str
    where: str


async def note_texts(core: Core) -> list[str]:
    """Every text an internal note ever had (edits included)."""
    async with core.db.transaction() as session:
        bodies = list(await session.scalars(select(Reply.body).where(Reply.is_internal.is_(True))))
        bodies += list(
            await session.scalars(
                select(ReplyEdit.previous_body)
                .join(Reply, Reply.id == ReplyEdit.reply_id)
                .where(Reply.is_internal.is_(True))
            )
        )
    return [b for b in bodies if len(b.strip()) >= 6]


async def customer_ids(core: Core, fake: FakeSlack) -> set[str]:
    """Customers known to the desk, plus every Slack user the desk does not count as staff."""
    async with core.db.transaction() as session:
        staff = set(
            await session.scalars(
                select(User.slack_user_id).where(User.role != Role.CUSTOMER.value)
            )
        )
    return {u for u in fake.users if u not in staff and u != fake.bot_user_id}


async def scan_for_leaks(core: Core, fake: FakeSlack) -> list[Leak]:
    """Every place a note's text reached someone who must not see it."""
    notes = await note_texts(core)
    if not notes:
        return []
    leaks: list[Leak] = []
    audiences = {f"customer {u}": fake.visible_to(u) for u in await customer_ids(core, fake)}
    audiences["a non-private channel"] = fake.visible_publicly()
    for where, items in audiences.items():
        for item in items:
            for note in notes:
                if note in item.text_content or note in item.raw_content:
                    leaks.append(
                        Leak(note=note, where=f"{where}: {item.kind} {item.channel or ''}")
                    )
    return leaks
