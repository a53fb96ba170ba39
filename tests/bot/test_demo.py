"""`python -m bot demo` plays the support story end to end, checks it, and fails loudly when an
expectation or the leak scan does not hold. SQLite only: the demo's own default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import devslack.demo as demo
from devslack.demo import CONFIRMATION, run_demo
from devslack.leaks import Leak

REPO_ROOT = Path(__file__).resolve().parents[2]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.as_posix()}"


async def test_demo_plays_the_story_and_confirms_no_note_reached_a_customer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await run_demo(quiet=True) == 0
    printed = capsys.readouterr()
    assert CONFIRMATION in printed.out
    assert "2 SLA alerts" in printed.out
    assert "Step 1" not in printed.out  # --quiet: the summary only
    assert printed.err == ""
    said = " ".join(printed.out.split())  # the summary wraps its lines
    assert "a throwaway SQLite file, deleted when the demo ends" in said
    assert "DATABASE_URL" not in said


async def test_demo_never_writes_into_the_database_of_database_url_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "real-desk.db"
    monkeypatch.setenv("DATABASE_URL", sqlite_url(real))
    assert await run_demo(quiet=True) == 0
    printed = capsys.readouterr()
    assert CONFIRMATION in printed.out
    said = " ".join(printed.out.split())  # the summary wraps its lines
    assert "DATABASE_URL is not used: the demo never writes into a real database" in said
    assert not real.exists()


async def test_demo_exits_non_zero_when_the_public_reply_does_not_reach_the_customer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "demo.db"))
    # Dana mistypes the marker: the bot keeps the message internal, as it must.
    monkeypatch.setattr(demo, "REPLY_MARKER", "!repyl")
    assert await run_demo(quiet=True) == 1
    printed = capsys.readouterr()
    assert "FAILED in step 3 of 7" in printed.err
    assert "public reply did not reach Alice" in printed.err
    assert CONFIRMATION not in printed.out


async def test_demo_exits_non_zero_and_names_the_leak_when_the_scanner_finds_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url(tmp_path / "demo.db"))

    async def leaking(core: object, fake: object) -> list[Leak]:
        return [Leak(note="secret note text", where="customer UCUSTOMER1: message D1")]

    monkeypatch.setattr(demo, "scan_for_leaks", leaking)
    assert await run_demo(quiet=True) == 1
    printed = capsys.readouterr()
    assert "internal notes reached a customer" in printed.err
    assert "secret note text" in printed.err
    assert CONFIRMATION not in printed.out


def test_demo_database_is_its_own_sqlite_file_even_when_database_url_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert demo._database_url(tmp_path / "temp") == sqlite_url(tmp_path / "temp" / "demo.db")
    assert not demo._database_url_is_set()
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///elsewhere.db")
    assert demo._database_url(tmp_path / "temp") == sqlite_url(tmp_path / "temp" / "demo.db")
    assert demo._database_url_is_set()


def _minimal_env(tmp_path: Path) -> dict[str, str]:
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env["DATABASE_URL"] = sqlite_url(tmp_path / "cli.db")
    return env


def test_python_m_bot_demo_quiet_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--quiet"],
        cwd=REPO_ROOT,
        env=_minimal_env(tmp_path),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert CONFIRMATION in result.stdout
    assert "Traceback" not in result.stderr


def test_python_m_bot_without_slack_credentials_names_them_and_points_to_the_demo(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=REPO_ROOT,
        env=_minimal_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "SLACK_SIGNING_SECRET" in result.stderr
    assert "./scripts/run demo" in result.stderr


def test_the_demo_outside_a_checkout_says_it_needs_one(tmp_path: Path) -> None:
    """The stand-in Slack is not part of the installed package: run from elsewhere, the demo
    says what it needs instead of failing with a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "source checkout" in done.stderr and "Traceback" not in done.stderr
