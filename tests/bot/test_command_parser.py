"""`/ticket` text -> typed command: every subcommand, ticket numbers, mentions, filters, pages,
and usage errors for anything else. Pure: no Slack, no database."""

from __future__ import annotations

import pytest

from bot import command_parser as cp
from bot.errors import user_message
from core.enums import Priority, Role, Status
from core.errors import ErrorCode, ValidationFailed
from core.tickets import TicketFilters, UserRef


def usage_error(text: str) -> cp.UsageError:
    with pytest.raises(cp.UsageError) as caught:
        cp.parse(text)
    return caught.value


# --------------------------------------------------------------------------- simple verbs


@pytest.mark.parametrize("text", ["", "   ", "help", "HELP", "help me please"])
def test_empty_text_and_help_give_help(text):
    assert cp.parse(text) == cp.Help()


def test_new_keeps_the_rest_as_title_and_open_is_an_alias():
    assert cp.parse("new VPN drops every hour") == cp.New(title="VPN drops every hour")
    assert cp.parse("new") == cp.New(title="")
    assert cp.parse("open Printer jam") == cp.New(title="Printer jam")


def test_mine_with_and_without_page():
    assert cp.parse("mine") == cp.Mine(page=1)
    assert cp.parse("mine page 3") == cp.Mine(page=3)


def test_sla_and_category_list():
    assert cp.parse("sla") == cp.Sla()
    assert cp.parse("category list") == cp.CategoryList()
    assert cp.parse("category LIST") == cp.CategoryList()


def test_category_add_takes_the_whole_name():
    assert cp.parse("category add Billing and invoices") == cp.CategoryAdd(
        name="Billing and invoices"
    )


@pytest.mark.parametrize("text", ["category", "category add", "category list extra", "category x"])
def test_category_misuse_is_a_usage_error(text):
    assert "/ticket category add" in usage_error(text).message


# --------------------------------------------------------------------------- ticket numbers


@pytest.mark.parametrize("number", ["42", "#42"])
def test_show_accepts_plain_and_hash_numbers(number):
    assert cp.parse(f"show {number}") == cp.Show(number=42)


@pytest.mark.parametrize("text", ["show", "show abc", "show #", "show 4 2", "show -1", "show ##4"])
def test_show_without_a_number_is_a_usage_error(text):
    error = usage_error(text)
    assert "42 or #42" in error.message or "Usage" in error.message


@pytest.mark.parametrize("number", ["7", "#7"])
def test_delete_accepts_both_number_forms(number):
    assert cp.parse(f"delete {number}") == cp.Delete(number=7)


def test_reply_and_note_keep_the_text_and_set_internal():
    assert cp.parse("reply #5 Please restart") == cp.Reply(
        number=5, text="Please restart", internal=False
    )
    assert cp.parse("note 5 legacy plan, check billing") == cp.Reply(
        number=5, text="legacy plan, check billing", internal=True
    )


@pytest.mark.parametrize("text", ["reply 5", "note #5", "reply", "note"])
def test_reply_and_note_without_text_are_usage_errors(text):
    assert "Usage" in usage_error(text).message


def test_status_with_and_without_reason():
    assert cp.parse("status 3 in_progress") == cp.SetStatus(
        number=3, status=Status.IN_PROGRESS, reason=None
    )
    assert cp.parse("status #3 resolved fixed by reboot") == cp.SetStatus(
        number=3, status=Status.RESOLVED, reason="fixed by reboot"
    )


def test_status_with_unknown_status_is_refused_with_the_field():
    with pytest.raises(ValidationFailed) as caught:
        cp.parse("status 3 exploded")
    assert caught.value.field == "status"


def test_status_without_a_status_is_a_usage_error():
    assert "Usage" in usage_error("status 3").message


def test_close_and_reopen_are_status_changes():
    assert cp.parse("close 9 Duplicate of #7") == cp.SetStatus(
        number=9, status=Status.CLOSED, reason="Duplicate of #7"
    )
    assert cp.parse("close #9") == cp.SetStatus(number=9, status=Status.CLOSED, reason=None)
    assert cp.parse("reopen 9") == cp.SetStatus(number=9, status=Status.OPEN, reason=None)


# --------------------------------------------------------------------------- mentions


@pytest.mark.parametrize("mention", ["<@U123ABC|dana>", "<@U123ABC>", "<@W123ABC|dana.agent>"])
def test_assign_takes_escaped_mentions_with_or_without_name(mention):
    expected = mention[2:].split("|")[0].rstrip(">")
    assert cp.parse(f"assign #12 {mention}") == cp.Assign(number=12, user_id=expected)


@pytest.mark.parametrize("who", ["@dana", "dana", "U123ABC", "<#C123|general>", "<!here>"])
def test_assign_to_something_that_is_not_a_user_mention_is_refused(who):
    assert "Mention a user" in usage_error(f"assign 12 {who}").message


def test_assign_without_user_is_refused():
    assert "Mention a user" in usage_error("assign 12").message


