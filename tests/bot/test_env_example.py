"""`.env.example` lists every setting of the settings classes, with its real default, and
`.env` stays out of git."""

from __future__ import annotations

import re
from pathlib import Path

from bot.settings import BotSettings
from core.settings import CoreSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def listed() -> dict[str, tuple[bool, str]]:
    """NAME -> (commented out, value) for every setting line of .env.example."""
    found: dict[str, tuple[bool, str]] = {}
    for line in EXAMPLE.read_text().splitlines():
        match = _LINE.match(line.strip())
        if match:
            name = match.group(2)
            assert name not in found, f"{name} is listed twice"
            found[name] = (match.group(1) is not None, match.group(3))
    return found


def test_every_setting_of_the_settings_classes_is_listed_and_nothing_else():
    fields = {name.upper() for name in BotSettings.model_fields}
    assert {name.upper() for name in CoreSettings.model_fields} <= fields
    assert set(listed()) == fields


def test_each_listed_setting_is_explained_by_a_comment_or_its_group():
    lines = EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if _LINE.match(line.strip()):
            above = lines[index - 1].strip()
            assert above.startswith("#"), f"nothing explains {line!r}"


def test_the_defaults_shown_are_the_real_defaults(tmp_path, monkeypatch):
    """Uncommenting every line of .env.example changes nothing: its values are the defaults."""
    for name in listed():
        monkeypatch.delenv(name, raising=False)
    uncommented = tmp_path / "all.env"
    uncommented.write_text(
        "\n".join(f"{name}={value}" for name, (commented, value) in listed().items() if commented)
    )
    from_example = BotSettings(_env_file=uncommented)  # type: ignore[call-arg]
    defaults = BotSettings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()


def test_the_required_settings_are_left_to_fill_in_and_the_copy_loads_as_it_is(monkeypatch):
    for name in listed():
        monkeypatch.delenv(name, raising=False)
    required = {name for name, (commented, value) in listed().items() if not commented}
    assert required == {
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "STAFF_CHANNEL_ID",
        "MANAGER_CHANNEL_ID",
        "ADMIN_USER_IDS",
    }
    settings = BotSettings(_env_file=EXAMPLE)  # type: ignore[call-arg]
    assert settings.missing_for_serving() == [
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "STAFF_CHANNEL_ID",
        "MANAGER_CHANNEL_ID",
    ]


def test_env_files_are_ignored_by_git_and_docker_but_the_example_is_not():
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert ".env" in gitignore and ".env.*" in gitignore and "!.env.example" in gitignore
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
