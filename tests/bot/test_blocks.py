"""Block Kit builders: valid Slack JSON within every limit, user text that can never ping, mention
or link, notes that never reach a customer, and the SLA wording at its boundaries."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block as SlackBlock
from slack_sdk.models.views import View

from bot.blocks import cards, home, messages, modals, text
from bot.ids import REPLY_MARKER, Action, Block, Callback, Visibility
from bot.payloads import (
    CreateTicketPayload,
    EditReplyPayload,
    ListFiltersPayload,
    ListPagePayload,
    ReplyModalPayload,
    TicketRefPayload,
)
from core.enums import Priority, Role, Status
from core.errors import ValidationFailed
from core.results import (
    CategoryView,
    Page,
    ReplyView,
    StatusChangeView,
    TicketDetail,
    TicketView,
    UserView,
)
from core.tickets import TicketFilters, UserRef

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
WARNING = T0 + timedelta(minutes=45)
BREACH = T0 + timedelta(hours=1)
ZWSP = "\u200b"
# Everything a hostile user might type: broadcasts, a user mention, a forged link, an entity,
# a control character and a bidi override.
EVIL = "<!channel> @here <@U999> <http://evil.example|Click> & @everyone <!here>\x07\u202e"
BIG = ("line & <b> @here\n" * 6000)[:100_000]
PERMALINK = "https://example.slack.com/archives/C1/p1700000000000100?thread_ts=1.2&cid=C1"

Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# factories


def user(
    uid: int = 1,
    *,
    slack: str = "U0ALICE",
    name: str = "Alice",
    role: Role = Role.CUSTOMER,
) -> UserView:
    return UserView(
        id=uid,
        slack_user_id=slack,
        display_name=name,
        email=None,
        role=role,
        company_id=None,
        is_active=True,
    )


CUSTOMER = user(1, slack="U0ALICE", name="Alice")
AGENT = user(2, slack="U0BOB", name="Bob", role=Role.AGENT)


def ticket(**changes: Any) -> TicketView:
    base = TicketView(
        id=uuid.uuid4(),
        number=42,
        title="Printer on fire",
        description="It smokes.\nPlease help.",
        status=Status.OPEN,
        priority=Priority.HIGH,
        category_id=None,
        category_name=None,
        customer=CUSTOMER,
        company_id=None,
        assignee=None,
        created_by_id=CUSTOMER.id,
        created_at=T0,
        updated_at=T0,
        first_response_at=None,
        resolved_at=None,
        closed_at=None,
        status_reason=None,
        sla_warning_at=WARNING,
        sla_breach_at=BREACH,
    )
    return replace(base, **changes)


def reply(t: TicketView, *, rid: int = 1, author: UserView = AGENT, **changes: Any) -> ReplyView:
    base = ReplyView(
        id=rid,
        ticket_id=t.id,
        author=author,
        body="Have you tried turning it off?",
        is_internal=False,
        created_at=T0 + timedelta(minutes=rid),
        edited_at=None,
    )
    return replace(base, **changes)


def evil_user(uid: int, *, role: Role = Role.CUSTOMER) -> UserView:
    """A user whose Slack id is malformed, so builders fall back to the (hostile) name."""
    return user(uid, slack="U1>|x", name=EVIL, role=role)


def evil_ticket(**changes: Any) -> TicketView:
    return ticket(
        title=EVIL,
        description=EVIL + "\n" + EVIL,
        customer=evil_user(1),
        assignee=evil_user(3, role=Role.AGENT),
        category_id=5,
        category_name=EVIL,
        status_reason=EVIL,
        **changes,
    )


def big_ticket(**changes: Any) -> TicketView:
    big_user = user(9, slack="nope", name=BIG)
    return ticket(
        title=BIG,
        description=BIG,
        customer=big_user,
        assignee=big_user,
        category_id=5,
        category_name=BIG,
        status_reason=BIG,
        **changes,
    )


@dataclass(frozen=True)
class Hit:
    ticket: TicketView
    rank: float
    snippet: str


# --------------------------------------------------------------------------------------------
# validation helpers


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from walk(value)


def mrkdwn_texts(payload: Any) -> list[str]:
    return [n["text"] for n in walk(payload) if isinstance(n, dict) and n.get("type") == "mrkdwn"]


def strings(payload: Any) -> list[str]:
    return [n for n in walk(payload) if isinstance(n, str)]


def check_blocks(blocks: list[Json], *, limit: int = 50) -> None:
    """Slack's own models accept every block unchanged, plus the limits they do not check."""
    assert isinstance(blocks, list)
    assert 1 <= len(blocks) <= limit
    block_ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(block_ids) == len(set(block_ids)), "block_id must be unique"
    for raw in blocks:
        parsed = SlackBlock.parse(raw)
        assert parsed is not None, raw
        assert parsed.to_dict() == raw, "slack_sdk dropped or changed something"
        action_ids = [n["action_id"] for n in walk(raw) if isinstance(n, dict) and "action_id" in n]
        assert len(action_ids) == len(set(action_ids)), "action_id must be unique per block"
        for field in raw.get("fields", []):
            assert len(field["text"]) <= 2000
        if raw["type"] == "context":
            assert all(len(e["text"]) <= 3000 for e in raw["elements"])
        for node in walk(raw):
            if isinstance(node, dict) and node.get("type") in ("plain_text", "mrkdwn"):
                assert node["text"], "Slack rejects empty text"
            if isinstance(node, dict) and node.get("type") == "plain_text_input":
                assert node["max_length"] <= 3000
                assert len(node.get("initial_value", "")) <= node["max_length"]
    for s in strings(blocks):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", s)


