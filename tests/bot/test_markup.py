"""Slack markup read as people saw it (bot.markup), and what the renderer makes of the result
(bot.blocks.text.escape): names not ids, links kept with their target, nothing that pings."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot import markup
from bot.blocks import text as rendering
from bot.markup import Names, References

NAMES = Names(
    users={"U0ALICE": "Alice Smith", "W0GRID": "Grid Gary"}, channels={"C0RAND": "random"}
)


def rich(*elements: dict) -> dict:
    return {"type": "rich_text", "block_id": "b1", "elements": list(elements)}


def section(*elements: dict) -> dict:
    return {"type": "rich_text_section", "elements": list(elements)}


def t(text: str, **style: bool) -> dict:
    element: dict = {"type": "text", "text": text}
    if style:
        element["style"] = style
    return element


# ------------------------------------------------------------------------------ mrkdwn text


def test_mentions_become_display_names_and_unknown_people_a_neutral_word() -> None:
    text = "ask <@U0ALICE>, <@W0GRID> and <@U0NOBODY> or <@U0OLD|olduser>"
    assert markup.translate(text, NAMES) == "ask @Alice Smith, @Grid Gary and @user or @olduser"
    assert markup.text_references(text) == References(
        frozenset({"U0ALICE", "W0GRID", "U0NOBODY", "U0OLD"}), frozenset()
    )


def test_channels_take_their_label_else_their_looked_up_name_else_a_neutral_word() -> None:
    text = "in <#C0GEN|general>, <#C0RAND|> and <#C0PRIV>"
    assert markup.translate(text, NAMES) == "in #general, #random and #channel"
    assert markup.text_references(text).channels == {"C0GEN", "C0RAND", "C0PRIV"}


def test_groups_and_broadcasts_become_plain_words() -> None:
    text = "<!subteam^S0OPS|@ops-team> <!subteam^S0X> <!here> <!channel> <!everyone> <!here|here>"
    assert markup.translate(text) == "@ops-team @group @here @channel @everyone @here"


def test_links_keep_target_and_label_and_addresses_are_not_doubled() -> None:
    cases = {
        "<https://example.com/docs|the docs>": "the docs (https://example.com/docs)",
        "<https://example.com/a>": "https://example.com/a",
        "<http://example.com|example.com>": "http://example.com",
        "<https://example.com/|https://example.com>": "https://example.com/",
        "<mailto:help@example.com|help@example.com>": "help@example.com",
        "<mailto:help@example.com|write to us>": "write to us (mailto:help@example.com)",
        "<https://x.test/?a=1&amp;b=2|a &amp; b>": "a & b (https://x.test/?a=1&b=2)",
    }
    for raw, stored in cases.items():
        assert markup.translate(raw) == stored, raw


def test_entities_are_decoded_once_and_dates_show_their_fallback() -> None:
    assert markup.translate("a &lt;b&gt; &amp; c &amp;lt;") == "a <b> & c &lt;"
    assert (
        markup.translate("due <!date^1700000000^{date_short}|Nov 14, 2023>") == "due Nov 14, 2023"
    )


def test_translated_text_never_carries_slack_tokens() -> None:
    raw = "<@U0ALICE> <#C0X|x> <!here> <!subteam^S1|@t> <https://a.test|b> &lt;@U1&gt;"
    out = markup.translate(raw, NAMES)
    # What was escaped in Slack stays text; nothing of Slack's own markup survives.
    assert out == "@Alice Smith #x @here @t b (https://a.test) <@U1>"


# ------------------------------------------------------------------------------ rich text


def test_rich_text_sections_lists_quotes_and_code_read_as_written() -> None:
    blocks = [
        rich(
            section(
                t("Hi "),
                {"type": "user", "user_id": "U0ALICE"},
                t(", see "),
                {"type": "link", "url": "https://example.com/x", "text": "this"},
                t(" in "),
                {"type": "channel", "channel_id": "C0RAND"},
                t(" "),
                {"type": "emoji", "name": "wave", "unicode": "1f44b"},
                t("\n"),
            ),
            {
                "type": "rich_text_list",
                "style": "bullet",
                "indent": 0,
                "elements": [section(t("first")), section(t("bold", bold=True))],
            },
            {
                "type": "rich_text_list",
                "style": "ordered",
                "indent": 1,
                "elements": [section(t("one")), section(t("two", code=True))],
            },
            {"type": "rich_text_quote", "elements": [t("quoted\nlines")]},
            {"type": "rich_text_preformatted", "elements": [t("x = <1> & 2")]},
            section(
                {"type": "broadcast", "range": "channel"},
                t(" "),
                {"type": "usergroup", "usergroup_id": "S0OPS"},
            ),
        )
    ]
    assert markup.rich_text(blocks, NAMES) == (
        "Hi @Alice Smith, see this (https://example.com/x) in #random :wave:\n"
        "• first\n"
        "• *bold*\n"
        "    1. one\n"
        "    2. `two`\n"
        "> quoted\n"
        "> lines\n"
        "```\nx = <1> & 2\n```\n"
        "@channel @group"
    )
    assert markup.blocks_references(blocks) == References(
        frozenset({"U0ALICE"}), frozenset({"C0RAND"})
    )


def test_a_message_with_text_is_read_from_its_text_and_one_without_from_its_blocks() -> None:
    blocks = [rich(section(t("from the blocks")))]
    assert markup.message_text({"text": "from <@U0ALICE>", "blocks": blocks}, NAMES) == (
        "from @Alice Smith"
    )
    assert markup.message_text({"text": "", "blocks": blocks}) == "from the blocks"
    assert markup.message_text({"blocks": [{"type": "section"}]}) == ""


# ------------------------------------------------------------------------------ attachments


FORWARDED = {
    "is_share": True,
    "is_msg_unfurl": True,
    "author_id": "U0ALICE",
    "author_name": "Alice Smith",
    "channel_name": "general",
    "text": "The build is red, see <https://ci.test/1|run 1> <@U0ALICE>",
    "fallback": "[Dec 1st] Alice Smith: The build is red",
    "from_url": "https://acme.slack.com/archives/C0GEN/p1700000000000100",
    "ts": "1700000000.000100",
}


def test_a_forwarded_message_is_read_from_its_attachment_after_the_comment() -> None:
    alone = {"type": "message", "text": "", "attachments": [FORWARDED]}
    assert markup.message_text(alone, NAMES) == (
        "Forwarded message from Alice Smith in #general:\n"
        "The build is red, see run 1 (https://ci.test/1) @Alice Smith"
    )
    commented = {"text": "FYI", "attachments": [FORWARDED]}
    assert markup.message_text(commented, NAMES).startswith("FYI\n\nForwarded message from")
    assert "U0ALICE" in markup.message_references(alone).users


def test_previews_of_links_in_the_text_are_not_read_as_written_text() -> None:
    unfurl = {
        "from_url": "https://example.com/post",
        "original_url": "https://example.com/post",
        "title": "A blog post",
        "text": "Preview text",
        "service_name": "Example",
    }
    permalink = {
        "is_msg_unfurl": True,
        "from_url": "https://acme.slack.com/archives/C1/p1",
        "text": "unfurled message",
    }
    message = {
        "text": "<https://example.com/post> and <https://acme.slack.com/archives/C1/p1>",
        "attachments": [unfurl, permalink],
    }
    assert markup.message_text(message) == (
        "https://example.com/post and https://acme.slack.com/archives/C1/p1"
    )


def test_an_attachment_only_message_reads_title_pretext_and_fallback() -> None:
    message = {
        "attachments": [
            {"pretext": "Heads up", "title": "Outage", "title_link": "https://status.test/1"},
            {"fallback": "only a fallback &amp; nothing else"},
        ]
    }
    assert markup.message_text(message) == (
        "Heads up\nOutage (https://status.test/1)\n\nonly a fallback & nothing else"
    )


def test_first_line_makes_a_title() -> None:
    assert markup.first_line("\n\n  Hello   there \nmore", 8) == "Hello th"
    assert markup.first_line("   ", 10) == ""


# ------------------------------------------------------------------------------ rendered


def test_rendered_links_are_clickable_and_show_their_own_target() -> None:
    stored = markup.translate("<https://example.com/docs|the docs>")
    assert rendering.escape(stored) == "the docs (<https://example.com/docs>)"


def test_a_label_that_names_another_address_can_not_disguise_the_target() -> None:
    stored = markup.translate("<https://evil.test/login|https://bank.test/login>")
    rendered = rendering.escape(stored)
    assert rendered == "<https://bank.test/login> (<https://evil.test/login>)"
    # Every link shows exactly where it goes.
    assert all("|" not in token for token in re.findall(r"<([^<>]*)>", rendered))


def test_rendered_names_and_broadcasts_never_notify() -> None:
    stored = markup.translate("<@U0ALICE> <!here> <!channel> <!subteam^S1|@ops>", NAMES)
    rendered = rendering.escape(stored)
    assert "<@" not in rendered and "<!" not in rendered
    assert re.findall(r"@(?!\u200b)\w", rendered) == []


def test_a_cut_address_is_left_as_text_and_truncation_never_halves_a_link() -> None:
    assert rendering.escape("see https://exam…") == "see https://exam…"
    escaped = rendering.escape("see https://example.com/a/long/path please")
    for limit in range(1, len(escaped) + 1):
        cut = rendering.truncate(escaped, limit)
        assert cut.count("<") == cut.count(">"), cut


_ADDRESS = st.from_regex(r"https://[a-z]{1,8}\.test/[a-z0-9_()?=&.-]{0,20}", fullmatch=True)


@given(
    st.lists(st.one_of(_ADDRESS, st.text(alphabet="ab &<>@|()\n.", max_size=12)), max_size=8),
    st.integers(min_value=1, max_value=120),
)
def test_rendered_user_text_has_only_whole_label_free_links(parts: list[str], limit: int) -> None:
    escaped = rendering.escape(" ".join(parts))
    for piece in (escaped, rendering.truncate(escaped, limit)):
        tokens = re.findall(r"<([^<>]*)>", piece)
        assert all(re.fullmatch(r"https://[^|\s]+", token) for token in tokens), piece
        assert "<" not in re.sub(r"<[^<>]*>", "", piece)
        assert not re.search(r"&(?!amp;|lt;|gt;)", piece)
