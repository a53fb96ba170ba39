"""`python -m bot demo`: ticketbot at work without a Slack workspace.

The real bot (HTTP mode, signed requests, the production BotServer) runs on loopback against
the stand-in Slack of devslack, always with its own throwaway SQLite database (never
DATABASE_URL: the demo creates fake admins and tickets, which have no place in a real desk).
A scripted support story is played through signed Slack requests, and what each person sees is
printed from the Block Kit the bot sent. Every step checks what it expects; the first failed
expectation ends the demo with a message on stderr and exit code 1.
"""

# ruff: noqa: E402 - the logger below is quieted before the imports that would use it

from __future__ import annotations

import logging

# Importing alembic (bot.app runs migrations at start-up) logs every built-in plugin at INFO;
# that says nothing to someone watching the demo, and it happens before run_demo() can act.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

import html
import os
import re
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TextIO

from sqlalchemy import func, select

from bot.ids import NOTE_REACTION, REPLY_MARKER, REPLY_REACTION
from bot.settings import SettingsError, load_settings
from core import sla, tickets, users
from core.clock import FrozenClock
from core.enums import Priority, SlaThreshold, Status
from core.models import Reply, SlaTimer, Ticket
from core.results import TicketView
from devslack.demo_channels import customer_channel_act
from devslack.leaks import Leak, customer_ids, scan_for_leaks
from devslack.server import FakeView, StoredMessage
from devslack.stage import (
    AGENT,
    CUSTOMER,
    CUSTOMER_2,
    MANAGER,
    MANAGER_CHANNEL,
    PEOPLE,
    STAFF_CHANNEL,
    Person,
    Stage,
)

CONFIRMATION = "No internal note reached a customer"
WIDTH = 80

# A short first-response target for every priority, so the story can breach it in minutes.
DEMO_SLA = timedelta(minutes=10)
DEMO_SLA_WARNING_RATIO = 0.75

TITLE_1 = "VPN drops every hour"
DESCRIPTION_1 = "Since Monday the VPN disconnects about once an hour, and I lose my RDP session."
NOTE = "Looks like the keep-alive bug of VPN client 4.2; the fix shipped in 4.3."
REPLY = "Hi Alice, thanks for the report! Which VPN client version do you run? See Help, About."
ANSWER = "It says 4.2.1, installed last week."
TITLE_2 = "Invoice PDF is blank"
DESCRIPTION_2 = "The PDF of invoice 2291 opens as an empty page."
CLOSE_REASON = "Known keep-alive bug in VPN client 4.2; upgrading to 4.3 fixes it"

_EMOJI = {
    "white_check_mark": "✅",
    "lock": "🔒",
    "warning": "⚠️",
    "rotating_light": "🚨",
    "bust_in_silhouette": "👤",
    "speech_balloon": "💬",
    "large_orange_circle": "🟠",
    "large_blue_circle": "🔵",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "arrows_counterclockwise": "🔄",
    "hourglass": "⌛",
    "no_entry": "⛔",
    "wastebasket": "🗑️",
    "ticket": "🎫",
    "tada": "🎉",
    "outbox_tray": "📤",
    "mag": "🔍",
}
_EMOJI_CODE = re.compile(r":([a-z0-9_+-]+):")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_QUIET_LOGGERS = ("bot", "core", "slack_bolt", "slack_sdk", "aiohttp", "alembic", "sqlalchemy")


class DemoFailure(Exception):
    """An expectation of the story did not hold; `where` names the step."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


class _DropBoltTokenNotice(logging.Filter):
    """Bolt warns that the token is unused when it is given a client, which the bot always does
    on purpose; the notice says nothing to someone watching the demo."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


@contextmanager
def _quiet_logging() -> Iterator[None]:
    """Only warnings and errors from the bot and its libraries while the demo runs."""
    root = logging.getLogger()
    bolt = logging.getLogger("bot.bolt")
    notice = _DropBoltTokenNotice()
    saved = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    saved_root = root.level
    root.setLevel(max(saved_root, logging.WARNING))
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    bolt.addFilter(notice)
    try:
        yield
    finally:
        bolt.removeFilter(notice)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        root.setLevel(saved_root)


# ------------------------------------------------------------------------------------ output


