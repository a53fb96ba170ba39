"""The container image, checked without a Docker engine: the Dockerfile's structure, and its
entry command and health check run outside a container."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

ROOT = Path(__file__).resolve().parents[2]
ENTRY_SCRIPT = ROOT / "scripts" / "docker-entrypoint.sh"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """Instructions grouped by build stage (line continuations joined, comments dropped)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


def find(stage: list[Instruction], keyword: str) -> list[str]:
    return [i.arguments for i in stage if i.keyword == keyword]


def test_image_is_built_in_two_stages_from_slim_python(stages):
    assert len(stages) == 2
    builder, final = stages
    assert find(builder, "FROM") == ["python:3.11-slim AS builder"]
    assert find(final, "FROM") == ["python:3.11-slim"]
    copies = find(final, "COPY")
    assert "--from=builder /opt/venv /opt/venv" in copies
    # The final image gets no compiler, no pip install: only the built virtualenv.
    assert not any("pip install" in run for run in find(final, "RUN"))


def test_dependencies_come_from_the_lock_in_a_layer_that_only_the_lock_changes(stages):
    builder = stages[0]
    steps = [(i.keyword, i.arguments) for i in builder if i.keyword in ("COPY", "RUN")]
    # The first COPY brings only the lock, the next step installs it hash-checked: that layer is
    # rebuilt when requirements.lock changes, never for a code edit.
    first_copy = next(n for n, (keyword, _) in enumerate(steps) if keyword == "COPY")
    assert steps[first_copy][1].split() == ["requirements.lock", "./"]
    keyword, install = steps[first_copy + 1]
    assert keyword == "RUN"
    assert "pip install --require-hashes --no-deps -r requirements.lock" in install
    steps = steps[first_copy:]
    # Then the sources, and the project itself without dependencies (nothing unlocked).
    later_runs = " && ".join(arguments for keyword, arguments in steps[2:] if keyword == "RUN")
    assert re.search(r"pip install --no-deps \.(\s|$)", later_runs), later_runs
    assert "pip check" in later_runs
    copied = " ".join(arguments for keyword, arguments in steps[2:] if keyword == "COPY")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for needed in ["pyproject.toml", project["project"]["readme"], *packages]:
        assert needed in copied, f"the builder does not copy {needed}"


def test_the_locks_pin_every_dependency_with_hashes_and_ci_and_scripts_install_them():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for lock, extras in (("requirements.lock", []), ("requirements-dev.lock", ["test"])):
        text = (ROOT / lock).read_text()
        pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, re.MULTILINE))
        declared = list(project["project"]["dependencies"])
        for extra in extras:
            declared += project["project"]["optional-dependencies"][extra]
        for requirement in declared:
            name = re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
            assert name in pins, f"{lock} does not pin {name}"
        blocks = re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[2].strip())
        assert all("--hash=sha256:" in block for block in blocks), lock
    ci = (ROOT / ".ci" / "run").read_text()
    assert "--require-hashes --no-deps -r requirements-dev.lock" in ci
    assert (
        "--require-hashes --no-deps -r requirements-dev.lock"
        in (ROOT / "scripts" / "test").read_text()
    )
    assert (
        "--require-hashes --no-deps -r requirements.lock" in (ROOT / "scripts" / "run").read_text()
    )


def test_pyproject_declares_its_license_as_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    requires = project["build-system"]["requires"]
    assert any(
        r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77 for r in requires
    )


