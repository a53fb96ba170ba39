"""The file pieces of messages: sizes as Slack shows them, the file list under a reply, the
notes that stand in for a file, and file names that can neither ping nor link."""

from __future__ import annotations

from dataclasses import replace

import pytest
from slack_sdk.models.blocks import Block as SlackBlock

from bot.blocks import files, messages
from core.results import AttachmentView, TicketDetail
from tests.bot.test_blocks import CUSTOMER, EVIL, reply, ticket


def attachment(
    name: str = "screenshot.png", size: int | None = 14_500, **changes
) -> AttachmentView:
    base = AttachmentView(
        id=1,
        reply_id=1,
        position=0,
        source_id="F1",
        name=name,
        title=None,
        mimetype="image/png",
        size=size,
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (14_500, "14.2 KB"),
        (20 * 1024 * 1024, "20 MB"),
        (None, "size unknown"),
    ],
)
def test_sizes_read_as_slack_shows_them(size, shown):
    assert files.human_size(size) == shown


def valid(blocks) -> None:
    for block in blocks:
        SlackBlock.parse(block).to_dict()  # raises on a broken block


def test_a_file_only_relay_lists_the_file_instead_of_an_empty_quote():
    t = ticket()
    only_file = reply(t, author=CUSTOMER, body="", attachments=(attachment(),))
    text, blocks = messages.staff_relay(only_file, t)
    valid(blocks)
    shown = blocks[0]["text"]["text"]
    assert "*screenshot.png* (14.2 KB)" in shown and "\n>" not in shown
    assert text.endswith("screenshot.png")


def test_a_relay_with_text_lists_its_files_after_the_text():
    t = ticket()
    r = reply(t, body="Look at this", attachments=(attachment(), attachment("b.log", 10, id=2)))
    _, blocks = messages.customer_relay(r, t)
    shown = blocks[0]["text"]["text"]
    assert shown.index("Look at this") < shown.index("screenshot.png") < shown.index("b.log")


def test_file_names_cannot_ping_or_link():
    t = ticket()
    evil = reply(t, body="", attachments=(attachment(EVIL),))
    outputs = [
        *messages.staff_relay(evil, t)[1],
        *messages.customer_relay(evil, t)[1],
        *files.too_large_notice(attachment(EVIL), author=EVIL, limit=10)[1],
        *files.withheld_notice(attachment(EVIL), author=EVIL)[1],
    ]
    raw = str(outputs)
    for forbidden in ("<!channel>", "<!here>", "<@U999>", "<http://evil.example|Click>", "\u202e"):
        assert forbidden not in raw


def test_the_too_large_note_names_the_file_its_size_and_the_limit():
    text, blocks = files.too_large_notice(
        attachment("dump.bin", 30 * 1024 * 1024), author="Alice", limit=20 * 1024 * 1024
    )
    valid(blocks)
    assert "dump.bin" in text and "30 MB" in text and "20 MB" in text and "too large" in text


def test_ticket_detail_lists_a_replys_files_under_it():
    t = ticket()
    r = reply(t, body="see file", attachments=(attachment(),))
    blocks = messages.ticket_detail(TicketDetail(ticket=t, replies=(r,), history=()), staff=True)
    valid(blocks)
    contexts = [b for b in blocks if b["type"] == "context"]
    assert any("screenshot.png" in str(b) and "14.2 KB" in str(b) for b in contexts)