@dataclass
class Output:
    """Plain text on stdout; bold headings only on a terminal (and never with NO_COLOR)."""

    quiet: bool
    stream: TextIO = field(default_factory=lambda: sys.stdout)

    def __post_init__(self) -> None:
        encoding = (getattr(self.stream, "encoding", None) or "ascii").lower().replace("-", "")
        self.unicode = encoding in ("utf8", "utf8sig")
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.colour = bool(isatty()) and "NO_COLOR" not in os.environ

    def write(self, text: str = "", *, always: bool = False) -> None:
        if self.quiet and not always:
            return
        encoding = getattr(self.stream, "encoding", None) or "utf-8"
        safe = text.encode(encoding, errors="replace").decode(encoding, errors="replace")
        print(safe, file=self.stream)

    def bold(self, text: str) -> str:
        return f"\033[1m{text}\033[0m" if self.colour else text

    def readable(self, text: str) -> str:
        """Slack mrkdwn as plain text: emphasis markers dropped, emoji codes drawn if we can."""
        if self.unicode:
            text = _EMOJI_CODE.sub(lambda m: _EMOJI.get(m.group(1), m.group(0)), text)
        text = _BOLD.sub(r"\1", text)
        return _ITALIC.sub(r"\1", text)

    def heading(self, text: str, *, always: bool = False) -> None:
        self.write()
        self.write(self.bold(f"== {text} ".ljust(WIDTH, "=")), always=always)

    def narrate(self, clock: FrozenClock, text: str) -> None:
        for line in textwrap.wrap(
            f"{clock.now():%H:%M}  {text}", width=WIDTH, subsequent_indent=" " * 7
        ):
            self.write(line)

    def quote(self, text: str) -> None:
        """What a person types, indented under the narration."""
        for line in textwrap.wrap(
            text, width=WIDTH, initial_indent=" " * 7, subsequent_indent=" " * 9
        ):
            self.write(line)

    def sees(self, who: str, entries: list[str], *, extra: str | None = None) -> None:
        self.write()
        self.write(f"  {self.bold(who)} sees:")
        if not entries and extra is None:
            self.write("      (nothing new)")
        for entry in entries:
            for line in self.readable(entry).splitlines():
                self.write(f"    {line}".rstrip())
        if extra is not None:
            self.write(f"    {extra}")


def _shows(item: StoredMessage | FakeView, text: str) -> bool:
    """Whether a message or view displays `text` (Slack escapes &, < and > in what it stores)."""
    return text in html.unescape(item.text_content)


def _names(user_ids: Iterable[str]) -> str:
    """'Dana, Max and Ada': the first names of the workspace's people among `user_ids`."""
    members = set(user_ids)
    names = [_first_name(p) for p in PEOPLE if p.user_id in members]
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else "".join(names)


def _label(person: Person) -> str:
    return f"{_first_name(person)} ({person.role})"


def _first_name(person: Person) -> str:
    return person.name.split()[0]


def _entries(rendered: str) -> list[str]:
    """Split FakeSlack.render_for output into one entry per message, ephemeral or view."""
    entries: list[str] = []
    for line in rendered.splitlines():
        if line.startswith("-- ") or not entries:
            entries.append(line)
        else:
            entries[-1] += "\n" + line
    return [entry for entry in entries if entry.strip()]


def _describe_database(ignored_database_url: bool) -> str:
    described = "a throwaway SQLite file, deleted when the demo ends"
    if ignored_database_url:
        described += " (DATABASE_URL is not used: the demo never writes into a real database)"
    return described


# ------------------------------------------------------------------------------------- story


@dataclass
class Facts:
    """What the story learned along the way, for the later steps and the summary."""

    first: TicketView | None = None
    second: TicketView | None = None
    card_ts: str = ""
    confirmation_ts: str = ""
    submitted_mark: int = 0
    alerts: list[sla.ClaimedAlert] = field(default_factory=list)