def check_message(message: tuple[str, list[Json]]) -> None:
    fallback, blocks = message
    assert fallback and len(fallback) <= 3000
    check_blocks(blocks)


def check_view(view: Json) -> None:
    assert View(**view).to_dict() == view
    check_blocks(view["blocks"], limit=100)
    if view["type"] == "modal":
        assert len(view["title"]["text"]) <= 24
        assert len(view.get("private_metadata", "")) <= 3000


# Tokens our own code writes: mentions of the known test users, Slack dates, and the permalink.
_OWN_TOKEN = re.compile(
    r"@(U0ALICE|U0BOB)"
    r"|!date\^\d+\^\{date_short\} \{time\}\|[\d: -]+ UTC"
    r"|https://example\.slack\.com/archives/[^|<>\s]+\|Open the ticket thread"
    # a link from user text shows its own target: no label
    r"|(?:https?://|mailto:)[^|<>\s]+"
)


def assert_harmless(payload: Any, *, fallback: str | None = None) -> None:
    """No '<…>' control sequence except our own, no live broadcast word, no raw '&'."""
    texts = mrkdwn_texts(payload) + ([fallback] if fallback is not None else [])
    assert texts
    for t in texts:
        for token in re.findall(r"<([^<>]*)>", t):
            assert _OWN_TOKEN.fullmatch(token), f"foreign token <{token}> in {t!r}"
        assert "<" not in _OWN_TOKEN.sub("", re.sub(r"<([^<>]*)>", "", t))
        assert not re.search(r"@(channel|here|everyone)", t, re.IGNORECASE), t
        assert not re.search(r"&(?!amp;|lt;|gt;)", t), t
        assert "U999" not in t or "&lt;@" + ZWSP + "U999&gt;" in t


# --------------------------------------------------------------------------------------------
# the validators themselves bite


def test_slack_models_reject_an_over_long_modal_title() -> None:
    view = modals.message_view("Fine", [{"type": "divider"}])
    check_view(view)
    bad = {**view, "title": {"type": "plain_text", "text": "x" * 25}}
    with pytest.raises(SlackObjectFormationError):
        View(**bad).to_dict()


def test_slack_models_reject_over_long_section_text_and_too_many_view_blocks() -> None:
    with pytest.raises(SlackObjectFormationError):
        block = SlackBlock.parse(
            {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
        )
        assert block is not None
        block.to_dict()
    with pytest.raises(SlackObjectFormationError):
        View(type="modal", title="t", blocks=[{"type": "divider"}] * 101).to_dict()


def test_check_blocks_catches_a_key_that_slack_sdk_would_ignore() -> None:
    with pytest.raises(AssertionError):
        check_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "bogus": 1}])


# --------------------------------------------------------------------------------------------
# text


def test_escape_neutralises_mentions_broadcasts_links_and_entities() -> None:
    out = text.escape("<!channel> <@U123> <http://x|y> a & b @here @Everyone @alice")
    assert out.startswith("&lt;!channel&gt; &lt;@")
    # The typed markup stays text; only the address itself becomes a link, showing itself.
    assert "&lt;<http://x>|y&gt;" in out
    assert "a &amp; b" in out
    for word in ("here", "Everyone", "alice"):
        assert f"@{ZWSP}{word}" in out
    assert re.findall(r"<[^>]*>", out) == ["<http://x>"]


def test_escape_keeps_email_addresses_copyable_and_drops_control_characters() -> None:
    assert text.escape("mail bob@example.com") == "mail bob@example.com"
    assert text.escape("a\x00b\u202ec\td\ne") == "abc\td\ne"
    assert text.plain("a\x1bb\u2066c\n") == "abc\n"


@given(st.text(alphabet="ab&<>@ \n", max_size=60), st.integers(min_value=0, max_value=70))
def test_truncate_never_exceeds_the_limit_nor_splits_an_entity(raw: str, limit: int) -> None:
    escaped = text.escape(raw)
    cut = text.truncate(escaped, limit)
    assert len(cut) <= limit
    body = cut.removesuffix("…")
    assert not re.search(r"&(?!amp;|lt;|gt;)", body)
    if len(escaped) <= limit:
        assert cut == escaped


@given(st.text(alphabet="ab&<> \n", max_size=400), st.integers(min_value=8, max_value=50))
def test_split_text_keeps_pieces_within_size_and_entities_whole(raw: str, size: int) -> None:
    escaped = text.escape(raw)
    pieces = text.split_text(escaped, size)
    assert all(0 < len(p) <= size for p in pieces)
    assert all(not re.search(r"&(?!amp;|lt;|gt;)", p) for p in pieces)
    squash = re.compile(r"\s+")
    assert squash.sub("", "".join(pieces)) == squash.sub("", escaped)