@pytest.mark.parametrize("role", list(Role))
def test_role_accepts_every_role(role):
    assert cp.parse(f"role <@U999|x> {role.value}") == cp.SetRole(user_id="U999", role=role)
    assert cp.parse(f"role <@U999> {role.value.upper()}") == cp.SetRole(user_id="U999", role=role)


def test_role_with_unknown_role_or_missing_parts_is_refused():
    with pytest.raises(ValidationFailed) as caught:
        cp.parse("role <@U999> overlord")
    assert caught.value.field == "role"
    assert "Usage" in usage_error("role <@U999>").message
    assert "Mention a user" in usage_error("role bob agent").message


# --------------------------------------------------------------------------- list, search, pages


def test_list_without_filters():
    assert cp.parse("list") == cp.ListTickets(filters=TicketFilters(), page=1)


def test_list_with_every_filter_and_a_page():
    parsed = cp.parse(
        "list status:in-progress priority:HIGH assignee:<@U1|a> category:Billing customer:<@U2> "
        "page 2"
    )
    assert parsed == cp.ListTickets(
        filters=TicketFilters(
            status=Status.IN_PROGRESS,
            priority=Priority.HIGH,
            assignee=UserRef(chat_user_id="U1"),
            category_name="Billing",
            customer=UserRef(chat_user_id="U2"),
        ),
        page=2,
    )


def test_list_assignee_accepts_me_and_none():
    assert cp.parse("list assignee:me").filters == TicketFilters(  # type: ignore[union-attr]
        assignee=UserRef(me=True)
    )
    for nobody in ("none", "Nobody", "unassigned"):
        parsed = cp.parse(f"list assignee:{nobody}")
        assert parsed.filters == TicketFilters(unassigned=True)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "field"),
    [("list status:finished", "status"), ("list priority:p0", "priority")],
)
def test_list_with_an_unknown_value_names_the_filter(text, field):
    with pytest.raises(ValidationFailed) as caught:
        cp.parse(text)
    assert caught.value.field == field


def test_list_with_a_person_not_mentioned_is_a_usage_error():
    assert "Mention a user" in usage_error("list assignee:dana").message


@pytest.mark.parametrize("text", ["list color:red", "list open", "list status:", "list :open"])
def test_list_with_unknown_filter_is_a_usage_error(text):
    assert "Unknown filter" in usage_error(text).message


def test_list_filter_values_are_checked():
    with pytest.raises(ValidationFailed) as caught:
        cp.parse("list status:sleeping")
    assert caught.value.field == "status"
    with pytest.raises(ValidationFailed) as caught:
        cp.parse("list priority:whenever")
    assert caught.value.field == "priority"


@pytest.mark.parametrize(
    "text", ["list page 0", "list page two", "mine page -1", "search vpn page 0"]
)
def test_page_must_be_a_positive_number(text):
    assert "page" in usage_error(text).message


def test_search_keeps_the_words_and_takes_a_page():
    assert cp.parse("search vpn drops") == cp.Search(text="vpn drops", page=1)
    assert cp.parse("search vpn drops page 4") == cp.Search(text="vpn drops", page=4)


def test_search_without_words_is_a_usage_error():
    assert "/ticket search" in usage_error("search").message
    assert "/ticket search" in usage_error("search page 2").message


# --------------------------------------------------------------------------- unknown input


@pytest.mark.parametrize("text", ["frobnicate 3", "shwo 1", "42", "#42", "`rm -rf`"])
def test_unknown_verb_is_a_usage_error_pointing_at_help(text):
    error = usage_error(text)
    assert "Unknown command" in error.message and "/ticket help" in error.message
    assert error.code is ErrorCode.VALIDATION


def test_unknown_verb_is_clipped_and_cannot_break_out_of_code_formatting():
    error = usage_error("x" * 200)
    assert "x" * 31 not in error.message
    error = usage_error("ab`cd")
    assert "ab'cd" in error.message and error.message.count("`") % 2 == 0


def test_usage_error_reaches_the_user_as_a_validation_failure_with_its_message():
    shown = user_message(usage_error("frobnicate 3"))
    assert shown == ":warning: Unknown command `frobnicate`. Try `/ticket help`. (`VALIDATION`)"


def test_priority_user_and_category_deactivate():
    assert cp.parse("priority #7 High") == cp.SetPriority(number=7, priority=Priority.HIGH)
    assert cp.parse("user deactivate <@U9|x>") == cp.SetActive(user_id="U9", active=False)
    assert cp.parse("user ACTIVATE <@U9>") == cp.SetActive(user_id="U9", active=True)
    assert cp.parse("category deactivate Old stuff") == cp.CategoryDeactivate(name="Old stuff")
    with pytest.raises(ValidationFailed) as caught:
        cp.parse("priority 7 p0")
    assert caught.value.field == "priority"
    for text in ("priority 7", "priority 7 high now", "user deactivate bob", "user retire <@U9>"):
        assert "/ticket" in usage_error(text).message, text