class Story:
    """The scripted support story, step by step, against a running Stage."""

    STEPS = 7

    def __init__(self, stage: Stage, clock: FrozenClock, out: Output) -> None:
        self.stage = stage
        self.fake = stage.fake
        self.core = stage.runtime.core
        self.clock = clock
        self.out = out
        self.facts = Facts()
        self.step_title = "start-up"

    # ------------------------------------------------------------------ helpers

    def step(self, number: int, title: str) -> None:
        self.step_title = f"step {number} of {self.STEPS} ({title})"
        self.out.heading(f"Step {number}/{self.STEPS}: {title}")

    def expect(self, condition: object, failure: str) -> None:
        if not condition:
            raise DemoFailure(self.step_title, failure)

    def fail(self, failure: str) -> NoReturn:
        raise DemoFailure(self.step_title, failure)

    def later(self, minutes: float) -> None:
        self.clock.advance(minutes=minutes)

    def narrate(self, text: str) -> None:
        self.out.narrate(self.clock, text)

    def show(self, since: int, *people: Person) -> None:
        """Print what each person sees that is new since the `since` bookmark. The manager is
        in the staff channel too: what the agent sees there is not repeated for the manager."""
        seen = {p.user_id: _entries(self.fake.render_for(p.user_id, since=since)) for p in people}
        for person in people:
            entries = seen[person.user_id]
            extra = None
            if person is MANAGER and AGENT.user_id in seen:
                shared = [e for e in entries if e in seen[AGENT.user_id]]
                entries = [e for e in entries if e not in shared]
                if shared:
                    extra = f"(and the #support-triage updates {_first_name(AGENT)} sees)"
            self.out.sees(_label(person), entries, extra=extra)
        self.out.write()

    def check_request(self, response: Any, what: str) -> None:
        self.expect(response.status == 200, f"the bot answered {what} with HTTP {response.status}")
        if response.json.get("response_action") == "errors":
            self.fail(f"the bot refused {what}: {response.json.get('errors')}")

    async def user_id(self, person: Person) -> int:
        found = await users.find_by_slack_id(self.core, slack_user_id=person.user_id)
        if found is None:
            self.fail(f"{person.name} is not known to the desk")
        return found.id

    async def newest_ticket(self, person: Person) -> TicketView:
        """The person's ticket with the highest number (a database kept from earlier demo runs
        holds their tickets too)."""
        customer_id = await self.user_id(person)
        async with self.core.db.transaction() as session:
            ticket_id = await session.scalar(
                select(Ticket.id)
                .where(Ticket.customer_id == customer_id)
                .order_by(Ticket.number.desc())
                .limit(1)
            )
        if ticket_id is None:
            self.fail(f"{person.name} has no ticket in the database")
        return await self.snapshot(ticket_id)

    async def snapshot(self, ticket_id: uuid.UUID) -> TicketView:
        found = await tickets.ticket_snapshot(self.core, ticket_id=ticket_id)
        if found is None:
            self.fail(f"ticket {ticket_id} is not in the database")
        return found

    async def refreshed(self, ticket: TicketView) -> TicketView:
        return await self.snapshot(ticket.id)

    def bot_messages(self, channel: str) -> list[StoredMessage]:
        return [m for m in self.fake.messages(channel) if m.user == self.fake.bot_user_id]

    def reacted(self, channel: str, ts: str, reaction: str, meaning: str) -> None:
        if reaction in self.fake.reactions(channel, ts):
            shown = self.out.readable(f":{reaction}:")
            self.out.write(f"       ticketbot reacts to the message with {shown}: {meaning}")

    async def start_new_ticket(self, person: Person, title: str) -> FakeView:
        """The person types /ticket new <title> in their DM; returns the form that opened."""
        response = await self.stage.act(
            self.stage.user(person).slash_command(f"new {title}", channel_id=self.stage.dm(person))
        )
        self.check_request(response, "/ticket new")
        views = [v for v in self.fake.views_opened(person.user_id) if not v.closed]
        self.expect(
            views and _shows(views[-1], title),
            f"no 'New ticket' form with the title filled in opened for {_first_name(person)}",
        )
        return views[-1]

    async def submit_new_ticket(
        self, person: Person, form: FakeView, title: str, description: str, priority: Priority
    ) -> TicketView:
        """The person submits the form; the ticket must exist and be confirmed in their DM."""
        values = {
            "title_block": {"title": title},
            "description_block": {"description": description},
            "priority_block": {"priority": priority.value},
        }
        response = await self.stage.submit_view(person, form, values)
        self.check_request(response, "the 'New ticket' form")
        ticket = await self.newest_ticket(person)
        name = _first_name(person)
        self.expect(ticket.title == title, f"{name}'s newest ticket is not {title!r}")
        self.expect(ticket.status is Status.OPEN, f"the new ticket is {ticket.status.value}")
        self.expect(ticket.priority is priority, f"the new ticket is {ticket.priority.value}")
        confirmations = [
            m
            for m in self.bot_messages(self.stage.dm(person))
            if not m.is_reply and _shows(m, f"#{ticket.number}")
        ]
        self.expect(confirmations, f"{name} got no confirmation of ticket #{ticket.number}")
        if person is CUSTOMER:
            self.facts.confirmation_ts = confirmations[-1].ts
        return ticket

    # ------------------------------------------------------------------ the steps

    async def play(self) -> None:
        await self.customer_opens_ticket()
        self.card_reaches_staff()
        await self.agent_writes_note_and_reply()
        await self.customer_answers()
        await self.unanswered_ticket_alerts_manager()
        await self.agent_closes_ticket()
        await customer_channel_act(self, 7)

    async def customer_opens_ticket(self) -> None:
        self.step(1, "Alice opens a ticket")
        mark = self.fake.mark()
        self.narrate(f"Alice types  /ticket new {TITLE_1}  in her DM with ticketbot.")
        form = await self.start_new_ticket(CUSTOMER, TITLE_1)
        self.show(mark, CUSTOMER)

        self.later(1)
        mark = self.fake.mark()
        self.narrate("She describes the problem, keeps priority Medium and submits the form.")
        self.facts.first = await self.submit_new_ticket(
            CUSTOMER, form, TITLE_1, DESCRIPTION_1, Priority.MEDIUM
        )
        self.facts.submitted_mark = mark
        self.show(mark, CUSTOMER)

    def card_reaches_staff(self) -> None:
        self.step(2, "The ticket card appears in the private staff channel")
        ticket = self.facts.first
        assert ticket is not None
        channel = self.fake.channels[STAFF_CHANNEL]
        self.expect(channel.is_private, "the staff channel is not private")
        cards = [
            m
            for m in self.bot_messages(STAFF_CHANNEL)
            if not m.is_reply and _shows(m, f"#{ticket.number}") and _shows(m, ticket.title)
        ]
        self.expect(cards, f"no card for #{ticket.number} in #{channel.name}")
        self.expect(
            CUSTOMER.user_id not in channel.members, "Alice is a member of the staff channel"
        )
        self.facts.card_ts = cards[-1].ts
        self.narrate(
            f"ticketbot posts the card in #{channel.name}, a private channel: only"
            f" {_names(channel.members)} can read it."
        )
        self.show(self.facts.submitted_mark, AGENT, MANAGER)

    async def agent_writes_note_and_reply(self) -> None:
        self.step(3, "Dana writes an internal note, then a public reply")
        ticket = self.facts.first
        assert ticket is not None
        dana = self.stage.user(AGENT)

        self.later(3)
        mark = self.fake.mark()
        self.narrate("Dana writes in the card's thread (a plain message is an internal note):")
        self.out.quote(NOTE)
        request = dana.says(STAFF_CHANNEL, NOTE, thread_ts=self.facts.card_ts)
        note_ts = request.payload["event"]["ts"]
        self.check_request(await self.stage.act(request), "Dana's note")
        self.reacted(STAFF_CHANNEL, note_ts, NOTE_REACTION, "saved as an internal note")
        self.show(mark, AGENT, CUSTOMER)
        staff_view = await tickets.get_ticket(
            self.core, actor_id=await self.user_id(AGENT), ticket=ticket.number
        )
        self.expect(
            any(r.is_internal and r.body == NOTE for r in staff_view.replies),
            "Dana's message was not saved as an internal note",
        )
        self.expect(
            not self.fake.find_visible(CUSTOMER.user_id, NOTE)
            and not self.fake.find_visible(CUSTOMER.user_id, NOTE, raw=True),
            "the internal note is visible to Alice in Slack",
        )
        customer_view = await tickets.get_ticket(
            self.core, actor_id=await self.user_id(CUSTOMER), ticket=ticket.number
        )
        self.expect(
            all(r.body != NOTE for r in customer_view.replies),
            "the internal note is in Alice's view of the ticket",
        )

        self.later(1)
        mark = self.fake.mark()
        self.narrate(f"Dana starts her next message with {REPLY_MARKER} to answer Alice:")
        self.out.quote(f"{REPLY_MARKER} {REPLY}")
        request = dana.says(STAFF_CHANNEL, f"{REPLY_MARKER} {REPLY}", thread_ts=self.facts.card_ts)
        reply_ts = request.payload["event"]["ts"]
        self.check_request(await self.stage.act(request), "Dana's reply")
        self.reacted(STAFF_CHANNEL, reply_ts, REPLY_REACTION, "sent to the customer")
        self.show(mark, CUSTOMER, AGENT)
        dm_thread = self.fake.replies(self.stage.dm(CUSTOMER), self.facts.confirmation_ts)
        self.expect(
            any(_shows(m, REPLY) for m in dm_thread),
            "Dana's public reply did not reach Alice's DM thread",
        )
        self.expect(
            not any(_shows(m, REPLY_MARKER) for m in dm_thread),
            f"Alice sees the {REPLY_MARKER} marker",
        )
        fresh = await self.refreshed(ticket)
        self.expect(fresh.first_response_at is not None, "the first response was not recorded")

    async def customer_answers(self) -> None:
        self.step(4, "Alice answers in her DM thread")
        self.later(4)
        mark = self.fake.mark()
        dm = self.stage.dm(CUSTOMER)
        self.narrate("Alice replies in the thread under her confirmation:")
        self.out.quote(ANSWER)
        request = self.stage.user(CUSTOMER).says(dm, ANSWER, thread_ts=self.facts.confirmation_ts)
        self.check_request(await self.stage.act(request), "Alice's answer")
        self.show(mark, CUSTOMER, AGENT)
        staff_thread = self.fake.replies(STAFF_CHANNEL, self.facts.card_ts)
        self.expect(
            any(_shows(m, ANSWER) for m in staff_thread if m.user == self.fake.bot_user_id),
            "Alice's answer did not reach the card's thread in the staff channel",
        )

    async def unanswered_ticket_alerts_manager(self) -> None:
        self.step(5, "Nobody answers Bob's ticket: the SLA alerts the manager")
        target = int(DEMO_SLA.total_seconds() // 60)
        self.later(1)
        mark = self.fake.mark()
        form = await self.start_new_ticket(CUSTOMER_2, TITLE_2)
        second = await self.submit_new_ticket(
            CUSTOMER_2, form, TITLE_2, DESCRIPTION_2, Priority.HIGH
        )
        self.facts.second = second
        self.narrate(
            f"Bob opens #{second.number} {TITLE_2!r} (High) the same way. The demo's"
            f" first-response target is {target} minutes for every priority."
        )
        self.show(mark, AGENT)

        warning_after = DEMO_SLA * DEMO_SLA_WARNING_RATIO + timedelta(seconds=30)
        self.clock.advance(warning_after)
        mark = self.fake.mark()
        self.narrate("Nobody has answered Bob yet. The SLA scan runs (the scheduler's job).")
        await self.scan()
        self.show(mark, MANAGER, CUSTOMER_2)
        self.expect(
            self.manager_alerts(second, SlaThreshold.WARNING),
            f"no SLA warning for #{second.number} in #support-managers",
        )

        self.clock.advance(DEMO_SLA - warning_after + timedelta(minutes=1))
        mark = self.fake.mark()
        self.narrate(f"Still no answer {target} minutes later: the target is missed. Next scan:")
        await self.scan()
        self.show(mark, MANAGER, AGENT, CUSTOMER_2)
        alerts = self.manager_alerts(second, SlaThreshold.BREACH)
        self.expect(alerts, f"no SLA breach alert for #{second.number} in #support-managers")
        first = self.facts.first
        assert first is not None
        self.expect(
            all(a.ticket_id != first.id for a in self.facts.alerts),
            f"#{first.number} was answered in time but got an SLA alert",
        )
        seen_by_bob = {(i.channel, i.ts) for i in self.fake.visible_to(CUSTOMER_2.user_id)}
        self.expect(
            all((m.channel, m.ts) not in seen_by_bob for m in self.bot_messages(MANAGER_CHANNEL)),
            "Bob can see the manager channel's alerts",
        )

    async def scan(self) -> None:
        result = await sla.scan(self.core)
        self.facts.alerts.extend(await sla.scan_alerts(self.core, result.scan_id))
        await self.stage.settle()

    def manager_alerts(self, ticket: TicketView, threshold: SlaThreshold) -> list[StoredMessage]:
        """The alert messages for `ticket` in the manager channel, if the scan claimed one."""
        if not any(
            a.ticket_id == ticket.id and a.threshold is threshold for a in self.facts.alerts
        ):
            return []
        word = "warning" if threshold is SlaThreshold.WARNING else "breach"
        return [
            m
            for m in self.bot_messages(MANAGER_CHANNEL)
            if _shows(m, f"#{ticket.number}") and word in m.text_content.lower()
        ]

    async def agent_closes_ticket(self) -> None:
        ticket = self.facts.first
        assert ticket is not None
        self.step(6, f"Dana closes #{ticket.number} with a reason")
        self.later(4)
        mark = self.fake.mark()
        command = f"close {ticket.number} {CLOSE_REASON}"
        self.narrate(f"Dana types  /ticket {command}  in #support-triage.")
        response = await self.stage.act(
            self.stage.user(AGENT).slash_command(command, channel_id=STAFF_CHANNEL)
        )
        self.check_request(response, "/ticket close")
        self.show(mark, AGENT, CUSTOMER)
        fresh = await self.refreshed(ticket)
        self.expect(fresh.status is Status.CLOSED, f"#{ticket.number} is {fresh.status.value}")
        self.expect(
            fresh.status_reason == CLOSE_REASON,
            f"#{ticket.number} was closed with reason {fresh.status_reason!r}",
        )
        dm_thread = self.fake.replies(self.stage.dm(CUSTOMER), self.facts.confirmation_ts)
        self.expect(
            any(_shows(m, CLOSE_REASON) for m in dm_thread),
            "Alice was not told why her ticket was closed",
        )
        self.facts.first = fresh

    # ------------------------------------------------------------------ the summary

    async def summary(self, *, elapsed: float, database: str) -> list[Leak]:
        first, second = self.facts.first, self.facts.second
        assert first is not None and second is not None
        second = await self.refreshed(second)
        ids = [first.id, second.id]
        async with self.core.db.transaction() as session:
            rows = (
                await session.execute(
                    select(Reply.is_internal, func.count())
                    .where(Reply.ticket_id.in_(ids), Reply.deleted_at.is_(None))
                    .group_by(Reply.is_internal)
                )
            ).all()
            thresholds = list(
                await session.scalars(
                    select(SlaTimer.threshold).where(
                        SlaTimer.ticket_id.in_(ids), SlaTimer.fired_at.is_not(None)
                    )
                )
            )
        counts = {bool(internal): int(n) for internal, n in rows}
        thresholds.sort(key=lambda t: (t != SlaThreshold.WARNING.value, t))
        self.step_title = "the summary"
        self.expect(first.status is Status.CLOSED, f"#{first.number} is {first.status.value}")
        self.expect(
            counts.get(False, 0) == 2,
            f"{counts.get(False, 0)} public replies are stored (expected Dana's and Alice's)",
        )
        self.expect(counts.get(True, 0) == 1, f"{counts.get(True, 0)} internal notes are stored")
        self.expect(
            thresholds == ["warning", "breach"],
            f"the SLA alerts claimed are {thresholds} (expected a warning and a breach)",
        )
        breached = sla.sla_state(second, self.clock.now()) is sla.SlaState.BREACHED
        self.expect(breached, f"#{second.number} is not shown as breaching its SLA")
        leaks = await scan_for_leaks(self.core, self.fake)
        customers = await customer_ids(self.core, self.fake)
        checked = sum(len(self.fake.visible_to(c)) for c in customers)

        out = self.out
        lines = [
            f"tickets  2 opened. #{first.number} {first.status.value}: {first.status_reason}."
            f" #{second.number} {second.status.value}, first-response target missed.",
            f"replies  {counts[False]} public: Dana's answer and Alice's reply.",
            f"notes    {counts[True]} internal note, seen by staff only.",
            f"alerts   {len(thresholds)} SLA alerts for #{second.number} in #support-managers:"
            f" {' and '.join(thresholds)}.",
        ]
        if not leaks:
            tick = "✓" if out.unicode else "OK"
            if out.colour:
                tick = f"\033[32m{tick}\033[0m"
            lines.append(
                f"{tick} {CONFIRMATION}: the leak scan looked for every note in all {checked}"
                f" messages, modals and ephemerals the {len(customers)} customers can see, and"
                " in every non-private channel."
            )
        lines.append(f"database {database}")
        lines.append(f"finished in {elapsed:.1f} s")
        out.heading("Summary", always=True)
        for line in lines:
            for wrapped in textwrap.wrap(line, width=WIDTH - 2, subsequent_indent=" " * 9):
                out.write(f"  {wrapped}", always=True)
        return leaks


# ------------------------------------------------------------------------------ entry point


def _demo_start() -> datetime:
    """Now: the story's clock starts here and then moves only when the script moves it. (Slack
    message timestamps derive from it, so a database kept from an earlier run never sees the
    same message twice.)"""
    return datetime.now(UTC)


def _database_url(temp_dir: Path) -> str:
    """The demo's own SQLite file in `temp_dir`, whatever DATABASE_URL says."""
    return f"sqlite+aiosqlite:///{(temp_dir / 'demo.db').as_posix()}"


def _database_url_is_set() -> bool:
    """Whether DATABASE_URL is set (in the environment or .env), which the demo ignores."""
    if os.environ.get("DATABASE_URL"):
        return True
    try:
        return "database_url" in load_settings().model_fields_set
    except SettingsError:
        return False


def _settings_overrides() -> dict[str, Any]:
    return {
        "sla_targets": {priority: DEMO_SLA for priority in Priority},
        "sla_warning_ratio": DEMO_SLA_WARNING_RATIO,
        "business_hours_enabled": False,
        "slack_app_token": None,  # HTTP mode with signed requests, as in production
    }


async def run_demo(quiet: bool = False) -> int:
    """Play the story; 0 when every expectation held, 1 otherwise."""
    started = time.perf_counter()
    out = Output(quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="ticketbot-demo-") as temp, _quiet_logging():
        url = _database_url(Path(temp))
        database = _describe_database(_database_url_is_set())
        clock = FrozenClock(_demo_start())
        out.write("ticketbot demo: the real bot (HTTP mode, signed requests) and a stand-in for")
        out.write("Slack's Web API, both on 127.0.0.1. Nothing leaves this machine.")
        out.write(f"  database  {database}")
        out.write("  people    Alice and Bob (customers), Dana (agent), Max (manager), Ada (admin)")
        out.write("  channels  #support-triage (private, staff), #support-managers (SLA alerts)")
        stage = Stage(database_url=url, clock=clock, settings_overrides=_settings_overrides())
        try:
            await stage.start()
        except Exception as error:
            await _stop_quietly(stage)
            print(f"ticketbot demo could not start: {error}", file=sys.stderr)
            return 1
        try:
            story = Story(stage, clock, out)
            await story.play()
            leaks = await story.summary(elapsed=time.perf_counter() - started, database=database)
        except DemoFailure as failure:
            print(f"ticketbot demo FAILED in {failure.where}:\n  {failure}", file=sys.stderr)
            return 1
        except Exception:
            print("ticketbot demo FAILED with an unexpected error:", file=sys.stderr)
            traceback.print_exc()
            return 1
        finally:
            await _stop_quietly(stage)
    if leaks:
        print("ticketbot demo FAILED: internal notes reached a customer:", file=sys.stderr)
        for leak in leaks:
            print(f"  {leak.note!r} in {leak.where}", file=sys.stderr)
        return 1
    return 0


async def _stop_quietly(stage: Stage) -> None:
    try:
        await stage.stop()
    except Exception:
        logging.getLogger("devslack.demo").warning("stopping the demo failed", exc_info=True)