def test_quote_prefixes_every_line_and_escapes() -> None:
    quoted = text.quote("one\n\n<@U1> two")
    assert quoted == f"> one\n>\n> &lt;@{ZWSP}U1&gt; two"
    assert len(text.quote(BIG, limit=500)) <= 500


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(hours=1, minutes=20), "1h 20m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=2, hours=3, minutes=5), "2d 3h"),
        (-timedelta(minutes=5), "5m"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert text.format_duration(delta) == expected


def test_format_time_is_a_slack_date_with_utc_fallback() -> None:
    assert text.format_time(T0) == (
        f"<!date^{int(T0.timestamp())}^{{date_short}} {{time}}|2025-03-03 09:00 UTC>"
    )
    naive = datetime(2025, 3, 3, 9, 0)
    assert text.format_time(naive) == text.format_time(T0)


@pytest.mark.parametrize(
    ("slack_id", "expected"),
    [
        ("U0ALICE", "<@U0ALICE>"),
        ("W12AB", "<@W12AB>"),
        ("U1>|x", "A &amp; B"),
        ("U12\n", "A &amp; B"),
        ("u12", "A &amp; B"),
        ("", "A &amp; B"),
        (None, "A &amp; B"),
    ],
)
def test_user_mention_only_for_well_formed_ids(slack_id: str | None, expected: str) -> None:
    assert text.user_mention(slack_id, name="A & B") == expected


def test_user_mention_without_a_name_says_someone() -> None:
    assert text.user_mention("bad id") == "someone"


# --------------------------------------------------------------------------------------------
# SLA wording at the boundaries


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (WARNING - timedelta(microseconds=1), "on track, first response due <!date^"),
        (WARNING, ":warning: at risk, due in 15m"),
        (BREACH - timedelta(seconds=1), ":warning: at risk, due in 1s"),
        (BREACH, ":rotating_light: breached just now"),
        (BREACH + timedelta(seconds=59), ":rotating_light: breached just now"),
        (BREACH + timedelta(minutes=40), ":rotating_light: breached 40m ago"),
    ],
)
def test_sla_text_boundaries(now: datetime, expected: str) -> None:
    assert cards.sla_text(ticket(), now=now).startswith(expected)


def test_sla_text_answered_paused_and_without_target() -> None:
    late = BREACH + timedelta(days=1)
    answered = ticket(first_response_at=T0 + timedelta(minutes=12), status=Status.CLOSED)
    assert cards.sla_text(answered, now=late) == "answered in 12m"
    assert cards.sla_text(ticket(status=Status.CLOSED), now=late) == "paused (closed)"
    assert cards.sla_text(ticket(status=Status.RESOLVED), now=late) == "paused (resolved)"
    assert cards.sla_text(ticket(sla_breach_at=None, sla_warning_at=None), now=late) == "no target"


def test_on_track_shows_the_due_time() -> None:
    assert cards.sla_text(ticket(), now=T0).endswith(text.format_time(BREACH))


# --------------------------------------------------------------------------------------------
# card


def _actions(blocks: list[Json]) -> list[Json]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_card_shows_the_ticket_and_carries_parseable_payloads() -> None:
    t = ticket(category_name="Hardware", category_id=3)
    blocks = cards.ticket_card(t, now=WARNING)
    check_blocks(blocks)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "#42 Printer on fire"},
    }
    fields = " ".join(f["text"] for f in blocks[1]["fields"])
    for part in ("<@U0ALICE>", ":large_orange_circle: High", "Open", "_Unassigned_", "Hardware"):
        assert part in fields
    assert ":warning: at risk" in fields
    buttons = _actions(blocks)
    assert [b["action_id"] for b in buttons] == [
        Action.ASSIGN_TO_ME,
        Action.ASSIGN_OPEN,
        Action.STATUS_OPEN,
        Action.REPLY_OPEN,
        Action.NOTE_OPEN,
        Action.EDIT_TICKET_OPEN,
    ]
    for b in buttons:
        payload = TicketRefPayload.parse(b["value"])
        assert isinstance(payload, TicketRefPayload)
        assert payload.ticket_id == t.id
    hint = blocks[-1]["elements"][0]["text"]
    assert f"`{REPLY_MARKER}`" in hint and "internal" in hint


def test_closed_card_keeps_only_the_status_button() -> None:
    blocks = cards.ticket_card(ticket(status=Status.CLOSED, status_reason="Done"), now=T0)
    check_blocks(blocks)
    assert [b["action_id"] for b in _actions(blocks)] == [Action.STATUS_OPEN]


def test_deleted_card_is_short_and_has_no_buttons() -> None:
    blocks = cards.ticket_card(ticket(deleted_at=BREACH), now=BREACH)
    check_blocks(blocks)
    assert not _actions(blocks)
    assert "was deleted" in blocks[0]["text"]["text"]
    assert cards.ticket_card_text(ticket(deleted_at=BREACH)).endswith("(deleted)")


def test_card_truncates_a_long_description_and_points_to_the_full_text() -> None:
    blocks = cards.ticket_card(big_ticket(), now=T0)
    check_blocks(blocks)
    joined = "\n".join(mrkdwn_texts(blocks))
    assert "`/ticket show 42`" in joined
    assert len(blocks[0]["text"]["text"]) <= 150


def test_card_text_is_a_plain_summary() -> None:
    assert cards.ticket_card_text(ticket()) == "#42 Printer on fire — High, Open, customer Alice"


# --------------------------------------------------------------------------------------------
# modals


def _inputs(view: Json) -> dict[str, Json]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


