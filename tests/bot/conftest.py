"""End-to-end fixtures: the real bot over HTTP against the stand-in Slack, on both databases.

Every scenario ends with the internal-note leak scanner: a note's text visible to a customer,
in a non-private channel or in a customer's ephemeral message fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from core.clock import FrozenClock
from core.context import Core
from core.db import Database
from devslack import stage as stage_module
from devslack.leaks import scan_for_leaks
from devslack.stage import Stage
from tests.conftest import settings_for, truncate_all


@asynccontextmanager
async def running_stage(
    database: Database, database_url: str, clock: FrozenClock, **settings: object
) -> AsyncIterator[Stage]:
    """The bot on the test's database with the suite's core settings (`settings` overrides
    some); the leak scanner runs when it ends, and every table is emptied."""
    core = Core(db=database, settings=settings_for(database_url, **settings), clock=clock)
    try:
        async with Stage(database_url=database_url, clock=clock, core=core) as running:
            yield running
            await running.settle()
            leaks = await scan_for_leaks(core, running.fake)
            assert not leaks, f"internal notes leaked: {leaks}"
    finally:
        await truncate_all(database)


@pytest.fixture
async def stage(database: Database, database_url: str, clock: FrozenClock) -> AsyncIterator[Stage]:
    async with running_stage(database, database_url, clock) as running:
        yield running


@pytest.fixture
def people() -> type[stage_module.Person]:
    return stage_module.Person
