"""Fixtures for the fault scenarios: the real bot on loopback against the stand-in Slack, with a
short Slack API time-out so that a Slack time-out costs the suite half a second, not ten."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack.leaks import scan_for_leaks
from devslack.stage import Stage
from tests.conftest import settings_for, truncate_all

SLACK_API_TIMEOUT = 0.5
SHORT_LEASE = 0.3


@asynccontextmanager
async def running_stage(
    database: Database, database_url: str, clock: FrozenClock, **overrides: Any
) -> AsyncIterator[Stage]:
    """The bot on the session's database, the leak scanner after the scenario, tables emptied."""
    core = Core(db=database, settings=settings_for(database_url), clock=clock)
    settings = {"slack_api_timeout_seconds": SLACK_API_TIMEOUT, **overrides}
    try:
        async with Stage(
            database_url=database_url, clock=clock, core=core, settings_overrides=settings
        ) as running:
            yield running
            leaks = await scan_for_leaks(core, running.fake)
            assert not leaks, f"internal notes leaked: {leaks}"
    finally:
        await truncate_all(database)


@pytest.fixture
async def stage(database: Database, database_url: str, clock: FrozenClock) -> AsyncIterator[Stage]:
    async with running_stage(database, database_url, clock) as running:
        yield running


@pytest.fixture
async def short_lease_stage(
    database: Database, database_url: str, clock: FrozenClock
) -> AsyncIterator[Stage]:
    """Outbox leases of 0.3 s and a patient Slack client: for the lease scenarios."""
    async with running_stage(
        database,
        database_url,
        clock,
        outbox_lease_seconds=SHORT_LEASE,
        slack_api_timeout_seconds=5,
    ) as running:
        yield running