def test_create_modal_for_a_customer() -> None:
    metadata = CreateTicketPayload(channel_id="D1")
    view = modals.create_ticket_modal(
        categories=[CategoryView(1, "Hardware", None, True), CategoryView(2, "Old", None, False)],
        title="Printer  on\nfire",
        staff=False,
        metadata=metadata,
    )
    check_view(view)
    assert view["callback_id"] == Callback.CREATE_TICKET
    assert view["title"]["text"] == "New ticket" and view["submit"]["text"] == "Open ticket"
    assert CreateTicketPayload.parse(view["private_metadata"]) == metadata
    inputs = _inputs(view)
    assert list(inputs) == [Block.TITLE, Block.DESCRIPTION, Block.PRIORITY, Block.CATEGORY]
    title = inputs[Block.TITLE]["element"]
    assert title["action_id"] == Action.TITLE
    assert title["max_length"] == 150 and title["initial_value"] == "Printer on fire"
    assert inputs[Block.DESCRIPTION]["element"]["multiline"] is True
    assert inputs[Block.DESCRIPTION]["element"]["max_length"] == 3000
    priority = inputs[Block.PRIORITY]["element"]
    assert [o["value"] for o in priority["options"]] == ["low", "medium", "high", "urgent"]
    assert priority["initial_option"]["value"] == "medium"
    category = inputs[Block.CATEGORY]
    assert category["optional"] is True
    assert [o["value"] for o in category["element"]["options"]] == ["1"]


def test_create_modal_for_staff_picks_the_customer_and_omits_empty_categories() -> None:
    view = modals.create_ticket_modal(
        categories=[], staff=True, metadata=CreateTicketPayload(), customer_slack_id="U0ALICE"
    )
    check_view(view)
    inputs = _inputs(view)
    assert Block.CATEGORY not in inputs
    customer = inputs[Block.CUSTOMER]["element"]
    assert customer == {
        "type": "users_select",
        "action_id": Action.CUSTOMER,
        "placeholder": {"type": "plain_text", "text": "Pick the customer"},
        "initial_user": "U0ALICE",
    }


def test_create_modal_caps_categories_and_prefills_huge_text_within_limits() -> None:
    categories = [CategoryView(i, f"{BIG[:200]} {i}", None, True) for i in range(1, 151)]
    view = modals.create_ticket_modal(
        categories=categories,
        title=BIG,
        description=BIG,
        staff=True,
        metadata=CreateTicketPayload(),
    )
    check_view(view)
    options = _inputs(view)[Block.CATEGORY]["element"]["options"]
    assert len(options) == 100
    assert all(len(o["text"]["text"]) <= 75 for o in options)


def test_reply_modal_for_staff_preselects_internal() -> None:
    t = ticket()
    view = modals.reply_modal(t, staff=True)
    check_view(view)
    assert view["callback_id"] == Callback.REPLY
    inputs = _inputs(view)
    radios = inputs[Block.VISIBILITY]["element"]
    assert radios["action_id"] == Action.VISIBILITY
    assert radios["initial_option"]["value"] == Visibility.INTERNAL
    assert [o["value"] for o in radios["options"]] == [Visibility.INTERNAL, Visibility.PUBLIC]
    assert radios["options"][0]["text"]["text"] == "Internal note — staff only"
    assert radios["options"][1]["text"]["text"] == "Reply to customer"
    body = inputs[Block.BODY]["element"]
    assert body["multiline"] is True and body["max_length"] == 3000
    metadata = ReplyModalPayload.parse(view["private_metadata"])
    assert metadata == ReplyModalPayload(ticket_id=t.id, staff_form=True)


def test_reply_modal_public_default_and_customer_version() -> None:
    t = ticket()
    public = modals.reply_modal(t, staff=True, internal_default=False)
    check_view(public)
    assert _inputs(public)[Block.VISIBILITY]["element"]["initial_option"]["value"] == "public"
    customer = modals.reply_modal(t, staff=False)
    check_view(customer)
    assert Block.VISIBILITY not in _inputs(customer)
    assert ReplyModalPayload.parse(customer["private_metadata"]).staff_form is False


def test_create_modal_with_text_copied_from_staff_warns_and_asks_for_confirmation() -> None:
    metadata = CreateTicketPayload(channel_id="CSTAFF", copied_from_staff=True)
    view = modals.create_ticket_modal(
        categories=[], title="From a note", description="words", staff=True, metadata=metadata
    )
    check_view(view)
    assert "copied from a staff conversation" in view["blocks"][0]["text"]["text"]
    confirm = _inputs(view)[Block.CUSTOMER_MAY_SEE]
    assert confirm["element"]["type"] == "checkboxes" and not confirm.get("optional")
    ticked = {
        Block.CUSTOMER_MAY_SEE.value: {
            Action.CUSTOMER_MAY_SEE.value: {
                "type": "checkboxes",
                "selected_options": [{"value": modals.CUSTOMER_MAY_SEE_CONFIRMED}],
            }
        }
    }
    assert modals.customer_may_see_confirmed(ticked) is True
    assert modals.customer_may_see_confirmed({}) is False
    plain = modals.create_ticket_modal(
        categories=[], staff=True, metadata=CreateTicketPayload(channel_id="CDM")
    )
    assert Block.CUSTOMER_MAY_SEE not in _inputs(plain)
    assert "customer sees" in _inputs(plain)[Block.DESCRIPTION]["hint"]["text"]


