"""`serve` and `check` when Slack cannot be reached or answers with something that is not
Slack's JSON: one line naming what failed, where (SLACK_API_URL) and what to try, exit code 2
(serve) or 1 (check), no traceback, no unclosed session; `serve` retries with back-off first."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import BotServer, StartupError
from bot.cli import check_command
from bot.settings import BotSettings
from bot.slack_reach import start_retry_delays
from devslack.server import FakeSlack
from devslack.stage import SIGNING_SECRET

STAFF = "CSTAFF0001"
MANAGERS = "CMANAGER01"
REPO = Path(__file__).resolve().parents[2]


async def free_port_url() -> str:
    """An http URL on loopback where nothing listens (connection refused)."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return f"http://127.0.0.1:{port}/api/"


class NotSlack:
    """A server on loopback that answers every Web API call like a proxy in the way would:
    an HTML 502 page, a 405 text page, or a 200 with plain text."""

    def __init__(self, status: int, content_type: str, body: str) -> None:
        self.status, self.content_type, self.body = status, content_type, body
        self.calls = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _answer(self, request: web.Request) -> web.Response:
        self.calls += 1
        return web.Response(status=self.status, text=self.body, content_type=self.content_type)

    async def __aenter__(self) -> NotSlack:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/api/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


PROXY_PAGES = {
    "html-502": (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "text-405": (405, "text/plain", "405 Method Not Allowed"),
    "text-200": (200, "text/plain", "hello from a captive portal"),
}


def settings_for(api_url: str, database_url: str, **overrides: object) -> BotSettings:
    values: dict[str, object] = {
        "slack_bot_token": "xoxb-fake-bot-token",
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": api_url,
        "staff_channel_id": STAFF,
        "manager_channel_id": MANAGERS,
        "database_url": database_url,
        "host": "127.0.0.1",
        "port": 0,
        "run_scheduler": False,
        "slack_api_timeout_seconds": 5,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'ticketbot.db'}"


@pytest.fixture
def unclosed_reports() -> Iterator[list[str]]:
    """What the event loop reports about sessions left open (aiohttp's 'Unclosed client
    session'), collected after a garbage collection."""
    loop = asyncio.get_event_loop()
    reports: list[str] = []
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        reports.append(str(context.get("message")))

    loop.set_exception_handler(handler)
    try:
        yield reports
    finally:
        gc.collect()
        loop.set_exception_handler(previous)


def test_start_retry_delays_double_from_one_second_and_are_capped():
    assert start_retry_delays(1) == ()
    assert start_retry_delays(5) == (1.0, 2.0, 4.0, 8.0)
    assert start_retry_delays(8)[-1] == 30.0


async def test_serve_retries_an_unreachable_slack_with_back_off_then_fails_in_one_line(
    sqlite_url, unclosed_reports, caplog
):
    api_url = await free_port_url()
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    server = BotServer(settings_for(api_url, sqlite_url, slack_start_attempts=4), sleep=record)
    with pytest.raises(StartupError) as failure:
        await server.start()
    await server.stop()
    await server.core.close()
    assert slept == [1.0, 2.0, 4.0]
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith(f"cannot reach Slack at {api_url} (SLACK_API_URL): auth.test failed")
    assert "connection failed" in message
    assert "SLACK_API_URL (leave it unset to use Slack's own)" in message
    assert message.endswith("(gave up after 4 attempts)")
    retry = "Slack cannot be reached; trying again"
    retries = [r for r in caplog.records if r.getMessage() == retry]
    assert [r.attempt for r in retries] == [1, 2, 3]
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in unclosed_reports if "Unclosed" in r]


async def test_serve_succeeds_when_slack_answers_on_a_later_attempt(sqlite_url):
    async with FakeSlack() as slack:
        slack.add_channel(STAFF, "support-triage", is_private=True, members=[])
        slack.add_channel(MANAGERS, "support-managers", is_private=True, members=[])
        slack.fail_next("auth.test", status=503)
        slept: list[float] = []

        async def record(seconds: float) -> None:
            slept.append(seconds)

        server = BotServer(settings_for(slack.api_url, sqlite_url), sleep=record)
        try:
            await server.start()
        finally:
            await server.stop()
            await server.core.close()
    assert slept == [1.0]
    assert [c.method for c in slack.calls][:2] == ["auth.test", "auth.test"]


async def test_a_refused_token_is_not_retried(sqlite_url):
    async with FakeSlack() as slack:
        slept: list[float] = []

        async def record(seconds: float) -> None:
            slept.append(seconds)

        server = BotServer(
            settings_for(slack.api_url, sqlite_url, slack_bot_token="xoxb-wrong"), sleep=record
        )
        with pytest.raises(StartupError, match=r"auth\.test: invalid_auth"):
            await server.start()
        await server.stop()
        await server.core.close()
    assert slept == []


@pytest.mark.parametrize("page", sorted(PROXY_PAGES))
async def test_serve_explains_an_answer_that_is_not_slacks_json(page, sqlite_url):
    status, content_type, body = PROXY_PAGES[page]
    async with NotSlack(status, content_type, body) as proxy:

        async def no_wait(seconds: float) -> None:
            pass

        server = BotServer(settings_for(proxy.url, sqlite_url), sleep=no_wait)
        with pytest.raises(StartupError) as failure:
            await server.start()
        await server.stop()
        await server.core.close()
    message = str(failure.value)
    assert message.startswith(f"Slack at {proxy.url} (SLACK_API_URL) answered auth.test with ")
    assert "that is not Slack's JSON, as a proxy or gateway error page would" in message
    if status != 200:
        assert f"HTTP {status} ({content_type})" in message
    assert proxy.calls == 5  # retried: a proxy's page says nothing about the settings