def test_final_stage_runs_as_an_unprivileged_user(stages):
    final = stages[1]
    users = find(final, "USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert any(f"useradd --system --uid 10001 --gid {user}" in run for run in find(final, "RUN"))
    # USER comes before the entry point, so the bot never runs as root.
    keywords = [i.keyword for i in final]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


def test_healthcheck_asks_healthz_with_the_standard_library(stages):
    final = stages[1]
    [healthcheck] = find(final, "HEALTHCHECK")
    assert "/healthz" in healthcheck and "curl" not in healthcheck
    assert find(final, "EXPOSE") == ["3000"]


def test_entry_point_serves_and_leaves_migrating_to_serve_alone(stages):
    final = stages[1]
    assert json.loads(find(final, "ENTRYPOINT")[0]) == ["sh", "/app/docker-entrypoint.sh"]
    assert json.loads(find(final, "CMD")[0]) == ["serve"]
    assert any("scripts/docker-entrypoint.sh" in c and "/app/" in c for c in find(final, "COPY"))
    commands = [
        line.strip()
        for line in ENTRY_SCRIPT.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not any("migrate" in line for line in commands)  # serve migrates, once
    assert commands[-1] == 'exec "$python" -m bot "$@"'


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".env", ".venv", ".git", "ticketbot.db*"):
        assert pattern in ignored


def healthcheck_command(stages: list[list[Instruction]]) -> list[str]:
    [healthcheck] = find(stages[1], "HEALTHCHECK")
    return json.loads(healthcheck.split("CMD", 1)[1].strip())


async def run(
    argv: list[str], env: dict[str, str], cwd: Path, limit: float = 60
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=limit)
    assert process.returncode is not None
    return process.returncode, output.decode()


def clean_env(**values: str) -> dict[str, str]:
    """No Slack settings inherited; the test's interpreter stands in for the image's python."""
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "HOME", "LANG")}
    env["PYTHON"] = sys.executable
    env.update(values)
    return env


async def test_entry_script_runs_the_command_given_and_serve_stops_plainly_without_slack(
    tmp_path,
):
    database = tmp_path / "ticketbot.db"
    env = clean_env(DATABASE_URL=f"sqlite+aiosqlite:///{database}")

    code, output = await run(["sh", str(ENTRY_SCRIPT), "migrate"], env, tmp_path)
    assert code == 0, output
    assert "database is up to date" in output
    tables = set(inspect(create_engine(f"sqlite:///{database}")).get_table_names())
    assert {"tickets", "outbox", "alembic_version"} <= tables

    # The image's default command: serve, which refuses to start without Slack settings and
    # says which ones, with exit status 2 (no separate migration step before it).
    code, output = await run(["sh", str(ENTRY_SCRIPT), "serve"], env, tmp_path)
    assert code == 2, output
    assert "database is up to date" not in output
    assert (
        "ticketbot cannot serve Slack yet: these settings are missing: SLACK_BOT_TOKEN, "
        "SLACK_SIGNING_SECRET, STAFF_CHANNEL_ID, MANAGER_CHANNEL_ID." in output
    )
    code, no_args_output = await run(["sh", str(ENTRY_SCRIPT)], env, tmp_path)
    assert code == 2 and "cannot serve Slack yet" in no_args_output


async def test_serve_in_the_container_migrates_once_then_stops_plainly_when_slack_is_away(
    tmp_path,
):
    """`serve` applies the migrations itself (logged once), then cannot reach Slack: one line,
    exit status 2, no traceback."""
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free_port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    database = tmp_path / "ticketbot.db"
    env = clean_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{database}",
        SLACK_BOT_TOKEN="xoxb-1-2-3",
        SLACK_SIGNING_SECRET="0123456789abcdef0123456789abcdef",
        SLACK_API_URL=f"http://127.0.0.1:{free_port}/api/",
        STAFF_CHANNEL_ID="CSTAFF0001",
        MANAGER_CHANNEL_ID="CMANAGER01",
        SLACK_START_ATTEMPTS="1",
        PORT="0",
    )
    code, output = await run(["sh", str(ENTRY_SCRIPT)], env, tmp_path)
    assert code == 2, output
    assert "Traceback" not in output
    assert output.count("Running upgrade  -> 0001") == 1, output
    tables = set(inspect(create_engine(f"sqlite:///{database}")).get_table_names())
    assert {"tickets", "alembic_version"} <= tables
    assert "ticketbot did not start: cannot reach Slack at" in output


async def test_healthcheck_command_passes_against_the_running_bot_and_fails_without_it(
    stage, stages, tmp_path
):
    command = healthcheck_command(stages)
    assert command[0] == "python"
    argv = [sys.executable, *command[1:]]
    port = stage.server.base_url.rsplit(":", 1)[1]
    code, output = await run(argv, clean_env(PORT=port), tmp_path, limit=20)
    assert code == 0, output

    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    free_port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    code, _ = await run(argv, clean_env(PORT=str(free_port)), tmp_path, limit=20)
    assert code != 0


async def test_entry_script_is_plain_posix_sh(tmp_path):
    assert ENTRY_SCRIPT.read_text().splitlines()[0] == "#!/bin/sh"
    code, output = await run(["sh", "-n", str(ENTRY_SCRIPT)], clean_env(), tmp_path)
    assert code == 0, output