def test_status_modal_offers_the_allowed_statuses_and_a_public_reason() -> None:
    t = ticket()
    view = modals.status_modal(t, allowed=[Status.OPEN, Status.RESOLVED, Status.CLOSED])
    check_view(view)
    assert view["callback_id"] == Callback.STATUS
    assert TicketRefPayload.parse(view["private_metadata"]) == TicketRefPayload(ticket_id=t.id)
    inputs = _inputs(view)
    options = inputs[Block.STATUS]["element"]["options"]
    assert [o["value"] for o in options] == ["resolved", "closed"]  # the current one is left out
    reason = inputs[Block.REASON]
    assert reason["optional"] is True
    assert "customer" in reason["label"]["text"]


def test_status_modal_without_choices_cannot_be_submitted() -> None:
    view = modals.status_modal(ticket(), allowed=[])
    check_view(view)
    assert "submit" not in view and not _inputs(view)


def test_assign_modal_presets_the_current_assignee() -> None:
    t = ticket(assignee=AGENT)
    view = modals.assign_modal(t)
    check_view(view)
    assert view["callback_id"] == Callback.ASSIGN
    assert _inputs(view)[Block.ASSIGNEE]["element"]["initial_user"] == "U0BOB"
    unassigned = modals.assign_modal(ticket(assignee=evil_user(3, role=Role.AGENT)))
    check_view(unassigned)
    assert "initial_user" not in _inputs(unassigned)[Block.ASSIGNEE]["element"]


def test_edit_reply_modal_prefills_and_says_a_note_stays_internal() -> None:
    r = reply(ticket(), rid=7, is_internal=True, body="Secret <@U1> note")
    view = modals.edit_reply_modal(r)
    check_view(view)
    assert view["callback_id"] == Callback.EDIT_REPLY
    assert EditReplyPayload.parse(view["private_metadata"]) == EditReplyPayload(reply_id=7)
    assert _inputs(view)[Block.BODY]["element"]["initial_value"] == "Secret <@U1> note"
    assert "Internal note" in view["blocks"][0]["elements"][0]["text"]
    public = modals.edit_reply_modal(replace(r, is_internal=False, body=BIG))
    check_view(public)
    assert "customer sees" in public["blocks"][0]["elements"][0]["text"]


def test_message_view_splits_huge_text_within_the_view_limits() -> None:
    view = modals.message_view("A very long title for a modal", modals.long_text_blocks(BIG * 3))
    check_view(view)
    assert "submit" not in view and len(view["blocks"]) == 100
    medium = "word & more\n" * 2000
    pieces = modals.long_text_blocks(medium)
    joined = "".join(b["text"]["text"] for b in pieces)
    assert re.sub(r"\s", "", joined) == re.sub(r"\s", "", text.escape(medium))


# --------------------------------------------------------------------------------------------
# messages


def test_customer_relay_refuses_internal_notes() -> None:
    t = ticket()
    with pytest.raises(ValueError, match="internal"):
        messages.customer_relay(reply(t, is_internal=True, body="secret"), t)


def test_customer_relay_names_the_support_author_without_a_mention() -> None:
    t = ticket()
    fallback, blocks = messages.customer_relay(reply(t, body="Fixed & done"), t)
    check_message((fallback, blocks))
    assert fallback == "Bob (support): Fixed &amp; done"
    assert blocks[0]["text"]["text"].startswith("*Bob* (support):\n> Fixed &amp; done")
    assert "<@" not in fallback + blocks[0]["text"]["text"]


def test_staff_relay_marks_notes_replies_and_customer_messages() -> None:
    t = ticket()
    note = messages.staff_relay(reply(t, is_internal=True), t)
    public = messages.staff_relay(reply(t), t)
    customer = messages.staff_relay(reply(t, author=CUSTOMER), t)
    for m in (note, public, customer):
        check_message(m)
    assert note[1][0]["text"]["text"].startswith(":lock: *Internal note* by *Bob*")
    assert public[1][0]["text"]["text"].startswith(":outbox_tray: *Reply sent to customer* by")
    assert customer[1][0]["text"]["text"].startswith(":bust_in_silhouette: *Alice* (customer)")


def test_relays_cut_long_bodies_with_a_way_to_read_the_rest() -> None:
    t = ticket()
    for m in (
        messages.staff_relay(reply(t, body=BIG), t),
        messages.customer_relay(reply(t, body=BIG), t),
    ):
        check_message(m)
        assert "Read the rest: `/ticket show 42`" in m[1][0]["text"]["text"]


def test_customer_confirmation_explains_the_thread() -> None:
    fallback, blocks = messages.customer_confirmation(ticket())
    check_message((fallback, blocks))
    joined = "\n".join(mrkdwn_texts(blocks))
    assert "*#42* Printer on fire" in joined and "High" in joined
    assert "Reply in this thread" in joined
    assert fallback == "Ticket #42 opened: Printer on fire"
    staff_made = messages.customer_confirmation(ticket(created_by_id=AGENT.id))
    assert "opened ticket" in staff_made[1][0]["text"]["text"]


def test_status_notice_for_customer_and_staff() -> None:
    t = ticket(status=Status.CLOSED)
    customer = messages.status_notice(
        t, previous=Status.OPEN, status=Status.CLOSED, reason="Fixed <b>", for_customer=True
    )
    staff = messages.status_notice(
        t, previous=Status.OPEN, status=Status.CLOSED, reason=None, for_customer=False
    )
    check_message(customer)
    check_message(staff)
    joined = "\n".join(mrkdwn_texts(customer[1]))
    assert "is now *Closed*" in joined and "Fixed &lt;b&gt;" in joined and "/ticket new" in joined
    assert staff[1][0]["text"]["text"].endswith("Open → *Closed*")
    resolved = messages.status_notice(
        t, previous=Status.OPEN, status=Status.RESOLVED, reason=None, for_customer=True
    )
    assert "reply in this thread" in "\n".join(mrkdwn_texts(resolved[1]))


