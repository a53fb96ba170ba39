"""What every service call needs: the database, the settings and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.clock import Clock, SystemClock
from core.db import Database
from core.settings import CoreSettings


@dataclass
class Core:
    """The desk's dependencies, passed explicitly to every public service function."""

    db: Database
    settings: CoreSettings
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def from_settings(cls, settings: CoreSettings, clock: Clock | None = None) -> Core:
        database = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )
        return cls(db=database, settings=settings, clock=clock or SystemClock())

    async def close(self) -> None:
        await self.db.dispose()
