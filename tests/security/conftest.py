"""Fixtures of the reliability and security scenarios: the real bot over signed HTTP against the
stand-in Slack (both databases; the internal-note leak scanner runs after every scenario), and
a second replica of the bot on the same database and the same Slack."""

from __future__ import annotations

import pytest

from devslack.stage import Replica, Stage
from tests.bot.conftest import stage  # noqa: F401  (the shared end-to-end fixture)


@pytest.fixture
async def replica(stage: Stage) -> Replica:  # noqa: F811
    """Another bot process: same database, same Slack; stopped with the stage."""
    return await stage.start_replica()


@pytest.fixture
def postgresql_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "row locks and concurrent transactions are only real on PostgreSQL: SQLite "
            "serialises every unit of work with BEGIN IMMEDIATE, so there is no race to test"
        )