def test_closed_thread_notice_says_how_to_open_a_new_ticket() -> None:
    m = messages.closed_thread_notice(42)
    check_message(m)
    assert "#42" in m[0] and "`/ticket new`" in m[1][0]["text"]["text"]


def _nav(blocks: list[Json]) -> dict[str, ListPagePayload]:
    result = {}
    for b in blocks:
        if b["type"] == "actions":
            (element,) = b["elements"]
            assert element["action_id"] == Action.PAGE
            parsed = ListPagePayload.parse(element["value"])
            assert isinstance(parsed, ListPagePayload)
            result[b["block_id"]] = parsed
    return result


@pytest.mark.parametrize(
    ("number", "expected"),
    [(1, {"page_next": 2}), (2, {"page_prev": 1, "page_next": 3}), (3, {"page_prev": 2})],
)
def test_ticket_list_page_buttons(number: int, expected: dict[str, int]) -> None:
    items = [ticket(number=i) for i in range(10)]
    page = Page.of(items, total=25, page=number, page_size=10)
    filters = TicketFilters(status=Status.OPEN, assignee=UserRef(chat_user_id="U1"))
    blocks = messages.ticket_list(page, title="Open tickets", filters=filters)
    check_blocks(blocks)
    nav = _nav(blocks)
    assert {k: v.page for k, v in nav.items()} == expected
    # The buttons carry the typed filters, nothing to parse again.
    assert all(v.filters is not None and v.filters.filters() == filters for v in nav.values())
    assert all(v.query == "" for v in nav.values())
    assert f"Page {number} of 3 · 25 tickets" in "\n".join(mrkdwn_texts(blocks))
    shows = [b["accessory"] for b in blocks if "accessory" in b]
    assert len(shows) == 10 and all(s["action_id"] == Action.SHOW_TICKET for s in shows)


def test_list_page_button_with_every_filter_fits_slack_and_round_trips() -> None:
    filters = TicketFilters(
        status=Status.WAITING_ON_CUSTOMER,
        priority=Priority.URGENT,
        assignee=UserRef(chat_user_id="W" + "9" * 31),
        customer=UserRef(user_id=10**12),
        company_id=10**12,
        category_id=10**12,
        category_name="é" * 100,
    )
    value = ListPagePayload(page=100_000, filters=ListFiltersPayload.of(filters)).dump()
    assert len(value) <= 2000
    parsed = ListPagePayload.parse(value)
    assert parsed.filters is not None and parsed.filters.filters() == filters
    assert messages.filters_label(filters).startswith("status:waiting_on_customer priority:urgent")
    for forged in (
        '{"page": 2, "filters": {"assignee": {}}}',
        '{"page": 2, "filters": {"assignee": {"me": true, "user_id": 3}}}',
        '{"page": 2, "filters": {"status": "exploded"}}',
    ):
        with pytest.raises(ValidationFailed):
            ListPagePayload.parse(forged)


def test_ticket_list_single_page_empty_and_oversized() -> None:
    empty = messages.ticket_list(Page.of([], total=0, page=1, page_size=20), title="X", query="")
    check_blocks(empty)
    assert not _nav(empty) and "No tickets found" in "\n".join(mrkdwn_texts(empty))
    many = [big_ticket(number=i) for i in range(100)]
    blocks = messages.ticket_list(
        Page.of(many, total=1000, page=2, page_size=100), title=BIG, query="q" * 1000
    )
    check_blocks(blocks)
    assert "more on this page not shown" in "\n".join(mrkdwn_texts(blocks))


def test_ticket_detail_shows_replies_oldest_first_with_notes_marked() -> None:
    t = ticket()
    detail = TicketDetail(
        ticket=t,
        replies=(
            reply(t, rid=2, is_internal=True, body="note"),
            reply(t, rid=1, author=CUSTOMER, body="hello"),
        ),
        history=(StatusChangeView(None, Status.OPEN, None, 1, T0),),
    )
    blocks = messages.ticket_detail(detail, staff=True)
    check_blocks(blocks)
    texts = mrkdwn_texts(blocks)
    hello = next(i for i, s in enumerate(texts) if "> hello" in s)
    note = next(i for i, s in enumerate(texts) if "> note" in s)
    assert hello < note and texts[note].startswith(":lock: *Internal note*")


def test_ticket_detail_never_shows_a_note_to_a_customer() -> None:
    t = ticket()
    detail = TicketDetail(
        ticket=t, replies=(reply(t, is_internal=True, body="SECRET"),), history=()
    )
    blocks = messages.ticket_detail(detail, staff=False)
    check_blocks(blocks)
    assert not any("SECRET" in s for s in strings(blocks))


