"""The README is for the people who run the desk: it covers what an adopter needs, points to
files that exist, and leaves benchmark tables and design notes to docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_the_readme_covers_what_a_team_running_the_desk_needs():
    headings = set(re.findall(r"^#{2,3} (.+)$", README, re.MULTILINE))
    for needed in (
        "Setting it up in Slack",
        "Configuration",
        "Changing SLA targets",
        "Operator commands",
        "Reading the audit log",
        "Logs",
        "Upgrading",
        "Backup and restore",
        "Troubleshooting",
    ):
        assert needed in headings, needed
    assert "Copy member ID" in README  # how to find your own id for ADMIN_USER_IDS
    assert "Verify the request URL" in README


def test_every_file_the_readme_names_exists():
    named = set(re.findall(r"`((?:\.?[\w-]+/)*\.?[\w-]+\.(?:md|yml|lock|example|sh))`", README))
    named |= set(re.findall(r"\]\(([^)#]+)\)", README)) - {
        link for link in re.findall(r"\]\(([^)#]+)\)", README) if "://" in link
    }
    named |= set(re.findall(r"\./scripts/\w+", README))
    assert named
    for path in named:
        assert (ROOT / path).exists(), path


def test_benchmark_tables_and_design_notes_live_in_docs_linked_from_the_readme():
    for doc in ("docs/architecture.md", "docs/reliability.md", "docs/benchmarks.md"):
        assert f"]({doc})" in README
    tables = re.findall(r"^\|.*\|$", README, re.MULTILINE)
    assert not [row for row in tables if re.search(r"\b(ms|req/s|ops/s|p50|p99|median)\b", row)]