@pytest.mark.parametrize("page", sorted(PROXY_PAGES))
async def test_check_explains_an_answer_that_is_not_slacks_json(page, sqlite_url, capsys):
    status, content_type, body = PROXY_PAGES[page]
    async with NotSlack(status, content_type, body) as proxy:
        assert await check_command(settings_for(proxy.url, sqlite_url)) == 1
    output = capsys.readouterr().out
    failures = [line for line in output.splitlines() if line.startswith("FAIL")]
    assert failures == [
        f"FAIL Slack at {proxy.url} (SLACK_API_URL) answered auth.test with "
        + (f"HTTP {status} ({content_type}) " if status != 200 else "an answer ")
        + "that is not Slack's JSON, as a proxy or gateway error page would: check this "
        "host's network, DNS and proxy settings, and SLACK_API_URL (leave it unset to use "
        "Slack's own), then try again"
    ]


def clean_env(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env.update(values)
    return env


async def run_bot(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, output.decode()


def serve_env(api_url: str, database_url: str, **overrides: str) -> dict[str, str]:
    values = {
        "SLACK_BOT_TOKEN": "xoxb-fake-bot-token",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": api_url,
        "STAFF_CHANNEL_ID": STAFF,
        "MANAGER_CHANNEL_ID": MANAGERS,
        "DATABASE_URL": database_url,
        "PORT": "0",
        "SLACK_START_ATTEMPTS": "1",
    }
    return clean_env(**{**values, **overrides})


async def test_python_m_bot_serve_without_slack_ends_in_one_line_and_exit_code_2(
    sqlite_url, tmp_path
):
    api_url = await free_port_url()
    code, output = await run_bot("serve", env=serve_env(api_url, sqlite_url), cwd=tmp_path)
    assert code == 2, output
    assert "Traceback" not in output and "Unclosed" not in output
    [line] = [line for line in output.splitlines() if line.startswith("ticketbot did not start")]
    assert line.startswith(
        f"ticketbot did not start: cannot reach Slack at {api_url} (SLACK_API_URL): "
        "auth.test failed, the connection failed"
    )


async def test_python_m_bot_serve_behind_a_proxy_page_ends_in_one_line(sqlite_url, tmp_path):
    async with NotSlack(*PROXY_PAGES["text-200"]) as proxy:
        code, output = await run_bot("serve", env=serve_env(proxy.url, sqlite_url), cwd=tmp_path)
    assert code == 2, output
    assert "Traceback" not in output and "Unclosed" not in output
    assert "AttributeError" not in output
    assert (
        f"ticketbot did not start: Slack at {proxy.url} (SLACK_API_URL) answered auth.test "
        "with an answer that is not Slack's JSON" in output
    )


async def test_python_m_bot_serve_with_an_unreachable_database_ends_in_one_line(tmp_path):
    async with FakeSlack() as slack:
        env = serve_env(slack.api_url, "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
        code, output = await run_bot("serve", env=env, cwd=tmp_path)
    assert code == 2, output
    assert "Traceback" not in output and "Unclosed" not in output
    assert (
        "ticketbot did not start: cannot use the database at "
        "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere (DATABASE_URL): " in output
    )


async def test_bolt_is_built_without_its_token_warning_and_the_environment_is_kept(
    sqlite_url, caplog, monkeypatch
):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-fake-bot-token")
    caplog.set_level(logging.DEBUG)
    async with FakeSlack() as slack:
        slack.add_channel(STAFF, "support-triage", is_private=True, members=[])
        server = BotServer(settings_for(slack.api_url, sqlite_url))
        try:
            await server.start()
        finally:
            await server.stop()
            await server.core.close()
    assert not [r for r in caplog.records if "will be unused" in r.getMessage()]
    assert os.environ["SLACK_BOT_TOKEN"] == "xoxb-fake-bot-token"


async def test_serve_refuses_a_signing_secret_that_cannot_be_real_before_anything_starts(
    sqlite_url, tmp_path
):
    api_url = await free_port_url()
    env = serve_env(api_url, sqlite_url, SLACK_SIGNING_SECRET="x")
    code, output = await run_bot("serve", env=env, cwd=tmp_path)
    assert code == 2, output
    assert output.splitlines() == [
        "Invalid configuration:",
        "  SLACK_SIGNING_SECRET: too short to be a Slack signing secret (1 character; Slack's "
        "have 32): copy it from Basic Information > App Credentials > Signing Secret",
    ]
    assert not (tmp_path / "ticketbot.db").exists()  # nothing was started or migrated


@pytest.mark.parametrize(
    ("command", "prefix"), [("migrate", "migrate: "), ("scheduler", "scheduler did not start: ")]
)
async def test_migrate_and_scheduler_with_an_unreachable_database_end_in_one_line(
    command, prefix, tmp_path
):
    env = clean_env(DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    code, output = await run_bot(command, env=env, cwd=tmp_path)
    assert code == 2, output
    assert "Traceback" not in output
    assert (
        output.strip()
        .splitlines()[-1]
        .startswith(
            f"{prefix}cannot use the database at postgresql+asyncpg://postgres@127.0.0.1:1/nowhere "
            "(DATABASE_URL): "
        )
    )