def test_ticket_detail_keeps_the_latest_replies_within_50_blocks() -> None:
    t = big_ticket()
    replies = tuple(reply(t, rid=i, body=f"reply {i} " + BIG) for i in range(1, 201))
    history = tuple(StatusChangeView(Status.OPEN, Status.OPEN, BIG, 1, T0) for _ in range(20))
    blocks = messages.ticket_detail(TicketDetail(t, replies, history), staff=True)
    check_blocks(blocks)
    texts = mrkdwn_texts(blocks)
    hidden = next(s for s in texts if "earlier replies not shown" in s)
    shown = int(hidden.split()[0])
    assert any("> reply 200 " in s for s in texts)
    assert not any(f"> reply {shown} " in s for s in texts)
    assert any(f"> reply {shown + 1} " in s for s in texts)
    assert len(blocks) == 50


def test_help_text_depends_on_the_role() -> None:
    customer = messages.help_text(staff=False, admin=False)
    staff = messages.help_text(staff=True, admin=False)
    manager = messages.help_text(staff=True, admin=False, manager=True)
    admin = messages.help_text(staff=True, admin=True)
    for cmd in ("help", "new", "list", "mine", "show", "search", "close", "reopen", "reply"):
        assert f"`/ticket {cmd}" in customer
    assert "/ticket note" not in customer and "/ticket note" in staff
    assert "/ticket sla" in staff and "/ticket delete" not in staff
    assert "/ticket delete" in manager and "/ticket role" not in manager
    assert "/ticket role" in admin and "/ticket category add" in admin
    check_blocks([{"type": "section", "text": {"type": "mrkdwn", "text": admin}}])


def test_search_results_show_snippets_and_carry_the_query() -> None:
    hits = [Hit(ticket(number=i), 1.0, f"snippet {i} & more") for i in range(3)]
    blocks = messages.search_results(
        Page.of(hits, total=30, page=1, page_size=3), text="printer", query="search printer"
    )
    check_blocks(blocks)
    joined = "\n".join(mrkdwn_texts(blocks))
    assert "“printer”" in joined and "> snippet 1 &amp; more" in joined
    assert _nav(blocks)["page_next"] == ListPagePayload(page=2, query="search printer")


def test_search_results_say_when_more_matched_than_were_counted() -> None:
    hits = [Hit(ticket(number=i), 1.0, "") for i in range(3)]
    capped = messages.search_results(
        Page.of(hits, total=500, page=1, page_size=3, capped=True), text="vpn", query="search vpn"
    )
    check_blocks(capped)
    footer = mrkdwn_texts(capped)[-1]
    assert "500+ tickets" in footer and "add a word" in footer
    exact = messages.search_results(
        Page.of(hits, total=500, page=1, page_size=3), text="vpn", query="search vpn"
    )
    assert "500 tickets" in "\n".join(mrkdwn_texts(exact)) and "500+" not in str(exact)


def test_manager_alert_breach_and_warning() -> None:
    t = ticket(assignee=AGENT)
    fallback, blocks = messages.manager_alert(
        t, threshold="breach", waited=timedelta(hours=1, minutes=5), permalink=PERMALINK
    )
    check_message((fallback, blocks))
    joined = "\n".join(mrkdwn_texts(blocks))
    assert "SLA breached" in joined and "1h 5m" in joined and "<@U0BOB>" in joined
    assert "thread_ts=1.2&amp;cid=C1|Open the ticket thread>" in joined
    assert fallback.startswith("SLA breached: #42")
    warning = messages.manager_alert(
        t, threshold="warning", waited=timedelta(minutes=45), permalink="javascript:x|y>"
    )
    check_message(warning)
    assert "SLA warning" in warning[0] and "javascript" not in str(warning)


def test_assignee_notice_and_sla_overview() -> None:
    notice = messages.assignee_notice(ticket(), by_name="Carol", reason="You were assigned")
    check_message(notice)
    assert notice[0] == "You were assigned by Carol: #42 Printer on fire"
    later = ticket(number=7, sla_breach_at=BREACH + timedelta(hours=1))
    sooner = ticket(number=8, sla_breach_at=BREACH)
    blocks = messages.sla_overview([later, sooner, ticket(number=9, sla_breach_at=None)], now=T0)
    check_blocks(blocks)
    order = [s.split("*")[1] for s in mrkdwn_texts(blocks)[1:]]
    assert order == ["#8", "#7", "#9"]
    assert "No ticket is at risk" in str(messages.sla_overview([], now=T0))


# --------------------------------------------------------------------------------------------
# home


def test_home_for_a_customer() -> None:
    view = home.home_view(
        user=CUSTOMER,
        mine=Page.of([ticket()], total=1, page=1, page_size=20),
        unassigned=None,
        now=T0,
    )
    check_view(view)
    assert view["type"] == "home" and view["blocks"][0]["text"]["text"] == "Your tickets"
    assert _actions(view["blocks"])[0]["action_id"] == Action.HOME_NEW_TICKET
    assert "Unassigned" not in str(view)


def test_home_for_staff_stays_within_100_blocks() -> None:
    many = [big_ticket(number=i) for i in range(100)]
    view = home.home_view(
        user=AGENT,
        mine=Page.of(many, total=500, page=1, page_size=100),
        unassigned=Page.of(many, total=100, page=1, page_size=100),
        now=T0,
    )
    check_view(view)
    headers = [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]
    assert headers == ["Your queue", "Unassigned"]
    assert "460 more" in "\n".join(mrkdwn_texts(view))


# --------------------------------------------------------------------------------------------
# hostile text in every builder that shows user text


