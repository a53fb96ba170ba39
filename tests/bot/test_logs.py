"""Structured logs across a scenario: one access line per Slack request, correlated by request
id, and no secret in any record, whatever the formatter."""

from __future__ import annotations

import json
import logging
import re

import pytest

from bot.logs import (
    _STANDARD,
    JsonFormatter,
    RedactingFilter,
    RequestIdFilter,
    TextFormatter,
    configure_logging,
)
from devslack.stage import AGENT, CUSTOMER, MANAGER, SIGNING_SECRET, STAFF_CHANNEL
from tests.bot.e2e_support import open_ticket


def access_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "bot.access"]


def header(response, name: str) -> str:
    return {key.lower(): text for key, text in response.headers.items()}[name.lower()]


def everything_in(record: logging.LogRecord) -> str:
    """The record's message, every extra and its traceback, as plain text."""
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    parts = [record.getMessage(), repr(extras), str(record.exc_text or "")]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


async def test_each_request_has_an_access_line_and_no_record_contains_a_secret(stage, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())
    token = stage.fake.bot_token

    opened = await open_ticket(stage)
    response = await stage.act(
        stage.user(AGENT).says(STAFF_CHANNEL, "!reply Please retry", thread_ts=opened.card.ts)
    )
    # A permission denial (agents may not change roles), logged by the core.
    denied = await stage.act(
        stage.user(AGENT).slash_command(
            f"role <@{MANAGER.user_id}|max> admin", channel_id=STAFF_CHANNEL
        )
    )
    # A Slack failure inside a listener: logged with its traceback.
    stage.fake.fail_next("views.open", error="invalid_auth")
    await stage.act(stage.user(CUSTOMER).slash_command("new", channel_id=stage.dm(CUSTOMER)))
    forged = await stage.send(
        stage.user(CUSTOMER).slash_command("mine", channel_id=stage.dm(CUSTOMER)),
        headers={"X-Slack-Signature": "v0=" + "1" * 64},
    )
    assert forged.status == 401
    records = list(caplog.records)

    lines = access_lines(records)
    assert len(lines) == 6  # command + submission, event, role command, new command, forged
    by_id = {line.request_id: line for line in lines}
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in by_id)
    event_line = by_id[header(response, "X-Request-Id")]
    assert (event_line.kind, event_line.action, event_line.user) == (
        "event",
        "message",
        AGENT.user_id,
    )
    assert event_line.status == 200 and event_line.latency_ms >= 0
    role_line = by_id[header(denied, "X-Request-Id")]
    assert (role_line.kind, role_line.action, role_line.user) == (
        "command",
        "/ticket role",
        AGENT.user_id,
    )
    forged_line = by_id[header(forged, "X-Request-Id")]
    assert forged_line.status == 401
    submission = [line for line in lines if line.kind == "view_submission"]
    assert submission and submission[0].user == CUSTOMER.user_id and submission[0].status == 200

    # The core's denial carries the id of the request that caused it.
    denial = [
        r for r in records if r.name == "core.access" and r.getMessage() == "permission denied"
    ]
    assert denial and denial[-1].request_id == role_line.request_id
    assert any(r.exc_info for r in records if r.name == "bot.errors"), "the listener failure"

    json_formatter = JsonFormatter()
    text_formatter = TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for record in records:
        for text in (
            everything_in(record),
            json_formatter.format(record),
            text_formatter.format(record),
        ):
            assert token not in text, record
            assert SIGNING_SECRET not in text, record

    parsed = json.loads(json_formatter.format(role_line))
    assert parsed["logger"] == "bot.access" and parsed["request_id"] == role_line.request_id
    assert parsed["user"] == AGENT.user_id and parsed["status"] == 200
    assert isinstance(parsed["latency_ms"], float)


@pytest.mark.parametrize("json_lines", [False, True])
def test_configured_handler_redacts_a_token_logged_by_mistake(capsys, json_lines):
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(json_lines=json_lines, secrets=("the-signing-secret",))
        logging.getLogger("bot.test").warning(
            "calling with xoxb-123-456-abcdef", extra={"detail": "secret the-signing-secret"}
        )
        out = capsys.readouterr().err
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        for name in (
            "slack_bolt",
            "slack_sdk",
            "apscheduler",
            "aiohttp.access",
            "sqlalchemy.engine",
        ):
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert "xoxb-123" not in out and "the-signing-secret" not in out
    assert out.count("[redacted]") == 2
    if json_lines:
        assert json.loads(out.strip().splitlines()[-1])["detail"] == "secret [redacted]"


def test_redacting_filter_scrubs_extras_and_arguments():
    record = logging.makeLogRecord(
        {"msg": "token %s", "args": ("xoxb-1-2-3",), "extra_field": "xapp-1-A-b"}
    )
    RedactingFilter().filter(record)
    assert record.getMessage() == "token [redacted]"
    assert record.extra_field == "[redacted]"


def test_a_secret_is_redacted_as_a_whole_value_never_inside_ordinary_words():
    secret = "8f14e45fceea167a5a36dedd4bea2543"
    record = logging.makeLogRecord(
        {
            "msg": "Context impl SQLiteImpl; signing with %s; url=https://x/?s=%s&n=1",
            "args": (secret, secret),
            "note": f"secret:{secret}",
        }
    )
    RedactingFilter(secrets=(secret, "n", "Context")).filter(record)
    assert record.getMessage() == (
        "[redacted] impl SQLiteImpl; signing with [redacted]; url=https://x/?s=[redacted]&[redacted]=1"
    )
    assert record.note == "secret:[redacted]"


def test_a_secret_inside_a_longer_token_is_not_cut_out_of_it():
    record = logging.makeLogRecord({"msg": "ids abc123 xabc123 abc123x abc123-4 abc123"})
    RedactingFilter(secrets=("abc123",)).filter(record)
    assert record.getMessage() == "ids [redacted] xabc123 abc123x abc123-4 [redacted]"


def test_slack_tokens_are_redacted_whole_but_not_when_they_are_part_of_a_word():
    record = logging.makeLogRecord({"msg": "token xoxb-1-2-abc, word fooxoxb-1 kept"})
    RedactingFilter().filter(record)
    assert record.getMessage() == "token [redacted], word fooxoxb-1 kept"