def _evil_outputs() -> dict[str, tuple[Any, str | None]]:
    t = evil_ticket()
    note = reply(t, rid=1, author=evil_user(3, role=Role.AGENT), is_internal=True, body=EVIL)
    public = reply(t, rid=2, author=evil_user(3, role=Role.AGENT), body=EVIL)
    from_customer = reply(t, rid=3, author=t.customer, body=EVIL)
    detail = TicketDetail(
        ticket=t,
        replies=(note, public, from_customer),
        history=(StatusChangeView(Status.OPEN, Status.CLOSED, EVIL, 1, T0),),
    )
    page = Page.of([t], total=50, page=1, page_size=1)
    hits = Page.of([Hit(t, 1.0, EVIL)], total=1, page=1, page_size=20)
    results: dict[str, tuple[Any, str | None]] = {
        "card": (cards.ticket_card(t, now=T0), cards.ticket_card_text(t)),
        "reply_modal": (modals.reply_modal(t, staff=True), None),
        "status_modal": (modals.status_modal(t, allowed=[Status.CLOSED]), None),
        "assign_modal": (modals.assign_modal(t), None),
        "message_view": (modals.message_view(EVIL, modals.long_text_blocks(EVIL)), None),
        "ticket_list": (messages.ticket_list(page, title=EVIL, query=EVIL), None),
        "search": (messages.search_results(hits, text=EVIL, query=EVIL), None),
        "detail_staff": (messages.ticket_detail(detail, staff=True), None),
        "detail_customer": (messages.ticket_detail(detail, staff=False), None),
        "sla": (messages.sla_overview([t], now=BREACH), None),
        "home_staff": (
            home.home_view(user=AGENT, mine=page, unassigned=page, now=T0),
            None,
        ),
        "home_customer": (
            home.home_view(user=CUSTOMER, mine=page, unassigned=None, now=T0),
            None,
        ),
    }
    pairs: dict[str, Callable[[], tuple[str, list[Json]]]] = {
        "confirmation": lambda: messages.customer_confirmation(t),
        "relay_note": lambda: messages.staff_relay(note, t),
        "relay_public": lambda: messages.staff_relay(public, t),
        "relay_customer": lambda: messages.staff_relay(from_customer, t),
        "customer_relay": lambda: messages.customer_relay(public, t),
        "status_customer": lambda: messages.status_notice(
            t, previous=Status.OPEN, status=Status.CLOSED, reason=EVIL, for_customer=True
        ),
        "status_staff": lambda: messages.status_notice(
            t, previous=Status.OPEN, status=Status.CLOSED, reason=EVIL, for_customer=False
        ),
        "manager_alert": lambda: messages.manager_alert(
            t, threshold="breach", waited=timedelta(hours=2), permalink=PERMALINK
        ),
        "assignee_notice": lambda: messages.assignee_notice(t, by_name=EVIL, reason=EVIL),
    }
    for name, build in pairs.items():
        fallback, blocks = build()
        results[name] = (blocks, fallback)
    return results


EVIL_OUTPUTS = _evil_outputs()


@pytest.mark.parametrize("name", sorted(EVIL_OUTPUTS))
def test_hostile_text_can_not_ping_mention_or_link(name: str) -> None:
    payload, fallback = EVIL_OUTPUTS[name]
    if isinstance(payload, dict):
        check_view(payload)
    else:
        check_blocks(payload)
    assert_harmless(payload, fallback=fallback)
    shown = "\n".join(mrkdwn_texts(payload) + ([fallback] if fallback else []))
    # The hostile text was shown (escaped), not silently dropped.
    assert "&lt;<http://evil.example>|Click&gt;" in shown


def test_hostile_text_in_inputs_is_kept_verbatim_without_control_characters() -> None:
    evil_reply = reply(ticket(), body=EVIL)
    create = modals.create_ticket_modal(
        categories=[CategoryView(1, EVIL, None, True)],
        title=EVIL,
        description=EVIL,
        staff=False,
        metadata=CreateTicketPayload(),
    )
    edit = modals.edit_reply_modal(evil_reply)
    clean = EVIL.replace("\x07", "").replace("\u202e", "")
    for view in (create, edit):
        check_view(view)
    assert _inputs(create)[Block.TITLE]["element"]["initial_value"] == clean
    assert _inputs(edit)[Block.BODY]["element"]["initial_value"] == clean


def test_notes_stay_out_of_customer_facing_builders() -> None:
    t = ticket()
    secret = reply(t, is_internal=True, body="SECRET-NOTE")
    detail = TicketDetail(ticket=t, replies=(secret,), history=())
    assert "SECRET-NOTE" not in str(messages.ticket_detail(detail, staff=False))
    with pytest.raises(ValueError):
        messages.customer_relay(secret, t)


def test_ticket_detail_offers_edit_only_on_the_viewers_own_replies() -> None:
    t = ticket()
    detail = TicketDetail(
        ticket=t,
        replies=(reply(t, rid=1, author=CUSTOMER, body="mine"), reply(t, rid=2, body="theirs")),
        history=(),
    )
    blocks = messages.ticket_detail(detail, staff=False, viewer_id=CUSTOMER.id)
    check_blocks(blocks)
    buttons = [b["accessory"] for b in blocks if b.get("accessory", {}).get("type") == "button"]
    assert [b["action_id"] for b in buttons] == [Action.EDIT_REPLY_OPEN]
    assert EditReplyPayload.parse(buttons[0]["value"]).reply_id == 1
    assert not any("accessory" in b for b in messages.ticket_detail(detail, staff=False))
